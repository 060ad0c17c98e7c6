"""A real time axis for the report's charts: calendar bins, and tick labels that never overlap.

Pure functions over naive datetimes read as UTC (what DuckDB returns for ``ts AT TIME ZONE 'UTC'``)
and lengths in points; no plotting library. ``pipelines/report/`` picks a bin unit with
``bin_unit`` (so many days become weeks or months rather than bars thinner than a pixel), counts
per ``date_trunc`` of that unit in DuckDB, and places bars and ticks by time, so a gap of three
years takes the room of three years.

Ticks come from a ladder of calendar steps (hours, days, weeks, months, years); ``time_ticks``
takes the finest step whose labels, estimated at ``LABEL_EM`` of the font size per character, fit
inside the axis with ``GAP_EM`` between neighbours, at most ``max_ticks`` of them. A label says only
what its left neighbour's does not (``2026-11-22 12:00``, then ``18:00``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UNITS = ("hour", "day", "week", "month", "quarter", "year", "decade")
"""Bin units, finest first; each is a ``date_trunc`` part DuckDB knows, with the same boundaries
(weeks start on Monday, decades on years divisible by ten)."""

LABEL_EM = 0.65  # a character's width in ems, kept above the widest digit of DejaVu Sans/Verdana (0.636)
GAP_EM = 2.0  # the least free space between two tick labels, in ems

_HOURS = ("%Y-%m-%d %H:00", "%H:00", "%Y-%m-%d")
_DAYS = ("%Y-%m-%d", "%m-%d", "%Y")
_MONTHS = ("%Y-%m", "%Y-%m", "%Y")
_YEARS = ("%Y", "%Y", "%Y")
_LADDER: tuple[tuple[str, int, tuple[str, str, str]], ...] = (
    *(("hour", step, _HOURS) for step in (1, 2, 3, 6, 12)),
    ("day", 1, _DAYS),
    ("day", 2, _DAYS),
    ("week", 1, _DAYS),
    ("week", 2, _DAYS),
    *(("month", step, _MONTHS) for step in (1, 2, 3, 6)),
    *(("year", step, _YEARS) for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)),
)
"""Tick steps, finest first: (unit, how many of it, label formats). The formats are the full label,
the short one, and the context a short label leaves out: the first tick has the full label, and so
has each tick whose context differs from its left neighbour's (``2026-11-22 12:00``, ``18:00``,
``2026-11-23 00:00``)."""

_NOMINAL = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30.4),
    "quarter": dt.timedelta(days=91.3),
    "year": dt.timedelta(days=365.2),
    "decade": dt.timedelta(days=3652),
}


def floor(at: dt.datetime, unit: str) -> dt.datetime:
    """The start of the ``unit`` that holds ``at`` (as DuckDB's ``date_trunc(unit, at)``)."""
    if unit == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if unit == "year":
        return day.replace(month=1, day=1)
    if unit == "decade":
        return day.replace(year=max(1, day.year // 10 * 10), month=1, day=1)
    raise ValueError(f"unknown time unit {unit!r}; one of {', '.join(UNITS)}")


def advance(at: dt.datetime, unit: str, steps: int = 1) -> dt.datetime:
    """``at`` moved on by ``steps`` whole units (calendar months and years, not fixed lengths)."""
    if unit == "hour":
        return at + dt.timedelta(hours=steps)
    if unit == "day":
        return at + dt.timedelta(days=steps)
    if unit == "week":
        return at + dt.timedelta(weeks=steps)
    months = {"month": 1, "quarter": 3, "year": 12, "decade": 120}.get(unit)
    if months is None:
        raise ValueError(f"unknown time unit {unit!r}; one of {', '.join(UNITS)}")
    index = at.year * 12 + at.month - 1 + months * steps
    return at.replace(year=index // 12, month=index % 12 + 1)


def bin_count(first: dt.datetime, last: dt.datetime, unit: str) -> int:
    """How many ``unit`` bins an axis from ``first`` to ``last`` holds, both ends' bins included."""
    start, end = floor(first, unit), floor(last, unit)
    estimate = int((end - start) / _NOMINAL[unit])
    if estimate > 10_000:  # far too many to draw anyway: the estimate is as good an answer
        return estimate + 1
    count, at = 1, start
    while at < end:
        at, count = advance(at, unit), count + 1
    return count


def bin_unit(first: dt.datetime, last: dt.datetime, finest: str = "hour", max_bins: int = 120) -> str:
    """The finest unit, no finer than ``finest``, with at most ``max_bins`` bins from ``first`` to ``last``.

    The coarsest unit (decades) when none has so few.
    """
    for unit in UNITS[UNITS.index(finest) :]:
        if bin_count(first, last, unit) <= max_bins:
            return unit
    return UNITS[-1]


def axis_limits(first_bin: dt.datetime, last_bin: dt.datetime, unit: str) -> tuple[dt.datetime, dt.datetime]:
    """The axis for bars from ``first_bin`` to the end of ``last_bin``, with half a bin of room each side."""
    before = (advance(first_bin, unit) - first_bin) / 2
    last_end = advance(last_bin, unit)
    after = (advance(last_end, unit) - last_end) / 2
    return first_bin - before, last_end + after


@dataclass(frozen=True)
class Tick:
    """A labelled tick: its time, label, and where it sits (points from the axis' left end)."""

    at: dt.datetime
    label: str
    x: float
    width: float  # the label's estimated width in points

    @property
    def left(self) -> float:
        """Where the (centred) label starts."""
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        """Where the (centred) label ends."""
        return self.x + self.width / 2


def label_width(label: str, font_size: float) -> float:
    """A label's width in points, estimated from above (``LABEL_EM`` per character)."""
    return len(label) * LABEL_EM * font_size


def _aligned(at: dt.datetime, unit: str, step: int) -> bool:
    if unit == "hour":
        return at.hour % step == 0
    if unit in ("day", "week"):
        days = step * (7 if unit == "week" else 1)
        return (at.toordinal() - 1) % days == 0  # day 1 (0001-01-01) was a Monday
    if unit == "month":
        return (at.month - 1) % step == 0
    return at.year % step == 0


def _candidates(start: dt.datetime, end: dt.datetime, unit: str, step: int) -> list[dt.datetime]:
    at = floor(start, unit)
    if at < start:
        at = advance(at, unit)
    while not _aligned(at, unit, step):
        at = advance(at, unit)
    times = []
    while at <= end:
        times.append(at)
        at = advance(at, unit, step)
    return times


def time_ticks(
    start: dt.datetime, end: dt.datetime, width: float, font_size: float = 9.0, max_ticks: int = 10
) -> list[Tick]:
    """Tick labels for an axis ``width`` points wide from ``start`` to ``end``, chosen for the span.

    The finest step of the ladder (hours, days, weeks, months, years) that gives from two to
    ``max_ticks`` ticks whose labels lie within the axis and leave ``GAP_EM`` between neighbours.
    When none does (a narrow axis), one tick with its full label, nearest the middle, of the
    coarsest step that has one fitting inside; none when no label fits at all.
    """
    if not end > start or width <= 0:
        return []
    span = end - start
    gap = GAP_EM * font_size
    fallback: list[Tick] = []
    for unit, step, (full, short, context) in _LADDER:
        if span / (_NOMINAL[unit] * step) > 4 * max_ticks + 2:
            continue  # too dense to fit: do not even list them
        ticks: list[Tick] = []
        for at in _candidates(start, end, unit, step):
            new_context = not ticks or at.strftime(context) != ticks[-1].at.strftime(context)
            label = at.strftime(full if new_context else short)
            tick = Tick(at, label, (at - start) / span * width, label_width(label, font_size))
            if tick.left >= 0 and tick.right <= width:
                ticks.append(tick)
        if not ticks:
            continue
        spaced = all(after.left - before.right >= gap for before, after in zip(ticks, ticks[1:], strict=False))
        if spaced and 2 <= len(ticks) <= max_ticks:
            return ticks
        middle = min(ticks, key=lambda tick: abs(tick.x - width / 2))  # the coarsest step's wins
        alone = Tick(middle.at, middle.at.strftime(full), middle.x, label_width(middle.at.strftime(full), font_size))
        if alone.left >= 0 and alone.right <= width:  # alone, it says the full time
            fallback = [alone]
    return fallback
