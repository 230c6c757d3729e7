"""Latency/throughput harness behind ``sdk benchmark``, the suites and committed results.

See ``benchmarks/README.md``: ``harness.benchmark_model`` (one model_dir or checkpoint),
``suite.run_suite`` (every backend next to torchvision and SDK eager), ``suites`` (the
committed results in ``benchmarks/results/``).
"""
