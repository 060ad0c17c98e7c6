"""DuckDB over the lake: one view per table, Hive partitions as ``dt`` and ``hour`` columns.

A table with no files yet is an empty view with the table's schema, so queries never fail just
because, say, no dead letter has been written. Files are matched by column name
(``union_by_name``): tables gain columns over time (``site_name``, ``ner_status``), and without it
DuckDB silently reads every file with the first file's columns, dropping the newer ones.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from schemas import arrow
from transforms.io.lake import Lake


def connect(lake_uri: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per lake table."""
    lake = Lake(lake_uri)
    connection = duckdb.connect()
    for table, schema in arrow.TABLES.items():
        files = [info.path for info in lake.list(lake.path(table), recursive=True) if info.path.endswith(".parquet")]
        if files:
            root = lake.root if lake.local else lake_uri.rstrip("/")  # DuckDB reads gs:// and s3:// itself
            pattern = f"{root}/{table}/*/*/*.parquet".replace("'", "''")
            connection.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true,"
                " union_by_name = true)"
            )
        else:
            empty = (
                schema.empty_table()
                .append_column("dt", pa.array([], pa.date32()))
                .append_column("hour", pa.array([], pa.int64()))
            )
            connection.register(f"_{table}_empty", empty)
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM _{table}_empty")
    return connection


def query(lake_uri: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over the lake; column names and rows."""
    connection = connect(lake_uri)
    try:
        cursor = connection.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        return columns, cursor.fetchall()
    finally:
        connection.close()


def format_table(columns: list[str], rows: list[tuple[Any, ...]], max_width: int = 60) -> str:
    """A plain-text table for a terminal."""

    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    lines = [" | ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * width for width in widths))
    lines.extend(" | ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in cells)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
