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
