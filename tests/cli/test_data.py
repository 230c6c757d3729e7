"""`sdk data synth` and `sdk data images2coco`, plus the class-list and image-size helpers."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from sdk.cli.main import build_parser, main
from sdk.data.coco import CocoDetection
from sdk.data.image_folder import parse_class_names
from sdk.data.synthetic import SYNTH_CLASSES
from sdk.errors import DatasetError
from sdk.images import load_image


def test_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "shapes"
    argv = ["data", "synth", "--out", str(out), "--train", "3", "--val", "2", "--size", "160", "--seed", "4",
            "--objects", "2", "3", "--object-size", "16", "48", "--clutter", "0.2", "--empty-fraction", "0"]
    assert main(argv) == 0
    train = json.loads((out / "annotations" / "train.json").read_text())
    assert len(train["images"]) == 3 and len(json.loads((out / "annotations" / "val.json").read_text())["images"]) == 2
    assert train["info"]["seed"] == 4 and train["info"]["config"]["objects_per_image"] == [2, 3]
    assert [c["name"] for c in train["categories"]] == list(SYNTH_CLASSES)
    assert str(out / "annotations" / "train.json") in capsys.readouterr().out


def test_synth_bad_value_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--clutter", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "clutter" in err and err.count("\n") == 1


def _write_images(folder):
    (folder / "nested").mkdir(parents=True)
    cv2.imwrite(str(folder / "b.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(folder / "nested" / "a.jpg"), np.zeros((20, 50, 3), np.uint8))
    # a JPEG stored 60 wide x 24 high whose EXIF orientation (6) rotates it to 24 x 60
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 24), (255, 0, 0)).save(folder / "rotated.jpg", exif=exif)
    (folder / "notes.txt").write_text("not an image")


@pytest.mark.parametrize("classes_arg", ["cat, dog", "file"])
def test_images2coco_lists_images_with_decoded_sizes(tmp_path, classes_arg):
    folder = tmp_path / "imgs"
    _write_images(folder)
    if classes_arg == "file":
        classes_arg = str(tmp_path / "classes.txt")
        (tmp_path / "classes.txt").write_text("# my classes\ncat\n\ndog\n")
    out = tmp_path / "out" / "unlabeled.json"
    assert main(["data", "images2coco", str(folder), classes_arg, str(out)]) == 0
    coco = json.loads(out.read_text())
    assert coco["annotations"] == []
    assert coco["categories"] == [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}]
    assert [im["file_name"] for im in coco["images"]] == ["b.png", "nested/a.jpg", "rotated.jpg"]
    for im in coco["images"]:
        assert load_image(folder / im["file_name"]).shape[:2] == (im["height"], im["width"])
    assert (coco["images"][2]["width"], coco["images"][2]["height"]) == (24, 60)
    ds = CocoDetection(out, folder)  # and the dataset reads it back
    assert len(ds) == 3 and ds[2][1]["boxes"].shape == (0, 4)


def test_images2coco_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "images2coco", str(tmp_path / "empty"), "a", str(tmp_path / "o.json")]) == 2
    assert "holds no images" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    assert main(["data", "images2coco", str(tmp_path / "bad"), "a", str(tmp_path / "o.json")]) == 2
    assert "x.jpg" in capsys.readouterr().err


def test_parse_class_names(tmp_path):
    assert parse_class_names("cat,dog , bird") == ["cat", "dog", "bird"]
    assert parse_class_names("person") == ["person"]
    with pytest.raises(DatasetError, match="not found"):
        parse_class_names(str(tmp_path / "missing.txt"))
    with pytest.raises(DatasetError, match="unique"):
        parse_class_names("a,b,a")
    with pytest.raises(DatasetError, match="no class names"):
        parse_class_names(" , ")


def test_every_option_has_help():
    parser = build_parser()
    data = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["data"]
    actions = next(a for a in data._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(actions) == {"synth", "images2coco", "browse"}
    for sub in actions.values():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{sub.prog} {action.dest} has no help"
