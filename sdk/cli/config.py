"""``sdk config show CONFIG [--cfg-options K=V ...]``: print the resolved config."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show a config file resolved (overrides applied, model defaults filled in)",
        description="Work with config files (configs/*.py).",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    actions.required = True
    show = actions.add_parser(
        "show",
        help="print the resolved config as JSON",
        description="Load CONFIG, apply --cfg-options exactly as `sdk train` does (unknown keys and wrong types "
                    "are errors) and print the result as JSON. Values left to the model (data.preprocess None) "
                    "are filled in with the model's defaults unless --raw.",
    )
    show.add_argument("config", help="config file (e.g. configs/quickstart_tiny.py)")
    show.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                      help="overrides, e.g. schedule.lr=0.02 data.batch_size=8")
    show.add_argument("--raw", action="store_true", help="print the config as written, model defaults not filled in")
    show.add_argument("--out", metavar="JSON", help="also write it to this file")
    show.set_defaults(func=_show)


def resolved_config_dict(config_path: str, overrides: list[str], *, raw: bool = False) -> dict:
    """``Config.to_dict()`` of the config with ``overrides`` applied; unless ``raw``,
    ``data.preprocess`` None is replaced by the model's default preprocessing record
    and ``runtime.work_dir`` None by the folder ``sdk train`` would use."""
    from dataclasses import replace

    from sdk.cli.train import resolve_work_dir
    from sdk.config import load_config

    cfg = load_config(config_path, overrides)
    if not raw:
        if cfg.data.preprocess is None:
            from sdk.models import get_model_spec

            cfg = replace(cfg, data=replace(cfg.data, preprocess=get_model_spec(cfg.model.name).default_preprocess))
        cfg = replace(cfg, runtime=replace(cfg.runtime, work_dir=resolve_work_dir(config_path, None, cfg.runtime.work_dir)))
    return cfg.to_dict()


def _show(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    text = json.dumps(resolved_config_dict(args.config, list(args.cfg_options), raw=args.raw), indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0
