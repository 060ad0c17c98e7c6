"""``wirestream query --format table|csv|json`` on a real lake (DuckDB over the files the commit protocol wrote)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.cli import main
from pipelines.query import connect, empty_select, query, sql_type
from schemas import arrow
from schemas.records import SourceBatch
from tests.conftest import AFTER_INGESTED_AT, BEFORE_INGESTED_AT, INGESTED_AT_ANSWERS
from tests.kit import article, dead_letter
from transforms.io.lake import Lake, commit_batch, compact

# Every kind of value the formats treat differently: a timestamp, a list, a struct field, quotes
# and a comma, a BLOB, NULL, an exact decimal, NaN, and a column name given twice.
SQL = (
    "SELECT article_id, timezone('UTC', ingested_at) AS ingested_at, word_count, entities[1].text AS first, "
    "authors, 'a,\"b' AS q, '\\x01A'::BLOB AS b, NULL AS nothing, 0.10::DECIMAL(3,2) AS d, 'nan'::DOUBLE AS n, "
    "1 AS article_id FROM articles ORDER BY 1 LIMIT 2"
)


def _query(capsys: pytest.CaptureFixture[str], lake: Path, *args: str) -> str:
    assert main(["query", str(lake), *args]) == 0
    return capsys.readouterr().out


def test_csv_has_a_header_row_then_one_line_per_row(lake_from_before_keys: Path, capsys) -> None:
    out = _query(capsys, lake_from_before_keys, SQL, "--format", "csv")
    assert out == (
        "article_id,ingested_at,word_count,first,authors,q,b,nothing,d,n,article_id\n"
        'a0,2026-11-24T09:30:00,9,U.S.,[],"a,""b",AUE=,,0.10,,1\n'
        'a1,2026-11-24T09:30:00,1,U.S.,[],"a,""b",AUE=,,0.10,,1\n'
    )
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1][5] == 'a,"b' and len(rows) == 3


def test_json_is_one_object_per_row_and_line(lake_from_before_keys: Path, capsys) -> None:
    out = _query(capsys, lake_from_before_keys, SQL, "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert out.endswith("\n") and len(rows) == 2
    assert rows[0] == {
        "article_id": "a0",
        "ingested_at": "2026-11-24T09:30:00",
        "word_count": 9,
        "first": "U.S.",
        "authors": [],
        "q": 'a,"b',
        "b": "AUE=",
        "nothing": None,
        "d": 0.1,
        "n": None,
        "article_id_1": 1,
    }
    assert [row["article_id"] for row in rows] == ["a0", "a1"]
    assert list(rows[0]) == ["article_id", "ingested_at", "word_count", "first", "authors", "q", "b"] + [
        "nothing",
        "d",
        "n",
        "article_id_1",
    ]


def test_the_default_is_the_table_for_a_terminal(lake_from_before_keys: Path, capsys) -> None:
    sql = "SELECT key, count(*) AS n FROM entities GROUP BY key ORDER BY n DESC, key LIMIT 2"
    out = _query(capsys, lake_from_before_keys, sql)
    assert out == "key | n\n----+--\nus  | 8\none | 5\n(2 rows)\n"
    assert _query(capsys, lake_from_before_keys, sql, "--format", "table") == out


def test_no_rows_is_a_header_alone_in_csv_and_nothing_in_json(lake_from_before_keys: Path, capsys) -> None:
    sql = "SELECT article_id, url FROM articles WHERE false"
    assert _query(capsys, lake_from_before_keys, sql, "--format", "csv") == "article_id,url\n"
    assert _query(capsys, lake_from_before_keys, sql, "--format", "json") == ""
    assert _query(capsys, lake_from_before_keys, sql) == "article_id | url\n-----------+----\n(0 rows)\n"


def test_an_unknown_format_is_refused(lake_from_before_keys: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["query", str(lake_from_before_keys), "SELECT 1", "--format", "xml"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "wirestream query: error: argument --format: invalid choice: 'xml' (choose from 'table', 'csv', 'json')"
    )


@pytest.mark.parametrize("table", list(arrow.TABLES))
def test_a_table_with_no_files_is_an_empty_view_of_its_schema(table: str) -> None:
    """The plain-SQL empty view has exactly the columns DuckDB gives the table's Arrow schema."""
    connection = duckdb.connect()
    empty = (
        arrow.TABLES[table]
        .empty_table()
        .append_column("dt", pa.array([], pa.date32()))
        .append_column("hour", pa.array([], pa.int64()))
    )
    connection.register("reference", empty)
    assert connection.execute(f"DESCRIBE {empty_select(arrow.TABLES[table])}").fetchall() == (
        connection.execute("DESCRIBE SELECT * FROM reference").fetchall()
    )
    assert connection.execute(f"SELECT count(*) FROM ({empty_select(arrow.TABLES[table])})").fetchall() == [(0,)]


def test_an_arrow_type_without_a_duckdb_type_is_named() -> None:
    with pytest.raises(ValueError, match=r"no DuckDB type for the Arrow type uint8 \(add it to query._SQL_TYPES\)"):
        sql_type(pa.uint8())


INGESTED = {table: sql for table, (sql, _) in INGESTED_AT_ANSWERS.items()}
FILLED = {table: rows for table, (_, rows) in INGESTED_AT_ANSWERS.items()}


def _views(lake: Path) -> dict[str, str]:
    connection = connect(str(lake))
    return dict(connection.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())


def test_older_files_ingested_at_is_the_articles_and_the_record_logs(lake_from_before_ingested_at: Path) -> None:
    lake = str(lake_from_before_ingested_at)
    for table, sql in INGESTED.items():
        assert query(lake, sql)[1] == FILLED[table], table
    assert compact(Lake(lake))  # the older files merged into new ones, filled the same way
    for table, sql in INGESTED.items():
        assert query(lake, sql)[1] == FILLED[table], table
    assert "JOIN" not in _views(lake_from_before_ingested_at)["entities"]  # no older file left: no join


def test_a_lake_with_no_file_holding_ingested_at_reads_it_filled(lake_from_before_ingested_at: Path) -> None:
    for path in lake_from_before_ingested_at.glob(f"*/dt=*/hour=*/{AFTER_INGESTED_AT.key}.parquet"):
        path.unlink()
    assert query(str(lake_from_before_ingested_at), INGESTED["dead_letters"])[1] == FILLED["dead_letters"][:1]
    assert query(str(lake_from_before_ingested_at), INGESTED["entities"])[1] == FILLED["entities"][:2]


def test_an_older_row_with_no_source_row_reads_null(lake_from_before_ingested_at: Path) -> None:
    (
        lake_from_before_ingested_at / "_records" / "dt=2026-11-24" / "hour=09" / f"{BEFORE_INGESTED_AT.key}.parquet"
    ).unlink()
    assert query(str(lake_from_before_ingested_at), INGESTED["dead_letters"])[1] == [
        (2, None, None),
        FILLED["dead_letters"][1],
    ]


def test_an_older_row_whose_source_row_is_held_twice_reads_null_once(lake_from_before_ingested_at: Path) -> None:
    folder = lake_from_before_ingested_at / "_records" / "dt=2026-11-24" / "hour=09"
    copy = folder / f"{SourceBatch('news', 1, 0, 3, 3).key}.parquet"  # a stray copy: partition 0's rows again
    copy.write_bytes((folder / f"{BEFORE_INGESTED_AT.key}.parquet").read_bytes())
    assert query(str(lake_from_before_ingested_at), INGESTED["dead_letters"])[1] == [
        (2, None, None),
        FILLED["dead_letters"][1],
    ]


def test_a_lake_written_after_the_change_reads_without_a_join(tmp_path: Path) -> None:
    batch = SourceBatch("news", 0, 0, 2, 2)
    commit_batch(Lake(str(tmp_path)), batch, [article(0, batch), dead_letter(1, batch)])
    views = _views(tmp_path)
    assert "JOIN" not in views["entities"] and "JOIN" not in views["dead_letters"]
