"""Make the README's analysis pictures from a quickstart run (``make analysis-pictures``).

    python scripts/analysis_pictures.py [--quickstart runs/quickstart] [--out docs/images/analysis]

Runs the ``sdk analyze`` / ``sdk data browse`` commands on the quickstart's model and
data (``QS/train/best.pt``, ``QS/train/log.jsonl``, ``QS/data/annotations/*.json``),
keeps one picture of each kind under ``--out`` and writes ``--out/commands.md`` with
the exact commands (paths as given). The intermediate outputs go to
``QS/analysis/``. The robustness step exports an int8 ONNX Runtime model_dir of the
checkpoint (calibrated on the train split) and compares it with the fp32 checkpoint
on the first ``--robustness-images`` val images.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's sdk, not another one the venv may point to


def sdk(argv: list[str], log: list[str]) -> None:
    """Run ``sdk ARGV`` in this process (as the console script would) and record it."""
    from sdk.cli.main import main

    line = "sdk " + " ".join(shlex.quote(a) for a in argv)
    print(f"$ {line}", flush=True)
    start = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        sys.exit(f"failed ({rc}): {line}")
    log.append(f"{line}   # {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quickstart", default="runs/quickstart", help="output folder of `sdk quickstart`")
    parser.add_argument("--out", default="docs/images/analysis", help="folder for the pictures and commands.md")
    parser.add_argument("--config", default="configs/quickstart_tiny.py",
                        help="the training config (for `sdk data browse`)")
    parser.add_argument("--robustness-images", type=int, default=50, help="val images of the robustness run")
    parser.add_argument("--corruptions", nargs="+", default=["all"], help="corruptions of the robustness run")
    args = parser.parse_args()

    qs, out = Path(args.quickstart), Path(args.out)
    ckpt, val = qs / "train" / "best.pt", qs / "data" / "annotations" / "val.json"
    train = qs / "data" / "annotations" / "train.json"
    for needed in (ckpt, val, train, qs / "train" / "log.jsonl"):
        if not needed.exists():
            sys.exit(f"{needed} is missing: run `make quickstart` (sdk quickstart --out {qs}) first")
    work = qs / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []

    sdk(["analyze", "logs", str(qs / "train"), "--keys", "loss", "bbox_mAP", "--out", str(out / "logs.png")], log)

    sdk(["analyze", "results", str(ckpt), "--dataset", str(val), "--out", str(work / "results"), "--topk", "5"], log)
    shutil.copy(sorted((work / "results" / "best").glob("*.jpg"))[0], out / "results_best.jpg")
    shutil.copy(sorted((work / "results" / "worst").glob("*.jpg"))[0], out / "results_worst.jpg")

    sdk(["analyze", "confusion", str(ckpt), "--dataset", str(val), "--out", str(work / "confusion")], log)
    shutil.copy(work / "confusion" / "confusion_matrix.png", out / "confusion.png")

    results = work / "results.json"
    sdk(["test", str(ckpt), "--dataset", str(val), "--out", str(results)], log)
    sdk(["analyze", "errors", str(results), "--dataset", str(val), "--out", str(work / "errors")], log)
    shutil.copy(work / "errors" / "overall-all.png", out / "errors.png")
    shutil.copy(work / "errors" / "classes.png", out / "errors_classes.png")

    sdk(["data", "browse", str(train), "--config", str(args.config), "--out", str(work / "browse"), "--num", "4",
         "--cfg-options", "data.hflip=1.0"], log)
    shutil.copy(sorted((work / "browse").glob("*.jpg"))[0], out / "browse.jpg")

    int8 = work / "model_dir_int8"
    if not (int8 / "manifest.json").exists():
        sdk(["export", str(ckpt), "--out", str(int8), "--backend", "onnxruntime", "--precision", "int8",
             "--calib-dataset", str(train)], log)
    sdk(["analyze", "robustness", str(ckpt), str(int8), "--dataset", str(val), "--out", str(work / "robustness"),
         "--max-images", str(args.robustness_images), "--corruptions", *args.corruptions], log)
    shutil.copy(work / "robustness" / "robustness.png", out / "robustness.png")
    shutil.copy(work / "robustness" / "corruptions.jpg", out / "corruptions.jpg")

    (out / "commands.md").write_text("Made by `scripts/analysis_pictures.py` with:\n\n```bash\n" + "\n".join(log) + "\n```\n")
    print(f"pictures in {out}; commands in {out / 'commands.md'}")


if __name__ == "__main__":
    main()
