"""``python -m sdk.benchmarks.torchvision_match``: the table it writes (the counts come
from ``sdk.engine.verify.match_detections``, tested with ``sdk verify``)."""

from __future__ import annotations

import pytest

from sdk.benchmarks.torchvision_match import main, markdown


def test_wiring_table_totals_each_column():
    rows = [
        {"image": "a.png", "hw": (512, 512), "detections": 300, "reference": {"eager": 183, "static": 45, "dynamic": 183},
         "same_pixels": {"eager": 300, "static": 65, "dynamic": 300}},
        {"image": "b.png", "hw": (300, 451), "detections": 300, "reference": {"eager": 202, "static": 198, "dynamic": 202},
         "same_pixels": {"eager": 300, "static": 289, "dynamic": 300}},
    ]
    text = markdown(rows, model="fasterrcnn_resnet50_fpn", canvas=(800, 1344), command="python -m x")
    assert "| a.png | 512 x 512 | 300 | 183 | 45 | 183 | 300 | 65 | 300 |" in text
    assert "| **all** | | 600 | 385 | 243 | 385 | 600 | 354 | 600 |" in text
    assert "800x1344 canvas" in text


def test_a_folder_without_photos_is_one_error(tmp_path):
    from sdk.errors import ConfigError

    with pytest.raises(ConfigError, match="holds no images"):
        main(["--images", str(tmp_path)])
