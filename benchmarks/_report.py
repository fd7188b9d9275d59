"""The printed results: rows of the main table, and the table of issue 12's done-when targets
(target, measured, pass/fail) next to each ratio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._common import HotResult, Skipped
from ._http import EndpointResult

__all__ = [
    "ENDPOINT_TARGET",
    "HEADERS",
    "HOT_TARGET",
    "PEER_DONE_TARGET",
    "PEER_TARGET",
    "SERVICE_TARGET",
    "STORAGE_ENDPOINT_TARGET",
    "SWEEP_FLOOR_TARGET",
    "Check",
    "Row",
    "check_at_least",
    "check_at_most",
    "checks_table",
    "hot_row",
    "missing_row",
    "peer_row",
    "rps_row",
    "skipped_row",
    "table",
]

HOT_TARGET = 1.5
ENDPOINT_TARGET = 0.6
STORAGE_ENDPOINT_TARGET = 0.5
SERVICE_TARGET = 0.8
PEER_TARGET = 1.0
PEER_DONE_TARGET = 0.05  # "Flask request path >= 20x faster than Flask-Dance's token lookup"
SWEEP_FLOOR_TARGET = 0.8

HEADERS = ("benchmark", "storage", "ours", "floor / bare / peer", "ratio", "target", "verdict")
CHECK_HEADERS = ("done when (issue 12)", "target", "measured", "result")

Row = tuple[str, ...]


def ratio_text(ratio: float) -> str:
    """``0.67x``; below 0.1, three decimals (the peer row's 0.048x is not "0.05x")."""
    return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"


def _us(median: float, minimum: float) -> str:
    return f"{median:8.2f} us (min {minimum:.2f})"


def hot_row(r: HotResult) -> Row:
    return (
        r.case,
        r.storage,
        _us(r.ours.median_us, r.ours.min_us),
        _us(r.floor.median_us, r.floor.min_us),
        f"{r.ratio:.2f}x",
        f"<= {HOT_TARGET:.1f}x",
        "ok" if r.ratio <= HOT_TARGET else "OVER TARGET",
    )


def peer_row(r: HotResult) -> Row:
    return (
        r.case,
        r.storage,
        _us(r.ours.median_us, r.ours.min_us),
        _us(r.floor.median_us, r.floor.min_us),
        ratio_text(r.ratio),
        f"< {PEER_TARGET:.1f}x",
        "ok (faster)" if r.ratio < PEER_TARGET else "SLOWER THAN PEER",
    )


def rps_row(name: str, storage: str, e: EndpointResult, target: float) -> Row:
    return (
        name,
        storage,
        f"{e.ours:8.0f} req/s",
        f"{e.bare:8.0f} req/s",
        f"{e.ratio:.2f}x",
        f">= {target:.1f}x",
        "ok" if e.ratio >= target else "UNDER TARGET",
    )


def missing_row(name: str, storage: str, target: str, verdict: str) -> Row:
    return (name, storage, "-", "-", "-", target, verdict)


def skipped_row(s: Skipped, target: str) -> Row:
    return missing_row(s.case, s.storage, target, s.reason)


def table(rows: Sequence[Row], headers: Row = HEADERS) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(row: Row) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


# -- the done-when table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One done-when line: ``met`` is ``None`` when it could not be measured in this run."""

    goal: str
    target: str
    measured: str
    met: bool | None

    def row(self) -> Row:
        result = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[self.met]
        return (self.goal, self.target, self.measured, result)


def check_at_least(goal: str, target: float, ratio: float | None, why: str = "") -> Check:
    if ratio is None:
        return Check(goal, f">= {target:.2f}x", why or "-", None)
    return Check(goal, f">= {target:.2f}x", ratio_text(ratio), ratio >= target)


def check_at_most(goal: str, target: float, ratio: float | None, why: str = "") -> Check:
    if ratio is None:
        return Check(goal, f"<= {target:.2f}x", why or "-", None)
    return Check(goal, f"<= {target:.2f}x", ratio_text(ratio), ratio <= target)


def checks_table(checks: Sequence[Check]) -> str:
    met = sum(c.met is True for c in checks)
    body = table([c.row() for c in checks], CHECK_HEADERS)
    return f"{body}\n{met} of {len(checks)} done-when targets met in this run."
