"""docs/lake.md against the lake the pipeline writes: every column of every table, and nothing else.

The reference documents each stored table (``schemas.arrow.STORED_TABLES``) under a heading
``### `name` `` with one markdown table whose header is exactly ``| column | type | nullable |
meaning |``; a nested field of a list of structs is a row ``column[].field``. A table may start
with "Every column of `other`, in the same order, then:". Types are written as
:func:`type_name` spells them. The partition-column table states how DuckDB, pyarrow and polars
type ``dt`` and ``hour``; those rows are checked against the readers themselves.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import arrow

LAKE_DOC = Path(__file__).resolve().parents[2] / "docs" / "lake.md"
COLUMN_HEADER = ("column", "type", "nullable", "meaning")
PARTITION_HEADER = ("reader", "dt", "hour", "notes")
_HEADING = re.compile(r"^### `(?P<name>[a-z_]+)`\s*$")
_INHERITS = re.compile(r"^Every column of `(?P<name>[a-z_]+)`, in the same order, then:\s*$")

Row = tuple[str, str, str]
"""``(column, type, nullable)`` as the reference writes them: ``("kafka_offset", "int64", "no")``."""


def type_name(data_type: pa.DataType) -> str:
    """An Arrow type as the reference spells it: ``string``, ``timestamp[us, UTC]``, ``list<string>``."""
    if pa.types.is_timestamp(data_type):
        zone = f", {data_type.tz}" if data_type.tz else ""
        return f"timestamp[{data_type.unit}{zone}]"
    if pa.types.is_list(data_type):
        item = data_type.value_type
        return "list<struct>" if pa.types.is_struct(item) else f"list<{type_name(item)}>"
    return str(data_type)


def schema_rows(schema: pa.Schema) -> list[Row]:
    """Every column of ``schema`` in order, each struct field of a list of structs after its column."""
    rows: list[Row] = []
    for field in schema:
        rows.append((field.name, type_name(field.type), "yes" if field.nullable else "no"))
        if pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type):
            for child in field.type.value_type:
                rows.append((f"{field.name}[].{child.name}", type_name(child.type), "yes" if child.nullable else "no"))
    return rows


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row, backticks around a whole cell removed."""
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
    return [cell[1:-1] if len(cell) > 1 and cell.startswith("`") and cell.endswith("`") else cell for cell in cells]


def markdown_tables(text: str) -> list[tuple[str | None, str | None, tuple[str, ...], list[list[str]]]]:
    """Each table of ``text``: the ``### `name` `` heading above it, the table it inherits from, header, rows."""
    tables = []
    heading: str | None = None
    inherits: str | None = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            match = _HEADING.match(line)
            heading, inherits = (match["name"] if match else None), None
        elif match := _INHERITS.match(line):
            inherits = match["name"]
        elif line.startswith("|") and index + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[index + 1]):
            header = tuple(_cells(line))
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            tables.append((heading, inherits, header, rows))
            continue
        index += 1
    return tables


def documented_columns(text: str) -> dict[str, list[list[str]]]:
    """Per documented table, its column rows ``[column, type, nullable, meaning]``, inherited ones first."""
    own: dict[str, list[list[str]]] = {}
    parents: dict[str, str] = {}
    for heading, inherits, header, rows in markdown_tables(text):
        if header != COLUMN_HEADER:
            continue
        assert heading is not None, f"a column table without a ### `table` heading: {rows[:1]}"
        assert heading not in own, f"{heading} is documented twice"
        own[heading] = rows
        if inherits:
            parents[heading] = inherits
    return {name: [*own.get(parents[name], [])] + rows if name in parents else rows for name, rows in own.items()}


def mismatches(documented: list[list[str]], schema: pa.Schema) -> list[str]:
    """What differs between a documented table and a schema, in words; empty when they agree."""
    problems = []
    written = schema_rows(schema)
    stated = [tuple(row[:3]) for row in documented]
    for row in written:
        if row[0] not in {s[0] for s in stated}:
            problems.append(f"column {row[0]} ({row[1]}) is written but not documented")
    by_name = {w[0]: w for w in written}
    for claim in stated:
        if claim[0] not in by_name:
            problems.append(f"column {claim[0]} is documented but not written")
        elif claim != by_name[claim[0]]:
            problems.append(f"column {claim[0]}: documented {claim[1:]}, written {by_name[claim[0]][1:]}")
    if not problems and [s[0] for s in stated] != [w[0] for w in written]:
        problems.append(f"columns in another order than written: {[w[0] for w in written]}")
    problems += [f"column {row[0]} has no meaning" for row in documented if len(row) < 4 or not row[3].strip()]
    return problems


DOCUMENTED = documented_columns(LAKE_DOC.read_text())


def test_every_stored_table_is_documented_and_nothing_else() -> None:
    assert sorted(DOCUMENTED) == sorted(arrow.STORED_TABLES)


@pytest.mark.parametrize("table", sorted(arrow.STORED_TABLES))
def test_the_documented_columns_are_the_written_ones(table: str) -> None:
    assert mismatches(DOCUMENTED[table], arrow.STORED_TABLES[table]) == []


def test_a_column_added_to_a_schema_without_docs_is_caught() -> None:
    grown = arrow.ARTICLES.append(pa.field("sentiment", pa.float32()))
    assert mismatches(DOCUMENTED["articles"], grown) == ["column sentiment (float) is written but not documented"]


def test_a_documented_column_that_is_not_written_or_has_another_type_is_caught() -> None:
    shrunk = pa.schema([field for field in arrow.DUPLICATES if field.name != "method"])
    retyped = arrow.DUPLICATES.set(2, pa.field("similarity", pa.float32()))
    assert mismatches(DOCUMENTED["duplicates"], shrunk) == ["column method is documented but not written"]
    assert mismatches(DOCUMENTED["duplicates"], retyped) == [
        "column similarity: documented ('double', 'yes'), written ('float', 'yes')"
    ]


def test_type_names_of_nested_and_timestamp_columns() -> None:
    assert type_name(arrow.TIMESTAMP) == "timestamp[us, UTC]"
    assert type_name(pa.list_(pa.string())) == "list<string>"
    assert type_name(pa.list_(arrow.ENTITY_STRUCT)) == "list<struct>"
    assert schema_rows(arrow.ARTICLES)[15] == ("entities[].text", "string", "yes")


def _partition_types() -> dict[str, tuple[str, str]]:
    """Per reader (the first word of its row), the documented types of ``dt`` and ``hour``."""
    tables = [rows for _, _, header, rows in markdown_tables(LAKE_DOC.read_text()) if header == PARTITION_HEADER]
    assert len(tables) == 1, "docs/lake.md needs exactly one | reader | dt | hour | notes | table"

    def first_code(cell: str) -> str:
        match = re.search(r"`([^`]+)`", cell)
        return match[1] if match else cell

    return {row[0].split()[0]: (first_code(row[1]), first_code(row[2])) for row in tables[0]}


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``articles`` with two hour folders as the sink names them: one zero-padded, one not."""
    root = tmp_path_factory.mktemp("lake")
    for hour in ("07", "14"):
        folder = root / "articles" / "dt=2026-11-25" / f"hour={hour}"
        folder.mkdir(parents=True)
        name = f"articles+0+{0:019d}+{1:019d}.parquet"
        pq.write_table(arrow.ARTICLES.empty_table(), folder / name)
    return root


def test_duckdb_types_partition_columns_as_documented(small_lake: Path) -> None:
    import duckdb

    pattern = f"{small_lake}/articles/*/*/*.parquet"
    described = duckdb.connect().execute(
        f"DESCRIBE SELECT dt, hour FROM read_parquet('{pattern}', hive_partitioning = true)"
    )
    types = tuple(str(column[1]) for column in described.fetchall())
    assert types == _partition_types()["DuckDB"]


def test_pyarrow_types_partition_columns_as_documented(small_lake: Path) -> None:
    import pyarrow.dataset as ds

    schema = ds.dataset(small_lake / "articles", format="parquet", partitioning="hive").schema
    assert (str(schema.field("dt").type), str(schema.field("hour").type)) == _partition_types()["pyarrow"]


def test_polars_types_partition_columns_as_documented(small_lake: Path) -> None:
    polars = pytest.importorskip("polars", reason="polars is an optional extra")
    schema = polars.scan_parquet(str(small_lake / "articles" / "**" / "*.parquet"), hive_partitioning=True)
    types = schema.collect_schema()
    assert (str(types["dt"]), str(types["hour"])) == _partition_types()["polars"]
