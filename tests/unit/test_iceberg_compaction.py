"""Compaction of an Iceberg lake: each table's hours of small files rewritten as one snapshot.

Lakes are built from outcomes with the committer itself (no Kafka, no Beam), as in
``test_iceberg_lake``: every batch writes a file to all six tables, in one hour or two.
"""

import json
import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import arrow
from schemas.records import SourceBatch
from tests.kit import read_while
from tests.unit.test_iceberg_lake import (
    TOPIC,
    _committer,
    _StaleFirst,
    accounted,
    offsets,
    open_lake,
    outcomes,
    written,
)
from transforms.io.lake import Lake, compact
from transforms.io.lake.iceberg import compaction
from transforms.io.lake.iceberg.catalog import PARTITION_FIELD, data_schemas, open_catalog, table_name
from transforms.io.lake.iceberg.commit import COMMIT_ORDER, COVERED, commit_manifests, covered_ranges
from transforms.io.lake.iceberg.compaction import COMPACTION, compact_table
from transforms.io.lake.iceberg.files import write_batch

HOURS = (f"{PARTITION_FIELD}=2026-11-24-09", f"{PARTITION_FIELD}=2026-11-24-10")


def _ten_batches_over_two_hours(path: Path):
    """Ten batches of 8 offsets of partition 0, each half in 09:00 and half in 10:00."""
    lake, catalog = open_lake(path)
    schemas = data_schemas(catalog)
    for first in range(0, 80, 8):
        batch = SourceBatch(TOPIC, 0, first, first + 8, 8)
        commit_manifests(catalog, lake, [write_batch(lake, batch, outcomes(batch, late_from=first + 4), schemas)])
    return lake, catalog


def files_per_hour(catalog) -> dict[tuple[str, str], int]:
    """Files of each (table, hour folder) in the current snapshots."""
    counted: Counter[tuple[str, str]] = Counter()
    for table in arrow.STORED_TABLES:
        for task in catalog.load_table(table_name(table)).scan().plan_files():
            counted[(table, task.file.file_path.split("/")[-2])] += 1
    return dict(counted)


def rows(catalog, snapshot_id: int | None = None) -> dict[str, Counter]:
    """Every table's rows as a multiset (each row as its JSON), at the head or at ``snapshot_id``."""
    found = {}
    for table in arrow.STORED_TABLES:
        scan = catalog.load_table(table_name(table)).scan(snapshot_id=snapshot_id)
        found[table] = Counter(json.dumps(row, default=str, sort_keys=True) for row in scan.to_arrow().to_pylist())
    return found


def parquet_on_disk(path: Path) -> set[str]:
    return {str(file) for file in path.glob("*/data/*/*.parquet")}


def test_each_hour_of_ten_files_becomes_one_with_the_same_rows_and_coverage(tmp_path) -> None:
    lake, catalog = _ten_batches_over_two_hours(tmp_path)
    assert files_per_hour(catalog) == {(table, hour): 10 for table in arrow.STORED_TABLES for hour in HOURS}
    before, heads = (
        rows(catalog),
        {t: catalog.load_table(table_name(t)).current_snapshot().snapshot_id for t in COMMIT_ORDER},
    )
    small = parquet_on_disk(tmp_path)
    assert len(small) == 6 * 2 * 10

    merged = compact(lake)

    assert sorted((path.split("/")[:3], count) for path, count in merged) == sorted(
        ([table, "data", hour], 10) for table in arrow.STORED_TABLES for hour in HOURS
    )
    assert all(path.split("/")[-1].startswith("compacted+") for path, _ in merged)
    assert files_per_hour(catalog) == {(table, hour): 1 for table in arrow.STORED_TABLES for hour in HOURS}
    assert rows(catalog) == before
    assert sum(before["_records"].values()) == 80 and sum(before["entities"].values()) == 20
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        assert loaded.properties[COVERED] == '{"news+0":[[0,80]]}', table
        snapshot = loaded.current_snapshot()
        assert snapshot.summary.operation.value == "overwrite"
        assert (snapshot.summary["deleted-data-files"], snapshot.summary["added-data-files"]) == ("20", "2")
        assert json.loads(snapshot.summary[COMPACTION]) == {"replaced": 20, "merged": 2}
        # a reader pinned to the snapshot before still reads: the replaced files stay until expiry
        assert loaded.scan(snapshot_id=heads[table]).to_arrow().num_rows == sum(before[table].values())
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 80)]}
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(80)]
    assert accounted(catalog) == [(0, offset) for offset in range(80)]
    assert small < parquet_on_disk(tmp_path)

    assert compact(lake) == []  # idempotent: every hour holds one file
    assert all(len(catalog.load_table(table_name(t)).snapshots()) == 11 for t in COMMIT_ORDER)
    assert compact(lake, retain_s=0) == []  # expires what only the older snapshots referenced
    assert parquet_on_disk(tmp_path) == {f"{tmp_path}/{path}" for path, _ in merged}
    assert all(len(catalog.load_table(table_name(t)).snapshots()) == 1 for t in COMMIT_ORDER)
    assert rows(catalog) == before


def test_merged_rows_are_in_offset_order_with_the_field_ids(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    for first in (16, 0, 8):  # committed out of order, partitions interleaved
        commit_manifests(
            catalog, lake, [written(lake, catalog, 1, first, first + 8), written(lake, catalog, 0, first, first + 8)]
        )
    batch_file = next((tmp_path / "_records" / "data").glob("*/news+0+*.parquet"))
    ((path, count),) = [merge for merge in compact(lake) if merge[0].startswith("_records/")]
    assert count == 6
    merged = pq.read_table(tmp_path / path, partitioning=None)
    pairs = list(zip(merged["kafka_partition"].to_pylist(), merged["kafka_offset"].to_pylist(), strict=True))
    assert pairs == [(partition, offset) for partition in (0, 1) for offset in range(24)]
    assert merged.schema.equals(pq.read_schema(batch_file), check_metadata=True)  # with the field ids
    assert [field.metadata for field in merged.schema] == [
        field.metadata for field in data_schemas(catalog)["_records"]
    ]


def test_a_reader_scanning_during_compaction_never_sees_rows_twice_or_missing(tmp_path) -> None:
    lake, catalog = _ten_batches_over_two_hours(tmp_path)
    every = [(0, offset) for offset in range(80)]

    def read() -> list[tuple[int, int]]:
        return offsets(open_catalog(Lake(str(tmp_path))), "_records")

    merged, seen, errors = read_while(read, lambda: compact(lake))
    assert len(merged) == 12 and errors == []
    assert len(seen) >= 2 and all(answer == every for answer in seen)
    assert files_per_hour(catalog)[("_records", HOURS[0])] == 1


def test_a_batch_committed_while_compaction_plans_is_kept_beside_the_rewrite(tmp_path) -> None:
    lake, catalog = _ten_batches_over_two_hours(tmp_path)
    stale = {table_name("_records"): catalog.load_table(table_name("_records"))}  # compaction's plan
    commit_manifests(catalog, lake, [written(lake, catalog, 0, 80, 88)])  # the pipeline's committer wins
    merged = compact_table(lake, _StaleFirst(catalog, stale), "_records")
    assert not stale  # the first attempt ran on the stale head and failed
    assert sorted(count for _, count in merged) == [10, 10]
    assert files_per_hour(catalog)[("_records", HOURS[0])] == 2  # the merged file and the new batch's
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(88)]
    assert catalog.load_table(table_name("_records")).properties[COVERED] == '{"news+0":[[0,88]]}'


def test_compaction_racing_a_committer_process_loses_no_commit(tmp_path) -> None:
    lake, catalog = _ten_batches_over_two_hours(tmp_path)
    start = tmp_path / "start"
    child = _committer(tmp_path, 1, 12, 4, str(start))
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    start.touch()
    merges = []
    while child.poll() is None:
        merges.append(len(compact(lake, retain_s=0)))
    assert child.returncode == 0 and merges[0] == 12
    compact(lake, retain_s=0)
    every = [(0, offset) for offset in range(80)] + [(1, offset) for offset in range(48)]
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 80)], (TOPIC, 1): [(0, 48)]}
    assert offsets(catalog, "_records") == every
    assert accounted(catalog) == every
    assert set(files_per_hour(catalog).values()) == {1}
    for table in COMMIT_ORDER:
        assert catalog.load_table(table_name(table)).properties[COVERED] == '{"news+0":[[0,80]],"news+1":[[0,48]]}'
    on_disk = parquet_on_disk(tmp_path)
    current = {
        task.file.file_path for t in COMMIT_ORDER for task in catalog.load_table(table_name(t)).scan().plan_files()
    }
    assert on_disk == current and all(os.path.exists(path) for path in current)


def test_a_rewrite_that_fails_leaves_the_table_and_no_merged_file(tmp_path, monkeypatch) -> None:
    lake, catalog = _ten_batches_over_two_hours(tmp_path)
    before, on_disk = rows(catalog), parquet_on_disk(tmp_path)

    def disk_gone(*_: object) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(compaction, "parquet_file_to_data_file", disk_gone)  # fails inside the transaction
    with pytest.raises(OSError, match="the disk went away"):
        compact(lake)
    assert parquet_on_disk(tmp_path) == on_disk and rows(catalog) == before
    assert all(len(catalog.load_table(table_name(t)).snapshots()) == 10 for t in COMMIT_ORDER)
    monkeypatch.undo()
    assert len(compact(lake)) == 12 and rows(catalog) == before
