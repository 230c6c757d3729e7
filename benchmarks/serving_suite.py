"""Serving benchmark: dynamic batching against `--max-batch-size 1`, gRPC against HTTP.

    python -m sdk.benchmarks.serving_suite runs/quickstart/model_dir --out benchmarks/results

For each server setting (``SETTINGS``) it starts ``sdk serve MODEL_DIR`` as its own
process with gRPC and HTTP on free loopback ports, waits until the server is ready,
drives it with the closed-loop load generator (``sdk.serving.loadgen.run_load``,
what ``sdk benchmark server`` runs) over each protocol (``--protocols``, default
gRPC then KServe v2 REST with binary tensors) at each concurrency level, then
stops it with SIGTERM. It writes ``<stem>.json`` and ``<stem>.md``: images/s and
client latency percentiles per setting, protocol and concurrency, the throughput
ratio of each setting over the first one (first protocol) at the highest
concurrency, and HTTP's throughput over gRPC's per setting.

Client and server share the machine: on a 2-core CPU the load generator takes CPU
from the server, which understates both settings alike.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

# name -> extra `sdk serve` flags; the first setting is the baseline of the ratios.
SETTINGS: dict[str, tuple[str, ...]] = {
    "max_batch_size=1": ("--max-batch-size", "1"),
    "dynamic (max_batch_size=8, max_queue_delay_us=2000)": (
        "--max-batch-size", "8", "--max-queue-delay-us", "2000",
    ),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server started right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROTOCOLS = ("grpc", "http")


def serve_command(model_dir: Path, port: int, flags: Sequence[str], http_port: int | None = None) -> list[str]:
    http = ["--http-port", str(http_port)] if http_port is not None else []
    return [sys.executable, "-m", "sdk.cli.main", "serve", str(model_dir), "--port", str(port), *http, *flags]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Poll ServerReady until true; raise with the server's output (``proc`` was started
    with ``stdout=PIPE``) if it exits first or is not ready within ``timeout_s`` (then killed)."""
    import tritonclient.grpc as grpcclient

    deadline = time.monotonic() + timeout_s
    with grpcclient.InferenceServerClient(url) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sdk serve exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if client.is_server_ready(client_timeout=1):
                    return
            except Exception:  # noqa: BLE001  (not listening yet)
                pass
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"sdk serve was not ready within {timeout_s:.0f} s:\n{proc.stdout.read()}")


def run_setting(
    model_dir: Path, flags: Sequence[str], *, concurrency: Sequence[int], duration_s: float, warmup_s: float,
    images: Sequence[bytes], protocols: Sequence[str] = PROTOCOLS,
) -> list[dict[str, Any]]:
    """Start one server (gRPC and HTTP), measure every protocol and concurrency level, stop it
    (SIGTERM, then wait). Rows are ``run_load``'s plus ``protocol``, protocol by protocol."""
    from sdk.serving.loadgen import run_load

    port, http_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(serve_command(model_dir, port, flags, http_port), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"127.0.0.1:{port}"
        wait_ready(url, proc)
        urls = {"grpc": url, "http": f"http://127.0.0.1:{http_port}"}
        rows = []
        for protocol in protocols:
            for row in run_load(urls[protocol], model_dir.name, concurrency_levels=concurrency,
                                duration_s=duration_s, warmup_s=warmup_s, images=images):
                rows.append({"protocol": protocol, **row})
        return rows
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_serving_suite(
    model_dir: str | os.PathLike, *, concurrency: Sequence[int] = (1, 4, 16), duration_s: float = 20.0,
    warmup_s: float = 2.0, images: Sequence[bytes] | None = None,
    settings: dict[str, tuple[str, ...]] | None = None, protocols: Sequence[str] = PROTOCOLS,
) -> dict[str, Any]:
    """Measure every setting; returns ``{"schema", "model_dir", "protocols", "settings": {name: {flags,
    rows}}, "speedup", "http_over_grpc", "environment", ...}`` where rows are ``run_load`` dicts with a
    ``protocol``, ``speedup`` is images/s of each setting over the first at the highest concurrency (first
    protocol), and ``http_over_grpc`` HTTP's images/s over gRPC's there, per setting (when both ran).
    ``settings`` default: ``SETTINGS``."""
    from sdk.benchmarks.environment import LoadMonitor, environment
    from sdk.benchmarks.images import synthetic_images

    load = LoadMonitor()
    model_dir = Path(model_dir)
    encoded = list(images) if images is not None else synthetic_images(8)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f"protocols must be among {PROTOCOLS}; got {list(protocols)}")
    out: dict[str, Any] = {
        "schema": "sdk.benchmark.serving/2", "model_dir": str(model_dir), "protocols": list(protocols),
        "concurrency": list(concurrency),
        "duration_s": duration_s, "warmup_s": warmup_s, "images": len(encoded), "settings": {},
    }
    for name, flags in (settings or SETTINGS).items():
        rows = run_setting(model_dir, flags, concurrency=concurrency, duration_s=duration_s, warmup_s=warmup_s,
                           images=encoded, protocols=protocols)
        out["settings"][name] = {"flags": list(flags), "rows": rows}
        load.sample()
    top = max(concurrency)

    def throughput(setting: dict, protocol: str) -> float:
        return _row(setting["rows"], top, protocol)["inferences_per_s"]

    first = {n: throughput(s, protocols[0]) for n, s in out["settings"].items()}
    base = next(iter(first.values()))
    out["speedup"] = {n: (v / base if base else None) for n, v in first.items()}
    if {"grpc", "http"} <= set(protocols):
        out["http_over_grpc"] = {
            n: (throughput(s, "http") / g if (g := throughput(s, "grpc")) else None) for n, s in out["settings"].items()
        }
    out["environment"] = environment(load=load.finish())
    return out


def _row(rows: Sequence[dict[str, Any]], concurrency: int, protocol: str) -> dict[str, Any]:
    return next(r for r in rows if r["concurrency"] == concurrency and r.get("protocol", "grpc") == protocol)


def serving_markdown(result: dict[str, Any], command: str) -> str:
    from sdk.benchmarks.report import environment_lines, markdown_table

    head = ["server setting", "protocol", "concurrency", "images/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms",
            "server queue ms", "server compute ms/img", "errors"]
    rows = []
    for name, setting in result["settings"].items():
        for r in setting["rows"]:
            rows.append([name, r.get("protocol", "grpc"), str(r["concurrency"]), f"{r['inferences_per_s']:.1f}",
                         *(f"{r[f'latency_ms_{p}']:.1f}" for p in ("p50", "p90", "p95", "p99")),
                         f"{r['server_queue_ms']:.1f}", f"{r['server_compute_ms']:.1f}", str(r["errors"])])
    top = max(result["concurrency"])
    ratios = ", ".join(f"{n}: {v:.2f}x" for n, v in result["speedup"].items() if v is not None)
    protocols = result.get("protocols", ["grpc"])
    http = result.get("http_over_grpc")
    http_line = ("HTTP (KServe v2 REST, binary tensors) images/s over gRPC's at concurrency "
                 f"{top}: " + ", ".join(f"{n}: {v:.2f}x" for n, v in http.items() if v is not None) + ".") if http else ""
    return "\n".join([
        f"# Serving: {result['model_dir']}", "", "Command:", "", "```", command, "```", "",
        f"Closed loop (`sdk.serving.loadgen`): each of C clients sends one image per request and waits for "
        f"the answer; {result['warmup_s']:.0f} s warm-up, then {result['duration_s']:.0f} s measured per level; "
        f"{result['images']} synthetic 480x640 JPEGs (sent encoded, decoded on the server). Protocols, one "
        f"server per setting serving both: {', '.join(protocols)}. Client and server share the machine.", "",
        markdown_table(head, rows), "",
        f"Throughput at concurrency {top} relative to the first setting ({protocols[0]}): {ratios}.", "",
        *([http_line, ""] if http_line else []),
        "## Environment", "", environment_lines(result["environment"]), "",
    ])


def main(argv: list[str] | None = None) -> int:
    from sdk.benchmarks.report import write_json, write_text

    parser = argparse.ArgumentParser(prog="python -m sdk.benchmarks.serving_suite", description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path, help="a model_dir written by `sdk export`")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="output folder")
    parser.add_argument("--stem", default="serving_quickstart", help="output file name stem")
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels (default 1,4,16)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per level (default 2)")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="comma-separated, measured in this order (default grpc,http)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    result = run_serving_suite(args.model_dir, concurrency=levels, duration_s=args.duration, warmup_s=args.warmup,
                               protocols=protocols)
    command = shlex.join(["python", "-m", "sdk.benchmarks.serving_suite", *(argv if argv is not None else sys.argv[1:])])
    result["command"] = command
    write_json(result, args.out / f"{args.stem}.json")
    md = serving_markdown(result, command)
    write_text(md, args.out / f"{args.stem}.md")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
