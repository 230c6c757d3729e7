"""The GPU check: every CUDA path of the SDK measured in one run on a lent GPU.

    benchmarks/gpu/run.sh [--out benchmarks/results/gpu] [--budget-s 450]
    python -m sdk.benchmarks.gpu --dry-run --out /tmp/gpu-dry   # on a CPU: tiny sizes, CUDA parts skipped

Steps, in order, each written to the output folder as soon as it finishes (a run cut
off by its time limit still leaves what it measured):

1. ``environment``: GPU, driver, CUDA, torch, Triton, onnxruntime versions.
2. ``gpu_tests``: the ``gpu``-marked tests, natively (Triton kernels, AOTInductor on
   CUDA, ``Detector`` on CUDA).
3. ``kernels``: the SDK's NMS and multi-level RoIAlign ops against torchvision's
   ``batched_nms`` and ``MultiScaleRoIAlign`` (``sdk.benchmarks.gpu.kernels``).
4. ``end_to_end``: the quickstart model, RetinaNet R50 and Faster R-CNN R50 through
   ``sdk benchmark suite`` on CUDA (torchvision eager, SDK eager fp32 and AMP,
   AOTInductor fp32 and fp16), with mAP on the quickstart model
   (``sdk.benchmarks.gpu.end_to_end``).

The dry run executes the same code on the CPU at tiny sizes, so the script is known to
work before a GPU is lent (``tests/benchmarks/test_gpu_check.py``).
"""
