"""Rendering of one synthetic "shapes" image (the pixels behind ``sdk.data.synthetic``).

An image is a cluttered background (two-colour gradient, low-frequency texture,
distractor blobs, lines and arcs that are *not* objects), then objects of
``SHAPE_KINDS`` drawn one over another with OpenCV anti-aliasing (random size,
aspect, rotation, colour and texture), then a few lines across everything and
sensor-like noise.

Boxes come from each object's rendered coverage mask (a pixel belongs to the object
when the anti-aliased coverage is at least 50 %), so they are tight to the pixel.
As COCO keeps one box per object, a box spans the whole object even where a later
object hides part of it (clipped to the image where it leaves the frame); an object
hidden by more than ``max_occlusion`` of its area is left unannotated.
All randomness comes from the ``numpy.random.Generator`` passed in, so one seed
gives one image, byte for byte.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_KINDS = ("circle", "square", "triangle", "star", "ring", "cross")

_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel vertex precision
_COVERED = 128  # anti-aliased coverage (0-255) from which a pixel counts as the object's
_MIN_CONTRAST = 70.0  # RGB distance an object's colour keeps from the background under it


@dataclass(frozen=True)
class RenderParams:
    """The difficulty knobs of one image (validated by ``sdk.data.synthetic.SynthConfig``).

    ``kinds`` are the shapes to draw (a subset of ``SHAPE_KINDS``); ``num_objects``
    (lo, hi) inclusive; ``object_size`` (lo, hi) long side of an object's box in pixels,
    drawn log-uniformly; ``max_aspect`` the largest stretch of one axis; ``clutter``
    0 (plain gradient) .. 1 (busy texture, many distractors, strong noise);
    ``max_overlap`` the share of an already placed object a new one may cover;
    ``max_occlusion`` the hidden share above which an object goes unannotated;
    ``max_truncation`` the share of an object's extent that may leave the image.
    """

    kinds: tuple[str, ...] = SHAPE_KINDS
    num_objects: tuple[int, int] = (1, 6)
    object_size: tuple[float, float] = (24.0, 120.0)
    max_aspect: float = 1.5
    clutter: float = 0.5
    max_overlap: float = 0.3
    max_occlusion: float = 0.7
    max_truncation: float = 0.2


@dataclass(frozen=True)
class RenderedObject:
    """One annotated object: ``label`` indexes ``RenderParams.kinds``; ``box`` is xyxy in
    pixels (integer pixel edges, x2/y2 exclusive); ``area`` its visible pixel count."""

    label: int
    box: tuple[float, float, float, float]
    area: float


@dataclass(frozen=True)
class RenderedImage:
    """``image`` (H, W, 3) uint8 RGB; ``objects`` the annotated objects; ``instances``
    (H, W) int16, per pixel the index into ``objects`` of the annotated object seen there
    (-1: background, distractor or an unannotated, mostly hidden object)."""

    image: np.ndarray
    objects: list[RenderedObject]
    instances: np.ndarray


def render_image(rng: np.random.Generator, height: int, width: int, params: RenderParams, *, empty: bool = False) -> RenderedImage:
    """Draw one (height, width) image with its objects (none when ``empty``)."""
    img = _background(rng, height, width, params.clutter)
    _draw_distractors(rng, img, params.clutter)
    owner = np.full((height, width), -1, np.int16)  # index of the topmost placed object per pixel
    placed: list[tuple[int, tuple[int, int, int, int], int]] = []  # (label, box, full area)
    count = 0 if empty else int(rng.integers(params.num_objects[0], params.num_objects[1] + 1))
    for _ in range(count):
        label = int(rng.integers(len(params.kinds)))
        contours = _shape_contours(rng, params.kinds[label], params.max_aspect)
        size = min(_log_uniform(rng, *params.object_size), 0.9 * min(height, width))
        for _attempt in range(20):
            placement = _place(rng, contours, size, height, width, params.max_truncation)
            if placement is None:
                continue
            x0, y0, mask = placement
            covered = mask >= _COVERED
            roi = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
            if not covered.any() or not _overlap_ok(owner[roi][covered], [p[2] for p in placed], params.max_overlap):
                continue
            _paint_object(rng, img, roi, mask)
            owner[roi][covered] = len(placed)
            placed.append((label, _mask_box(covered, x0, y0), int(covered.sum())))
            break
    _draw_lines(rng, img, int(rng.poisson(1.0 * params.clutter)))
    img = _add_noise(rng, img, params.clutter)
    visible = np.bincount(owner.ravel() + 1, minlength=len(placed) + 1)[1:]
    keep = [i for i, (_, _, full) in enumerate(placed) if visible[i] >= (1.0 - params.max_occlusion) * full]
    new_index = np.full(len(placed) + 1, -1, np.int16)
    new_index[np.asarray(keep, np.int64) + 1] = np.arange(len(keep))
    objects = [RenderedObject(placed[i][0], tuple(float(v) for v in placed[i][1]), float(visible[i])) for i in keep]  # type: ignore[misc]
    return RenderedImage(img, objects, new_index[owner + 1])


# -- shapes ---------------------------------------------------------------------------
def _circle(n: int = 48, radius: float = 1.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _shape_contours(rng: np.random.Generator, kind: str, max_aspect: float) -> list[np.ndarray]:
    """Unit-size contours (float (N, 2) x, y) of one shape, stretched and rotated.

    The first contour is filled, later ones are holes (the ring's)."""
    if kind == "circle":
        contours = [_circle()]
    elif kind == "square":
        contours = [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)]
    elif kind == "triangle":
        angles = np.deg2rad(np.array([-90.0, 30.0, 150.0]) + rng.uniform(-8, 8, 3))
        contours = [np.stack([np.cos(angles), np.sin(angles)], axis=1)]
    elif kind == "star":
        inner = rng.uniform(0.38, 0.5)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        contours = [radii[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)]
    elif kind == "ring":
        contours = [_circle(), _circle(radius=rng.uniform(0.45, 0.62))]
    elif kind == "cross":
        t = rng.uniform(0.25, 0.36)
        contours = [np.array([[-t, -1], [t, -1], [t, -t], [1, -t], [1, t], [t, t], [t, 1],
                              [-t, 1], [-t, t], [-1, t], [-1, -t], [-t, -t]], np.float64)]
    else:
        raise ValueError(f"unknown shape kind {kind!r}; known: {SHAPE_KINDS}")
    aspect = _log_uniform(rng, 1.0, max_aspect)
    stretch = np.array([aspect, 1.0]) if rng.random() < 0.5 else np.array([1.0, aspect])
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return [(c * stretch) @ rot.T for c in contours]


def _place(rng: np.random.Generator, contours: list[np.ndarray], size: float, height: int, width: int, max_truncation: float):
    """Scale ``contours`` so the box's long side is ``size``, put them at a random spot and
    render their coverage mask. Returns (x0, y0, uint8 mask of the in-image ROI) or None."""
    outer = contours[0]
    lo, hi = outer.min(axis=0), outer.max(axis=0)
    scale = size / float((hi - lo).max())
    ext_w, ext_h = (hi - lo) * scale
    slack_x, slack_y = max_truncation * ext_w, max_truncation * ext_h
    left = rng.uniform(-slack_x, width - ext_w + slack_x)
    top = rng.uniform(-slack_y, height - ext_h + slack_y)
    pts = [(c - lo) * scale + (left, top) for c in contours]
    x0, y0 = max(0, int(np.floor(left)) - 1), max(0, int(np.floor(top)) - 1)
    x1, y1 = min(width, int(np.ceil(left + ext_w)) + 2), min(height, int(np.ceil(top + ext_h)) + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for i, contour in enumerate(pts):
        fixed = np.round((contour - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], 255 if i == 0 else 0, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    return x0, y0, mask


def _overlap_ok(owners_below: np.ndarray, full_areas: list[int], max_overlap: float) -> bool:
    """Whether the new object hides at most ``max_overlap`` of every placed object."""
    if not full_areas:
        return True
    hidden = np.bincount(owners_below.astype(np.int64) + 1, minlength=len(full_areas) + 1)[1:]
    return bool(np.all(hidden <= max_overlap * np.asarray(full_areas)))


def _mask_box(covered: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


# -- appearance -----------------------------------------------------------------------
def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _random_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(70, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _contrasting_color(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour at least ``_MIN_CONTRAST`` away from ``under`` (RGB mean), if one
    turns up in a few draws; else the farthest drawn."""
    best, best_dist = None, -1.0
    for _ in range(8):
        color = _random_color(rng)
        dist = float(np.linalg.norm(color - under))
        if dist >= _MIN_CONTRAST:
            return color
        if dist > best_dist:
            best, best_dist = color, dist
    return best  # type: ignore[return-value]


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32 in [0, 1] rising along a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    return (t - t.min()) / max(float(t.max() - t.min()), 1e-6)


def _paint_object(rng: np.random.Generator, img: np.ndarray, roi: tuple[slice, slice], mask: np.ndarray) -> None:
    """Composite a textured object with coverage ``mask`` into ``img[roi]`` (in place)."""
    patch = img[roi].astype(np.float32)
    covered = mask >= _COVERED
    color = _contrasting_color(rng, patch[covered].mean(axis=0))
    other = color * rng.uniform(0.55, 0.8) if color.mean() > 110 else color + (255 - color) * rng.uniform(0.3, 0.5)
    h, w = mask.shape
    style = rng.random()
    if style < 0.4:  # solid
        fill = np.broadcast_to(color, (h, w, 3))
    elif style < 0.7:  # two-tone gradient
        t = _ramp(rng, h, w)[..., None]
        fill = color * (1 - t) + other * t
    elif style < 0.9:  # stripes
        period = rng.uniform(5, 12)
        stripes = (np.sin(_ramp(rng, h, w) * max(h, w) * 2 * np.pi / period) > 0)[..., None]
        fill = np.where(stripes, color, other)
    else:  # speckle
        fill = color + rng.normal(0, 18, (h, w, 3)).astype(np.float32)
    if rng.random() < 0.3:  # darker outline
        edge = mask.astype(np.int16) - cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
        fill = np.where((edge > 64)[..., None], color * 0.4, fill)
    alpha = mask[..., None].astype(np.float32) / 255.0
    img[roi] = np.clip(patch * (1 - alpha) + fill * alpha + 0.5, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, h: int, w: int, clutter: float) -> np.ndarray:
    """Two-colour gradient plus low-frequency colour texture (stronger with clutter).

    Both are smooth, so they are computed on a 1/8-scale grid and upsampled."""
    sh, sw = max(2, h // 8), max(2, w // 8)
    c0, c1 = _random_color(rng) * rng.uniform(0.5, 1.0), _random_color(rng) * rng.uniform(0.5, 1.0)
    t = _ramp(rng, sh, sw)[..., None]
    bg = c0 * (1 - t) + c1 * t
    if clutter > 0:
        grid = rng.uniform(-1, 1, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3)).astype(np.float32)
        bg += cv2.resize(grid, (sw, sh), interpolation=cv2.INTER_CUBIC) * (45.0 * clutter)
    bg = cv2.resize(bg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(bg + 0.5, 0, 255).astype(np.uint8)


def _draw_distractors(rng: np.random.Generator, img: np.ndarray, clutter: float) -> None:
    """Soft irregular blobs, lines and open arcs: texture a detector must learn to ignore."""
    h, w = img.shape[:2]
    for _ in range(int(rng.poisson(4 * clutter))):  # blobs
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        wobble = sum(rng.uniform(0.1, 0.2) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
        r = rng.uniform(6, 28) * (1 + wobble)
        pts = np.stack([rng.uniform(0, w) + r * np.cos(t), rng.uniform(0, h) + r * np.sin(t)], axis=1)
        sigma = rng.uniform(2.0, 4.5)
        margin = int(np.ceil(3 * sigma)) + 1  # room for the blur to fade out
        x0, y0 = np.clip(np.floor(pts.min(axis=0)).astype(int) - margin, 0, None)
        x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + margin, (w, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        roi = (slice(y0, y1), slice(x0, x1))
        alpha = cv2.GaussianBlur(mask, (0, 0), sigma).astype(np.float32)[..., None]
        alpha *= rng.uniform(0.3, 0.75) / 255.0
        patch = img[roi].astype(np.float32)
        img[roi] = np.clip(patch * (1 - alpha) + _random_color(rng) * alpha + 0.5, 0, 255).astype(np.uint8)
    _draw_lines(rng, img, int(rng.poisson(4 * clutter)))
    for _ in range(int(rng.poisson(1.5 * clutter))):  # open arcs
        center = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(8, 60)), int(rng.uniform(8, 60)))
        start = rng.uniform(0, 360)
        color = tuple(float(c) for c in _random_color(rng))
        cv2.ellipse(img, center, axes, rng.uniform(0, 180), start, start + rng.uniform(60, 220), color,
                    int(rng.integers(1, 3)), cv2.LINE_AA)


def _draw_lines(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    h, w = img.shape[:2]
    for _ in range(count):
        p0 = (rng.uniform(0, w), rng.uniform(0, h))
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(20, max(h, w))
        p1 = (p0[0] + length * np.cos(angle), p0[1] + length * np.sin(angle))
        pts = [tuple(int(round(v * 16)) for v in p) for p in (p0, p1)]
        color = tuple(float(c) for c in _random_color(rng))
        cv2.line(img, pts[0], pts[1], color, int(rng.integers(1, 3)), cv2.LINE_AA, shift=4)


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed (512, 512, 3) standard-normal field; images add a random crop of it
    (drawing fresh Gaussian noise per pixel would dominate the generation time)."""
    return np.random.default_rng(0x5D4).standard_normal((512, 512, 3), dtype=np.float32)


def _add_noise(rng: np.random.Generator, img: np.ndarray, clutter: float) -> np.ndarray:
    """Gaussian sensor noise (sigma 1.5 .. 7.5 with clutter), sometimes a slight blur."""
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    sigma = 1.5 + 6.0 * clutter
    h, w = img.shape[:2]
    bank = _noise_bank()
    if h <= bank.shape[0] and w <= bank.shape[1]:
        top, left = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
        noise = bank[top : top + h, left : left + w]
    else:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
    out = cv2.scaleAdd(noise, sigma, img.astype(np.float32))
    return np.clip(out, 0, 255, out=out).round().astype(np.uint8)
