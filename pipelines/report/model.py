"""What the report is made of: ``Section``, ``Chart`` and ``TimeChart``, and the constants they share.

The section builders (``articles``, ``outcomes``, ``runs``) fill these from DuckDB; ``render``
draws them. Plain data, no DuckDB and no matplotlib here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TOP = 15  # bars in a ranked chart
MAX_BARS = 120  # bars on a time axis (about 4.5 pt each on a 9-inch chart); more bins are merged into coarser ones
COLOURS = {"passed": "#4c9a2a", "rows_quarantined": "#e0a100", "batch_failed": "#c0392b", "error": "#6c3483"}


@dataclass(frozen=True)
class Chart:
    """A bar chart: labels and one or more named series of the same length."""

    title: str
    labels: Sequence[str]
    series: dict[str, Sequence[float]]
    horizontal: bool = True
    x_label: str = ""
    y_label: str = ""
    legend: bool = False  # also for a single series, when its name says what the colour means


@dataclass(frozen=True)
class TimeChart:
    """Bars on a real time axis: one per ``unit`` bin, starting at ``starts`` (naive, UTC), placed by time."""

    title: str
    unit: str  # a ``pipelines.report_axis.UNITS`` unit
    starts: Sequence[dt.datetime]
    series: dict[str, Sequence[float]]
    y_label: str = ""
    x_label: str = ""
    caption: str = ""  # shown under the chart: what one bar is
    legend: bool = False
    overlay: bool = False  # each series drawn over the ones before it (give the largest first), not stacked


@dataclass
class Section:
    """One part of the report: a heading, a sentence, charts and tables, or why there is no data."""

    key: str
    title: str
    intro: str = ""
    charts: list[Chart | TimeChart] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[tuple[Any, ...]]]] = field(default_factory=list)
    no_data: str | None = None


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)
