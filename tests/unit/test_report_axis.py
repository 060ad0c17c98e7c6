"""The report's time axis: calendar bins as DuckDB cuts them, ticks chosen for the span, never overlapping."""

from __future__ import annotations

import datetime as dt
import random
import re

import duckdb
import pytest

from pipelines.report import TimeChart, render_time_chart
from pipelines.report_axis import (
    GAP_EM,
    UNITS,
    Tick,
    advance,
    axis_limits,
    bin_count,
    bin_unit,
    floor,
    label_width,
    time_ticks,
)

WIDTH = 560.0  # points: about the plot area of the report's 9-inch time charts
FONT = 9.0
MAX_TICKS = 10


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def assert_readable(ticks: list[Tick], width: float = WIDTH, font_size: float = FONT) -> None:
    """Inside the axis, in time order, placed by time, no two labels closer than their widths and a gap."""
    assert 2 <= len(ticks) <= MAX_TICKS, [tick.label for tick in ticks]
    assert all(tick.left >= 0 and tick.right <= width for tick in ticks)
    assert all(tick.width == label_width(tick.label, font_size) for tick in ticks)
    for before, after in zip(ticks, ticks[1:], strict=False):
        assert before.at < after.at
        assert after.left - before.right >= GAP_EM * font_size, (before.label, after.label)


def test_floor_and_advance_cut_bins_where_duckdb_date_trunc_does() -> None:
    moments = [at("2026-11-22 13:45:12"), at("2024-02-29 00:00:00"), at("2019-12-31 23:59:59"), at("2000-01-03")]
    connection = duckdb.connect()
    for unit in UNITS:
        for moment in moments:
            (truncated,) = connection.execute(f"SELECT date_trunc('{unit}', ?::TIMESTAMP)", [moment]).fetchone() or ()
            assert floor(moment, unit) == truncated, (unit, moment)
            following = advance(floor(moment, unit), unit)
            assert following > moment and floor(following, unit) == following


def test_months_and_years_advance_by_the_calendar() -> None:
    assert advance(at("2026-11-01"), "month", 3) == at("2027-02-01")
    assert advance(at("2026-12-01"), "quarter") == at("2027-03-01")
    assert advance(at("2019-01-01"), "year", 7) == at("2026-01-01")
    assert advance(at("2020-01-01"), "decade") == at("2030-01-01")


@pytest.mark.parametrize(
    ("first", "last", "finest", "unit", "bins"),
    [
        ("2026-11-22 08:10", "2026-11-24 07:50", "hour", "hour", 48),  # two days of hours fit
        ("2026-11-22 08:10", "2026-12-20 07:50", "hour", "day", 29),  # four weeks of hours do not
        ("2026-01-01", "2026-03-31", "day", "day", 90),  # three months of days fit
        ("2020-03-04", "2026-03-18", "day", "month", 73),  # six years: weeks are too many, months fit
        ("2019-03-04", "2026-03-18", "day", "month", 85),  # a gap of years counts as its whole length
        ("1900-01-01", "2026-11-22", "day", "decade", 13),  # more years than bars
    ],
)
def test_the_bin_unit_is_the_finest_with_few_enough_bars(first: str, last: str, finest: str, unit: str, bins: int):
    assert bin_unit(at(first), at(last), finest, max_bins=120) == unit
    assert bin_count(at(first), at(last), unit) == bins


def test_a_single_bin_still_gets_an_axis_with_room_around_it() -> None:
    start, end = axis_limits(at("2026-11-22 10:00"), at("2026-11-22 10:00"), "hour")
    assert (start, end) == (at("2026-11-22 09:30"), at("2026-11-22 11:30"))
    assert [tick.label for tick in time_ticks(start, end, WIDTH)] == ["2026-11-22 10:00", "11:00"]


def test_two_days_are_ticked_in_hours_of_the_day() -> None:
    start, end = axis_limits(at("2026-11-22 00:00"), at("2026-11-23 23:00"), "hour")
    ticks = time_ticks(start, end, WIDTH)
    assert_readable(ticks)
    # each label says only what its left neighbour's does not; the ends' labels would stick out of the axis
    assert [tick.label for tick in ticks] == ["2026-11-22 12:00", "2026-11-23 00:00", "12:00"]
    assert [tick.at.hour for tick in ticks] == [12, 0, 12]


def test_three_months_are_ticked_in_weeks_and_a_narrow_axis_in_months() -> None:
    start, end = axis_limits(at("2026-01-01"), at("2026-03-31"), "day")
    ticks = time_ticks(start, end, WIDTH)
    assert_readable(ticks)
    assert {tick.at.weekday() for tick in ticks} == {0}  # Mondays, a fixed number of days apart
    assert len({after.at - before.at for before, after in zip(ticks, ticks[1:], strict=False)}) == 1
    assert ticks[0].label == f"{ticks[0].at:%Y-%m-%d}" and all(tick.label == f"{tick.at:%m-%d}" for tick in ticks[1:])
    narrow = time_ticks(start, end, 200)
    assert_readable(narrow, width=200)
    assert [tick.label for tick in narrow] == ["2026-02", "2026-03"]


def test_six_years_are_ticked_in_years_placed_by_time() -> None:
    start, end = axis_limits(at("2020-03-01"), at("2026-03-01"), "month")
    ticks = time_ticks(start, end, WIDTH)
    assert_readable(ticks)
    assert [tick.label for tick in ticks] == ["2021", "2022", "2023", "2024", "2025", "2026"]
    spacing = [after.x - before.x for before, after in zip(ticks, ticks[1:], strict=False)]
    assert max(spacing) - min(spacing) < WIDTH * 1 / 365  # a leap year is a day longer, nothing else differs


def test_a_multi_year_gap_takes_the_room_of_its_years() -> None:
    """Bars in March 2019 and from September 2025: the gap between is six and a half years of axis."""
    start, end = axis_limits(at("2019-03-01"), at("2026-03-01"), "month")
    ticks = time_ticks(start, end, WIDTH)
    assert_readable(ticks)
    assert [tick.label for tick in ticks] == [str(year) for year in range(2020, 2027)]
    year = ticks[1].x - ticks[0].x
    assert ticks[-1].x - ticks[0].x == pytest.approx(6 * year, rel=0.002)


def test_ticks_are_readable_for_any_span_and_width() -> None:
    """An invariant over random spans (an hour to a century) and axis widths (300 to 900 points)."""
    rng = random.Random(17)
    for _ in range(1000):
        first = dt.datetime(1900, 1, 1) + dt.timedelta(hours=rng.randrange(0, 126 * 365 * 24))
        last = first + dt.timedelta(hours=rng.choice([1, 5, 30, 200, 2000, 20000, 200000]) * rng.random())
        last = min(last, dt.datetime(2026, 12, 31))
        unit = bin_unit(first, last, "hour")
        start, end = axis_limits(floor(first, unit), floor(last, unit), unit)
        width = rng.uniform(300, 900)
        ticks = time_ticks(start, end, width, max_ticks=MAX_TICKS)
        assert ticks, (first, last, width)
        if len(ticks) >= 2:
            assert_readable(ticks, width=width)
        assert all(start <= tick.at <= end for tick in ticks)


def _text_x(svg: str, group: str) -> list[tuple[str, float]]:
    """(label, x) of each tick text in ``svg`` whose group id ends in ``group``."""
    found = re.findall(rf'<g id="[^"]*-{group}_\d+">.*?<text [^>]*? x="([\d.]+)"[^>]*>([^<]*)</text>', svg, re.S)
    return [(label, float(x)) for x, label in found]


def test_the_rendered_chart_draws_those_ticks_and_bars_by_time() -> None:
    """The SVG's labels are the computed ones, far enough apart; bars sit where their months are."""
    months = [at("2019-03-01"), at("2019-05-01"), *(advance(at("2025-09-01"), "month", n) for n in range(7))]
    chart = TimeChart("Articles per month", "month", months, {"articles": [3, 1, 5, 2, 8, 4, 4, 6, 1]})
    svg = render_time_chart(chart, "gap")
    labels = _text_x(svg, "xtick")
    assert [label for label, _ in labels] == [str(year) for year in range(2020, 2027)]
    for (left, x_left), (right, x_right) in zip(labels, labels[1:], strict=False):
        assert x_right - x_left >= (label_width(left, FONT) + label_width(right, FONT)) / 2 + GAP_EM * FONT
    per_day = (labels[-1][1] - labels[0][1]) / (at("2026-01-01") - at("2020-01-01")).days
    bars = re.findall(r'<g id="gap-patch_\d+">\s*<path d="M ([\d.]+) [^"]*"[^>]*fill: #1f77b4', svg)
    bar_lefts = [float(x) for x in bars]
    assert len(bar_lefts) == len(months)
    for month, x in zip(months, bar_lefts, strict=True):
        bar_start = month + 0.075 * (advance(month, "month") - month)
        assert x == pytest.approx(labels[0][1] + (bar_start - at("2020-01-01")).days * per_day, abs=1.0)


def test_a_lone_tick_on_a_narrow_axis_has_its_full_label() -> None:
    start, end = axis_limits(at("2026-11-22 10:00"), at("2026-11-23 10:00"), "hour")
    ticks = time_ticks(start, end, 160)
    assert len(ticks) == 1 and ticks[0].label in (f"{ticks[0].at:%Y-%m-%d %H:00}", f"{ticks[0].at:%Y-%m-%d}")
    assert ticks[0].left >= 0 and ticks[0].right <= 160
