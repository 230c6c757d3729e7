"""``sdk benchmark`` has one subcommand per mode (issue 16, items 9 and 13): each shows
its own help and rejects the options of the other modes (parsing only, no model)."""

from __future__ import annotations

import pytest

from sdk.cli.main import build_parser, main


@pytest.mark.parametrize("argv, shown, hidden", [
    (["benchmark", "suite", "--help"], ["sdk benchmark suite", "CKPT", "--backends BACKEND", "--batch BATCH", "1,8"],
     ["--json OUT.json", "--concurrency"]),
    (["benchmark", "model", "--help"], ["sdk benchmark model", "MODEL", "--json OUT.json", "--device DEVICE"],
     ["--backends BACKEND", "--concurrency"]),
    (["benchmark", "server", "--help"], ["sdk benchmark server", "URL", "--concurrency", "--model NAME"],
     ["--backends BACKEND", "--json OUT.json", "--device"]),
    (["benchmark", "--help"], ["model", "suite", "server"], ["--backends BACKEND", "--json OUT.json"]),
])
def test_each_mode_shows_its_own_help(argv, shown, hidden, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert all(s in out for s in shown) and not any(h in out for h in hidden), out


@pytest.mark.parametrize("argv, message", [
    (["benchmark", "model", "m.pt", "--backends", "onnxruntime"], "unrecognized arguments: --backends"),
    (["benchmark", "suite", "m.pt", "--json", "r.json"], "unrecognized arguments: --json"),
    (["benchmark", "server", "h:1", "--device", "cuda"], "unrecognized arguments: --device"),
    (["benchmark", "model", "m.pt", "--concurrency", "1,2"], "unrecognized arguments: --concurrency"),
    (["benchmark", "m.pt"], "invalid choice: 'm.pt'"),
    (["benchmark", "--server", "h:1"], "invalid choice: 'h:1'"),
    (["benchmark"], "required: MODE"),
    (["benchmark", "suite"], "required: CKPT"),
    (["benchmark", "model", "m.pt", "--batch", "0"], "expected positive integers"),
])
def test_options_of_another_mode_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_modes_keep_their_defaults():
    parser = build_parser()
    model = parser.parse_args(["benchmark", "model", "m.pt"])
    suite = parser.parse_args(["benchmark", "suite", "m.pt"])
    server = parser.parse_args(["benchmark", "server", "h:1"])
    assert (model.model, model.batch, model.device) == ("m.pt", [1], "cpu")
    assert (suite.checkpoint, suite.batch, suite.out) == ("m.pt", [1, 8], "runs/benchmark")
    assert (server.url, server.batch, server.duration, server.concurrency) == ("h:1", 1, 10.0, [1, 2, 4, 8, 16])
