"""User-facing errors.

Every failure a user can cause (bad image, wrong model_dir, missing backend library,
unknown config key, bad checkpoint) raises an ``SDKError`` subclass whose message says
what was wrong and what to do. The CLI prints it as one line; servers map it to a
status code. Library bugs stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations


class SDKError(Exception):
    """Base class of every error the user can fix."""


class InputError(SDKError, ValueError):
    """An image or other user input could not be read or has the wrong form."""


class ConfigError(SDKError, ValueError):
    """A config file, override key or value is wrong."""


class CheckpointError(SDKError):
    """A checkpoint is missing, not an SDK checkpoint, or does not fit the model."""


class ModelDirError(SDKError):
    """A model_dir is missing a file, fails its hash check or has a bad manifest."""


class BackendUnavailableError(SDKError, RuntimeError):
    """The requested backend (library or device) is not available on this machine."""


class DatasetError(SDKError):
    """A dataset annotation file or image is missing or malformed."""


def require(module: str, *, extra: str, purpose: str):
    """Import ``module`` or raise a ``BackendUnavailableError`` naming the pip extra.

    Used for optional dependencies so a missing library reads as
    "X needs torch: pip install 'sdk-detect[export]'" instead of a bare ImportError.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not "
            f"installed ({exc}). Install it with: pip install 'sdk-detect[{extra}]'"
        ) from exc


# The pip extra that installs each optional top-level package (pyproject.toml).
EXTRA_OF_PACKAGE = {
    "torch": "torch", "torchvision": "torch",
    "pycocotools": "train", "matplotlib": "train",
    "onnx": "export", "onnxscript": "export", "onnxruntime_extensions": "export",
    "openvino": "openvino",
    "grpc": "serve", "grpc_health": "serve", "tritonclient": "serve", "prometheus_client": "serve",
}


def missing_package_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the pip extra for a missing optional package, ``None`` for any
    other missing module (a bug, which keeps its traceback)."""
    package = (exc.name or "").split(".")[0]
    if package == "tensorrt":
        return "this needs TensorRT, which is not installed: pip install tensorrt (NVIDIA GPU machines)"
    extra = EXTRA_OF_PACKAGE.get(package)
    if extra is None:
        return None
    return f"this needs the Python package '{package}', which is not installed: pip install 'sdk-detect[{extra}]'"


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line. An error re-raised from a torch DataLoader
    worker carries the worker's whole traceback; its last line holds the message."""
    text = str(exc).strip()
    if "Original Traceback" in text:  # "Caught X in DataLoader worker ...\n...\nsdk.errors.X: message"
        _, sep, message = text.splitlines()[-1].partition(": ")
        text = message if sep else text.splitlines()[-1]
    return " ".join(text.splitlines())
