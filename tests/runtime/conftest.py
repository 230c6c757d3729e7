"""Runtime-test fixtures around the bright-box ONNX "detector" (``support.bright_box``):
it finds the one bright object in each image, so a test draws a coloured rectangle at
known original pixels and checks that ``Detector`` maps the box back through any
resize/pad placement, per image of a mixed-size batch, and keeps channel order straight.
"""

from __future__ import annotations

import pytest
from support.fixtures import make_model_dir, scene  # noqa: F401  (fixtures)

# (h, w, box x1, y1, x2, y2 in original pixels, rgb): tall, wide, tiny, large, full,
# one pixel thin (resized away), one-row strip, square
SCENES = [
    (300, 120, (20, 200, 90, 280), (255, 0, 0)),
    (90, 400, (300, 10, 390, 60), (0, 255, 0)),
    (17, 23, (3, 4, 15, 12), (0, 0, 255)),
    (480, 640, (100, 50, 500, 300), (255, 0, 0)),
    (64, 64, (0, 0, 64, 64), (0, 255, 0)),
    (250, 251, (100, 100, 101, 180), (0, 0, 255)),
    (33, 700, (0, 0, 700, 1), (255, 0, 0)),
    (100, 100, (40, 40, 60, 60), (0, 255, 0)),
]


@pytest.fixture
def scenes():
    """Eight (h, w, box, rgb) scenes of different sizes and aspect ratios (``SCENES``)."""
    return list(SCENES)
