"""``build_sections``: every section of the report, in page order, over one DuckDB connection."""

from __future__ import annotations

from pipelines.report.articles import articles_over_time, overview, top_entities
from pipelines.report.model import Section
from pipelines.report.outcomes import (
    dead_letter_reasons,
    duplicates,
    language_mix,
    quarantine_reasons,
)
from pipelines.report.runs import latency, quality_over_time
from schemas import arrow
from transforms.io.lake import Lake, data_files


def tables_present(lake: Lake) -> set[str]:
    """The lake tables that hold at least one Parquet file."""
    present = set()
    for table in arrow.TABLES:
        if data_files(lake, table):
            present.add(table)
    return present


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
