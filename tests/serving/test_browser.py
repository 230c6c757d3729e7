"""The page at `/` in a real browser (headless Chromium over DevTools): upload an image,
find the detections drawn, listed and as JSON, equal to Detector's."""

from __future__ import annotations

import asyncio
import json
import math
import os

import numpy as np
import pytest
from chromium_devtools import find_chromium, headless_chromium, open_page
from serving_support import CLASSES, png_bytes

from sdk import Detector

CHROMIUM = find_chromium()
# Skipped on a machine without a browser, never in CI (.ci/run installs it): there a missing one fails.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="needs Chromium (apt-get install chromium, or set SDK_CHROMIUM); .ci/run installs it",
)
PALETTE_GREEN = (0x43, 0xA0, 0x47)  # the page's colour for class 1 ("green")


def test_page_uploads_an_image_and_draws_its_detections(server, model_dir, scenes, tmp_path):
    assert CHROMIUM, "no chromium on PATH in CI: .ci/run should have installed it"
    image = tmp_path / "green.png"
    image.write_bytes(png_bytes(scenes[1]))
    with headless_chromium(CHROMIUM) as devtools:
        shown = asyncio.run(_drive(devtools, server.http_url + "/", str(image)))
    assert shown["state"] == "done", shown["status"]
    assert shown["classes"] == list(CLASSES) and '"letterbox"' in shown["preprocess"]
    want = Detector(model_dir)(scenes[1], channel_order="rgb")
    rows = json.loads(shown["json"])
    assert len(rows) == len(want) == 1 and shown["items"] == [CLASSES[int(want.labels[0])]]
    np.testing.assert_allclose(rows[0]["bbox"], want.boxes[0], atol=1e-3)
    assert rows[0]["score"] == pytest.approx(float(want.scores[0]), abs=1e-6)
    assert shown["canvas"] == [scenes[1].shape[1], scenes[1].shape[0]]  # the image's own size
    # the label's background is filled in the class colour just above the box's top-left corner
    assert all(abs(a - b) <= 2 for a, b in zip(shown["label_pixel"], PALETTE_GREEN)), shown["label_pixel"]


async def _drive(devtools: str, url: str, image: str) -> dict:
    async with open_page(devtools) as page:
        await page.send("Page.enable")
        await page.send("Page.navigate", url=url)
        await page.wait_for("document.body && ['ready', 'error'].includes(document.body.dataset.state)")
        await page.set_files("#file", [image])
        await page.wait_for("['done', 'error'].includes(document.body.dataset.state)")
        shown = await page.evaluate(
            """({
                state: document.body.dataset.state,
                status: document.getElementById('status').textContent,
                json: document.getElementById('json').textContent,
                items: [...document.querySelectorAll('#detections li')].map((li) => li.dataset.className),
                classes: [...document.querySelectorAll('#classes li')].map((li) => li.textContent),
                preprocess: document.getElementById('preprocess').textContent,
                canvas: [document.getElementById('canvas').width, document.getElementById('canvas').height],
            })"""
        )
        if shown["state"] == "done":
            x1, y1 = json.loads(shown["json"])[0]["bbox"][:2]
            x, y = math.floor(x1) + 1, math.floor(y1) - 3
            shown["label_pixel"] = await page.evaluate(
                f"[...document.getElementById('canvas').getContext('2d').getImageData({x}, {y}, 1, 1).data].slice(0, 3)"
            )
        return shown
