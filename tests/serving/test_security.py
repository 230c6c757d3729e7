"""Bearer token and TLS, over gRPC and HTTP."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, png_bytes, serve
from tritonclient.utils import InferenceServerException

from sdk.serving import Client, ServerError

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def token_server(model_dir):
    with serve(model_dir, token=TOKEN, http_port=0) as thread:
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


def test_http_token_required_except_probes_and_page(token_server, scenes):
    base = token_server.http_url
    for path in ("/v2/health/live", "/v2/health/ready", "/"):
        assert requests.get(base + path, timeout=30).status_code == 200
    for headers, word in ((None, "missing"), ({"Authorization": "Bearer wrong"}, "invalid"), ({"Authorization": TOKEN}, "invalid")):
        reply = requests.get(f"{base}/v2/models/{MODEL_NAME}", headers=headers, timeout=30)
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
        assert f"{word} bearer token" in reply.json()["error"]
        reply = requests.put(f"{base}/predictions/{MODEL_NAME}", data=png_bytes(scenes[0]), headers=headers, timeout=30)
        assert reply.status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    rows = requests.put(f"{base}/predictions/{MODEL_NAME}", data=png_bytes(scenes[0]), headers=good, timeout=30).json()
    assert [r["class_name"] for r in rows] == ["red"]
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(base.removeprefix("http://")) as triton:
        assert triton.is_server_ready()
        with pytest.raises(InferenceServerException) as info:
            triton.get_model_metadata(MODEL_NAME)
        assert info.value.status() == "401"
        assert triton.get_model_metadata(MODEL_NAME, headers=good)["name"] == MODEL_NAME
    with Client(base, token="wrong") as client:
        with pytest.raises(ServerError) as info:
            client.detect(png_bytes(scenes[0]))
        assert info.value.status == "UNAUTHENTICATED"
    with Client(base, token=TOKEN) as client:
        assert client.ready() and int(client.detect(png_bytes(scenes[1])).labels[0]) == 1


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
    with serve(model_dir, tls_cert=cert, tls_key=key, token=TOKEN, http_port=0) as thread:
        with Client(thread.url, tls=True, root_certificates=cert, token=TOKEN) as client:
            assert client.ready()
            assert int(client.detect(png_bytes(scenes[2])).labels[0]) == 2
        # a plaintext client cannot talk to it
        with grpcclient.InferenceServerClient(thread.url) as plain:
            with pytest.raises(InferenceServerException):
                plain.is_server_live(client_timeout=5)
        # HTTP: the same certificate and token
        assert thread.http_url.startswith("https://")
        with Client(thread.http_url, root_certificates=cert, token=TOKEN) as client:
            assert client.ready()
            assert int(client.detect(png_bytes(scenes[1])).labels[0]) == 1
        reply = requests.put(f"{thread.http_url}/predictions/{MODEL_NAME}", data=png_bytes(scenes[2]),
                             headers={"Authorization": f"Bearer {TOKEN}"}, verify=str(cert), timeout=30)
        assert reply.json()[0]["class_name"] == "blue"
        with pytest.raises(requests.exceptions.ConnectionError):  # plaintext HTTP to the TLS port
            requests.get(thread.http_url.replace("https://", "http://") + "/v2/health/live", timeout=5)
