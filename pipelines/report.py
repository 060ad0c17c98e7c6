"""``wirestream report LAKE``: one self-contained HTML page of charts and tables about a lake.

Every figure is computed with DuckDB over the lake's views (``pipelines.query.connect``) and over
the quality summaries in ``LAKE/_quality/summaries/*.json``; charts are drawn with matplotlib and
inlined as SVG, text kept as text. The page has no script, no stylesheet, image or font from
elsewhere: it fetches nothing when it is opened, so it can be mailed or archived as one file.

A chart over time has a real time axis (``pipelines.report_axis``): bars sit where their hour, day
or month is, so a gap of years looks like years; a span with too many hours or days for readable
bars is counted per coarser bin, and the chart's caption says so.

A table the lake does not have yet (no dead letter ever written, say) or a lake without quality
results gives its section a "no data" note instead of a chart; nothing is drawn from no rows.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow.fs as pafs

from pipelines.report_axis import advance, axis_limits, bin_count, bin_unit, time_ticks
from schemas import arrow
from schemas.entity_keys import NOT_NAMED
from transforms.errors import UserError
from transforms.io.files import write_atomically
from transforms.io.lake import Lake, data_files

DEFAULT_REPORT = ("_report", "index.html")
TOP = 15  # bars in a ranked chart
MAX_BARS = 120  # bars on a time axis (about 4.5 pt each on a 9-inch chart); more bins are merged into coarser ones
TIME_CHART_SIZE = (9.0, 3.4)  # inches
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


def default_path(lake_uri: str) -> str:
    """Where ``wirestream report`` writes when no ``--out`` is given: ``LAKE/_report/index.html``."""
    lake = Lake(lake_uri)
    return lake.path(*DEFAULT_REPORT)


def tables_present(lake: Lake) -> set[str]:
    """The lake tables that hold at least one Parquet file."""
    present = set()
    for table in arrow.TABLES:
        if data_files(lake, table):
            present.add(table)
    return present


def _missing(table: str) -> str:
    return f"No data: the lake has no `{table}` table yet (no file was ever written to it)."


def _rows(connection: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return connection.execute(sql, list(parameters)).fetchall()


def overview(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Row counts per table and the span of partitions."""
    rows = []
    for table in arrow.TABLES:
        if table not in present:
            rows.append((table, 0, "—", "—", "absent"))
            continue
        count, first, last = _rows(connection, f"SELECT count(*), min(dt), max(dt) FROM {table}")[0]
        rows.append((table, count, str(first), str(last), "present"))
    section = Section("overview", "Overview", "Rows in each lake table and the partition days (`dt`) they span.")
    section.tables.append(("Tables", ["table", "rows", "first dt", "last dt", "state"], rows))
    if not present:
        section.no_data = "No data: the lake holds no table files at all."
    return section


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


def articles_over_time(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Articles per hour of ingestion time, and per day of publication when the lake has it."""
    section = Section(
        "articles-per-hour",
        "Articles per hour",
        "Kept articles (`articles`) by the hour they were ingested (`ingested_at`, UTC), the time the "
        "pipeline's default partitions come from; every article has it. Publication time "
        "(`published_at`) is optional in the input, so it is shown per day, for the articles that have it. "
        "Both charts have a time axis; a span too long for a bar per hour or day is counted per coarser bin.",
    )
    if "articles" not in present:
        section.no_data = _missing("articles")
        return section
    hours = _rows(
        connection,
        "SELECT strftime(date_trunc('hour', ingested_at AT TIME ZONE 'UTC'), '%Y-%m-%d %H:00'), count(*)"
        " FROM articles GROUP BY 1 ORDER BY 1",
    )
    ingested = _span(connection, "ingested_at AT TIME ZONE 'UTC'", "articles")
    if not hours or ingested is None:
        section.no_data = "No data: the `articles` table has no rows."
        return section
    unit = bin_unit(*ingested, finest="hour", max_bins=MAX_BARS)
    bins = _rows(
        connection,
        f"SELECT date_trunc('{unit}', ingested_at AT TIME ZONE 'UTC'), count(*) FROM articles GROUP BY 1 ORDER BY 1",
    )
    section.charts.append(
        TimeChart(
            f"Articles per {unit} of ingestion (UTC)",
            unit,
            [start for start, _ in bins],
            {"articles": [n for _, n in bins]},
            y_label="articles",
            x_label="ingested_at (UTC)",
            caption=_bars_caption(unit, "hour", ingested, "ingestion times", "no article was ingested"),
        )
    )
    section.tables.append(("Articles per ingestion hour", ["hour (UTC)", "articles"], hours))
    days = _rows(
        connection,
        "SELECT strftime(published_at AT TIME ZONE 'UTC', '%Y-%m-%d'), count(*) FROM articles"
        " WHERE published_at IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    undated = _rows(connection, "SELECT count(*) FROM articles WHERE published_at IS NULL")[0][0]
    published = _span(connection, "published_at AT TIME ZONE 'UTC'", "articles")
    if published is not None:
        unit = bin_unit(*published, finest="day", max_bins=MAX_BARS)
        bins = _rows(
            connection,
            f"SELECT date_trunc('{unit}', published_at AT TIME ZONE 'UTC'), count(*) FROM articles"
            " WHERE published_at IS NOT NULL GROUP BY 1 ORDER BY 1",
        )
        section.charts.append(
            TimeChart(
                f"Articles per {unit} of publication (UTC)",
                unit,
                [start for start, _ in bins],
                {"articles": [n for _, n in bins]},
                y_label="articles",
                x_label="published_at (UTC)",
                caption=_bars_caption(unit, "day", published, "publication times", "no article was published"),
            )
        )
    section.tables.append(
        ("Articles per publication day", ["day (UTC)", "articles"], [*days, ("no published_at", undated)])
    )
    return section


def top_named_entities(
    connection: duckdb.DuckDBPyConnection, relation: str, limit: int, by: str = "articles"
) -> list[tuple[Any, ...]]:
    """``(entity, label, articles, mentions)`` for the entities of ``relation`` named most.

    One row per ``key`` and label, so every spelling of an entity counts together ("US", "U.S.",
    "the United States"), shown by its most frequent canonical form (ties: the first in sort
    order). Numbers and times (:data:`schemas.entity_keys.NOT_NAMED`) are left out. Ordered by
    ``by`` (``articles`` or ``mentions``), then the other count, then entity and label.
    """
    if by not in ("articles", "mentions"):
        raise ValueError(f"by must be 'articles' or 'mentions', not {by!r}")
    then = "mentions" if by == "articles" else "articles"
    return _rows(
        connection,
        f"""
        WITH named AS (
            SELECT key, label, canonical, article_id FROM {relation} WHERE label NOT IN (SELECT unnest(?))
        ),
        shown AS (
            SELECT key, label, first(canonical ORDER BY forms DESC, canonical) AS entity
            FROM (SELECT key, label, canonical, count(*) AS forms FROM named GROUP BY ALL)
            GROUP BY ALL
        )
        SELECT shown.entity, named.label, count(DISTINCT named.article_id) AS articles, count(*) AS mentions
        FROM named JOIN shown USING (key, label)
        GROUP BY named.key, named.label, shown.entity
        ORDER BY {by} DESC, {then} DESC, shown.entity, named.label
        LIMIT ?
        """,
        [list(NOT_NAMED), limit],
    )


def top_entities(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """The most mentioned entities as written, and the entities (all spellings together) in most articles."""
    section = Section(
        "top-entities",
        "Top entities",
        "Entity mentions as the text says them (`entities.text`, with spaCy's label), and entities by the "
        "number of distinct articles that name them: every spelling of one entity counted together "
        '(`key`: "US", "U.S." and "the United States" are one), each shown by its most frequent '
        "canonical form (the article's fullest name, e.g. Austin → Lloyd Austin). Numbers and times "
        "(spaCy's " + ", ".join(NOT_NAMED) + ") are left out: they would top every list without naming anything.",
    )
    if "entities" not in present:
        section.no_data = _missing("entities")
        return section
    mentions = _rows(
        connection,
        "SELECT text, label, count(*) AS mentions FROM entities WHERE label NOT IN (SELECT unnest(?))"
        " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT ?",
        [list(NOT_NAMED), TOP],
    )
    named = top_named_entities(connection, "entities", TOP)
    if not mentions:
        section.no_data = "No data: the `entities` table has no named entities."
        return section
    section.charts.append(
        Chart(
            f"Top {len(mentions)} entities by mentions",
            [f"{text} ({label})" for text, label, _ in mentions],
            {"mentions": [n for *_, n in mentions]},
            x_label="mentions",
        )
    )
    section.charts.append(
        Chart(
            f"Top {len(named)} entities by articles",
            [f"{text} ({label})" for text, label, *_ in named],
            {"articles": [row[2] for row in named]},
            x_label="articles",
        )
    )
    section.tables.append(("Top entities (mentions)", ["entity", "label", "mentions"], mentions))
    section.tables.append(("Top entities (all spellings)", ["entity", "label", "articles", "mentions"], named))
    return section


def resolve_clusters(links: Sequence[tuple[str, str]], kept: set[str]) -> dict[str, str]:
    """Duplicate id → the id its chain of ``duplicate_of`` ends at (a kept article when the lake has it).

    A copy may name an earlier copy rather than the kept article (see docs/dedup.md), so
    the chain is followed through ``duplicates``; a loop (an id re-sent as its own copy) stops it.
    """
    parent: dict[str, str] = {}
    for article_id, duplicate_of in links:
        parent.setdefault(article_id, duplicate_of)
    roots = {}
    for article_id in parent:
        node, seen = parent[article_id], {article_id}
        while node not in kept and node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        roots[article_id] = node
    return roots


def duplicates(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Share of parsed records that were copies, and the largest clusters of one story."""
    section = Section(
        "duplicates",
        "Duplicates",
        "Duplicate rate: rows of `duplicates` over all records that became an article "
        "(`articles` + `quarantine` + `duplicates`). A cluster is a kept article and every copy "
        "whose `duplicate_of` chain leads to it; its size counts the kept article too.",
    )
    if "duplicates" not in present:
        section.no_data = _missing("duplicates")
        return section
    copies = _rows(connection, "SELECT article_id, duplicate_of, method, source FROM duplicates")
    if not copies:
        section.no_data = "No data: the `duplicates` table has no rows."
        return section
    kept_rows = _rows(connection, "SELECT article_id, title, source FROM articles")
    kept = {article_id: (title, source) for article_id, title, source in kept_rows}
    quarantined = _rows(connection, "SELECT count(*) FROM quarantine")[0][0]
    total = len(kept_rows) + quarantined + len(copies)
    methods = Counter(method for _, _, method, _ in copies)
    section.tables.append(
        (
            "Duplicate rate",
            ["duplicates", "records that became articles", "rate", "exact", "near"],
            [(len(copies), total, f"{len(copies) / total:.1%}", methods.get("exact", 0), methods.get("near", 0))],
        )
    )
    roots = resolve_clusters([(a, b) for a, b, _, _ in copies], set(kept))
    members: dict[str, list[str | None]] = {}
    for article_id, _, _, source in copies:
        members.setdefault(roots[article_id], []).append(source)
    largest = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP]
    rows = []
    for root, sources in largest:
        title, source = kept.get(root, (None, None))
        outlets = {s for s in [source, *sources] if s}
        rows.append((root, title or "(not in articles)", 1 + len(sources), len(outlets)))
    section.charts.append(
        Chart(
            f"Largest {len(rows)} duplicate clusters",
            [_shorten(f"{title} [{root}]") for root, title, _, _ in rows],
            {"articles in cluster": [size for *_, size, _ in rows]},
            x_label="articles in cluster",
        )
    )
    section.tables.append(("Largest clusters", ["kept article", "title", "cluster size", "outlets"], rows))
    return section


def quarantine_reasons(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Which expectations quarantined articles broke."""
    section = Section(
        "quarantine",
        "Quarantine reasons",
        "Articles that broke an expectation, counted per expectation name in `failed_expectations` "
        "(an article that broke two counts under both).",
    )
    if "quarantine" not in present:
        section.no_data = _missing("quarantine")
        return section
    rows = _rows(
        connection,
        "SELECT reason, count(*) FROM (SELECT unnest(failed_expectations) AS reason FROM quarantine)"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    if not rows:
        section.no_data = "No data: the `quarantine` table has no rows."
        return section
    section.charts.append(
        Chart("Quarantined articles by expectation", [r for r, _ in rows], {"articles": [n for _, n in rows]})
    )
    section.tables.append(("Quarantine reasons", ["expectation", "articles"], rows))
    return section


def dead_letter_reasons(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Rejected records by stage and reason."""
    section = Section(
        "dead-letters",
        "Dead-letter reasons",
        "Records that could not become an article, by the stage that rejected them and its reason.",
    )
    if "dead_letters" not in present:
        section.no_data = _missing("dead_letters")
        return section
    rows = _rows(connection, "SELECT stage, reason, count(*) FROM dead_letters GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
    if not rows:
        section.no_data = "No data: the `dead_letters` table has no rows."
        return section
    section.charts.append(
        Chart(
            "Dead letters by stage/reason",
            [f"{stage}/{reason}" for stage, reason, _ in rows],
            {"records": [n for *_, n in rows]},
        )
    )
    section.tables.append(("Dead-letter reasons", ["stage", "reason", "records"], rows))
    return section


def language_mix(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Languages of kept and quarantined articles."""
    section = Section(
        "languages",
        "Language mix",
        "Languages (ISO 639-1, given or detected) of kept articles and of quarantined ones.",
    )
    if not present & {"articles", "quarantine"}:
        section.no_data = _missing("articles")
        return section
    rows = _rows(
        connection,
        "SELECT coalesce(language, 'und') AS language, count(*) FILTER (WHERE kept), count(*) FILTER (WHERE NOT kept)"
        " FROM (SELECT language, true AS kept FROM articles UNION ALL SELECT language, false FROM quarantine)"
        " GROUP BY 1 ORDER BY count(*) DESC, 1",
    )
    if not rows:
        section.no_data = "No data: neither `articles` nor `quarantine` has rows."
        return section
    section.charts.append(
        Chart(
            "Articles by language",
            [language for language, *_ in rows],
            {"kept": [row[1] for row in rows], "quarantined": [row[2] for row in rows]},
        )
    )
    section.tables.append(("Languages", ["language", "kept", "quarantined"], rows))
    return section


def quality_over_time(connection: duckdb.DuckDBPyConnection, lake: Lake) -> Section:
    """Validated batches per hour by status, from the stored quality summaries."""
    section = Section(
        "quality",
        "Quality results over time",
        "Batches validated by Great Expectations per hour (`validated_at`, UTC), by status: `passed`, "
        "`rows_quarantined`, `batch_failed` (a batch-level expectation failed) or `error`; read from "
        "`_quality/summaries/*.json`. Details per batch: `_quality/docs/index.html`.",
    )
    summaries = lake.path("_quality", "summaries")
    if not any(info.base_name.endswith(".json") for info in lake.list(summaries)):
        section.no_data = "No data: the lake has no quality results (`_quality/summaries/` is empty or absent)."
        return section
    pattern = f"{summaries}/*.json".replace("'", "''")
    connection.execute(
        "CREATE OR REPLACE TEMP VIEW quality AS SELECT run, status, counts,"
        " CAST(validated_at AS TIMESTAMPTZ) AS validated_at, failed_batch_expectations"
        f" FROM read_json('{pattern}', union_by_name = true)"
    )
    validated = _span(connection, "validated_at AT TIME ZONE 'UTC'", "quality")
    if validated is not None:
        unit = bin_unit(*validated, finest="hour", max_bins=MAX_BARS)
        by_bin = _rows(
            connection,
            f"SELECT date_trunc('{unit}', validated_at AT TIME ZONE 'UTC'), status, count(*)"
            " FROM quality WHERE validated_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
        )
        starts = sorted({start for start, _, _ in by_bin})
        statuses = [s for s in COLOURS if any(status == s for _, status, _ in by_bin)]
        statuses += sorted({status for _, status, _ in by_bin} - set(statuses))
        counts = {(start, status): n for start, status, n in by_bin}
        section.charts.append(
            TimeChart(
                f"Validated batches per {unit} by status",
                unit,
                starts,
                {status: [counts.get((start, status), 0) for start in starts] for status in statuses},
                y_label="batches",
                x_label="validated_at (UTC)",
                caption=_bars_caption(unit, "hour", validated, "validation times", "no batch was validated"),
                legend=True,
            )
        )
    runs = _rows(
        connection,
        "SELECT run, min(validated_at), count(*), count(*) FILTER (WHERE status = 'passed'),"
        " count(*) FILTER (WHERE status = 'rows_quarantined'), count(*) FILTER (WHERE status = 'batch_failed'),"
        " count(*) FILTER (WHERE status = 'error'), sum(counts.articles_validated), sum(counts.quarantined)"
        " FROM quality GROUP BY 1 ORDER BY 2, 1",
    )
    section.tables.append(
        (
            "Runs",
            [
                "run",
                "first batch validated",
                "batches",
                "passed",
                "rows_quarantined",
                "batch_failed",
                "error",
                "articles validated",
                "quarantined",
            ],
            [(run, _time(first), *rest) for run, first, *rest in runs],
        )
    )
    failed = _rows(
        connection,
        "SELECT name, count(*) FROM (SELECT unnest(failed_batch_expectations) AS name FROM quality)"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    if failed:
        section.tables.append(("Failed batch-level expectations", ["expectation", "batches"], failed))
    return section


def latency(connection: duckdb.DuckDBPyConnection, lake: Lake) -> Section:
    """End-to-end latency per hour of commit, from the record log."""
    section = Section(
        "latency",
        "End-to-end latency",
        "Time from each record's Kafka timestamp (its event time) to the commit of its batch in the "
        "lake, per hour of commit (UTC), from the pipeline's record log (`_records/`). A backlog read "
        "long after it was produced shows here as high latency, as it should.",
    )
    files = data_files(lake, arrow.RECORD_LOG_TABLE)
    if not files:
        section.no_data = "No data: the lake has no record log (`_records/`) yet."
        return section
    source = f"'{lake.uri.rstrip('/')}/{arrow.RECORD_LOG_TABLE}/*/*/*.parquet'" if "://" in lake.uri else "?"
    parameters = [] if "://" in lake.uri else [files]
    records = (
        "(SELECT committed_at AT TIME ZONE 'UTC' AS committed, epoch_ms(committed_at) - epoch_ms(event_time) AS ms"
        f" FROM read_parquet({source}, hive_partitioning = false) WHERE event_time IS NOT NULL)"
    )
    rows = _rows(
        connection,
        "SELECT strftime(date_trunc('hour', committed), '%Y-%m-%d %H:00') AS hour,"
        " count(*), round(quantile_cont(ms, 0.5) / 1000, 2), round(quantile_cont(ms, 0.95) / 1000, 2),"
        f" round(max(ms) / 1000, 2) FROM {records} GROUP BY 1 ORDER BY 1",
        parameters,
    )
    committed = _span(connection, "committed", records, parameters)
    if not rows or committed is None:
        section.no_data = "No data: no committed record has a known event time."
        return section
    unit = bin_unit(*committed, finest="hour", max_bins=MAX_BARS)
    bins = _rows(
        connection,
        f"SELECT date_trunc('{unit}', committed), round(quantile_cont(ms, 0.95) / 1000, 2),"
        f" round(quantile_cont(ms, 0.5) / 1000, 2) FROM {records} GROUP BY 1 ORDER BY 1",
        parameters,
    )
    section.charts.append(
        TimeChart(
            f"Latency per {unit} of commit (s)",
            unit,
            [start for start, _, _ in bins],
            {"p95": [p95 for _, p95, _ in bins], "p50": [p50 for _, _, p50 in bins]},
            y_label="seconds",
            x_label="committed_at (UTC)",
            caption=_bars_caption(unit, "hour", committed, "commit times", "no record was committed")
            + " The p50 bar is drawn over the p95 bar, not stacked on it.",
            legend=True,
            overlay=True,
        )
    )
    section.tables.append(("Latency per hour of commit", ["hour (UTC)", "records", "p50 s", "p95 s", "max s"], rows))
    return section


def build_sections(lake_uri: str) -> list[Section]:
    """Every section of the report, computed over the lake."""
    from pipelines.query import connect

    lake = Lake(lake_uri)
    present = tables_present(lake)
    connection = connect(lake_uri)
    try:
        return [
            overview(connection, present),
            articles_over_time(connection, present),
            top_entities(connection, present),
            duplicates(connection, present),
            quarantine_reasons(connection, present),
            dead_letter_reasons(connection, present),
            language_mix(connection, present),
            latency(connection, lake),
            quality_over_time(connection, lake),
        ]
    finally:
        connection.close()


# --- Rendering ----------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _svg_element(figure: Any, key: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text, element ids prefixed by ``key``."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: it is inline HTML now
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{key}-\1"', svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def render_chart(chart: Chart, key: str) -> str:
    """The chart as an inline ``<svg>`` element: text kept as text, element ids prefixed by ``key``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = len(chart.labels)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": 9}):
        if chart.horizontal:
            figure, axes = plt.subplots(figsize=(7.5, 0.8 + 0.28 * count))
        else:
            figure, axes = plt.subplots(figsize=(min(12, 4 + 0.35 * count), 3.4))
        try:
            positions = list(range(count))
            offsets = [0.0] * count
            for index, (name, values) in enumerate(chart.series.items()):
                colour = COLOURS.get(name, f"C{index}")
                if chart.horizontal:
                    axes.barh(positions, values, left=offsets, label=name, color=colour)
                else:
                    axes.bar(positions, values, bottom=offsets, label=name, color=colour)
                offsets = [o + v for o, v in zip(offsets, values, strict=True)]
            if chart.horizontal:
                axes.set_yticks(positions, [_shorten(str(label)) for label in chart.labels])
                axes.invert_yaxis()
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))
                axes.set_xlabel(chart.x_label)
            else:
                axes.set_xticks(positions, [str(label) for label in chart.labels], rotation=30, ha="right")
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
                axes.set_ylabel(chart.y_label)
            axes.set_title(chart.title)
            if len(chart.series) > 1 or chart.legend:
                axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, not over bars
            axes.spines[["top", "right"]].set_visible(False)
            figure.tight_layout()
            return _svg_element(figure, key, chart.title)
        finally:
            plt.close(figure)


def _days(at: dt.datetime) -> float:
    """A naive UTC time as days since 1970, the time axis' coordinate."""
    return (at - dt.datetime(1970, 1, 1)) / dt.timedelta(days=1)


def render_time_chart(chart: TimeChart, key: str, font_size: float = 9.0) -> str:
    """The chart as an inline ``<svg>``: bars where their bins are in time, ticks from ``time_ticks``.

    The tick labels are chosen for the axis' width as laid out, so they never overlap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    starts = [_days(start) for start in chart.starts]
    spans = [_days(advance(start, chart.unit)) - _days(start) for start in chart.starts]
    lefts = [start + 0.075 * span for start, span in zip(starts, spans, strict=True)]  # a gap between bins
    widths = [0.85 * span for span in spans]
    start, end = axis_limits(chart.starts[0], chart.starts[-1], chart.unit)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": font_size}):
        figure, axes = plt.subplots(figsize=TIME_CHART_SIZE)
        try:
            offsets = [0.0] * len(starts)
            for index, (name, values) in enumerate(chart.series.items()):
                bottom = [0.0] * len(starts) if chart.overlay else offsets
                colour = COLOURS.get(name, f"C{index}")
                axes.bar(lefts, values, widths, bottom, align="edge", label=name, color=colour)
                offsets = [o + v for o, v in zip(offsets, values, strict=True)]
            if all(float(value).is_integer() for series in chart.series.values() for value in series):
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_xlim(_days(start), _days(end))
            axes.set_xlabel(chart.x_label)
            axes.set_ylabel(chart.y_label)
            axes.set_title(chart.title)
            if len(chart.series) > 1 or chart.legend:
                axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, not over bars
            axes.spines[["top", "right"]].set_visible(False)
            axes.set_xticks([(starts[0] + starts[-1]) / 2], ["0"])  # holds the label row's height for the layout
            figure.tight_layout()
            width = axes.get_position().width * figure.get_figwidth() * 72  # in points, as the SVG draws it
            ticks = time_ticks(start, end, width, font_size)
            axes.set_xticks([_days(tick.at) for tick in ticks], [tick.label for tick in ticks])
            return _svg_element(figure, key, chart.title)
        finally:
            plt.close(figure)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
section { border-top: 1px solid #ccc; padding-top: 0.5em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.number { text-align: right; }
figure { margin: 0.5em 0; }
figcaption { font-size: 0.85em; color: #555; }
figure svg { max-width: 100%; height: auto; }
p.no-data { background: #f4f4f4; border-left: 4px solid #999; padding: 0.5em 1em; }
nav a { margin-right: 1em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escape, then show `backticked` names as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="number">{value}</td>'
    return f"<td>{html.escape('NULL' if value is None else str(value))}</td>"


def render_html(lake_uri: str, sections: Sequence[Section], generated_at: dt.datetime) -> str:
    """The whole page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wirestream report: {html.escape(lake_uri)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>wirestream lake report</h1>",
        f'<p>Lake <code class="lake">{html.escape(lake_uri)}</code>, generated '
        f"<time>{generated_at.strftime('%Y-%m-%d %H:%M:%S UTC')}</time>. "
        "Self-contained: no script, nothing fetched from elsewhere.</p>",
        "<nav>" + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections) + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>')
        if section.intro:
            parts.append(f"<p>{_inline(section.intro)}</p>")
        if section.no_data:
            parts.append(f'<p class="no-data">{_inline(section.no_data)}</p>')
        for index, chart in enumerate(section.charts):
            key = f"{section.key}-{index}"
            if isinstance(chart, TimeChart):
                svg = f"{render_time_chart(chart, key)}<figcaption>{_inline(chart.caption)}</figcaption>"
            else:
                svg = render_chart(chart, key)
            parts.append(f'<figure class="chart">{svg}</figure>')
        for caption, columns, rows in section.tables:
            parts.append(f'<table class="{section.key}"><caption>{html.escape(caption)}</caption><tr>')
            parts.append("".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
            parts.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(lake_uri: str, out: str | None = None) -> str:
    """Compute, render and write the report (atomically); its path."""
    lake = Lake(lake_uri)
    if lake.local and lake.fs.get_file_info(lake.root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no lake at {lake_uri}")
    page = render_html(lake_uri, build_sections(lake_uri), dt.datetime.now(dt.UTC))
    if out is None:
        path = default_path(lake_uri)
        try:
            lake.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            lake.write_atomically(path, page.encode("utf-8"))
        except OSError as error:
            raise UserError(
                f"cannot write the report to {path}: {error}; give --out FILE where you can write"
            ) from error
        return path
    from pathlib import Path

    target = Path(out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(pafs.LocalFileSystem(), str(target.resolve()), page.encode("utf-8"))
    except OSError as error:
        raise UserError(f"cannot write the report to {target}: {error}; give an --out where you can write") from error
    return str(target)
