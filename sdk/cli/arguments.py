"""Argument parsing shared by several subcommands (one definition each)."""

from __future__ import annotations

import argparse


def parse_hw(text: str) -> tuple[int, int]:
    """``"480x640"`` (or ``"480X640"``) -> ``(480, 640)``: height then width, both > 0.
    Raises ``ValueError`` naming the expected form."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"expected HxW with positive integers (e.g. 480x640), got {text!r}")
    return int(parts[0]), int(parts[1])


def hw_type(text: str) -> tuple[int, int]:
    """``parse_hw`` as an argparse ``type=`` (a usage error on bad input)."""
    try:
        return parse_hw(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Every command but `sdk train` runs on the CPU unless told otherwise: one default, so a
# script behaves the same on a laptop and on a GPU machine; training follows the config's
# `runtime.device` (`auto`), so it uses a GPU where there is one. `auto` (CUDA when torch
# sees a GPU, else the CPU) only where the command builds with torch: train and export.
DEFAULT_DEVICE = "cpu"


def device_type(text: str, *, allow_auto: bool = False) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (and ``"auto"`` when allowed), lowercased;
    ``argparse.ArgumentTypeError`` otherwise."""
    value = text.strip().lower()
    kind, sep, index = value.partition(":")
    ok = value == "cpu" or (kind == "cuda" and (not sep or index.isdigit())) or (allow_auto and value == "auto")
    if not ok:
        choices = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise argparse.ArgumentTypeError(f"expected {choices}, got {text!r}")
    return value


def add_device_argument(
    parser: argparse.ArgumentParser, *, allow_auto: bool = False, what: str = "the model runs", from_config: bool = False
) -> None:
    """The shared ``--device`` option, in its own ``device`` group of ``parser``.

    Default ``DEFAULT_DEVICE`` (``cpu``) for every command but ``sdk train``
    (``from_config``: the option defaults to ``None`` and the config's
    ``runtime.device``, ``auto`` unless a config sets it, decides, so training uses a
    GPU where there is one). ``allow_auto`` also accepts ``auto``; ``what`` completes
    "where ..." in the help text.
    """
    group = parser.add_argument_group("device")
    choices = "auto (CUDA when torch sees a GPU, else cpu), cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
    group.add_argument(
        "--device", default=None if from_config else DEFAULT_DEVICE, metavar="DEVICE",
        type=(lambda text: device_type(text, allow_auto=True)) if allow_auto else device_type,
        help=f"where {what}: {choices} (default: "
             + ("the config's runtime.device, auto unless the config says otherwise)" if from_config
                else "%(default)s, as every sdk command but train)"),
    )
