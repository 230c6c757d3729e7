"""Analysis tools after a training run (MMDetection's "useful tools"), behind ``sdk analyze``.

One module per tool; each works on any model ``sdk.Detector`` runs (a ``.pt``
checkpoint or a model_dir of any backend and precision) and writes pictures
(matplotlib, Agg) plus CSV/JSON:

- ``logs``: curves of one or more ``log.jsonl`` files, training time per iteration/epoch;
- ``per_image``: per-image COCO AP, best and worst images drawn (ground truth | predictions);
- ``confusion``: confusion matrix with a background row and column;
- ``coco_errors``: the COCO error breakdown (C75, C50, Loc, Sim, Oth, BG, FN);
- ``robustness``: mAP under image corruptions (15 corruptions x 5 severities);
- ``browse``: ground truth drawn after the training transforms;
- ``publish``: a weights-only checkpoint with a sha256 suffix.

Submodules are imported explicitly (they import matplotlib, pycocotools or torch).
"""
