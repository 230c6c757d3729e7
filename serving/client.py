"""``Client``: a thin detection client over stock ``tritonclient`` (gRPC or HTTP).

    from sdk.serving import Client
    client = Client("127.0.0.1:8001", token="...")        # gRPC; model: the server's only one
    client = Client("http://127.0.0.1:8000")              # the same over KServe v2 REST
    dets = client.detect(["a.jpg", "b.png"])              # -> list[Detections]
    one = client.detect("a.jpg")                          # -> Detections (as Detector)

Image inputs follow ``sdk.images``: file paths and encoded bytes travel as BYTES
(encoded; the server decodes); numpy arrays (BGR unless ``channel_order="rgb"``)
and PIL images travel as UINT8 [N, H, W, 3] RGB when all share one size, else
PNG-encoded. Boxes come back in original image pixels. Server errors raise
``ServerError`` carrying the gRPC status name, over either protocol (HTTP codes
are mapped back by ``sdk.serving.status``).

The same client drives a model of a Triton Inference Server repository written by
``sdk triton-repo``: such a model takes the network input (uint8 [N, 3, H, W]) and
returns boxes in network-input pixels, so the client preprocesses with the record
published in the model config and maps the boxes back (the code ``Detector`` runs).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sdk.detections import Detections
from sdk.errors import ConfigError, InputError, SDKError
from sdk.images import load_image
from sdk.serving.protocol import INPUT_NAME, OUTPUT_NAMES
from sdk.serving.status import status_name

MAX_IMAGES_PER_REQUEST = 64  # sdk serve's default --max-images


class ServerError(SDKError):
    """The server refused or failed a call; ``status`` is the gRPC status name (e.g. "NOT_FOUND")."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _status(exc: InferenceServerException) -> str:
    return status_name(exc.status())


@dataclass(frozen=True)
class ServerURL:
    """A parsed server address: ``protocol`` "grpc" or "http", ``address`` host:port, ``tls``."""

    protocol: str
    address: str
    tls: bool

    @classmethod
    def parse(cls, url: str, *, tls: bool = False) -> "ServerURL":
        """``http://``, ``https://``, ``grpc://``, ``grpcs://`` or a bare ``host:port`` (gRPC)."""
        schemes = {"http": ("http", False), "https": ("http", True), "grpc": ("grpc", False), "grpcs": ("grpc", True)}
        scheme, sep, rest = url.partition("://")
        if not sep:
            scheme, rest = "grpc", url
        if scheme.lower() not in schemes:
            raise ConfigError(f"server URL {url!r}: use http://, https://, grpc://, grpcs:// or host:port")
        protocol, secure = schemes[scheme.lower()]
        address = rest.rstrip("/")
        if not address or "/" in address:
            raise ConfigError(f"server URL {url!r} must be SCHEME://HOST:PORT, with no path")
        return cls(protocol, address, secure or tls)


def http_module():
    """``tritonclient.http`` (imported on first use: it pulls in gevent)."""
    import tritonclient.http as httpclient

    return httpclient


class Client:
    """Detection client for an ``sdk serve`` server (or Triton with the same model signature).

    ``url``: ``host:port`` or ``grpc://host:port`` (gRPC), ``http://host:port``
    (KServe v2 REST); ``https://`` and ``grpcs://`` mean TLS. ``token``: bearer
    token sent on every call. ``tls``: use TLS; ``root_certificates``: PEM file of
    the CA (or self-signed cert) to trust (default: the system's). ``model``: which
    model; default the server's only model. ``timeout_s``: per-call deadline
    (None = none; over HTTP, 60 s per network operation).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: str | os.PathLike | None = None,
        model: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.url = ServerURL.parse(url, tls=tls or root_certificates is not None)
        if self.url.protocol == "http":
            self._module = http_module()
            tls_options = {"ca_certs": os.fspath(root_certificates)} if root_certificates is not None else None
            self._client = self._module.InferenceServerClient(
                self.url.address, ssl=self.url.tls, ssl_options=tls_options, network_timeout=timeout_s or 60.0
            )
        else:
            self._module = grpcclient
            self._client = grpcclient.InferenceServerClient(
                self.url.address, ssl=self.url.tls, root_certificates=_path_or_none(root_certificates)
            )
        self._headers = {"authorization": f"Bearer {token}"} if token else None
        self._timeout = timeout_s
        self._model = model
        self._classes: tuple[str, ...] | None = None
        self._network_input: tuple[Any, int] | None | bool = False  # not asked yet
        self._sizes_input = False  # the network input model also takes image_sizes
        self._has_masks: bool | None = None

    # -- calls -------------------------------------------------------------------------
    def _call(self, method: str, *args: Any, as_json: bool = False, **kwargs: Any) -> Any:
        """Call tritonclient's ``method``; JSON answers (``as_json``) come as dicts over both protocols."""
        if self.url.protocol == "grpc":
            kwargs["client_timeout"] = self._timeout
            if as_json:
                kwargs["as_json"] = True
        try:
            return getattr(self._client, method)(*args, headers=self._headers, **kwargs)
        except InferenceServerException as exc:
            raise ServerError(_status(exc), exc.message()) from None
        except OSError as exc:  # HTTP: refused, reset or timed out (gRPC reports these as UNAVAILABLE)
            raise ServerError("UNAVAILABLE", f"{self.url.address}: {exc.strerror or exc}") from None

    def _config(self) -> dict[str, Any]:
        """The model config as JSON (gRPC wraps it in ``{"config": ...}``; HTTP does not)."""
        config = self._call("get_model_config", self.model, as_json=True)
        return config["config"] if self.url.protocol == "grpc" else config

    @property
    def model(self) -> str:
        """The model this client calls (asks the server when none was given)."""
        if self._model is None:
            stats = self._call("get_inference_statistics", as_json=True)
            names = sorted({entry["name"] for entry in stats.get("model_stats", [])})
            if len(names) != 1:
                raise SDKError(f"the server serves {names}; pass Client(..., model=NAME)")
            self._model = names[0]
        return self._model

    def live(self) -> bool:
        return bool(self._call("is_server_live"))

    def ready(self) -> bool:
        """Server ready and this client's model ready."""
        return bool(self._call("is_server_ready")) and bool(self._call("is_model_ready", self.model))

    def metadata(self) -> dict[str, Any]:
        """Model metadata (KServe) plus, from the model config, ``classes``,
        ``preprocess``, ``max_batch_size`` and the other published parameters."""
        meta = self._call("get_model_metadata", self.model, as_json=True)
        config = self._config()
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        for key in ("classes", "preprocess"):
            if key in params:
                params[key] = json.loads(params[key])
        return {**meta, **params, "max_batch_size": int(config.get("max_batch_size", 0))}

    def has_masks(self) -> bool:
        """Whether the model has the optional ``masks`` output (instance segmentation)."""
        if self._has_masks is None:
            self._has_masks = any(o.get("name") == "masks" for o in self._config().get("output", []))
        return self._has_masks

    @property
    def classes(self) -> tuple[str, ...]:
        if self._classes is None:
            self._classes = tuple(self.metadata().get("classes", ()))
        return self._classes

    def detect(
        self,
        images: Any,
        *,
        score_thr: float | None = None,
        max_detections: int | None = None,
        channel_order: str = "bgr",
        masks: bool | None = None,
    ) -> Detections | list[Detections]:
        """Detect objects in ``images``: one image gives one ``Detections``, a list (or an
        [N, H, W, 3] array) a list of them, as ``sdk.Detector`` does. ``masks``: request
        the ``masks`` output (default: when the model has it) and decode it (pycocotools)
        into ``Detections.masks`` bool (N, H, W), as ``Detector`` returns them."""
        batched = isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4)
        results = self._detect_all(list(images) if batched else [images], score_thr=score_thr,
                                   max_detections=max_detections, channel_order=channel_order,
                                   masks=self.has_masks() if masks is None else masks)
        return results if batched else results[0]

    def _detect_all(self, items: list, *, score_thr: float | None, max_detections: int | None,
                    channel_order: str, masks: bool = False) -> list[Detections]:
        if not items:
            raise InputError("detect() needs at least one image")
        network = self.network_input()
        if network is not None:
            return self._detect_network_input(items, *network, score_thr=score_thr, max_detections=max_detections,
                                              channel_order=channel_order)
        params = {}
        if score_thr is not None:
            params["score_threshold"] = float(score_thr)
        if max_detections is not None:
            params["max_detections"] = int(max_detections)
        names = (*OUTPUT_NAMES, "masks") if masks else OUTPUT_NAMES
        outputs = [self._module.InferRequestedOutput(name) for name in names]
        dets: list[Detections] = []
        # requests of at most the server's default --max-images (64), so long lists are not refused
        for start in range(0, len(items), MAX_IMAGES_PER_REQUEST):
            infer_input = encode_images(items[start:start + MAX_IMAGES_PER_REQUEST], channel_order=channel_order,
                                        module=self._module)
            result = self._call("infer", self.model, [infer_input], outputs=outputs, parameters=params or None)
            dets += unpack_detections({name: result.as_numpy(name) for name in names}, self.classes)
        return dets

    def network_input(self) -> tuple[Any, int] | None:
        """``(Preprocess, max_batch_size)`` when the model takes the preprocessed network
        input (a ``sdk triton-repo`` model on Triton), ``None`` for ``sdk serve``'s
        image-in, original-pixels-out signature. Read once from the model config."""
        if self._network_input is False:
            from sdk.preprocess import Preprocess

            config = self._config()
            inputs = config.get("input", [])
            # a dynamic-shape graph also takes image_sizes [B, 2] (each image's content h, w)
            self._sizes_input = [i.get("name") for i in inputs[1:]] == ["image_sizes"]
            single = len(inputs) == 1 or self._sizes_input
            dims = [int(d) for d in inputs[0].get("dims", [])] if single else []
            preprocess = config.get("parameters", {}).get("preprocess", {}).get("string_value")
            if len(dims) == 3 and dims[0] == 3 and preprocess:
                batch = int(config.get("max_batch_size", 0)) or 1
                self._network_input = (Preprocess.from_dict(json.loads(preprocess)), batch)
            else:
                self._network_input = None
        return self._network_input

    def _detect_network_input(
        self, items: list[Any], preprocess: Any, max_batch: int, *, score_thr: float | None,
        max_detections: int | None, channel_order: str,
    ) -> list[Detections]:
        from sdk.postprocess import decode_outputs
        from sdk.preprocess import content_sizes, iter_chunks, preprocess_batch

        out: list[Detections] = []
        requested = [self._module.InferRequestedOutput(name) for name in OUTPUT_NAMES]
        for chunk in iter_chunks(items, max_batch):
            batch, records = preprocess_batch(chunk, preprocess, load=lambda x: load_image(x, channel_order=channel_order))
            tensor = self._module.InferInput(INPUT_NAME, list(batch.shape), "UINT8" if batch.dtype == np.uint8 else "FP32")
            tensor.set_data_from_numpy(batch)
            tensors = [tensor]
            if self._sizes_input:
                sizes = self._module.InferInput("image_sizes", [len(records), 2], "INT64")
                sizes.set_data_from_numpy(content_sizes(records))
                tensors.append(sizes)
            result = self._call("infer", self.model, tensors, outputs=requested)
            outputs = {name: result.as_numpy(name) for name in OUTPUT_NAMES}
            out += decode_outputs(outputs, records, self.classes, score_thr=score_thr or 0.0)
        if max_detections is not None:
            out = [Detections(d.boxes[:max_detections], d.scores[:max_detections], d.labels[:max_detections],
                              d.class_names) for d in out]
        return out

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def encode_images(items: Sequence[Any], *, channel_order: str = "bgr", module: Any = grpcclient) -> Any:
    """The ``images`` input for ``items``: UINT8 [N, H, W, 3] RGB when every item is an
    in-memory image of one size, else BYTES [N, 1] (files read, arrays PNG-encoded).
    ``module``: ``tritonclient.grpc`` or ``tritonclient.http`` (whose ``InferInput`` to build)."""
    encoded_kinds = (str, os.PathLike, bytes, bytearray, memoryview)
    if not any(isinstance(item, encoded_kinds) for item in items):
        pixels = [load_image(item, channel_order=channel_order) for item in items]
        if len({p.shape for p in pixels}) == 1:
            batch = np.stack(pixels)
            infer_input = module.InferInput(INPUT_NAME, list(batch.shape), "UINT8")
            infer_input.set_data_from_numpy(batch)
            return infer_input
    blobs = np.empty((len(items), 1), dtype=np.object_)
    for i, item in enumerate(items):
        blobs[i, 0] = _encoded(item, channel_order)
    infer_input = module.InferInput(INPUT_NAME, list(blobs.shape), "BYTES")
    infer_input.set_data_from_numpy(blobs)
    return infer_input


def _encoded(item: Any, channel_order: str) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, (str, os.PathLike)):
        try:
            with open(item, "rb") as f:
                return f.read()
        except OSError as exc:
            raise InputError(f"cannot read image file {item}: {exc.strerror or exc}") from exc
    rgb = load_image(item, channel_order=channel_order)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise InputError("could not PNG-encode an image array")
    return png.tobytes()


def unpack_detections(outputs: dict[str, np.ndarray], classes: Sequence[str]) -> list[Detections]:
    """Per-image ``Detections`` from the server's padded outputs (boxes already in original
    pixels; ``masks``, JSON COCO RLE per detection, decoded to bool (N, H, W))."""
    counts = outputs["num_dets"].reshape(-1)
    return [
        Detections(outputs["boxes"][i, :n], outputs["scores"][i, :n], outputs["labels"][i, :n], classes,
                   _decode_masks(outputs["masks"][i, :n]) if "masks" in outputs else None)
        for i, n in enumerate(int(c) for c in counts)
    ]


def _decode_masks(encoded: np.ndarray) -> np.ndarray | None:
    """bool (N, H, W) from N JSON RLE strings (None when there are none: no image size)."""
    from sdk.masks import decode_rle

    decoded = [decode_rle(json.loads(bytes(item))) for item in encoded.reshape(-1)]
    return np.stack(decoded) if decoded else None


def _path_or_none(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)
