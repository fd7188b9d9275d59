"""How ``oauth-vault`` words its output: counts with the right plural, times, id lists."""

from __future__ import annotations

import time
from collections.abc import Iterable

__all__ = ["counted", "id_list", "iso"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 credential``, ``2 credentials``, ``0 credentials``; ``plural`` when not noun + s."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def iso(at: float | None, otherwise: str) -> str:
    """An epoch time as ISO 8601 UTC (``2026-11-23T14:34:18Z``), or ``otherwise``."""
    return otherwise if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def id_list(ids: Iterable[str], *, most: int = 20) -> str:
    """Ids for a one-line message: ``a, b, c``, the first ``most`` of a long list, or
    ``none``."""
    names = list(ids)
    if not names:
        return "none"
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"
