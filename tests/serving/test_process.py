"""The server as a process: `sdk serve` end to end (gRPC and HTTP), metrics, and SIGTERM draining in-flight requests."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, png_bytes
from tritonclient.utils import InferenceServerException

from sdk.benchmarks.serving_suite import free_port, wait_ready
from sdk.serving import Client


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def bytes_input(image: np.ndarray) -> grpcclient.InferInput:
    infer_input = grpcclient.InferInput("images", [1, 1], "BYTES")
    infer_input.set_data_from_numpy(np.array([png_bytes(image)], dtype=np.object_).reshape(1, 1))
    return infer_input


def test_sdk_serve_cli_with_metrics(model_dir, scenes):
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    proc = start(
        ["-m", "sdk.cli.main", "serve", str(model_dir), "--port", str(port), "--model-name", "det",
         "--max-batch-size", "4", "--max-queue-delay-us", "500", "--metrics-port", str(metrics_port),
         "--http-port", str(http_port)]
    )
    try:
        url = f"127.0.0.1:{port}"
        wait_ready(url, proc)
        with Client(url) as client:
            assert client.model == "det"
            assert [int(d.labels[0]) for d in client.detect([png_bytes(s) for s in scenes])] == [0, 1, 2]
            assert client.metadata()["max_batch_size"] == 4
        with Client(f"http://127.0.0.1:{http_port}") as client:  # the same process, model and batcher over HTTP
            assert [int(d.labels[0]) for d in client.detect([png_bytes(s) for s in scenes[:2]])] == [0, 1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'sdk_serving_requests_total{model="det"} 2.0' in body  # both protocols, one set of metrics
        assert 'sdk_serving_images_total{model="det"} 5.0' in body
        assert "sdk_serving_batch_size_bucket" in body and "sdk_serving_queue_seconds_bucket" in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sdk_serve_http_only(model_dir, scenes):
    http_port = free_port()
    proc = start(["-m", "sdk.cli.main", "serve", str(model_dir), "--port", "off", "--http-port", str(http_port)])
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if urllib.request.urlopen(base + "/v2/health/ready", timeout=1).status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "HTTP server not ready"
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}/predictions/{MODEL_NAME}", data=png_bytes(scenes[2]), method="PUT")
        rows = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert [r["class_name"] for r in rows] == ["blue"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "on HTTP http://127.0.0.1" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sdk_serve_needs_one_protocol(model_dir):
    proc = subprocess.run([sys.executable, "-m", "sdk.cli.main", "serve", str(model_dir), "--port", "off"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "both gRPC and HTTP are off" in proc.stderr


def test_sdk_serve_reports_a_bad_model_dir(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sdk.cli.main", "serve", str(tmp_path / "missing")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: model_dir not found")


DRAIN_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from sdk.serving.batcher import BatchingConfig
    from sdk.serving.model import ServedModel
    from sdk.serving.server import InferenceServer, ServerOptions

    class Slow:  # every batch takes 0.4 s, so requests are in flight when SIGTERM comes
        def __init__(self, backend):
            self.backend, self.min_batch = backend, backend.min_batch
        def infer(self, batch, image_sizes=None):
            time.sleep(0.4)
            return self.backend.infer(batch, image_sizes)

    model = ServedModel.from_model_dir(sys.argv[1])
    factory = model.backend_factory
    model = ServedModel(**{**vars(model), "backend_factory": lambda: Slow(factory())})
    http_port = int(sys.argv[3]) if len(sys.argv) > 3 else None
    options = ServerOptions(port=int(sys.argv[2]), http_port=http_port, grace_s=30)
    asyncio.run(InferenceServer([(model, BatchingConfig(max_batch_size=1))], options).serve_until_signal())
    print("exited cleanly")
    """
)


def test_sigterm_drains_in_flight_requests(model_dir, scenes):
    port = free_port()
    url = f"127.0.0.1:{port}"
    proc = start(["-c", DRAIN_SCRIPT, str(model_dir), str(port)])
    try:
        wait_ready(url, proc)
        replies: queue.Queue = queue.Queue()
        with grpcclient.InferenceServerClient(url) as client:
            for i in range(3):  # 3 requests x 0.4 s, one at a time
                client.async_infer(
                    MODEL_NAME, [bytes_input(scenes[i])], lambda result, error: replies.put((result, error)), request_id=str(i)
                )
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while True:  # readiness drops at once
                try:
                    if not client.is_server_ready(client_timeout=1):
                        break
                except Exception:
                    break
                assert time.monotonic() < deadline, "server still ready after SIGTERM"
                time.sleep(0.05)
            with grpcclient.InferenceServerClient(url) as late:
                with pytest.raises(InferenceServerException):
                    late.infer(MODEL_NAME, [bytes_input(scenes[0])], client_timeout=10)
            answers = [replies.get(timeout=30) for _ in range(3)]
        assert [error for _, error in answers] == [None, None, None]
        labels = {r.get_response().id: int(r.as_numpy("labels")[0, 0]) for r, _ in answers}
        assert labels == {"0": 0, "1": 1, "2": 2}
        assert proc.wait(timeout=60) == 0
        assert "exited cleanly" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_drains_in_flight_http_requests(model_dir, scenes):
    import threading

    port, http_port = free_port(), free_port()
    proc = start(["-c", DRAIN_SCRIPT, str(model_dir), str(port), str(http_port)])
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_ready(f"127.0.0.1:{port}", proc)
        answers: dict[int, object] = {}

        def upload(i: int) -> None:
            request = urllib.request.Request(f"{base}/predictions/{MODEL_NAME}", data=png_bytes(scenes[i]), method="PUT")
            answers[i] = json.loads(urllib.request.urlopen(request, timeout=60).read())

        uploads = [threading.Thread(target=upload, args=(i,)) for i in range(3)]  # 3 x 0.4 s, one at a time
        for thread in uploads:
            thread.start()
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while True:  # readiness drops at once (503, then the listener closes)
            try:
                urllib.request.urlopen(base + "/v2/health/ready", timeout=1)
            except OSError:  # HTTPError (503) is an OSError too
                break
            assert time.monotonic() < deadline, "server still ready after SIGTERM"
            time.sleep(0.05)
        for thread in uploads:
            thread.join(60)
        assert {i: [r["class_name"] for r in rows] for i, rows in answers.items()} == {0: ["red"], 1: ["green"], 2: ["blue"]}
        assert proc.wait(timeout=60) == 0
        assert "exited cleanly" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
