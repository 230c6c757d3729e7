"""Benchmark results as JSON, markdown tables and a latency-vs-batch plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sdk.benchmarks.timing import STAGES


def write_json(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def write_text(text: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def format_number(value: Any, digits: int = 2) -> str:
    """A table cell: ``-`` for None, floats to ``digits`` decimals, anything else as str."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def stage_table(result: Mapping[str, Any]) -> str:
    """One row per batch size: mean ms per stage, end-to-end mean/p50/p90/p99 (ms per
    batch), ms per image, images/s, decode+pre+post share, peak memory."""
    head = ["batch", "iters", *(f"{s} ms" for s in STAGES), "e2e mean", "p50", "p90", "p99", "ms/img", "img/s",
            "decode+pre+post %", "peak RSS MB", "peak GPU MB"]
    rows = []
    for b in result["batches"]:
        if "skipped" in b:
            rows.append([str(b["batch_size"]), f"skipped: {b['skipped']}", *[""] * (len(head) - 2)])
            continue
        e2e = b["end_to_end_ms"]
        rows.append([
            str(b["batch_size"]), str(b["iterations"]), *(format_number(b["stages_ms"][s]["mean"]) for s in STAGES),
            format_number(e2e["mean"]), format_number(e2e["p50"]), format_number(e2e["p90"]), format_number(e2e["p99"]), format_number(b["ms_per_image"]),
            format_number(b["images_per_s"]), format_number(100 * b["pre_post_share"], 1), format_number(b["peak_rss_mb"], 0),
            format_number(b["peak_gpu_allocated_mb"], 0),
        ])
    return markdown_table(head, rows)


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment_lines(env: Mapping[str, Any]) -> str:
    """Markdown bullets of an ``environment()`` record: date, CPU (model, inference flags,
    logical/physical cores), load before/max/after, GPU, platform, libraries."""
    from sdk.benchmarks.environment import cpu_label

    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items())
    logical = env.get("cpu_cores_logical") or env.get("cpu_cores")
    flags = env.get("cpu_flags")
    flag_text = (", ".join(f for f, on in flags.items() if on) or "none of " + ", ".join(flags)) if flags else "unknown"
    return "\n".join([
        f"- date (UTC): {env.get('date_utc')}",
        f"- CPU: {cpu_label(env)}; {logical} logical cores, {env.get('cpu_cores_physical') or '?'} physical, "
        f"{env.get('cpu_affinity')} usable by this process",
        f"- CPU inference flags: {flag_text}",
        f"- load: {load_text(env)}",
        f"- GPU: {env.get('gpu') or 'none used'}",
        f"- platform: {env.get('platform')}, Python {env.get('python')}",
        f"- libraries: {libs}",
    ])


def load_text(env: Mapping[str, Any]) -> str:
    """The 1-minute load average before / max during / after a run, flagged when it
    exceeded the logical cores (other processes competed for the CPU)."""
    load = env.get("load")
    logical = env.get("cpu_cores_logical") or env.get("cpu_cores")
    if load:
        text = (f"1-min load average {format_number((load.get('before') or [None])[0])} before, max "
                f"{format_number(load.get('max_1m'))} during, {format_number((load.get('after') or [None])[0])} after "
                f"({load.get('samples')} samples)")
        busy = bool(load.get("busy"))  # LoadMonitor's verdict: the run's own threads allowed for
    else:
        peak = env.get("load_average_1m")
        text = f"1-min load average {format_number(peak)} at the end"
        busy = peak is not None and bool(logical) and peak > logical
    if busy:
        text += (f" — busy machine: above the {logical} logical cores, other processes competed for the CPU, "
                 "so timings are inflated and noisy")
    return text


def result_markdown(result: Mapping[str, Any], *, command: str | None = None) -> str:
    """A markdown report of one ``benchmark_pipeline`` result."""
    m, s = result["model"], result["settings"]
    parts = [f"# sdk benchmark: {result['name']}", ""]
    if command:
        parts += ["Command:", "", "```", command, "```", ""]
    params = m.get("parameters")
    parts += [
        f"- model: `{m.get('path')}` ({m.get('kind')}, {m.get('model_name')}), backend **{m.get('backend')}** "
        f"({m.get('precision')}) on {result['device']}, input {_hw(m.get('input_hw'))}",
        f"- size {format_number(m.get('size_mb'), 1)} MB, {format_number(params / 1e6 if params else None)} M parameters, "
        f"{format_number(m.get('gflops'))} GFLOPs per image ({m.get('gflops_source') or 'not counted'})",
        f"- images: {s.get('images')}; warm-up {s['warmup']} iterations (excluded), "
        + (f"{s['iters']} timed iterations" if s.get("iters") else f"{s['duration_s']} s timed"),
        "- latencies are per batch in ms; stage columns are means; ms/img = e2e mean / batch",
        "",
        stage_table(result),
        "",
    ]
    if result.get("accuracy"):
        acc = result["accuracy"]
        parts += [f"bbox mAP {acc['bbox_mAP']:.4f} (mAP@50 {acc['bbox_mAP_50']:.4f})", ""]
    if result.get("peak_reference"):
        parts += [peak_reference_lines(result["peak_reference"], result), ""]
    parts += ["Environment:", "", environment_lines(result["environment"]), ""]
    return "\n".join(parts)


def peak_reference_lines(peak: Mapping[str, Any], result: Mapping[str, Any] | None = None) -> str:
    """The physical reference per precision class (which kernel gave it) and every kernel
    measured (``sdk.benchmarks.peak_flops``), as markdown."""
    from sdk.benchmarks.peak_flops import CLASS_LABEL

    refs = peak.get("references") or {}
    ref_text = "; ".join(f"**{CLASS_LABEL.get(c, c)}** {r['gflops']:.0f} GFLOP/s ({r['kernel']})" for c, r in refs.items())
    lines = [
        f"Physical reference per precision (fastest dense kernel; int8 in integer GOP/s): {ref_text or 'none measured'}. "
        "Each row's % of peak is against its own precision's reference (fp16 rows against bf16/fp16). "
        f"Measured in {peak.get('seconds')} s, threads: {peak.get('threads') or 'the libraries default (all cores)'}:",
        "",
    ]
    rows = []
    for m in peak.get("measurements", []):
        if "error" in m:
            rows.append([m["kernel"], m["precision"], m["shape"], "-", f"failed: {m['error']}"])
            continue
        note = f"asked {m['requested_precision']}, ran {m['precision']}" if m.get("requested_precision") else ""
        rows.append([m["kernel"], m["precision"], m["shape"], f"{m['gflops']:.0f}", note])
    lines.append(markdown_table(["kernel", "precision", "shape", "GFLOP/s", "note"], rows))
    if result is not None and result.get("achieved"):
        a = result["achieved"]
        share = (f" = {100 * a['fraction_of_peak']:.1f}% of the {a['reference_class']} reference ({a['reference']})"
                 if a.get("fraction_of_peak") is not None else f" (no {a.get('reference_class')} reference measured)")
        lines += ["", f"Achieved at batch {a['batch_size']}: {a['gflops_per_s']:.1f} GFLOP/s{share}."]
    return "\n".join(lines)


def _hw(hw: Any) -> str:
    return f"{hw[0]}x{hw[1]}" if hw else "-"


def plot_latency(series: Mapping[str, Sequence[tuple[int, float]]], path: str | os.PathLike, *, title: str) -> Path:
    """Per-image latency (ms, log scale) against batch size, one line per name;
    ``series[name]`` = [(batch_size, ms_per_image), ...]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for name, points in series.items():
        if points:
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("end-to-end ms per image")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_series(result: Mapping[str, Any]) -> list[tuple[int, float]]:
    return [(b["batch_size"], b["ms_per_image"]) for b in result.get("batches", []) if "skipped" not in b]
