"""A command whose optional extra is not installed fails with one line naming the
extra (issue 16, item 4): ``sdk serve`` without grpc (``sdk test`` without torch:
tests/runtime/test_cli.py, which has the model_dir fixtures)."""

from __future__ import annotations

import sys

import pytest

from sdk.cli.main import main


def block_import(monkeypatch, package: str, *importers: str) -> None:
    """Make ``import package`` fail as if it were not installed (a ``None`` entry in
    ``sys.modules`` raises ``ModuleNotFoundError(name=package)``); ``importers`` are
    module prefixes dropped from ``sys.modules`` so they import it afresh."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)
    for name in [m for m in sys.modules if m.startswith(importers)]:
        monkeypatch.delitem(sys.modules, name)


def test_serve_without_the_serve_extra_names_it(monkeypatch, capsys):
    block_import(monkeypatch, "grpc", "sdk.serving")
    rc = main(["serve", "some_model_dir"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err, err
    assert err.startswith("error: ") and "'grpc'" in err and "sdk-detect[serve]" in err


def test_a_missing_module_that_is_no_extra_keeps_its_traceback(monkeypatch):
    def broken(_args):
        import sdk_no_such_module  # noqa: F401

    monkeypatch.setattr("sdk.cli.verify.run", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["verify", "x"])
