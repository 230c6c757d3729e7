"""A suite run on a loaded machine never replaces an existing result unless forced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from sdk.benchmarks.result_files import is_committed, place_result
from sdk.benchmarks.suite_report import write_suite


@pytest.fixture
def loaded(monkeypatch):
    """The machine's 1-minute load average stuck at 9 on 2 logical cores."""
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 5.0, 2.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


@pytest.fixture
def idle(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def existing(tmp_path, stem="quickstart", cpu_model=None):
    """An earlier result of ``stem`` under ``tmp_path``."""
    (tmp_path / f"{stem}.md").write_text("# old\n")
    env = {"cpu_model": cpu_model} if cpu_model else {}
    (tmp_path / f"{stem}.json").write_text(json.dumps({"environment": env} if env else {"rows": []}))


def test_a_loaded_run_is_written_beside_an_existing_result(tmp_path, fake_suite, loaded, capsys):
    existing(tmp_path)
    suite = fake_suite()
    assert suite["load"]["busy"]
    paths = write_suite(suite, tmp_path, stem="quickstart")
    assert (tmp_path / "quickstart.md").read_text() == "# old\n"  # kept
    assert paths["json"] == tmp_path / "quickstart.loaded.json" and paths["table"] == tmp_path / "quickstart.loaded.md"
    assert paths["plot"].is_file() and paths["plot"].name == "quickstart.loaded_latency.png"
    written = json.loads(paths["json"].read_text())["written"]
    assert written["refused"] and written["stem"] == "quickstart.loaded"
    assert "load average reached 9.0 on 2 logical cores" in written["message"] and "--force" in written["message"]
    assert "Not the committed result" in paths["table"].read_text()


def test_force_overwrites_and_says_so(tmp_path, fake_suite, loaded):
    existing(tmp_path)
    suite = fake_suite()
    paths = write_suite(suite, tmp_path, stem="quickstart", force=True)
    assert paths["table"] == tmp_path / "quickstart.md" and paths["table"].read_text() != "# old\n"
    assert not suite["written"]["refused"] and "(--force)" in suite["written"]["message"]


def test_a_loaded_run_without_an_earlier_result_is_written_and_marked(tmp_path, fake_suite, loaded):
    suite = fake_suite()
    paths = write_suite(suite, tmp_path, stem="quickstart")
    assert paths["json"] == tmp_path / "quickstart.json" and "busy machine" in suite["written"]["message"]
    assert "busy machine" in paths["table"].read_text()


def test_an_idle_run_replaces_the_result_and_names_a_cpu_change(tmp_path, fake_suite, idle):
    existing(tmp_path, cpu_model="AMD EPYC 7B13")
    suite = fake_suite()
    assert place_result(tmp_path, "quickstart", suite).stem == "quickstart"
    paths = write_suite(suite, tmp_path, stem="quickstart")
    assert paths["json"] == tmp_path / "quickstart.json"
    assert "measured on AMD EPYC 7B13" in suite["written"]["message"] and "not comparable" in suite["written"]["message"]
    assert suite["environment"]["cpu_model"] in paths["table"].read_text()
    existing(tmp_path, stem="same", cpu_model=suite["environment"]["cpu_model"])
    assert place_result(tmp_path, "same", suite).message is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_committed_results_are_recognised(tmp_path, fake_suite, loaded):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    existing(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "add", "quickstart.md", "quickstart.json"], check=True)
    assert is_committed(tmp_path / "quickstart.md") and not is_committed(tmp_path / "other.md")
    placement = place_result(tmp_path, "quickstart", fake_suite())
    assert placement.refused and "kept the committed result" in placement.message
