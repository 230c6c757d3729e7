"""Helpers shared by test folders (on the path through ``pythonpath`` in pyproject.toml):
``bright_box`` (a deterministic ONNX detector), ``random_weights`` (informative random
weights for untrained detectors), ``hardware`` (skip markers for what the CPU lacks)."""
