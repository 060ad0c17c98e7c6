"""What ``wirestream run`` prints when a run ends: what this run added to the lake, read back with SQL.

The files the run added (every lake file not there before it started) are grouped by table and
read with DuckDB: counts per table, the first duplicates, dead letters by reason, the top
entities, the latency from Kafka timestamp to lake commit; then the partitions written and an
example query over the whole lake. Each query is one function; :func:`run_summary` only lays
out the text. Imports no Beam (DuckDB via :mod:`pipelines.query`).
"""

from __future__ import annotations

from typing import Any

from pipelines.query import connect, files_relation, format_table, keyed_entities
from pipelines.report import top_named_entities
from schemas import arrow
from transforms.io.lake import Lake, lake_files

__all__ = ["EXAMPLE_QUERY", "relations", "run_summary"]

EXAMPLE_QUERY = (
    "SELECT key, label, count(DISTINCT article_id) AS articles FROM entities "
    "WHERE label IN ('PERSON', 'ORG', 'GPE') GROUP BY ALL ORDER BY articles DESC, key LIMIT 5"
)
ACCOUNTED_TABLES = ("articles", "duplicates", "quarantine", "dead_letters")


def files_by_table(lake: Lake, relatives: list[str]) -> dict[str, list[str]]:
    """The paths of the lake files ``relatives`` (relative to the lake's root), by table (first folder)."""
    by_table: dict[str, list[str]] = {}
    for relative in relatives:
        by_table.setdefault(relative.split("/", 1)[0], []).append(lake.path(relative))
    return by_table


def relations(connection: Any, lake: Lake, by_table: dict[str, list[str]]) -> dict[str, str]:
    """A SQL relation per table over ``by_table``'s files (:func:`pipelines.query.files_relation`)."""
    return {table: files_relation(connection, lake, table, paths) for table, paths in by_table.items()}


def row_counts(connection: Any, by_table: dict[str, str]) -> dict[str, int]:
    """Rows per table of ``by_table``'s relations."""
    counts = {}
    for table, relation in by_table.items():
        row = connection.execute(f"SELECT count(*) FROM {relation}").fetchone()
        counts[table] = row[0] if row else 0
    return counts


def first_duplicates(connection: Any, relation: str, limit: int = 5) -> list[tuple[Any, ...]]:
    """``(method, title or url, duplicate_of, similarity)`` of the first duplicates, in Kafka order."""
    return list(
        connection.execute(
            "SELECT d.method, coalesce(d.title, d.url), d.duplicate_of, round(d.similarity, 2)"
            f" FROM {relation} AS d ORDER BY d.kafka_partition, d.kafka_offset LIMIT {int(limit)}"
        ).fetchall()
    )


def dead_letter_reasons(connection: Any, relation: str) -> list[tuple[str, int]]:
    """``(stage/reason, count)`` of the dead letters, most frequent first."""
    return list(
        connection.execute(
            f"SELECT stage || '/' || reason, count(*) FROM {relation} GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    )


def top_entities(connection: Any, relation: str, limit: int = 10) -> list[tuple[Any, ...]]:
    """The ``limit`` entities with most mentions in the entity relation ``relation``."""
    keyed_entities(connection, "run_entities", relation)
    return list(top_named_entities(connection, "run_entities", limit, by="mentions"))


def commit_latency_s(connection: Any, relation: str) -> tuple[float, float, float] | None:
    """p50, p95 and max seconds from Kafka timestamp to commit over the record log ``relation``; None if unknown."""
    latency = connection.execute(
        "SELECT quantile_cont(ms, 0.5), quantile_cont(ms, 0.95), max(ms) FROM ("
        f" SELECT epoch_ms(committed_at) - epoch_ms(event_time) AS ms FROM {relation}"
        " WHERE event_time IS NOT NULL)"
    ).fetchone()
    if not latency or latency[0] is None:
        return None
    p50, p95, most = (value / 1000 for value in latency)
    return p50, p95, most


def run_summary(lake_uri: str, runner: str, state: str, files_before: frozenset[str]) -> str:
    """The text printed after a run: counts, examples, latency, partitions written, an example query."""
    lake = Lake(lake_uri)
    new_files = sorted(lake_files(lake) - files_before)
    connection = connect(lake_uri)
    by_table = relations(connection, lake, files_by_table(lake, new_files))
    counts = row_counts(connection, by_table)
    accounted = sum(counts.get(table, 0) for table in ACCOUNTED_TABLES)
    lines = [
        f"wirestream run finished: {state} on {runner}",
        f"  read (records accounted for this run): {accounted}",
        f"  articles written:   {counts.get('articles', 0)}",
        f"  entity mentions:    {counts.get('entities', 0)}",
        f"  duplicates:         {counts.get('duplicates', 0)}",
        f"  quarantined:        {counts.get('quarantine', 0)}",
        f"  dead letters:       {counts.get('dead_letters', 0)}",
    ]
    if by_table.get("duplicates"):
        copies = first_duplicates(connection, by_table["duplicates"])
        lines.extend(f"    {method}: {what!r} repeats {of} (similarity {sim})" for method, what, of, sim in copies)
    if by_table.get("dead_letters"):
        reasons = dead_letter_reasons(connection, by_table["dead_letters"])
        lines.append("    by reason: " + ", ".join(f"{reason} ×{count}" for reason, count in reasons))
    if by_table.get("entities"):
        top = top_entities(connection, by_table["entities"])
        lines.append("  top entities: " + ", ".join(f"{text} ({label}) ×{count}" for text, label, _, count in top))
    record_log = by_table.get(arrow.RECORD_LOG_TABLE)
    latency = commit_latency_s(connection, record_log) if record_log else None
    if latency is not None:
        p50, p95, most = latency
        lines.append(f"  latency (Kafka timestamp to lake commit): p50 {p50:.1f} s, p95 {p95:.1f} s, max {most:.1f} s")
    lines.append(f"  quality reports:    {lake.url(lake.path('_quality', 'docs', 'index.html'))}")
    partitions = sorted({relative.rsplit("/", 1)[0] for relative in new_files if not relative.startswith("_")})
    lines.append(f"  partitions written ({len(partitions)}):")
    lines.extend(f"    {lake.url(lake.path(partition))}" for partition in partitions)
    cursor = connection.execute(EXAMPLE_QUERY)
    columns, rows = cursor.description, cursor.fetchall()
    lines.append("")
    lines.append(f'example query: wirestream query {lake_uri} "{EXAMPLE_QUERY}"')
    lines.append(format_table([c[0] for c in columns], rows))
    connection.close()
    return "\n".join(lines)
