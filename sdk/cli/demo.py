"""``sdk demo video|webcam``: run a model on a video file or a camera with OpenCV.

``sdk demo video MODEL VIDEO [--out OUT] [--show]`` writes the video with boxes drawn
(default ``runs/demo/<video stem>_det.mp4`` unless only ``--show`` is asked for);
``sdk demo webcam MODEL [--camera-id N]`` shows the camera live (``q`` or Esc quits).
Video frames go through the detector in batches (throughput); camera frames one at a
time (latency).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from sdk.cli.arguments import add_device_argument

WINDOW = "sdk demo"
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a model on a video file or a webcam",
        description="Run a model on a video file or a camera stream.",
    )
    kinds = parser.add_subparsers(dest="source", metavar="SOURCE")
    kinds.required = True

    video = kinds.add_parser("video", help="detect in a video file and write/show the result")
    _add_common_arguments(video, show_default=False)
    video.add_argument("video", help="input video file (anything OpenCV's FFmpeg backend reads)")
    video.add_argument(
        "--out", default=None, help="output video (.mp4, .avi, ...); default runs/demo/<stem>_det.mp4 unless --show"
    )
    video.add_argument(
        "--batch-size", type=int, default=None, help="frames per backend call (default: the model's maximum batch)"
    )
    video.set_defaults(func=run_video)

    webcam = kinds.add_parser("webcam", help="detect in a live camera stream (q or Esc quits)")
    _add_common_arguments(webcam, show_default=True)
    webcam.add_argument("--camera-id", type=int, default=0, help="OpenCV camera index (default: %(default)s)")
    webcam.add_argument("--out", default=None, help="also record the drawn stream to this video file")
    webcam.set_defaults(func=run_webcam, batch_size=1)


def _add_common_arguments(parser: argparse.ArgumentParser, *, show_default: bool) -> None:
    parser.add_argument("model", help="model_dir written by `sdk export`, or an SDK .pt checkpoint")
    parser.add_argument(
        "--score-thr", type=float, default=0.3, help="draw detections scoring at least this (default: %(default)s)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--show",
        action=argparse.BooleanOptionalAction,  # one flag pair: --show / --no-show
        default=show_default,
        help=f"show the frames in a window (needs a display; default: {'--show' if show_default else '--no-show'})",
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="stop after this many frames (default: the whole stream)"
    )


def run_video(args: argparse.Namespace) -> int:
    import cv2

    from sdk.errors import InputError

    path = Path(args.video)
    if not path.is_file():
        raise InputError(f"video file not found: {path}")
    out = args.out
    if out is None and not args.show:
        out = Path("runs/demo") / f"{path.stem}_det.mp4"
    detector = _detector(args)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(
            f"cannot open video {path}: OpenCV has no decoder for it (try converting it to .mp4 with ffmpeg)"
        )
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    frames = run_stream(
        detector,
        capture,
        out=out,
        show=args.show,
        batch_size=detector.batch_size,
        max_frames=args.max_frames,
        total=total,
    )
    if frames == 0:
        raise InputError(f"no frames could be read from {path}")
    print(f"processed {frames} frame(s)" + (f"; wrote {out}" if out else ""))
    return 0


def run_webcam(args: argparse.Namespace) -> int:
    import cv2

    from sdk.errors import InputError

    detector = _detector(args)
    capture = cv2.VideoCapture(args.camera_id)
    if not capture.isOpened():
        raise InputError(
            f"cannot open camera {args.camera_id}: check that it is connected and not in use, or pick --camera-id"
        )
    frames = run_stream(detector, capture, out=args.out, show=args.show, batch_size=1, max_frames=args.max_frames)
    print(f"processed {frames} frame(s)")
    return 0


def run_stream(
    detector: Any,
    capture: Any,
    *,
    out: str | os.PathLike | None,
    show: bool,
    batch_size: int,
    max_frames: int | None = None,
    total: int | None = None,
) -> int:
    """Detect in every frame of an opened ``cv2.VideoCapture``; write and/or show the
    drawn frames. Returns the number of frames processed. Releases ``capture``."""
    import cv2
    from tqdm import tqdm

    if show:
        _open_window()
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    done, stop = 0, False
    limit = max_frames if max_frames is not None else total
    try:
        with tqdm(total=limit, unit="frame", desc="demo") as bar:
            while not stop and (max_frames is None or done < max_frames):
                want = batch_size if max_frames is None else min(batch_size, max_frames - done)
                frames = _read_frames(capture, want)
                if not frames:
                    break
                start = time.perf_counter()
                results = detector(frames)  # BGR frames, OpenCV's order
                rate = len(frames) / max(time.perf_counter() - start, 1e-9)
                for frame, dets in zip(frames, results):
                    drawn = dets.plot(frame, score_thr=0.0)  # the detector applied --score-thr
                    cv2.putText(
                        drawn, f"{rate:.1f} FPS", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 1, cv2.LINE_AA
                    )
                    if out is not None:
                        writer = writer or _open_writer(Path(out), fps, drawn.shape[1], drawn.shape[0])
                        writer.write(drawn)
                    if show:
                        cv2.imshow(WINDOW, drawn)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            stop = True
                            break
                done += len(frames)
                bar.update(len(frames))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    return done


def _detector(args: argparse.Namespace):
    from sdk.detector import Detector

    return Detector(args.model, device=args.device, score_thr=args.score_thr, batch_size=args.batch_size)


def _read_frames(capture: Any, count: int) -> list:
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def _open_writer(path: Path, fps: float, width: int, height: int):
    import cv2

    from sdk.errors import SDKError

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _FOURCC.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise SDKError(f"cannot write video {path} with codec {codec}: use an .mp4 or .avi file name")
    return writer


def _open_window() -> None:
    """Fail early, with the fix, where frames cannot be shown."""
    import cv2

    from sdk.errors import BackendUnavailableError

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BackendUnavailableError(
            "--show needs a display, and $DISPLAY is not set: write a file with --out instead"
        )
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise BackendUnavailableError(
            "this OpenCV build cannot open windows (opencv-python-headless): pip install opencv-python "
            "to use --show, or write a file with --out"
        ) from exc
