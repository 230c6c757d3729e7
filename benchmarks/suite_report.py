"""A suite result (``sdk.benchmarks.backend_suite.run_suite``) as a table, markdown and files.

The summary table (markdown and the JSON's ``"summary"``) has one row per suite row:

| column | meaning |
|---|---|
| backend, precision | the row (eager references are fp32) |
| status | ok, or skipped/failed/n/a with the one-line reason |
| size MB | model_dir files (or checkpoint) on disk, 10^6 bytes |
| bbox mAP | COCO bbox mAP on the suite's dataset (only when it has one) |
| ms/img b1 | end-to-end mean per image at batch 1 |
| img/s bN | images/s at the largest batch N (only when a batch > 1 ran) |
| speed-up vs ... | ms/img b1 of torchvision eager (else sdk eager) over the row's |
| decode+pre+post % b1 | share of decode + preprocess + postprocess in end-to-end time |
| GFLOP/s | model GFLOPs x best images/s |
| % of peak | of the reference of the row's own precision (``peak_flops.reference_gflops``) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdk.benchmarks.backend_suite import SDK_EAGER_ROW, TORCHVISION_ROW


def _batch(result: dict[str, Any], size: int) -> dict[str, Any] | None:
    for b in result["batches"]:
        if b["batch_size"] == size and "skipped" not in b:
            return b
    return None


def reference_row(suite: dict[str, Any]) -> str:
    """The row speed-ups are relative to: torchvision eager when it ran, else sdk eager."""
    tv = next((r for r in suite["rows"] if r["name"] == TORCHVISION_ROW), None)
    return TORCHVISION_ROW if tv and tv["status"] == "ok" else SDK_EAGER_ROW


def summary_rows(suite: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per row: backend, precision, status, reason, calibration, size_mb,
    bbox_mAP, ms_per_img_b1, img_per_s_big (at the largest batch), speedup (ms/img at
    batch 1 vs ``reference_row``), pre_post_share_b1, gflops_per_s, fraction_of_peak
    and the reference kernel it is a fraction of."""
    big = max(suite["batch_sizes"])
    by_name = {r["name"]: r for r in suite["rows"]}
    ref = by_name.get(reference_row(suite))
    ref_b1 = _batch(ref["result"], 1) if ref and ref.get("status") == "ok" else None
    out = []
    for row in suite["rows"]:
        entry: dict[str, Any] = {
            "name": row["name"], "backend": row.get("backend", row["name"]), "precision": row.get("precision", "fp32"),
            "status": row["status"], "reason": row.get("reason"),
            "calibration": (row.get("calibration") or {}).get("description"),
        }
        if row["status"] == "ok":
            res = row["result"]
            b1, bn = _batch(res, 1), _batch(res, big)
            achieved = res.get("achieved") or {}
            entry.update(
                size_mb=res["model"].get("size_mb"),
                bbox_mAP=(res.get("accuracy") or {}).get("bbox_mAP"),
                ms_per_img_b1=b1["ms_per_image"] if b1 else None,
                img_per_s_big=bn["images_per_s"] if bn else None,
                speedup=(ref_b1["ms_per_image"] / b1["ms_per_image"]) if (b1 and ref_b1) else None,
                pre_post_share_b1=b1["pre_post_share"] if b1 else None,
                gflops_per_s=achieved.get("gflops_per_s"),
                fraction_of_peak=achieved.get("fraction_of_peak"),
                peak_reference=achieved.get("reference"),
            )
        out.append(entry)
    return out


def has_accuracy(suite: dict[str, Any]) -> bool:
    """Whether the suite measured mAP (a dataset was given)."""
    return bool(suite.get("dataset")) or any(
        (r.get("result") or {}).get("accuracy") for r in suite["rows"] if r["status"] == "ok")


def suite_table(suite: dict[str, Any]) -> str:
    """The markdown summary table (columns in the module docstring)."""
    from sdk.benchmarks.report import format_number, markdown_table

    big = max(suite["batch_sizes"])
    with_map, with_big = has_accuracy(suite), big > 1
    head = ["backend", "precision", "status", "size MB", *(["bbox mAP"] if with_map else []), "ms/img b1",
            *([f"img/s b{big}"] if with_big else []), f"speed-up vs {reference_row(suite)}", "decode+pre+post % b1",
            "GFLOP/s", "% of peak"]
    lines = []
    for r in summary_rows(suite):
        if r["status"] != "ok":
            lines.append([r["backend"], r["precision"], f"{r['status']}: {r['reason']}", *["-"] * (len(head) - 3)])
            continue
        frac = r["fraction_of_peak"]
        lines.append([
            r["backend"], r["precision"], "ok", format_number(r["size_mb"], 1), *([format_number(r["bbox_mAP"], 4)] if with_map else []),
            format_number(r["ms_per_img_b1"], 1), *([format_number(r["img_per_s_big"])] if with_big else []),
            f"{r['speedup']:.2f}x" if r["speedup"] else "-",
            format_number(100 * r["pre_post_share_b1"], 1) if r["pre_post_share_b1"] is not None else "-",
            format_number(r["gflops_per_s"], 1), format_number(100 * frac, 1) if frac is not None else "-",
        ])
    return markdown_table(head, lines)


def suite_markdown(suite: dict[str, Any], *, title: str | None = None) -> str:
    """The whole report: command, settings, machine, summary table, reference, per-row stages."""
    from sdk.benchmarks.environment import cpu_label
    from sdk.benchmarks.report import environment_lines, load_text, peak_reference_lines, stage_table

    cost = suite["cost"]
    env = suite.get("environment") or next(
        (r["result"]["environment"] for r in suite["rows"] if r["status"] == "ok"), None)
    parts = [f"# {title or 'sdk benchmark suite: ' + suite['model_name']}", ""]
    written = suite.get("written") or {}
    if written.get("refused"):
        parts += [f"**Not the committed result:** {written['message']}.", ""]
    if suite.get("command"):
        parts += ["Command:", "", "```", suite["command"], "```", ""]
    if suite.get("equivalent_command"):
        parts += ["which runs:", "", "```", suite["equivalent_command"], "```", ""]
    if suite.get("note"):
        parts += [suite["note"], ""]
    if env:
        parts += [f"- machine: {cpu_label(env)}, {env.get('cpu_cores_logical') or env.get('cpu_cores')} logical "
                  f"cores; {load_text(env)}"]
    parts += [
        f"- checkpoint `{suite['checkpoint']}` ({suite['model_name']}), device {suite['device']}, network input "
        f"{suite['input_hw'][0]}x{suite['input_hw'][1]} (torchvision eager: its own transform, see README), "
        f"{cost['parameters'] / 1e6:.2f} M parameters, {cost['gflops']:.2f} GFLOPs per image",
        f"- ms/img b1 = end-to-end (decode + preprocess + inference + postprocess) mean at batch 1; "
        f"img/s at batch {max(suite['batch_sizes'])}; % of peak against the row's own precision's reference",
        "",
        suite_table(suite),
        "",
    ]
    if suite.get("peak_reference"):
        parts += [peak_reference_lines(suite["peak_reference"]), ""]
    for row in suite["rows"]:
        if row["status"] != "ok":
            continue
        res = row["result"]
        export = f", exported in {res['model']['export_s']:.1f} s" if res["model"].get("export_s") else ""
        calib = (f"; int8 calibrated on {row['calibration']['description']}" if row.get("calibration") else "")
        parts += [f"## {row['name']}", "", f"input {res['model']['input_hw']}{export}{calib}; settings "
                  f"{res['settings']}", "", stage_table(res), ""]
    if env:
        parts += ["## Environment", "", environment_lines(env), ""]
    return "\n".join(parts)


def write_suite(
    suite: dict[str, Any], out_dir: str | Path, *, stem: str = "suite", title: str | None = None, force: bool = False
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_latency.png`` under ``out_dir``, or
    ``<stem>.loaded.*`` when the run was loaded and a result already exists there and
    ``force`` is false (``sdk.benchmarks.result_files.place_result``). The decision is
    recorded in ``suite["written"]`` = ``{"stem", "refused", "message"}`` (print the
    message). Returns the paths written."""
    from sdk.benchmarks.report import latency_series, plot_latency, write_json, write_text
    from sdk.benchmarks.result_files import place_result, result_paths

    placement = place_result(out_dir, stem, suite, force=force)
    suite["written"] = {"stem": placement.stem, "refused": placement.refused, "message": placement.message}
    suite["summary"] = summary_rows(suite)
    paths = result_paths(out_dir, placement.stem)
    series = {r["name"]: latency_series(r["result"]) for r in suite["rows"] if r["status"] == "ok"}
    return {
        "json": write_json(suite, paths["json"]),
        "table": write_text(suite_markdown(suite, title=title), paths["table"]),
        "plot": plot_latency(series, paths["plot"], title=f"{suite['model_name']} on {suite['device']}"),
    }
