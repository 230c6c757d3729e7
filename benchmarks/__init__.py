"""Latency/throughput harness behind ``sdk benchmark``, the suites and committed results.

See ``benchmarks/README.md``: ``harness.benchmark_model`` (one model_dir or checkpoint),
``backend_suite.run_suite`` (one checkpoint on every backend and precision next to
torchvision and SDK eager), ``committed_suites`` (the named suites behind the committed
results in ``benchmarks/results/``).
"""
