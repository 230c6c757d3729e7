"""``sdk benchmark suite CKPT``: every backend on this machine next to two eager references.

For one checkpoint, on the same images and weights:

1. ``torchvision eager``: torchvision's own model (``sdk.benchmarks.torchvision_reference``),
   run the way its users run it; "n/a" for tiny variants torchvision does not have;
2. ``sdk eager``: the SDK's eager model (``Detector(ckpt)``, the ``torch`` backend);
3. each export backend: ``sdk export`` into ``OUT/models/<backend>`` then ``Detector``.

Backends that are not installed (or need a GPU) appear as ``skipped`` with the reason;
one that fails to export or run appears as ``failed`` with the error. The table is in
the Ultralytics benchmark style; the FLOP count is taken once on the checkpoint's model
and shared by its exports; a dense-matmul measurement gives each row's fraction of the
machine's achievable throughput.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

from sdk.errors import BackendUnavailableError, SDKError

log = logging.getLogger(__name__)

DEFAULT_BACKENDS = ("onnxruntime", "aoti", "tensorrt")
TORCHVISION_ROW = "torchvision eager"
SDK_EAGER_ROW = "sdk eager"


def run_suite(
    checkpoint: str | Path,
    encoded: Sequence[bytes],
    *,
    backends: Sequence[str] = DEFAULT_BACKENDS,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1, 8),
    input_size: tuple[int, int] | None = None,
    out_dir: str | Path = "runs/benchmark",
    references: Sequence[str] = (TORCHVISION_ROW, SDK_EAGER_ROW),
    peak: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Benchmark ``checkpoint`` on every backend in ``backends`` and the eager references.

    ``kwargs`` go to ``benchmark_pipeline`` (warmup, iters, duration_s, dataset,
    images_label, progress). Returns ``{"checkpoint", "device", "rows": [{"name",
    "status": "ok"|"skipped"|"failed"|"n/a", "reason"?, "export_s"?, "result"?}],
    "peak_reference", "cost"}``.
    """
    from sdk.benchmarks.exporting import export_checkpoint, unavailable_reason
    from sdk.benchmarks.harness import achieved_throughput, benchmark_model
    from sdk.benchmarks.model_cost import checkpoint_cost
    from sdk.benchmarks.single import benchmark_torchvision
    from sdk.checkpoint import load_checkpoint

    meta = load_checkpoint(checkpoint).meta
    static = input_size or meta.preprocess.with_static_shape().static_shape
    cost = checkpoint_cost(checkpoint, tuple(static))
    rows: list[dict[str, Any]] = []

    def attempt(name: str, fn) -> None:
        log.info("suite: %s", name)
        try:
            rows.append({"name": name, "status": "ok", "result": fn()})
        except BackendUnavailableError as exc:  # e.g. an exporter not built into this installation
            rows.append({"name": name, "status": "skipped", "reason": str(exc)})
        except SDKError as exc:
            status = "n/a" if name == TORCHVISION_ROW else "failed"
            rows.append({"name": name, "status": status, "reason": str(exc)})
        except Exception as exc:  # one broken backend must not hide the others' numbers
            log.exception("suite: %s failed", name)
            rows.append({"name": name, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})

    if TORCHVISION_ROW in references:
        attempt(TORCHVISION_ROW, lambda: benchmark_torchvision(checkpoint, encoded, device=device,
                                                                batch_sizes=batch_sizes, **kwargs))
    if SDK_EAGER_ROW in references:
        attempt(SDK_EAGER_ROW, lambda: benchmark_model(checkpoint, encoded, device=device, batch_sizes=batch_sizes,
                                                       input_size=tuple(static), cost=cost, name=SDK_EAGER_ROW, **kwargs))
    for backend in backends:
        reason = unavailable_reason(backend, device)
        if reason:
            rows.append({"name": backend, "status": "skipped", "reason": reason})
            continue

        def exported(backend: str = backend) -> dict[str, Any]:
            start = time.perf_counter()
            model_dir = export_checkpoint(checkpoint, backend, Path(out_dir) / "models" / backend,
                                          input_size=tuple(static), max_batch=max(batch_sizes), device=device)
            export_s = time.perf_counter() - start
            result = benchmark_model(model_dir, encoded, device=device, batch_sizes=batch_sizes, cost=cost, **kwargs)
            result["model"]["export_s"] = export_s
            return result

        attempt(backend, exported)

    peak_reference = None
    if peak:
        from sdk.benchmarks.peak_flops import peak_throughput

        peak_reference = peak_throughput(device=device)
        for row in rows:
            if row["status"] == "ok":
                row["result"]["achieved"] = achieved_throughput(row["result"], peak_reference)
    return {
        "schema": "sdk.benchmark.suite/1",
        "checkpoint": str(checkpoint),
        "model_name": meta.model_name,
        "device": device,
        "input_hw": list(static),
        "batch_sizes": list(batch_sizes),
        "cost": cost,
        "peak_reference": peak_reference,
        "rows": rows,
    }


def _batch(result: dict[str, Any], size: int) -> dict[str, Any] | None:
    for b in result["batches"]:
        if b["batch_size"] == size and "skipped" not in b:
            return b
    return None


def summary_rows(suite: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per row: backend, status, size_mb, bbox_mAP, ms_per_img_b1, img_per_s_bN
    (N = the largest batch), speedup (ms/img at batch 1 vs torchvision eager, else vs
    sdk eager), achieved GFLOP/s and fraction of peak."""
    big = max(suite["batch_sizes"])
    by_name = {r["name"]: r for r in suite["rows"]}
    tv_ok = by_name.get(TORCHVISION_ROW, {}).get("status") == "ok"
    ref = by_name.get(TORCHVISION_ROW if tv_ok else SDK_EAGER_ROW)
    ref_b1 = _batch(ref["result"], 1) if ref and ref.get("status") == "ok" else None
    out = []
    for row in suite["rows"]:
        entry: dict[str, Any] = {"backend": row["name"], "status": row["status"], "reason": row.get("reason")}
        if row["status"] == "ok":
            res = row["result"]
            b1, bn = _batch(res, 1), _batch(res, big)
            entry.update(
                size_mb=res["model"].get("size_mb"),
                bbox_mAP=(res.get("accuracy") or {}).get("bbox_mAP"),
                ms_per_img_b1=b1["ms_per_image"] if b1 else None,
                img_per_s_big=bn["images_per_s"] if bn else None,
                speedup=(ref_b1["ms_per_image"] / b1["ms_per_image"]) if (b1 and ref_b1) else None,
                pre_post_share_b1=b1["pre_post_share"] if b1 else None,
                achieved=res.get("achieved"),
            )
        out.append(entry)
    return out


def suite_table(suite: dict[str, Any]) -> str:
    """The Ultralytics-style markdown table."""
    from sdk.benchmarks.report import _num, markdown_table

    big = max(suite["batch_sizes"])
    rows = summary_rows(suite)
    ref = TORCHVISION_ROW if any(r["backend"] == TORCHVISION_ROW and r["status"] == "ok" for r in rows) else SDK_EAGER_ROW
    head = ["backend", "status", "size MB", "bbox mAP", "ms/img b1", f"img/s b{big}", f"speed-up vs {ref}",
            "pre+post % b1", "GFLOP/s", "% of peak"]
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append([r["backend"], f"{r['status']}: {r['reason']}", *["-"] * (len(head) - 2)])
            continue
        a = r.get("achieved") or {}
        lines.append([
            r["backend"], "ok", _num(r["size_mb"], 1), _num(r["bbox_mAP"], 4), _num(r["ms_per_img_b1"], 1),
            _num(r["img_per_s_big"]), f"{r['speedup']:.2f}x" if r["speedup"] else "-",
            _num(100 * r["pre_post_share_b1"], 1) if r["pre_post_share_b1"] is not None else "-",
            _num(a.get("gflops_per_s"), 1), _num(100 * a["fraction_of_peak"], 1) if a else "-",
        ])
    return markdown_table(head, lines)


def suite_markdown(suite: dict[str, Any], *, title: str | None = None) -> str:
    from sdk.benchmarks.report import environment_lines, peak_reference_lines, stage_table

    cost = suite["cost"]
    parts = [f"# {title or 'sdk benchmark suite: ' + suite['model_name']}", ""]
    if suite.get("command"):
        parts += ["Command:", "", "```", suite["command"], "```", ""]
    if suite.get("equivalent_command"):
        parts += ["which runs:", "", "```", suite["equivalent_command"], "```", ""]
    if suite.get("note"):
        parts += [suite["note"], ""]
    parts += [
        f"- checkpoint `{suite['checkpoint']}` ({suite['model_name']}), device {suite['device']}, network input "
        f"{suite['input_hw'][0]}x{suite['input_hw'][1]} (torchvision eager: its own transform, see README), "
        f"{cost['parameters'] / 1e6:.2f} M parameters, {cost['gflops']:.2f} GFLOPs per image",
        f"- ms/img b1 = end-to-end (decode + preprocess + inference + postprocess) mean at batch 1; "
        f"img/s at batch {max(suite['batch_sizes'])}",
        "",
        suite_table(suite),
        "",
    ]
    if suite.get("peak_reference"):
        parts += [peak_reference_lines(suite["peak_reference"]), ""]
    env = None
    for row in suite["rows"]:
        if row["status"] != "ok":
            continue
        res = row["result"]
        env = res["environment"]
        export = f", exported in {res['model']['export_s']:.1f} s" if res["model"].get("export_s") else ""
        parts += [f"## {row['name']}", "", f"input {res['model']['input_hw']}{export}; settings {res['settings']}", "",
                  stage_table(res), ""]
    if env:
        parts += ["## Environment", "", environment_lines(env), ""]
    return "\n".join(parts)


def write_suite(
    suite: dict[str, Any], out_dir: str | Path, *, stem: str = "suite", title: str | None = None
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_latency.png`` under ``out_dir``."""
    from sdk.benchmarks.report import latency_series, plot_latency, write_json, write_text

    out = Path(out_dir)
    series = {r["name"]: latency_series(r["result"]) for r in suite["rows"] if r["status"] == "ok"}
    return {
        "json": write_json(suite, out / f"{stem}.json"),
        "table": write_text(suite_markdown(suite, title=title), out / f"{stem}.md"),
        "plot": plot_latency(series, out / f"{stem}_latency.png", title=f"{suite['model_name']} on {suite['device']}"),
    }
