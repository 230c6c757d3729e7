"""Runtime backends behind ``Detector``: one small interface, ``infer(batch) -> dict``."""
