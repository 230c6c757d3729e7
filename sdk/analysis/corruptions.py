"""Image corruptions of the robustness benchmark (Hendrycks & Dietterich, ImageNet-C;
Michaelis et al., "Benchmarking Robustness in Object Detection"), in numpy/OpenCV.

The 15 benchmark corruptions in four families, each at severities 1..5 with the
constants of the reference implementation (the ``imagecorruptions`` package, whose
last release needs removed scikit-image and SciPy APIs and ``opencv-python`` next to
this SDK's ``opencv-python-headless``, so it is re-implemented here). Severity 0
returns the image unchanged. Two deliberate differences, both vectorizations or
stand-ins that keep what the corruption does:

- ``glass_blur``: instead of the reference's sequential per-pixel swaps (a Python
  loop over every pixel), each pixel takes the value of a random neighbour within
  the same maximum displacement, as one ``cv2.remap``, between the same two blurs;
- ``frost``: the reference overlays photographs of frost shipped with it; here the
  frost layer is synthesized (a fractal, its gradient-magnitude "crystal" edges and
  fine noise, pale blue-white), blended with the same per-severity weights.

Every function takes an (H, W, 3) uint8 RGB image, a severity and a
``numpy.random.Generator`` (the only randomness), and returns an (H, W, 3) uint8 image.
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _gaussian(x: np.ndarray, sigma_y: float, sigma_x: float | None = None, truncate: float = 4.0) -> np.ndarray:
    """Gaussian filter (scipy/scikit-image semantics: kernel radius truncate * sigma,
    mirrored borders) of a float image, per channel."""
    sigma_x = sigma_y if sigma_x is None else sigma_x
    ky, kx = (2 * int(truncate * s + 0.5) + 1 for s in (sigma_y, sigma_x))
    return cv2.GaussianBlur(x, (kx, ky), sigmaX=sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_REFLECT)


# -- noise ------------------------------------------------------------------------
def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.08, 0.12, 0.18, 0.26, 0.38][severity - 1]
    return _to_uint8(np.clip(x / 255.0 + rng.normal(size=x.shape, scale=c), 0, 1) * 255)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [60, 25, 12, 5, 3][severity - 1]
    return _to_uint8(np.clip(rng.poisson(x / 255.0 * c) / float(c), 0, 1) * 255)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on a share ``c`` of the values (channels independently)."""
    c = [0.03, 0.06, 0.09, 0.17, 0.27][severity - 1]
    out = x.copy()
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    out[flipped & salted] = 255
    out[flipped & ~salted] = 0
    return out


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.15, 0.2, 0.35, 0.45, 0.6][severity - 1]
    f = x / 255.0
    return _to_uint8(np.clip(f + f * rng.normal(size=x.shape, scale=c), 0, 1) * 255)


# -- blur -------------------------------------------------------------------------
def _disk(radius: float, alias_blur: float) -> np.ndarray:
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        grid, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(grid, grid)
    kernel = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    kernel /= kernel.sum()
    return cv2.GaussianBlur(kernel, ksize=ksize, sigmaX=alias_blur)


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    out = cv2.filter2D((x / 255.0).astype(np.float32), -1, _disk(c[0], c[1]))
    return _to_uint8(np.clip(out, 0, 1) * 255)


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [1, 2, 3, 4, 6][severity - 1]
    return _to_uint8(np.clip(_gaussian((x / 255.0).astype(np.float32), c), 0, 1) * 255)


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma, max_delta, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    img = _to_uint8(_gaussian((x / 255.0).astype(np.float32), sigma) * 255)
    h, w = img.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for _ in range(iterations):
        dx = rng.integers(-max_delta, max_delta, size=(h, w)).astype(np.float32)
        dy = rng.integers(-max_delta, max_delta, size=(h, w)).astype(np.float32)
        img = cv2.remap(img, xs + dx, ys + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
    return _to_uint8(np.clip(_gaussian((img / 255.0).astype(np.float32), sigma), 0, 1) * 255)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift by (dx, dy), repeating the edge row/column into the uncovered part."""
    out = image
    if dx < 0:
        out = np.roll(out, shift=image.shape[1] + dx, axis=1)
        out[:, dx:] = out[:, dx - 1:dx]
    elif dx > 0:
        out = np.roll(out, shift=dx, axis=1)
        out[:, :dx] = out[:, dx:dx + 1]
    if dy < 0:
        out = np.roll(out, shift=image.shape[0] + dy, axis=0)
        out[dy:, :] = out[dy - 1:dy, :]
    elif dy > 0:
        out = np.roll(out, shift=dy, axis=0)
        out[:dy, :] = out[dy:dy + 1, :]
    return out


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    width = radius * 2 + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    kernel /= kernel.sum()
    point = (width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle)))
    hypot = math.hypot(*point)
    blurred = np.zeros(x.shape, np.float32)
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break  # the motion left the image
        blurred += kernel[i] * _shift(x, dx, dy)
    return blurred


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    return _to_uint8(_motion_blur(x.astype(np.float32), c[0], c[1], rng.uniform(-45, 45)))


def _clipped_zoom(img: np.ndarray, zoom: float) -> np.ndarray:
    """The centre 1/zoom of ``img`` scaled back up to the full size (bilinear)."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom)), int(np.ceil(w / zoom))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = cv2.resize(img[top:top + ch, left:left + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(img.shape)


def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    zooms = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
             np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)][severity - 1]
    f = (x / 255.0).astype(np.float32)
    out = np.zeros_like(f)
    for zoom in zooms:
        out += _clipped_zoom(f, zoom)
    return _to_uint8(np.clip((f + out) / (len(zooms) + 1), 0, 1) * 255)


# -- weather ----------------------------------------------------------------------
def _plasma_fractal(rng: np.random.Generator, mapsize: int = 256, wibbledecay: float = 3) -> np.ndarray:
    """A (mapsize, mapsize) diamond-square height map in [0, 1]; mapsize a power of 2."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        corner = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corner + np.roll(corner, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(square)
        dr = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(tt)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def _next_power_of_2(n: int) -> int:
    return 1 if n == 0 else 2 ** (n - 1).bit_length()


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)][severity - 1]
    h, w = x.shape[:2]
    f = x / 255.0
    max_val = f.max()
    f = f + c[0] * _plasma_fractal(rng, _next_power_of_2(max(h, w)), c[1])[:h, :w, None]
    return _to_uint8(np.clip(f * max_val / (max_val + c[0]), 0, 1) * 255)


def _frost_layer(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic frost texture (H, W, 3) in 0..255 RGB: pale blue-white crystals."""
    size = _next_power_of_2(max(h, w))
    base = _plasma_fractal(rng, size, 1.6)[:h, :w].astype(np.float32)
    gx, gy = cv2.Sobel(base, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(base, cv2.CV_32F, 0, 1, ksize=3)
    edges = np.sqrt(gx**2 + gy**2)
    edges /= edges.max() + 1e-12
    fine = _gaussian(rng.random((h, w)).astype(np.float32), 0.8)
    layer = np.clip(0.45 * base + 0.9 * edges + 0.35 * (fine - fine.mean()) + 0.15, 0, 1)
    tint = np.array([0.85, 0.93, 1.0], np.float32)  # pale blue-white
    return layer[..., None] * tint * 255


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][severity - 1]
    return _to_uint8(c[0] * x.astype(np.float32) + c[1] * _frost_layer(*x.shape[:2], rng))


def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
         (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)][severity - 1]
    f = x.astype(np.float32) / 255.0
    layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1]).astype(np.float32)
    layer = _clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    layer = _motion_blur(np.clip(layer, 0, 1), c[4], c[5], rng.uniform(-135, -45))
    layer = (np.round(layer * 255).astype(np.uint8) / 255.0)[..., None].astype(np.float32)
    gray = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None]
    f = c[6] * f + (1 - c[6]) * np.maximum(f, gray * 1.5 + 0.5)
    return _to_uint8(np.clip(f + layer + np.rot90(layer, k=2), 0, 1) * 255)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    hsv = cv2.cvtColor((x / 255.0).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return _to_uint8(np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1) * 255)


# -- digital ----------------------------------------------------------------------
def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.4, 0.3, 0.2, 0.1, 0.05][severity - 1]
    f = x / 255.0
    means = f.mean(axis=(0, 1), keepdims=True)
    return _to_uint8(np.clip((f - means) * c + means, 0, 1) * 255)


def saturate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    hsv = cv2.cvtColor((x / 255.0).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return _to_uint8(np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1) * 255)


def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    sigma_y, sigma_x = h * 0.01, w * 0.01
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    max_d = h * 0.005
    dx = _gaussian(rng.uniform(-max_d, max_d, size=(h, w)).astype(np.float32), sigma_y, sigma_x, truncate=3) * alpha
    dy = _gaussian(rng.uniform(-max_d, max_d, size=(h, w)).astype(np.float32), sigma_y, sigma_x, truncate=3) * alpha
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(x, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(1, int(w * c)), max(1, int(h * c))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = [25, 18, 15, 10, 7][severity - 1]
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(x[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])


FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
"""The 15 benchmark corruptions by family (the order of the benchmark's tables)."""

BENCHMARK = tuple(name for names in FAMILIES.values() for name in names)
EXTRA = ("speckle_noise", "gaussian_blur", "saturate")
"""The reference's held-out validation corruptions that are available here too (not in ``all``)."""

CORRUPTIONS: dict[str, Corruption] = {name: globals()[name] for name in (*BENCHMARK, *EXTRA)}


def family_of(name: str) -> str:
    return next((family for family, names in FAMILIES.items() if name in names), "extra")


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` (H, W, 3) uint8 RGB corrupted by ``name`` at ``severity`` (0: a copy
    of the image, unchanged)."""
    if name not in CORRUPTIONS:
        raise KeyError(name)
    if not 0 <= severity <= 5:
        raise ValueError(f"severity must be in 0..5, got {severity}")
    if severity == 0:
        return image.copy()
    out = CORRUPTIONS[name](np.ascontiguousarray(image), severity, rng)
    assert out.shape == image.shape and out.dtype == np.uint8, (name, out.shape, out.dtype)
    return out
