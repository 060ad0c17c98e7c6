"""DuckDB over the lake: one view per table, Hive partitions as ``dt`` and ``hour`` columns.

A table with no files yet is an empty view with the table's schema, so queries never fail just
because, say, no dead letter has been written. Files are read by column name
(``union_by_name``), so a lake holding files from before a column was added (``entities.key``)
still reads, with NULL where the older files have no value; the ``entities`` view fills in
``key`` from ``canonical`` for those rows with the pipeline's own rule (:func:`keyed_entities`),
and ``ingested_at`` of ``entities`` and ``dead_letters`` is filled exactly from the article's
or the record log's row (:func:`later_columns_filled`; no join at all when no file lacks it).

Results print in one of :data:`FORMATS` (:func:`render`): ``table`` for a terminal, ``csv``
(a header row, then one row per line) and ``json`` (JSON Lines: one object per row, keys in column
order) for scripts. In ``csv`` and ``json`` a value is written the same way in both: NULL is empty
(csv) or ``null``; timestamps, dates and times are ISO 8601; lists and structs are JSON; BLOBs are
base64; decimals are numbers (json) or their exact digits (csv); NaN and infinities are ``null``.
No Beam is imported here (``wirestream query`` starts in well under a second).

On an object store (``s3://``, ``gs://``) the files are read through pyarrow, on the lake's own
filesystem and configuration (:class:`transforms.io.lake.Lake`), as Arrow datasets registered in
DuckDB (:func:`files_relation`): DuckDB's ``httpfs`` extension would read them itself but cannot
be installed here, and its glob would also take in a file a compaction has merged but not yet
deleted (:func:`transforms.io.lake.data_files` leaves those out). The views are the same but for
one type: ``hour`` is always ``VARCHAR`` there (DuckDB's own reading makes it ``BIGINT`` when no
hour folder has a leading zero).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import arrow
from schemas.entity_keys import entity_key
from transforms.errors import UserError
from transforms.io.lake import Lake, data_files
from transforms.io.lake.iceberg import is_iceberg


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


def _column_names(lake: Lake, files: list[str]) -> list[list[str]]:
    """Each file's column names, read from its footer.

    In turn on a local disk (about 0.1 ms a file), in parallel on an object store (a round trip each).
    """
    if lake.local:
        return [pq.read_schema(path).names for path in files]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda path: pq.read_schema(path, filesystem=lake.fs).names, files))


def later_columns_filled(
    connection: duckdb.DuckDBPyConnection, lake: Lake, table: str, files: list[str], source: str
) -> str:
    """SQL naming ``source`` (a relation over ``table``'s ``files``), older files' gaps filled.

    Every never-null column that files written before it existed lack is filled exactly, as
    compaction fills it (:data:`schemas.arrow.LATER_COLUMNS`): from the source table's row with the
    same keys. The files' footers are read once to find the older files; only the source table's
    files in their partition folders are joined in, and a lake with no older file reads ``source``
    as it is, with no join. A row whose source row is missing (or held twice) keeps NULL.
    """
    for later in arrow.LATER_COLUMNS:
        if later.table != table:
            continue
        older = [
            path for path, names in zip(files, _column_names(lake, files), strict=True) if later.column not in names
        ]
        folders = sorted({lake.relative(path).split("/", 1)[1].rsplit("/", 1)[0] for path in older})
        found = [path for folder in folders for path in data_files(lake, f"{later.source}/{folder}", recursive=False)]
        if not found:
            continue
        column = f'"{later.column}"'
        found_rows = files_relation(connection, lake, later.source, found)
        keys = ", ".join(f'"{key}"' for key in later.keys)
        # A key held twice gives NULL, as compaction refuses it, and never doubles a row.
        values = (
            f"(SELECT {keys}, if(count(*) = 1, any_value({column}), NULL) AS {column} FROM {found_rows} GROUP BY ALL)"
        )
        on = " AND ".join(f'rows."{key}" = found."{key}"' for key in later.keys)
        columns = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        if later.column in columns:
            select = f"SELECT rows.* REPLACE (coalesce(rows.{column}, found.{column}) AS {column})"
        else:
            select = f"SELECT rows.*, found.{column}"
        source = f"({select} FROM {source} AS rows LEFT JOIN {values} AS found ON {on})"
    return source


_HIVE = pa.schema([("dt", pa.date32()), ("hour", pa.string())])


def files_relation(
    connection: duckdb.DuckDBPyConnection, lake: Lake, table: str, paths: list[str], hive: bool = False
) -> str:
    """SQL naming the rows of a lake table's files ``paths`` (absolute, as :meth:`Lake.path` gives them).

    Read by column name. ``hive``: add the ``dt`` and ``hour`` columns of the files' folders.
    A local lake's files are read by DuckDB; an object store's through pyarrow, as an Arrow dataset
    registered in ``connection`` under a name of its own (see the module docstring).
    """
    if lake.local:
        listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
        return f"read_parquet([{listed}], hive_partitioning = {str(hive).lower()}, union_by_name = true)"
    import pyarrow.dataset as ds

    schema = arrow.STORED_TABLES[table]
    options: dict[str, Any] = {}
    if hive:
        schema = pa.unify_schemas([schema, _HIVE])
        options = {"partitioning": ds.partitioning(_HIVE, flavor="hive"), "partition_base_dir": lake.path(table)}
    dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=lake.fs, **options)
    name = f"_lake_{table.strip('_')}_{uuid.uuid4().hex[:8]}"
    connection.register(name, dataset)
    return name


def _with_hive_columns(source: str) -> str:
    """An Iceberg table's rows with the ``dt`` and ``hour`` a Hive lake's folders give (UTC ingestion hour).

    Iceberg partitions by ``hour(ingested_at)`` and stores no such columns; deriving them keeps
    queries written for the Hive lake working unchanged.
    """
    utc = "timezone('UTC', ingested_at)"
    return f"(SELECT *, CAST({utc} AS DATE) AS dt, CAST(hour({utc}) AS BIGINT) AS hour FROM {source})"


def connect(lake_uri: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per lake table.

    On an Iceberg lake the views read the current snapshot's files (never the ``data/`` folders,
    which also hold files of uncommitted batches), with ``dt`` and ``hour`` derived.
    """
    lake = Lake(lake_uri)
    iceberg = is_iceberg(lake)
    connection = duckdb.connect()
    for table, schema in arrow.TABLES.items():
        files = data_files(lake, table)
        if files:
            if iceberg:
                source = _with_hive_columns(files_relation(connection, lake, table, files))
            elif lake.local:
                pattern = f"{lake.root}/{table}/*/*/*.parquet".replace("'", "''")
                source = f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
            else:
                source = files_relation(connection, lake, table, files, hive=True)
            source = later_columns_filled(connection, lake, table, files, source)
            if table == "entities":
                keyed_entities(connection, table, source)
            else:
                connection.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")
        else:
            connection.execute(f"CREATE VIEW {table} AS {empty_select(schema)}")
    return connection


_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
    pa.date32(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}


def sql_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type a Parquet column of ``arrow_type`` reads as (the types ``schemas.arrow`` uses)."""
    if pa.types.is_list(arrow_type):
        return f"{sql_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f'"{field.name}" {sql_type(field.type)}' for field in arrow_type)
        return f"STRUCT({fields})"
    if arrow_type not in _SQL_TYPES:
        raise ValueError(f"no DuckDB type for the Arrow type {arrow_type} (add it to query._SQL_TYPES)")
    return _SQL_TYPES[arrow_type]


def empty_select(schema: pa.Schema) -> str:
    """A query of no rows with the columns of ``schema`` plus the Hive ``dt`` and ``hour`` columns.

    Plain SQL rather than a registered empty Arrow table: registering one makes DuckDB import
    pandas, a second of every ``wirestream query`` on a lake that lacks a table.
    """
    columns = [f'CAST(NULL AS {sql_type(field.type)}) AS "{field.name}"' for field in schema]
    columns += ['CAST(NULL AS DATE) AS "dt"', 'CAST(NULL AS BIGINT) AS "hour"']
    return f"SELECT {', '.join(columns)} WHERE false"


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


def _plain(value: Any) -> Any:
    """A DuckDB result value as JSON data (see the module docstring for each type's form)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)  # UUID, INTERVAL (timedelta), anything newer


def _csv_cell(value: Any) -> str:
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return str(value)  # exact digits
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, str):
        return plain
    return json.dumps(plain, ensure_ascii=False)  # numbers, true/false, lists and structs


def format_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A header row, then one line per row (RFC 4180 quoting, lines end with a bare newline)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    return out.getvalue()


def format_json_lines(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """One JSON object per row and line, keys in column order; nothing at all for no rows.

    Two columns of the same name (``SELECT 1 AS a, 2 AS a``) would collide in an object, so the
    later ones are named ``a_1``, ``a_2``... as DuckDB itself names them in ``CREATE TABLE AS``.
    """
    keys: list[str] = []
    for name in columns:
        key, n = name, 0
        while key in keys:
            n += 1
            key = f"{name}_{n}"
        keys.append(key)
    return "".join(
        json.dumps(dict(zip(keys, map(_plain, row), strict=True)), ensure_ascii=False) + "\n" for row in rows
    )


FORMATS: dict[str, Callable[[list[str], list[tuple[Any, ...]]], str]] = {
    "table": lambda columns, rows: format_table(columns, rows) + "\n",
    "csv": format_csv,
    "json": format_json_lines,
}


def render(columns: list[str], rows: list[tuple[Any, ...]], output_format: str = "table") -> str:
    """What ``wirestream query --format output_format`` prints (every line ends with a newline)."""
    return FORMATS[output_format](columns, rows)
