"""Sections about what the lake holds: the overview, articles over time and the top entities.

Each builder runs DuckDB over the lake's views (``pipelines.query.connect``) and returns a
``Section``; ``top_named_entities`` is also the end-of-run summary's query (``pipelines.summary``).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.report.model import MAX_BARS, TOP, Chart, Section, TimeChart
from pipelines.report.queries import _bars_caption, _missing, _rows, _span, _table_rows
from pipelines.report_axis import bin_unit
from schemas import arrow
from schemas.entity_keys import NOT_NAMED


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
    hours = _table_rows(
        connection,
        present,
        section,
        "articles",
        "SELECT strftime(date_trunc('hour', ingested_at AT TIME ZONE 'UTC'), '%Y-%m-%d %H:00'), count(*)"
        " FROM articles GROUP BY 1 ORDER BY 1",
    )
    if hours is None:
        return section
    _articles_per_bin(connection, section, "ingested_at", "hour", "ingestion", "no article was ingested")
    section.tables.append(("Articles per ingestion hour", ["hour (UTC)", "articles"], hours))
    days = _rows(
        connection,
        "SELECT strftime(published_at AT TIME ZONE 'UTC', '%Y-%m-%d'), count(*) FROM articles"
        " WHERE published_at IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    undated = _rows(connection, "SELECT count(*) FROM articles WHERE published_at IS NULL")[0][0]
    _articles_per_bin(connection, section, "published_at", "day", "publication", "no article was published")
    section.tables.append(
        ("Articles per publication day", ["day (UTC)", "articles"], [*days, ("no published_at", undated)])
    )
    return section


def _articles_per_bin(
    connection: duckdb.DuckDBPyConnection, section: Section, column: str, finest: str, what: str, none: str
) -> None:
    """A chart of articles per ``finest`` bin of ``column``, coarser when its span is too long.

    No chart when no article has a ``column``.
    """
    moment = f"{column} AT TIME ZONE 'UTC'"
    span = _span(connection, moment, "articles")
    if span is None:
        return
    unit = bin_unit(*span, finest=finest, max_bins=MAX_BARS)
    bins = _rows(
        connection,
        f"SELECT date_trunc('{unit}', {moment}), count(*) FROM articles"
        f" WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    section.charts.append(
        TimeChart(
            f"Articles per {unit} of {what} (UTC)",
            unit,
            [start for start, _ in bins],
            {"articles": [n for _, n in bins]},
            y_label="articles",
            x_label=f"{column} (UTC)",
            caption=_bars_caption(unit, finest, span, f"{what} times", none),
        )
    )


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
