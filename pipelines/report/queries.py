"""The query helpers every section builder shares: rows, time spans, bar captions, "no data" notes.

A table the lake does not have yet (no dead letter ever written, say) gives its section a "no
data" note (``_missing``) instead of a chart; nothing is drawn from no rows. A chart over time
has a real time axis (``pipelines.report_axis``): a span with too many hours or days for readable
bars is counted per coarser bin, and the chart's caption (``_bars_caption``) says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from pipelines.report.model import Section
from pipelines.report_axis import bin_count


def _missing(table: str) -> str:
    return f"No data: the lake has no `{table}` table yet (no file was ever written to it)."


def _rows(connection: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return connection.execute(sql, list(parameters)).fetchall()


def _table_rows(
    connection: duckdb.DuckDBPyConnection, present: set[str], section: Section, table: str, sql: str
) -> list[tuple[Any, ...]] | None:
    """``sql``'s rows over ``table``, or None when there are none.

    None comes with the section's "no data" note: the lake lacks the table, or the query found no rows.
    """
    if table not in present:
        section.no_data = _missing(table)
        return None
    rows = _rows(connection, sql)
    if not rows:
        section.no_data = f"No data: the `{table}` table has no rows."
        return None
    return rows


def _span(
    connection: duckdb.DuckDBPyConnection, moment: str, source: str, parameters: Sequence[Any] = ()
) -> tuple[dt.datetime, dt.datetime] | None:
    """The first and last ``moment`` (a naive UTC timestamp expression) in ``source``; None when it has none."""
    first, last = _rows(connection, f"SELECT min({moment}), max({moment}) FROM {source}", parameters)[0]
    return None if first is None else (first, last)


def _bars_caption(unit: str, finest: str, span: tuple[dt.datetime, dt.datetime], times: str, none: str) -> str:
    """What one bar of a time chart is, and why when it is coarser than ``finest``.

    ``times`` names the moments counted ("publication times"), ``none`` says what a gap means
    ("no article was published").
    """
    first, last = span
    text = f"One bar per {unit}" + (" (weeks start on Monday)" if unit == "week" else "")
    text += f" on a time axis: a gap between bars is time in which {none}."
    if unit != finest:
        text += (
            f" The {times}, {first:%Y-%m-%d} to {last:%Y-%m-%d}, span {bin_count(first, last, finest):,}"
            f" {finest}s, too many for readable bars, so they are counted per {unit}."
        )
    return text
