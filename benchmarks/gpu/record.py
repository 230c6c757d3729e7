"""Results of the GPU check, written as they are produced.

``ResultLog`` appends every record to ``<stem>.jsonl`` and rewrites ``<stem>.json``
and ``<stem>.md`` after each one, so a run killed at its time limit still leaves
every finished measurement readable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sdk.benchmarks.report import format_number as _fmt

SCHEMA = "sdk.benchmark.gpu_check/1"
SECTIONS = ("environment", "gpu_tests", "kernels", "end_to_end", "skipped")


class ResultLog:
    """Records grouped by section; ``add`` writes them through to disk."""

    def __init__(self, out_dir: str | Path, stem: str, *, command: str, dry_run: bool) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stem = stem
        self.data: dict[str, Any] = {"schema": SCHEMA, "command": command, "dry_run": dry_run,
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     **{s: [] for s in SECTIONS}}
        self.paths = {k: self.out_dir / f"{stem}.{k}" for k in ("jsonl", "json", "md")}
        self.paths["jsonl"].write_text("")

    def add(self, section: str, record: dict[str, Any]) -> None:
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}; known: {SECTIONS}")
        self.data[section].append(record)
        with self.paths["jsonl"].open("a") as f:
            f.write(json.dumps({"section": section, **record}, default=str) + "\n")
        self.flush()

    def skip(self, step: str, reason: str) -> None:
        print(f"[gpu-check] {step}: skipped ({reason})", flush=True)
        self.add("skipped", {"step": step, "reason": reason})

    def flush(self) -> None:
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.paths["json"].write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        self.paths["md"].write_text(markdown(self.data))


def markdown(data: dict[str, Any]) -> str:
    """The check's results as a markdown page (environment, tests, kernels, end to end)."""
    env = data["environment"][0] if data["environment"] else {}
    lines = [f"# GPU check: {env.get('gpu', 'unknown device')}{' (dry run on CPU)' if data['dry_run'] else ''}", "",
             f"`{data['command']}`, started {data['started']}, last written {data.get('updated', '')}.", ""]
    if env:
        lines += ["| item | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in env.items()] + [""]
    if data["gpu_tests"]:
        lines += ["## gpu-marked tests", ""]
        for t in data["gpu_tests"]:
            lines += [f"- `{t['command']}`: {t['summary']} (exit {t['returncode']}, {t['seconds']:.0f} s)"]
            lines += [f"  - failed: `{name}`" for name in t.get("failed", [])]
        lines.append("")
    if data["kernels"]:
        lines += ["## Kernels vs torchvision (same device, same inputs)", "",
                  "| op | batch | size | sdk ms | torchvision ms | speed-up | agreement |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {k['op']} | {k['batch']} | {k['size']} | {_fmt(k['sdk_ms'], 3)} | {_fmt(k['torchvision_ms'], 3)} "
                  f"| {_fmt(k['speedup'])}x | {k['agreement']} |" for k in data["kernels"]] + [""]
    if data["end_to_end"]:
        lines += ["## End to end through `Detector` (decode, preprocess, network, postprocess)", "",
                  "| model | row | precision | status | bbox mAP | ms/img b1 | img/s bN | speed-up b1 vs torchvision eager (else sdk eager) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in data["end_to_end"]:
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
            lines.append(f"| {r['model']} | {r['name']} | {r['precision']} | {status} | {_fmt(r.get('bbox_mAP'), 4)} "
                         f"| {_fmt(r.get('ms_per_img_b1'))} | {_fmt(r.get('img_per_s_big'), 1)} "
                         f"| {_fmt(r.get('speedup'))}{'x' if r.get('speedup') else ''} |")
        lines.append("")
    if data["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s['step']}: {s['reason']}" for s in data["skipped"]] + [""]
    return "\n".join(lines)
