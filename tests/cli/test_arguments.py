"""Argument parsing shared by subcommands (``sdk.cli.arguments``)."""

from __future__ import annotations

import pytest


def test_hxw_is_parsed_by_one_function():
    from sdk.cli.arguments import parse_hw

    assert parse_hw("480x640") == (480, 640) and parse_hw(" 32X64 ") == (32, 64)
    for bad in ("320", "0x10", "axb", "1x2x3"):
        with pytest.raises(ValueError, match="expected HxW"):
            parse_hw(bad)
