"""Where a suite's result files go: a run on a loaded machine never replaces a result.

A suite writes ``<stem>.json``, ``<stem>.md`` and ``<stem>_latency.png``. When a result
for the same stem already exists there (committed to git or not) and the machine's
1-minute load average exceeded its logical core count during the run (other processes
competed for the CPU, so the timings are inflated), the new result is written beside
it as ``<stem>.loaded.*`` and the old one is kept, unless ``force``. A result measured
on another CPU may replace the old one (the markdown names the CPU); the message says
so, since the two are not comparable.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

LOADED_SUFFIX = ".loaded"


@dataclass(frozen=True)
class Placement:
    """The decision for one suite result.

    Attributes:
        stem: file stem to write (the suite's own, or ``<stem>.loaded``).
        refused: True when an existing result was kept because the run was loaded.
        message: what happened, for the user (``None`` when nothing is worth saying).
    """

    stem: str
    refused: bool = False
    message: str | None = None


def result_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """The files a suite named ``stem`` writes under ``out_dir``."""
    out = Path(out_dir)
    return {"json": out / f"{stem}.json", "table": out / f"{stem}.md", "plot": out / f"{stem}_latency.png"}


def existing_result(out_dir: str | Path, stem: str) -> Path | None:
    """The existing result of ``stem`` under ``out_dir`` (its JSON or markdown), or ``None``."""
    paths = result_paths(out_dir, stem)
    return next((p for p in (paths["json"], paths["table"]) if p.is_file()), None)


def is_committed(path: str | Path) -> bool:
    """Whether git tracks ``path`` (``False`` outside a repository or without git)."""
    path = Path(path)
    try:
        done = subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def place_result(out_dir: str | Path, stem: str, suite: Mapping[str, Any], *, force: bool = False) -> Placement:
    """Decide where ``suite`` (with ``"load"`` from ``LoadMonitor`` and ``"environment"``)
    goes under ``out_dir``: over ``stem``, or beside it as ``stem.loaded`` when an existing
    result would be replaced by a run whose load exceeded the logical cores."""
    from sdk.benchmarks.environment import cpu_label

    load = suite.get("load") or {}
    peak, cores = load.get("max_1m"), load.get("logical_cores")
    busy = bool(load.get("busy"))
    old = existing_result(out_dir, stem)
    load_text = f"the 1-min load average reached {peak} on {cores} logical cores during this run"
    if old is None:
        if busy:
            return Placement(stem, message=f"{load_text}: the result is marked as measured on a busy machine")
        return Placement(stem)
    kind = "committed" if is_committed(old) else "existing"
    if busy and not force:
        return Placement(
            stem + LOADED_SUFFIX, refused=True,
            message=(f"kept the {kind} result {old}: {load_text}, so its timings are inflated; wrote the new result "
                     f"beside it as {stem}{LOADED_SUFFIX}.*. Rerun on an idle machine, or pass --force to overwrite"),
        )
    notes = [f"overwrote the {kind} result {old} although {load_text} (--force)"] if busy else []
    old_env, new_env = _old_environment(old), suite.get("environment") or {}
    if old_env and not same_cpu(old_env, new_env):
        notes.append(f"replaced {old}, measured on {cpu_label(old_env)}, with a result measured on "
                     f"{cpu_label(new_env)}: the two CPUs are not comparable")
    return Placement(stem, message="; ".join(notes) or None)


def same_cpu(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two ``environment()`` records name the same CPU (model name, and vendor/
    family/model where both recorded them: older results lack ``cpu_id``)."""
    if a.get("cpu_model") != b.get("cpu_model"):
        return False
    return not (a.get("cpu_id") and b.get("cpu_id")) or a["cpu_id"] == b["cpu_id"]


def _old_environment(path: Path) -> dict[str, Any] | None:
    """``environment`` of the existing result beside ``path`` (its JSON), if it can be read."""
    try:
        old = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return old.get("environment") or next(
        (r["result"]["environment"] for r in old.get("rows", []) if r.get("status") == "ok"), None)
