"""DuckDB over the lake: one view per table, Hive partitions as ``dt`` and ``hour`` columns.

A table with no files yet is an empty view with the table's schema, so queries never fail just
because, say, no dead letter has been written. Files are read by column name
(``union_by_name``), so a lake holding files from before a column was added (``entities.key``)
still reads, with NULL where the older files have no value; the ``entities`` view fills in
``key`` from ``canonical`` for those rows with the pipeline's own rule (:func:`keyed_entities`).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from schemas import arrow
from schemas.entity_keys import entity_key
from transforms.errors import UserError
from transforms.io.lake import Lake


def keyed_entities(connection: duckdb.DuckDBPyConnection, name: str, source: str) -> None:
    """Create view ``name``: the entity mentions of relation ``source``, every one with a ``key``.

    Rows written before the ``key`` column existed (files without it, or merged into newer files
    with NULL there) get ``entity_key(canonical)``, computed in Python only for those rows.
    """
    if not connection.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = 'entity_key'").fetchall():
        connection.create_function("entity_key", entity_key, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"))
    columns = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    if "key" in columns:
        select = f"SELECT * REPLACE (coalesce(key, entity_key(canonical)) AS key) FROM {source}"
    else:
        select = f"SELECT *, entity_key(canonical) AS key FROM {source}"
    connection.execute(f"CREATE VIEW {name} AS {select}")


def connect(lake_uri: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per lake table."""
    lake = Lake(lake_uri)
    connection = duckdb.connect()
    for table, schema in arrow.TABLES.items():
        files = [info.path for info in lake.list(lake.path(table), recursive=True) if info.path.endswith(".parquet")]
        if files:
            root = lake.root if lake.local else lake_uri.rstrip("/")  # DuckDB reads gs:// and s3:// itself
            pattern = f"{root}/{table}/*/*/*.parquet".replace("'", "''")
            source = f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
            if table == "entities":
                keyed_entities(connection, table, source)
            else:
                connection.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")
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
    """Run ``sql`` over the lake; column names and rows (a ``UserError`` with DuckDB's message if it fails)."""
    connection = connect(lake_uri)
    try:
        cursor = connection.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        return columns, cursor.fetchall()
    except duckdb.Error as error:  # DuckDB's message names the problem and where; no traceback adds to it
        raise UserError(f"the query failed: {error}") from error
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
