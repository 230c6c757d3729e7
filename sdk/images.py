"""Image decoding: every accepted input form becomes one RGB uint8 array.

Accepted inputs (``ImageInput``):
- a file path (``str`` or ``os.PathLike``): decoded with EXIF orientation applied;
- encoded bytes (``bytes``, ``bytearray``, ``memoryview``): JPEG, PNG, BMP, WebP, TIFF...;
- a ``PIL.Image.Image``: EXIF orientation applied, any mode converted to RGB;
- a ``numpy.ndarray`` of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), dtype uint8,
  uint16 (scaled down by 256) or float (0-1 if its maximum is at most 1, else 0-255).
  Three/four-channel arrays are BGR(A) unless ``channel_order="rgb"`` (the OpenCV
  convention, as MMDetection and Ultralytics use).

Grayscale is replicated to three channels, alpha is dropped, 16-bit PNGs become 8-bit.
The result is always ``np.ndarray`` (H, W, 3) uint8, RGB, C-contiguous.

Hostile inputs: an encoded image's size is read from its header (PIL reads only the
header) and checked against ``max_pixels`` (``sdk.limits``) before anything is
decoded; every decoder failure (OpenCV, PIL, a decompression bomb) becomes an
``InputError`` naming the image; float arrays holding NaN or infinity are refused.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from sdk.errors import InputError
from sdk.limits import DEFAULT_MAX_PIXELS, check_image_pixels

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def load_image(
    image: ImageInput, *, channel_order: str = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Return ``image`` as an (H, W, 3) uint8 RGB array; raise ``InputError`` if it is
    unreadable or has more than ``max_pixels`` pixels."""
    if channel_order not in ("bgr", "rgb"):
        raise InputError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if isinstance(image, np.ndarray):
        return _from_array(image, channel_order, max_pixels)
    if isinstance(image, (str, os.PathLike)):
        return _from_path(Path(image), max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(image), source="<bytes>", max_pixels=max_pixels)
    if _is_pil(image):
        check_image_pixels(image.height, image.width, max_pixels, source="PIL image")
        return _from_pil(image)
    raise InputError(
        f"cannot read an image from a {type(image).__name__}: pass a file path, encoded "
        "bytes, a PIL image or a numpy array (H, W[, C])"
    )


def image_size(data: bytes, *, source: str = "<bytes>") -> tuple[int, int] | None:
    """(height, width) read from the header of encoded image ``data`` without decoding it.

    ``None`` when PIL itself refuses the size as a decompression bomb (over
    ``2 * PIL.Image.MAX_IMAGE_PIXELS``, 179 MP by default). ``InputError`` when the
    header is not an image's.
    """
    from PIL import Image

    try:
        # (no warnings.catch_warnings here: it is not thread-safe, and servers decode on many threads)
        with Image.open(io.BytesIO(data)) as pil:
            width, height = pil.size
    except Image.DecompressionBombError:
        return None
    except Image.UnidentifiedImageError:
        raise InputError(f"{source}: not a readable image (unknown format; expected JPEG, PNG, BMP, WebP, TIFF...)") from None
    except Exception as exc:  # PIL raises many types on hostile headers; all mean "not an image"
        raise InputError(f"{source}: not a readable image ({_one_line(exc)})") from None
    return int(height), int(width)


def decode_bytes(data: bytes, *, source: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (EXIF orientation applied) into (H, W, 3) uint8 RGB.

    The header's size is checked against ``max_pixels`` first; any decoder failure
    raises ``InputError`` naming ``source``.
    """
    if not data:
        raise InputError(f"{source}: empty image data")
    size = image_size(data, source=source)
    if size is None:  # over PIL's own bomb limit: refuse unless the caller allows more than that
        from PIL import Image

        if max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
            raise pil_bomb_error(source, max_pixels)
    else:
        check_image_pixels(*size, max_pixels, source=source)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_COLOR applies EXIF orientation, expands grayscale, drops alpha and
        # reduces 16-bit to 8-bit: every decoded file leaves here in one form.
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise InputError(f"{source}: OpenCV cannot decode the image ({_one_line(exc)})") from None
    if bgr is None:
        return _decode_with_pil(data, source, max_pixels)
    check_image_pixels(bgr.shape[0], bgr.shape[1], max_pixels, source=source)
    # in place (no second full-size copy); ~50x faster than a reversed-stride numpy copy
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def pil_bomb_error(source: str, max_pixels: int) -> InputError:
    """The error for an image PIL refuses to open as a decompression bomb (size unknown)."""
    from PIL import Image

    return InputError(f"{source}: image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels (a decompression "
                      f"bomb to PIL), over the limit of {max_pixels:,} (max_pixels); downscale it or raise the limit "
                      "(--max-pixels)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:200]


def _from_path(path: Path, max_pixels: int) -> np.ndarray:
    if not path.exists():
        raise InputError(f"image file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image (pass the files, or a glob)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    return decode_bytes(data, source=str(path), max_pixels=max_pixels)


def _decode_with_pil(data: bytes, source: str, max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as pil:
            check_image_pixels(pil.height, pil.width, max_pixels, source=source)
            return _from_pil(pil)
    except InputError:
        raise
    except UnidentifiedImageError:  # its message names the BytesIO object, not the file
        raise InputError(f"{source}: not a readable image (unknown format or corrupt data)") from None
    except Exception as exc:  # truncated data, bombs, unsupported modes: all the input's fault
        raise InputError(f"{source}: not a readable image ({_one_line(exc)})") from None


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _from_pil(pil: Any) -> np.ndarray:
    from PIL import ImageOps

    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(pil, dtype=np.int64)
        # 16-bit data keeps its high byte, as OpenCV decodes 16-bit files and _to_uint8 does
        arr = (arr >> 8 if arr.max() > 255 else arr).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(pil.convert("RGB"), dtype=np.uint8))


def _from_array(arr: np.ndarray, channel_order: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InputError(
            f"image array has shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) or "
            "(H, W, 4) in HWC layout (convert CHW tensors with arr.transpose(1, 2, 0))"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"image array is empty (shape {arr.shape})")
    check_image_pixels(arr.shape[0], arr.shape[1], max_pixels, source=f"image array {arr.shape}")
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if channel_order == "bgr":  # cvtColor: ~50x faster than a reversed-stride numpy copy
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr[:, :, :3])


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:  # a mask: True is white
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():  # NaN would silently become black pixels
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise InputError(f"float image array holds {bad} NaN or infinite value(s); replace them "
                             "(e.g. np.nan_to_num) or pass uint8 pixels")
        scale = 255.0 if float(arr.max()) <= 1.0 else 1.0
        return (arr * scale).clip(0, 255).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.clip(0, 255).astype(np.uint8)
    raise InputError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float")


def list_image_folder(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The image files (``IMAGE_SUFFIXES``, any case) of ``folder``, sorted by path;
    with ``recursive`` those of its subfolders too. The one folder listing of the SDK
    (``sdk infer``, ``sdk verify --images``, int8 calibration)."""
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def expand_image_paths(inputs: list[str], *, recursive: bool = False) -> list[Path]:
    """Expand files, folders (their images, sorted; with ``recursive`` their
    subfolders' too) and glob patterns (the files they match, sorted) into image paths.

    Raises ``InputError`` naming the first input that matches nothing.
    """
    import glob

    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_image_folder(path, recursive=recursive)
            if not found:
                nested = not recursive and any(p.is_dir() for p in path.iterdir())
                hint = "; its subfolders are read with --recursive" if nested else ""
                raise InputError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}){hint}")
            out.extend(found)
        elif path.exists():
            out.append(path)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise InputError(f"no files match the pattern {item!r}")
            out.extend(found)
        else:
            raise InputError(f"input not found: {item}")
    return out
