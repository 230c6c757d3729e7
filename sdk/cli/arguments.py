"""Argument parsing shared by several subcommands (one definition each)."""

from __future__ import annotations

import argparse


def parse_hw(text: str) -> tuple[int, int]:
    """``"480x640"`` (or ``"480X640"``) -> ``(480, 640)``: height then width, both > 0.
    Raises ``ValueError`` naming the expected form."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"expected HxW with positive integers (e.g. 480x640), got {text!r}")
    return int(parts[0]), int(parts[1])


def hw_type(text: str) -> tuple[int, int]:
    """``parse_hw`` as an argparse ``type=`` (a usage error on bad input)."""
    try:
        return parse_hw(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
