"""``wirestream report`` over a lake the real pipeline wrote, read back in headless Chromium."""

from __future__ import annotations

import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.query import query
from pipelines.report import NOT_NAMED, write_report
from tests.integration.helpers import chromium, dump_dom, wirestream

pytestmark = pytest.mark.integration

SECTIONS = [
    "Overview",
    "Articles per hour",
    "Top entities",
    "Duplicates",
    "Quarantine reasons",
    "Dead-letter reasons",
    "Language mix",
    "End-to-end latency",
    "Quality results over time",
]


@pytest.fixture(scope="module")
def report(event_time_lake) -> Path:
    lake = event_time_lake["lake"]
    result = wirestream("report", str(lake))
    path = lake / "_report" / "index.html"
    assert result.stdout.strip() == f"report: {path}"
    return path


@pytest.fixture(scope="module")
def dom(report: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH (make chromium installs Debian's)")
    return dump_dom(browser, report, tmp_path_factory.mktemp("profile"))


def _section(dom: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', dom, re.S)
    assert match, key
    return match.group(1)


def _row(*cells: object) -> str:
    return "".join(
        f'<td class="number">{c}</td>' if isinstance(c, int) else f"<td>{html.escape(str(c), quote=False)}</td>"
        for c in cells
    )


def test_every_section_is_there_with_a_chart_where_the_lake_has_data(dom: str) -> None:
    assert re.findall(r"<h2>(.*?)</h2>", dom) == SECTIONS
    for key in (
        "articles-per-hour",
        "top-entities",
        "duplicates",
        "quarantine",
        "dead-letters",
        "languages",
        "latency",
        "quality",
    ):
        section = _section(dom, key)
        charts = re.findall(r"<svg\b.*?</svg>", section, re.S)
        assert charts, key
        assert all("<path" in chart for chart in charts), key  # bars are drawn, not just an empty frame
        assert 'class="no-data"' not in section, key


def test_top_entities_are_the_lakes_with_their_counts(dom: str, event_time_lake) -> None:
    _, top = query(
        str(event_time_lake["lake"]),
        f"SELECT text, label, count(*) FROM entities WHERE label NOT IN {NOT_NAMED}"
        " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 3",
    )
    assert top[0][:2] == ("North Korean", "NORP")  # the seed article's most mentioned entity
    section = _section(dom, "top-entities")
    for text, label, count in top:
        assert _row(text, label, count) in section
        assert f"{text} ({label})" in section  # the chart's tick label, kept as SVG text
    _, keyed = query(
        str(event_time_lake["lake"]),
        "SELECT count(DISTINCT article_id), count(*) FROM entities WHERE key = 'lloyd austin' AND label = 'PERSON'",
    )
    assert _row("Lloyd Austin", "PERSON", *keyed[0]) in section  # "Austin" and "Lloyd Austin" counted together
    assert not any(f"<td>{label}</td>" in section for label in NOT_NAMED)  # no "two (CARDINAL)"


def test_dead_letters_quarantine_duplicates_and_quality_match_the_lake(dom: str, event_time_lake) -> None:
    lake = str(event_time_lake["lake"])
    _, reasons = query(lake, "SELECT stage, reason, count(*) FROM dead_letters GROUP BY 1, 2")
    assert {(stage, reason) for stage, reason, _ in reasons} == {("parse", "not_json"), ("parse", "missing_body")}
    for stage, reason, count in reasons:
        assert _row(stage, reason, count) in _section(dom, "dead-letters")
    quarantine = _section(dom, "quarantine")
    assert _row("url_not_null", 1) in quarantine and "language_allowed" not in quarantine
    duplicates = _section(dom, "duplicates")
    assert "<td>demo-harbour-1</td>" in duplicates or "<td>demo-harbour-2</td>" in duplicates
    assert _row(1, 8, "12.5%", 0, 1) in duplicates  # 6 kept + 1 quarantined + 1 near copy
    assert f"<td>{event_time_lake['run']}</td>" in _section(dom, "quality")
    assert _row("fr", 1, 0) in _section(dom, "languages")  # every language is kept
    _, latency = query(
        lake,
        "SELECT count(*), round(max(epoch_ms(committed_at) - epoch_ms(event_time)) / 1000, 2)"
        f" FROM read_parquet('{lake}/_records/*/*/*.parquet', hive_partitioning = false)",
    )
    assert f'<td class="number">{latency[0][0]}</td>' in _section(dom, "latency")
    assert f"{latency[0][1]}</td>" in _section(dom, "latency")


def _tick_labels(figure: str) -> list[str]:
    return re.findall(r'<g id="[^"]*-xtick_\d+">.*?<text\b[^>]*>([^<]*)</text>', figure, re.S)


def test_charts_over_time_have_a_time_axis_and_say_what_a_bar_is(dom: str, event_time_lake) -> None:
    hours, days = re.findall(r'<figure class="chart">(.*?)</figure>', _section(dom, "articles-per-hour"), re.S)
    assert "<figcaption>One bar per hour on a time axis" in hours  # the run took minutes, not days
    assert "<figcaption>One bar per day on a time axis" in days
    hour_labels = _tick_labels(hours)
    assert hour_labels and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00", hour_labels[0]), hour_labels
    assert all(re.fullmatch(r"(\d{4}-\d\d-\d\d )?\d\d:00", label) for label in hour_labels), hour_labels
    _, span = query(
        str(event_time_lake["lake"]),
        "SELECT min(published_at AT TIME ZONE 'UTC')::DATE, max(published_at AT TIME ZONE 'UTC')::DATE FROM articles",
    )
    first, last = span[0]
    assert (first.isoformat(), last.isoformat()) == ("2026-11-21", "2026-11-24")  # the demo articles' days
    # a tick at each midnight from the first bar's start to the last bar's end; only the first says the year
    assert _tick_labels(days) == ["2026-11-21", "11-22", "11-23", "11-24", "11-25"]
    latency = _section(dom, "latency")
    assert "The p50 bar is drawn over the p95 bar, not stacked on it." in latency
    assert "<figcaption>One bar per hour on a time axis" in _section(dom, "quality")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.references += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href", "srcset")]


def test_the_page_fetches_nothing(report: Path) -> None:
    page = report.read_text("utf-8")
    links = _Links()
    links.feed(page)
    assert not links.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert links.references and all(ref.startswith("#") for ref in links.references), links.references
    assert "@import" not in page and not re.search(r"url\((?!#)", page)


def test_a_partial_or_empty_lake_gets_no_data_sections_not_empty_charts(event_time_lake, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    for table in ("articles", "entities"):
        shutil.copytree(event_time_lake["lake"] / table, partial / table)
    out = tmp_path / "partial.html"
    assert write_report(str(partial), str(out)) == str(out)
    page = out.read_text("utf-8")
    for key, table in (("duplicates", "duplicates"), ("quarantine", "quarantine"), ("dead-letters", "dead_letters")):
        section = _section(page, key)
        assert f"No data: the lake has no <code>{table}</code> table yet" in section
        assert "<svg" not in section
    assert "No data: the lake has no quality results" in _section(page, "quality")
    assert "No data: the lake has no record log" in _section(page, "latency")
    assert "<svg" in _section(page, "top-entities") and "<svg" in _section(page, "articles-per-hour")
    empty = tmp_path / "empty"
    empty.mkdir()
    page = Path(write_report(str(empty))).read_text("utf-8")
    assert page.count("No data") == len(SECTIONS) and "<svg" not in page
