"""A command whose optional extra is not installed fails with one line naming the
extra (issue 16, item 4): ``sdk serve`` without grpc (``sdk test`` without torch:
tests/runtime/test_cli.py, which has the model_dir fixtures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sdk.cli.main import main


def run_without(package: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``sdk ARGV`` in a child process where ``import package`` fails as if it were not
    installed (a ``None`` entry in ``sys.modules`` raises ``ModuleNotFoundError``)."""
    code = f"import sys; sys.modules[{package!r}] = None; from sdk.cli.main import main; sys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_serve_without_the_serve_extra_names_it(tmp_path):
    run = run_without("grpc", ["serve", str(tmp_path)])
    err = run.stderr.strip()
    assert run.returncode == 2 and "\n" not in err, err
    assert err.startswith("error: ") and "'grpc'" in err and "sdk-detect[serve]" in err


def test_a_missing_module_that_is_no_extra_keeps_its_traceback(monkeypatch):
    def broken(_args):
        import sdk_no_such_module  # noqa: F401

    monkeypatch.setattr("sdk.cli.verify.run", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["verify", "x"])

