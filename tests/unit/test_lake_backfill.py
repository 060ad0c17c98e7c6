"""Never-null columns that older files lack (``entities`` and ``dead_letters`` ``ingested_at``):
filled exactly from the table that always held them, or not written at all."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import arrow
from tests.conftest import AFTER_INGESTED_AT, BEFORE_INGESTED_AT, READ_AFTER, READ_BEFORE
from transforms.io.lake import Lake, compact
from transforms.io.lake.backfill import fill

FOLDER = "dt=2026-11-24/hour=09"
ENTITIES_LATER, DEAD_LETTERS_LATER = arrow.LATER_COLUMNS


def _entities(rows: list[tuple[str, dt.datetime | None]]) -> pa.Table:
    return pa.table(
        {"article_id": [a for a, _ in rows], "ingested_at": pa.array([t for _, t in rows], arrow.TIMESTAMP)}
    )


def test_a_missing_value_is_the_source_rows_with_the_same_keys_in_the_same_order() -> None:
    rows = _entities([("a2", None), ("a1", READ_AFTER), ("a0", None), ("a2", None)])
    source = _entities([("a0", READ_BEFORE), ("a1", READ_BEFORE), ("a2", READ_AFTER)])
    result = fill(rows, ENTITIES_LATER, source)
    assert result is not None
    assert result.to_pylist() == [
        {"article_id": "a2", "ingested_at": READ_AFTER},
        {"article_id": "a1", "ingested_at": READ_AFTER},  # a value already there is kept, not overwritten
        {"article_id": "a0", "ingested_at": READ_BEFORE},
        {"article_id": "a2", "ingested_at": READ_AFTER},
    ]
    assert result.schema == rows.schema


def test_a_row_with_no_source_row_is_never_guessed() -> None:
    rows = _entities([("a0", None), ("a9", None)])
    assert fill(rows, ENTITIES_LATER, _entities([("a0", READ_BEFORE)])) is None


def test_a_key_the_source_holds_twice_is_never_guessed() -> None:
    rows = _entities([("a0", None)])
    assert fill(rows, ENTITIES_LATER, _entities([("a0", READ_BEFORE), ("a0", READ_AFTER)])) is None


def test_the_record_log_keys_dead_letters_by_their_kafka_coordinates() -> None:
    keys = {"kafka_topic": ["news", "news"], "kafka_partition": pa.array([0, 1], pa.int32())}
    rows = pa.table({**keys, "kafka_offset": [2, 2], "ingested_at": pa.array([None, None], arrow.TIMESTAMP)})
    source = pa.table({**keys, "kafka_offset": [2, 2], "ingested_at": pa.array([READ_BEFORE, READ_AFTER])})
    result = fill(rows, DEAD_LETTERS_LATER, source)
    assert result is not None
    assert result["ingested_at"].to_pylist() == [READ_BEFORE, READ_AFTER]


def _files(lake: Path, table: str) -> list[str]:
    return sorted(path.name for path in (lake / table / FOLDER).glob("*.parquet"))


def test_compaction_fills_older_files_from_articles_and_the_record_log(lake_from_before_ingested_at: Path) -> None:
    lake = lake_from_before_ingested_at
    old = lake / "entities" / FOLDER / f"{BEFORE_INGESTED_AT.key}.parquet"
    assert "ingested_at" not in pq.read_schema(old).names  # the fixture's older file
    merged = dict(compact(Lake(str(lake))))
    name = f"news+0+{0:019d}+{6:019d}.parquet"
    assert merged == {f"{table}/{FOLDER}/{name}": 2 for table in ("articles", "entities", "dead_letters", "_records")}
    for table in ("entities", "dead_letters"):
        assert _files(lake, table) == [name]
        assert pq.read_schema(lake / table / FOLDER / name).equals(arrow.TABLES[table], check_metadata=False)
    entities = pq.read_table(lake / "entities" / FOLDER / name, columns=["article_id", "label", "ingested_at"])
    assert entities.to_pylist() == [
        {"article_id": article, "label": label, "ingested_at": read}
        for article, read in (("a0", READ_BEFORE), ("a1", READ_BEFORE), ("a3", READ_AFTER), ("a5", READ_AFTER))
        for label in ("PERSON", "GPE")
    ]
    letters = pq.read_table(lake / "dead_letters" / FOLDER / name, columns=["kafka_offset", "ingested_at", "failed_at"])
    assert letters.to_pylist() == [
        {"kafka_offset": 2, "ingested_at": READ_BEFORE, "failed_at": READ_BEFORE + dt.timedelta(seconds=5)},
        {"kafka_offset": 4, "ingested_at": READ_AFTER, "failed_at": READ_AFTER + dt.timedelta(seconds=5)},
    ]


def test_files_that_cannot_be_filled_exactly_are_left_unmerged(lake_from_before_ingested_at: Path) -> None:
    lake = lake_from_before_ingested_at
    (lake / "_records" / FOLDER / f"{BEFORE_INGESTED_AT.key}.parquet").unlink()  # the only source of offset 2's
    before = (lake / "dead_letters" / FOLDER / f"{BEFORE_INGESTED_AT.key}.parquet").read_bytes()
    merged = [file.split("/")[0] for file, _ in compact(Lake(str(lake)))]
    assert merged == ["articles", "entities"]  # _records has one file left; dead_letters cannot be filled
    assert _files(lake, "dead_letters") == [f"{BEFORE_INGESTED_AT.key}.parquet", f"{AFTER_INGESTED_AT.key}.parquet"]
    assert (lake / "dead_letters" / FOLDER / f"{BEFORE_INGESTED_AT.key}.parquet").read_bytes() == before
    assert compact(Lake(str(lake))) == []  # and stays so, quietly, at every later compaction


def test_every_reader_reads_older_and_newer_files_as_it_reads_them_compacted(
    lake_from_before_ingested_at: Path,
) -> None:
    """validate, the report, the run summary and the run's lake watch, before and after the merge."""
    from pipelines.lake_watch import LakeWatch
    from pipelines.report import build_sections
    from pipelines.summary import run_summary
    from pipelines.validate import validate_lake

    lake = str(lake_from_before_ingested_at)

    def readings() -> tuple[object, ...]:
        tally = LakeWatch(Lake(lake), frozenset()).poll()
        summary = run_summary(lake, "DirectRunner", "DONE", frozenset())
        return validate_lake(lake), build_sections(lake), summary, tally.rows, tally.dead_letter_reasons

    before = readings()
    assert compact(Lake(lake))
    assert readings() == before
    validated, _, summary, rows, reasons = before
    assert validated[0][1:] == [
        "FAIL  articles/dt=2026-11-24/hour=09: 4 articles\n      4 rows break row-level expectations "
        "(text_length_in_bounds ×4); batch-level expectations failed: title_null_rate_at_most_50_percent",
        "overall: FAIL (1 of 1 partitions, 4 articles)",  # the fixture's articles are short and untitled
    ]
    assert rows == {"articles": 4, "entities": 8, "dead_letters": 2} and reasons == {"not_json": 2}
    assert summary.splitlines()[1:8] == [
        "  read (records accounted for this run): 6",
        "  articles written:   4",
        "  entity mentions:    8",
        "  duplicates:         0",
        "  quarantined:        0",
        "  dead letters:       2",
        "    by reason: parse/not_json ×2",
    ]
