"""Argument types of ``oauth-vault``: durations and bounded whole numbers.

A bad value raises :class:`argparse.ArgumentTypeError`, which the parser turns into one line
naming the option.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

__all__ = ["parse_duration", "whole_number"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DURATION = 366 * 86400


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``10m``, ``2h``, ``1d`` or plain seconds (``90``, ``1.5``)."""
    found = _DURATION.match(text.strip().lower())
    value = float(found.group(1)) * _UNITS[found.group(2)] if found else math.nan
    if not 0 <= value <= _MAX_DURATION:  # also NaN: no match
        raise argparse.ArgumentTypeError(
            f"invalid duration {text[:40]!r} (use 30s, 10m, 2h, 1d or seconds, up to 366d)"
        )
    return value


def whole_number(maximum: int) -> Callable[[str], int]:
    """A type for ``add_argument``: a whole number from 1 to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r} is not a whole number from 1 to {maximum}"
            )
        return value

    return parse
