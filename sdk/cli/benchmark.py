"""``sdk benchmark``: latency, throughput, memory and accuracy, in three modes.

    sdk benchmark model MODEL [--backend B] [--batch 1,8] ...   one model_dir or checkpoint
    sdk benchmark suite CKPT [--backends B[:P] ...] [--out DIR] [--force]
                                                               every backend and precision vs torchvision
    sdk benchmark server URL [--model NAME] [--concurrency ...]  a running server, gRPC or HTTP (load generator)

Each mode is a subcommand with its own options (``sdk benchmark MODE --help``); an
option of another mode is a usage error. ``model`` times decode, preprocess, inference
and postprocess separately (warm-up excluded, device synchronized before every clock
read) and reports mean/p50/p90/p99 latency, images/s per batch size, peak memory,
parameters and GFLOPs, and with ``--dataset`` the bbox mAP. A checkpoint given with
``--backend BACKEND[:PRECISION]`` (onnxruntime, openvino, tensorrt, aoti; e.g.
``openvino:bf16``) is exported first (to a temporary model_dir); ``--backend
torchvision`` runs torchvision's own eager model with the checkpoint's weights. The
code lives in ``sdk.benchmarks``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sdk.cli.arguments import add_device_argument, hw_type


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="measure latency/FPS/memory/mAP of a model, a backend suite, or a server",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    modes = parser.add_subparsers(dest="mode", metavar="MODE")
    modes.required = True
    _register_model(modes)
    _register_suite(modes)
    _register_server(modes)


def _register_model(modes: argparse._SubParsersAction) -> None:
    p = modes.add_parser(
        "model", help="one model_dir or checkpoint: latency per stage, images/s, memory, GFLOPs, mAP",
        description="Time one model_dir (on its own backend) or SDK checkpoint (eager, torchvision's model, or "
                    "exported first with --backend) stage by stage.",
    )
    p.add_argument("model", metavar="MODEL", help="a model_dir or an SDK .pt checkpoint")
    _add_measurement_arguments(p, default_batch="1", device_what="the model runs")
    group = p.add_argument_group("model")
    group.add_argument("--backend", default=None,
                       help="for a checkpoint: torch (default), torchvision, or an export target backend[:precision] "
                       "(onnxruntime, openvino:bf16, onnxruntime:int8, tensorrt, aoti: exported first); "
                       "a model_dir runs on its own backend")
    group.add_argument("--json", default=None, metavar="OUT.json", help="write the result as JSON")
    group.add_argument("--markdown", default=None, metavar="OUT.md", help="write a markdown report")
    group.add_argument("--plot", default=None, metavar="OUT.png", help="plot latency per image against batch size")
    p.set_defaults(func=_run_model)


def _register_suite(modes: argparse._SubParsersAction) -> None:
    from sdk.benchmarks.targets import CPU_TARGETS, CUDA_TARGETS, EXPORT_BACKENDS, PRECISIONS

    p = modes.add_parser(
        "suite", help="every backend and precision of a checkpoint next to torchvision eager and SDK eager",
        description="Export CKPT to every (backend, precision) this machine can run and time each next to "
                    "torchvision's eager model and the SDK's eager model; writes suite.{json,md} and a plot to --out.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="an SDK .pt checkpoint")
    _add_measurement_arguments(p, default_batch="1,8", device_what="the rows run (the default --backends follow it)")
    group = p.add_argument_group("suite")
    group.add_argument("--backends", nargs="+", default=None, metavar="BACKEND[:PRECISION]",
                       help="export rows as backend[:precision] items, space- or comma-separated, e.g. "
                       f"onnxruntime:int8 openvino:bf16 (precision default fp32; backends {', '.join(EXPORT_BACKENDS)}; "
                       f"precisions {', '.join(PRECISIONS)}). Default on CPU: {' '.join(t.item for t in CPU_TARGETS)}; "
                       f"on CUDA: {' '.join(t.item for t in CUDA_TARGETS)}. "
                       "Rows this machine cannot run show as skipped with the reason")
    group.add_argument("--out", default="runs/benchmark", help="suite output folder (default: %(default)s)")
    group.add_argument("--force", action="store_true",
                       help="overwrite an existing result in --out even when the machine's load exceeded its "
                       "logical cores during the run (default: write it beside as suite.loaded.*)")
    p.set_defaults(func=_run_suite)


def _register_server(modes: argparse._SubParsersAction) -> None:
    p = modes.add_parser(
        "server", help="a running KServe v2 / Triton server under closed-loop load (sdk.serving.loadgen)",
        description="Closed-loop load generator (perf_analyzer's columns) against a running server, gRPC or REST; "
                    "exit status 1 when requests failed.",
    )
    p.add_argument("url", metavar="URL",
                   help="host:port or grpc://host:port (gRPC), http://host:port (REST); https:// and grpcs:// for TLS")
    p.add_argument("--model", default=None, metavar="NAME", help="model name on the server (default: its only model)")
    p.add_argument("--concurrency", type=_int_list, default=[1, 2, 4, 8, 16],
                   help="comma-separated concurrency levels (default: 1,2,4,8,16)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S",
                   help="seconds per concurrency level (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="images per request (default: %(default)s)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="folder of images to send (default: 8 synthetic 480x640 JPEGs)")
    p.add_argument("--csv", default=None, metavar="OUT.csv", help="write one CSV row per concurrency level")
    p.add_argument("--token-file", default=None, help="file holding the server's bearer token")
    p.set_defaults(func=_run_server)


def _add_measurement_arguments(p: argparse.ArgumentParser, *, default_batch: str, device_what: str) -> None:
    """Options the ``model`` and ``suite`` modes share (one definition)."""
    common = p.add_argument_group("measurement")
    common.add_argument("--batch", type=_int_list, default=_int_list(default_batch),
                        help=f"comma-separated batch sizes (default: {default_batch})")
    common.add_argument("--input-size", type=hw_type, default=None, metavar="HxW",
                        help="network input (letterbox size or keep_ratio canvas) for a checkpoint (default: its record)")
    common.add_argument("--warmup", type=int, default=3, help="untimed iterations per batch size (default: %(default)s)")
    timed = common.add_mutually_exclusive_group()
    timed.add_argument("--iters", type=int, default=None, help="timed iterations per batch size (default: 20)")
    timed.add_argument("--duration", type=float, default=None, metavar="S",
                       help="time each batch size for S seconds instead")
    common.add_argument("--images", default=None, metavar="DIR",
                        help="folder of images to time on (default: 8 synthetic 480x640 JPEGs)")
    common.add_argument("--dataset", default=None, metavar="ANN_JSON",
                        help="also compute bbox mAP on this COCO annotation file (images: --dataset-images)")
    common.add_argument("--dataset-images", default=None, metavar="DIR",
                        help="folder the annotation file names are relative to (default: <root>/images)")
    common.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the network (torch, ONNX Runtime, OpenVINO, AOTInductor); "
                        "default the library's. "
                        "Use 1 on a busy machine: more threads than free cores makes timings erratic")
    common.add_argument("--peak", action="store_true",
                        help="also measure the dense MatMul/Conv GFLOP/s per precision (ONNX Runtime, OpenVINO, "
                        "numpy, torch; ~10 s) and report the fraction of the model's precision's reference achieved")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_argument(p, what=device_what)


def _command() -> str | None:
    """The command line as typed, recorded in the result files."""
    return "sdk " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None


def _images(args: argparse.Namespace) -> tuple[list[bytes], str]:
    from sdk.benchmarks.images import folder_images, synthetic_images

    if args.images:
        encoded = folder_images(args.images)
        return encoded, f"{len(encoded)} files from {args.images}"
    return synthetic_images(8), "8 synthetic 480x640 JPEGs (sdk.benchmarks.images, seed 0)"


def _timing_kwargs(args: argparse.Namespace) -> dict:
    from sdk.errors import ConfigError

    if args.warmup < 0 or (args.iters is not None and args.iters < 1) or (args.duration is not None and args.duration <= 0):
        raise ConfigError("--warmup must be >= 0, --iters >= 1 and --duration > 0")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be >= 1")
    iters = None if args.duration is not None else (args.iters or 20)
    return {"warmup": args.warmup, "iters": iters, "duration_s": args.duration, "progress": not args.no_progress,
            "threads": args.threads}


def _run_model(args: argparse.Namespace) -> int:
    from sdk.benchmarks import report
    from sdk.benchmarks.single import benchmark_target

    command = _command()
    encoded, label = _images(args)
    result = benchmark_target(
        args.model, encoded, backend=args.backend, device=args.device, batch_sizes=args.batch,
        input_size=args.input_size, images_label=label, dataset=args.dataset, dataset_images=args.dataset_images,
        peak=args.peak, **_timing_kwargs(args),
    )
    result["command"] = command
    print(report.result_markdown(result, command=None))
    if args.json:
        report.write_json(result, args.json)
    if args.markdown:
        report.write_text(report.result_markdown(result, command=command), args.markdown)
    if args.plot:
        report.plot_latency({result["name"]: report.latency_series(result)}, args.plot, title=result["name"])
    return 0


def _run_suite(args: argparse.Namespace) -> int:
    from sdk.benchmarks.backend_suite import run_suite
    from sdk.benchmarks.suite_report import write_suite
    from sdk.benchmarks.targets import default_targets, parse_targets

    targets = parse_targets(args.backends) if args.backends else list(default_targets(args.device))
    command = _command()
    encoded, label = _images(args)
    suite = run_suite(
        args.checkpoint, encoded, backends=targets, device=args.device, batch_sizes=args.batch,
        input_size=args.input_size, images_label=label, dataset=args.dataset, dataset_images=args.dataset_images,
        out_dir=args.out, **_timing_kwargs(args),
    )
    suite["command"] = command
    paths = write_suite(suite, args.out, force=args.force)
    print(paths["table"].read_text(encoding="utf-8"))
    if suite["written"]["message"]:
        print(suite["written"]["message"])
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run_server(args: argparse.Namespace) -> int:
    from sdk.serving.loadgen import format_table, run_load, write_csv

    from sdk.errors import ConfigError

    if args.duration <= 0 or args.batch < 1:
        raise ConfigError("--duration must be > 0 and --batch >= 1")
    token = Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file else None
    model = args.model or _only_model(args.url, token)
    encoded, _ = _images(args)
    rows = run_load(
        args.url, model, concurrency_levels=args.concurrency, duration_s=args.duration,
        images=encoded, token=token, batch_size=args.batch,
    )
    print(format_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
    failed = sum(int(r["errors"]) for r in rows)
    if failed:  # a run whose server died or refused is not a measurement
        codes: dict[str, int] = {}
        for row in rows:
            for code, count in row.get("error_codes", {}).items():
                codes[code] = codes.get(code, 0) + count
        print(f"error: {failed} request(s) failed ({', '.join(f'{c} x{n}' for c, n in codes.items())}); "
              "the figures above are not a valid measurement", file=sys.stderr)
        return 1
    return 0


def _only_model(url: str, token: str | None) -> str:
    """The server's model name when it serves exactly one (else a one-line error)."""
    from sdk.serving.client import Client

    with Client(url, token=token) as client:
        return client.model
