"""One ``--device`` for every command (issue 16, item 13): same group, same default,
same validation; ``auto`` only where a command builds with torch (train, export)."""

from __future__ import annotations

import argparse

import pytest

from sdk.cli.arguments import DEFAULT_DEVICE, device_type
from sdk.cli.main import build_parser, main


def device_actions(parser: argparse.ArgumentParser, path: str = "sdk"):
    """``(command path, --device action, its group title)`` of every (sub)parser under ``parser``."""
    for group in parser._action_groups:
        for action in group._group_actions:
            if "--device" in action.option_strings:
                yield path, action, group.title
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from device_actions(sub, f"{path} {name}")


def test_every_device_option_is_the_shared_one_with_one_default():
    found = list(device_actions(build_parser()))
    commands = {path for path, _, _ in found}
    # the commands that run or build a model; a command that loses --device fails here
    assert {"sdk train", "sdk test", "sdk export", "sdk verify", "sdk infer", "sdk serve", "sdk quickstart",
            "sdk demo video", "sdk demo webcam", "sdk benchmark model", "sdk benchmark suite",
            "sdk analyze results", "sdk analyze robustness"} <= commands, commands
    for path, action, title in found:
        if path == "sdk train":  # the config's runtime.device (auto) decides, so training finds a GPU
            assert (action.default, title, action.metavar) == (None, "device", "DEVICE")
            assert "default: the config's runtime.device" in action.help
            continue
        assert (action.default, title, action.metavar) == (DEFAULT_DEVICE, "device", "DEVICE"), path
        assert "default: %(default)s, as every sdk command but train" in action.help, path


@pytest.mark.parametrize("text, expected", [("cpu", "cpu"), ("CUDA", "cuda"), (" cuda:1 ", "cuda:1")])
def test_device_values_are_normalized(text, expected):
    assert device_type(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "auto", "mps"])
def test_other_devices_are_rejected(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected cpu, cuda or cuda:N"):
        device_type(text)


def test_auto_is_accepted_by_train_and_export_only(capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "c.py", "--device", "auto"]).device == "auto"
    assert parser.parse_args(["export", "c.pt", "--out", "d", "--device", "auto"]).device == "auto"
    assert parser.parse_args(["infer", "m", "x.jpg"]).device == "cpu"
    with pytest.raises(SystemExit) as info:
        main(["infer", "m", "x.jpg", "--device", "auto"])
    assert info.value.code == 2 and "expected cpu, cuda or cuda:N, got 'auto'" in capsys.readouterr().err
