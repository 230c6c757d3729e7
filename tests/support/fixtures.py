"""Fixtures around the bright-box detector, shared by test folders: a conftest imports
them by name (``from support.fixtures import make_model_dir, scene``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.preprocess import Preprocess
from support.bright_box import bright_box_model_dir, draw_scene


@pytest.fixture
def make_model_dir(tmp_path_factory):
    """``make_model_dir(preprocess=..., max_batch=..., **kw) -> Path`` of a bright-box
    model_dir (default letterbox 64x96; options of ``bright_box_model_dir``)."""

    def make(*, preprocess: Preprocess | None = None, **options) -> Path:
        pre = preprocess or Preprocess(mode="letterbox", size=(64, 96))
        return bright_box_model_dir(tmp_path_factory.mktemp("model"), preprocess=pre, **options)

    return make


@pytest.fixture
def scene():
    """``scene(h, w, box, rgb=(255, 0, 0), background=0)`` -> RGB image (see ``draw_scene``)."""
    return draw_scene
