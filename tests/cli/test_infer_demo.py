"""``sdk infer``, ``sdk demo`` and the MMDetection-style helpers."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from sdk.apis import inference_detector, init_detector
from sdk.cli.infer import unique_stems
from sdk.cli.main import main
from sdk.detections import Detections
from sdk.detector import Detector
from sdk.errors import ConfigError, InputError


@pytest.fixture
def image_folder(tmp_path, scene):
    """Two folders of images (one stem repeated) and one unreadable file."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "red.jpg"), scene(120, 200, (20, 30, 100, 90), (255, 0, 0))[:, :, ::-1])
    cv2.imwrite(str(folder / "green.png"), scene(90, 60, (10, 10, 50, 80), (0, 255, 0))[:, :, ::-1])
    cv2.imwrite(str(folder / "sub" / "red.png"), scene(50, 50, (0, 0, 25, 25), (0, 0, 255))[:, :, ::-1])
    return folder


def test_infer_writes_json_and_drawn_images(make_model_dir, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "infer",
            str(make_model_dir()),
            str(image_folder),
            str(image_folder / "sub" / "*.png"),
            "--out-dir",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "green.json",
        "green.png",
        "red.jpg",
        "red.json",
        "red_1.json",
        "red_1.png",
    ]
    record = json.loads((out / "green.json").read_text())
    assert record["image"] == str(image_folder / "green.png")
    assert (record["width"], record["height"]) == (60, 90)
    assert record["names"] == ["green"] and record["labels"] == [1]
    np.testing.assert_allclose(record["boxes"][0], [10, 10, 50, 80], atol=2)
    assert json.loads((out / "red_1.json").read_text())["names"] == ["blue"]
    assert cv2.imread(str(out / "red.jpg")).shape == (120, 200, 3)
    assert "wrote 3 result(s)" in capsys.readouterr().out


def test_infer_skips_unreadable_images(make_model_dir, image_folder, tmp_path, capsys):
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(["infer", str(make_model_dir()), str(image_folder), "--out-dir", str(out), "--no-draw"])
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["green.json", "red.json"]
    assert "1 image(s) unreadable" in capsys.readouterr().out


def test_infer_user_errors_print_one_line(make_model_dir, image_folder, tmp_path, capsys):
    assert main(["infer", str(make_model_dir()), str(tmp_path / "nothing*.jpg")]) == 2
    assert main(["infer", str(tmp_path / "no_model"), str(image_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: no files match the pattern") and err[1].startswith("error: model not found")


def test_unique_stems(tmp_path):
    paths = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png", tmp_path / "x_1.jpg", tmp_path / "y.jpg"]
    assert unique_stems(paths) == ["x", "x_1", "x_1_1", "y"]


def _write_video(path, frames: int, size=(96, 64)) -> None:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    for i in range(frames):  # a white square walking right
        frame = np.zeros((h, w, 3), np.uint8)
        frame[20:40, 5 + 5 * i : 25 + 5 * i] = 255
        writer.write(frame)
    writer.release()


def test_demo_video_writes_annotated_video(make_model_dir, tmp_path, capsys):
    video, out = tmp_path / "walk.avi", tmp_path / "out" / "walk_det.avi"
    _write_video(video, frames=7)
    rc = main(
        [
            "demo",
            "video",
            str(make_model_dir()),
            str(video),
            "--out",
            str(out),
            "--batch-size",
            "3",
            "--score-thr",
            "0.1",
        ]
    )
    assert rc == 0 and "processed 7 frame(s)" in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    assert len(frames) == 7 and frames[0].shape == (64, 96, 3)
    # boxes are drawn in colour around the white square: coloured pixels appear
    spread = frames[3].astype(int).max(axis=2) - frames[3].astype(int).min(axis=2)
    assert (spread > 100).sum() > 20


def test_demo_video_max_frames(make_model_dir, tmp_path, capsys):
    video = tmp_path / "walk.avi"
    _write_video(video, frames=6)
    assert (
        main(
            ["demo", "video", str(make_model_dir()), str(video), "--out", str(tmp_path / "o.mp4"), "--max-frames", "4"]
        )
        == 0
    )
    assert "processed 4 frame(s)" in capsys.readouterr().out


def test_demo_errors(make_model_dir, tmp_path, capsys, monkeypatch):
    model_dir = make_model_dir()
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all")
    assert main(["demo", "video", str(model_dir), str(tmp_path / "missing.mp4")]) == 2
    assert main(["demo", "video", str(model_dir), str(tmp_path / "fake.mp4"), "--out", str(tmp_path / "o.mp4")]) == 2
    _write_video(tmp_path / "ok.avi", frames=2)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "video", str(model_dir), str(tmp_path / "ok.avi"), "--show"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: video file not found")
    assert err[1].startswith("error: ") and "fake.mp4" in err[1]
    assert "--show needs a display" in err[2] or "cannot open windows" in err[2]


def test_init_and_inference_detector(make_model_dir, scene, tmp_path):
    model_dir = make_model_dir()
    model = init_detector(model_dir)
    assert isinstance(model, Detector)
    assert isinstance(init_detector("configs/any.py", model_dir, device="cpu", score_thr=0.2), Detector)
    image = scene(50, 80, (10, 10, 40, 40), (0, 255, 0))
    dets = inference_detector(model, image, channel_order="rgb")
    assert isinstance(dets, Detections) and dets.names == ["green"]
    many = inference_detector(model, [image, image[:, :, ::-1]])
    assert [d.names for d in many] == [["green"], ["green"]]
    with pytest.raises(ConfigError, match="pass the trained checkpoint too"):
        init_detector("configs/retinanet_tiny.py")
    with pytest.raises(ConfigError, match="needs the Detector"):
        inference_detector(str(model_dir), image)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` with almost no pixel data (a decoder bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_infer_reports_hostile_files_and_carries_on(make_model_dir, image_folder, tmp_path, capsys, caplog):
    # A header claiming 60000x60000 (OpenCV raised cv2.error), one over --max-pixels, a truncated one.
    (image_folder / "bomb.png").write_bytes(_png_claiming(60000, 60000))
    (image_folder / "truncated.png").write_bytes(_png_claiming(100, 100))
    cv2.imwrite(str(image_folder / "big.png"), np.zeros((200, 200, 3), np.uint8))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="sdk.cli.infer"):
        rc = main(["infer", str(make_model_dir()), str(image_folder), "--out-dir", str(out), "--no-draw",
                   "--max-pixels", "30000"])
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["green.json", "red.json"]
    assert "3 image(s) unreadable" in capsys.readouterr().out
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "bomb.png: image has more than" in warned and "big.png: image is 200x200 = 40,000 pixels" in warned
    assert "truncated.png: not a readable image" in warned


def test_detector_max_pixels(make_model_dir):
    det = Detector(make_model_dir(), max_pixels=5000)
    assert len(det([np.zeros((50, 100, 3), np.uint8)])) == 1
    with pytest.raises(InputError, match="101x50 = 5,050 pixels, over the limit of 5,000"):
        det(_png_claiming(101, 50))
    with pytest.raises(ConfigError, match="max_pixels"):
        Detector(make_model_dir(), max_pixels=0)


def test_infer_recursive_reads_subfolders_and_no_progress_is_quiet(make_model_dir, image_folder, tmp_path, capsys):
    model = str(make_model_dir())
    assert main(["infer", model, str(image_folder), "--out-dir", str(tmp_path / "flat"), "--no-draw"]) == 0
    assert "infer:" in capsys.readouterr().err  # the progress bar
    rc = main(["infer", model, str(image_folder), "--recursive", "--no-progress", "--no-draw",
               "--out-dir", str(tmp_path / "deep")])
    captured = capsys.readouterr()
    assert rc == 0 and "infer" not in captured.err
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["green.json", "red.json", "red_1.json"]


def test_infer_folder_with_only_subfolders_names_recursive(make_model_dir, tmp_path, scene, capsys):
    (tmp_path / "outer" / "inner").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "outer" / "inner" / "a.jpg"), scene(40, 40, (5, 5, 20, 20)))
    assert main(["infer", str(make_model_dir()), str(tmp_path / "outer"), "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--recursive" in err and "\n" not in err


def test_infer_json_has_no_float32_noise(make_model_dir, image_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["infer", str(make_model_dir()), str(image_folder), "--out-dir", str(out), "--no-draw",
                 "--no-progress"]) == 0
    text = (out / "red.json").read_text()
    record = json.loads(text)
    for value in [v for box in record["boxes"] for v in box]:
        assert value == round(value, 3), value
    for value in record["scores"]:
        assert value == round(value, 5), value


def test_sdk_test_on_a_model_dir_without_torch_names_the_extra(make_model_dir, scene, tmp_path):
    import subprocess
    import sys

    cv2.imwrite(str(tmp_path / "a.jpg"), scene(40, 60, (5, 5, 30, 30))[:, :, ::-1])
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 60, "height": 40}],
                               "annotations": [], "categories": [{"id": 1, "name": "red"}]}))
    argv = ["test", str(make_model_dir()), "--dataset", str(ann), "--images", str(tmp_path), "--no-progress"]
    # a child process where `import torch` fails as if torch were not installed
    code = f"import sys; sys.modules['torch'] = None; from sdk.cli.main import main; sys.exit(main({argv!r}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    err = run.stderr.strip()
    assert run.returncode == 2 and err.startswith("error: ") and "\n" not in err, err
    assert "'torch'" in err and "sdk-detect[torch]" in err


@pytest.mark.parametrize("source, default", [("webcam", "--show"), ("video", "--no-show")])
def test_demo_has_one_show_flag_pair(source, default, capsys):
    with pytest.raises(SystemExit):
        main(["demo", source, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("--show, --no-show") == 1 and f"default: {default})" in out
