"""Bearer token and TLS."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, png_bytes, serve
from tritonclient.utils import InferenceServerException

from sdk.serving import Client, ServerError

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def token_server(model_dir):
    with serve(model_dir, token=TOKEN) as thread:
        yield thread


def test_token_required_except_liveness_probes(token_server, scenes):
    with grpcclient.InferenceServerClient(token_server.url) as triton:
        assert triton.is_server_live() and triton.is_server_ready()  # open probes
        for headers, word in ((None, "missing"), ({"authorization": "Bearer wrong"}, "invalid"), ({"authorization": TOKEN}, "invalid")):
            with pytest.raises(InferenceServerException) as info:
                triton.get_model_metadata(MODEL_NAME, headers=headers)
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            assert f"{word} bearer token" in info.value.message()
        assert triton.get_model_metadata(MODEL_NAME, headers={"authorization": f"Bearer {TOKEN}"}).name == MODEL_NAME
    with Client(token_server.url, token="wrong") as client:
        with pytest.raises(ServerError) as info:
            client.detect(png_bytes(scenes[0]))
        assert info.value.status == "UNAUTHENTICATED"
    with Client(token_server.url, token=TOKEN) as client:
        assert client.ready()
        assert int(client.detect(png_bytes(scenes[0])).labels[0]) == 0


def test_token_guards_streaming(token_server, scenes):
    import queue

    replies: queue.Queue = queue.Queue()
    with grpcclient.InferenceServerClient(token_server.url) as triton:
        triton.start_stream(callback=lambda result, error: replies.put(error))
        data = np.array([png_bytes(scenes[0])], dtype=np.object_).reshape(1, 1)
        infer_input = grpcclient.InferInput("images", [1, 1], "BYTES")
        infer_input.set_data_from_numpy(data)
        try:
            triton.async_stream_infer(MODEL_NAME, [infer_input])
        except InferenceServerException:
            pass  # the stream may already be closed by the server's refusal
        error = replies.get(timeout=30)
        triton.stop_stream()
    assert error is not None and "UNAUTHENTICATED" in str(error.status())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls(model_dir, certificate, scenes):
    cert, key = certificate
    with serve(model_dir, tls_cert=cert, tls_key=key, token=TOKEN) as thread:
        with Client(thread.url, tls=True, root_certificates=cert, token=TOKEN) as client:
            assert client.ready()
            assert int(client.detect(png_bytes(scenes[2])).labels[0]) == 2
        # a plaintext client cannot talk to it
        with grpcclient.InferenceServerClient(thread.url) as plain:
            with pytest.raises(InferenceServerException):
                plain.is_server_live(client_timeout=5)
