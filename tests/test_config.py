"""Config files and strict ``a.b=c`` overrides (``sdk.config``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.config import Config, ScheduleConfig, apply_overrides, load_config, parse_value
from sdk.errors import ConfigError
from sdk.preprocess import Preprocess

# configs/__init__.py makes the folder the package sdk.configs; it is no config
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_good_overrides_are_typed(tmp_path):
    cfg = load_config(
        CONFIGS[0],
        [
            "schedule.lr=0.02",
            "schedule.epochs=3",
            "schedule.steps=1,2",
            "schedule.grad_clip=None",
            "schedule.amp=true",
            "data.preprocess.size=(256, 256)",
            "model.overrides.score_thresh=0.2",
            "model.classes=[cat, dog]",
            f"runtime.work_dir={tmp_path}",
        ],
    )
    assert cfg.schedule.lr == 0.02 and isinstance(cfg.schedule.lr, float)
    assert cfg.schedule.epochs == 3 and cfg.schedule.steps == (1, 2)
    assert cfg.schedule.grad_clip is None and cfg.schedule.amp is True
    assert isinstance(cfg.data.preprocess, Preprocess) and cfg.data.preprocess.size == (256, 256)
    assert cfg.model.overrides == {"score_thresh": 0.2}
    assert cfg.model.classes == ("cat", "dog")
    assert cfg.runtime.work_dir == str(tmp_path)


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert parse_value("1", float, key="k") == 1.0
    with pytest.raises(ConfigError, match="expected int"):
        parse_value("1.5", int, key="k")


@pytest.mark.parametrize(
    "override, message",
    [
        ("schedule.lrr=0.1", r"unknown config key 'schedule.lrr'.*'lr'"),
        ("nope.lr=0.1", r"unknown config key 'nope.lr'.*'schedule'"),
        ("data.preprocess.sise=(1, 2)", r"unknown config key.*'size'"),
        ("schedule.epochs=1.5", r"schedule.epochs: expected int"),
        ("schedule.epochs=ten", r"schedule.epochs: expected int"),
        ("schedule.amp=maybe", r"schedule.amp: expected bool"),
        ("data.preprocess.size=(1, 2, 3)", r"needs 2 values"),
        ("schedule.optimizer=adam", r"'sgd' or 'adamw'"),
        ("schedule.lr", r"key=value"),
        ("schedule.lr.x=1", r"cannot set a sub-key"),
    ],
)
def test_bad_overrides_fail_clearly(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must assign `config"):
        load_config(bad)
    broken = tmp_path / "broken.py"
    broken.write_text("from sdk.config import Config, ScheduleConfig\nconfig = Config(schedule=ScheduleConfig(lr=-1))\n")
    with pytest.raises(ConfigError, match="lr > 0"):
        load_config(broken)


def test_from_dict_is_strict():
    data = Config().to_dict()
    data["schedule"]["bogus"] = 1
    with pytest.raises(ConfigError, match="schedule.bogus"):
        Config.from_dict(data)
    data = Config().to_dict()
    data["schedule"]["epochs"] = "12"
    with pytest.raises(ConfigError, match="schedule.epochs"):
        Config.from_dict(data)


def test_frozen():
    with pytest.raises(AttributeError):
        ScheduleConfig().lr = 1.0  # type: ignore[misc]
