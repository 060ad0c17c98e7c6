"""The Iceberg lake's core: tables, batch files, the committer, recovery and expiry (no Beam, no Kafka).

Every batch here holds four offsets per cycle: an article (with one entity), a duplicate, a
quarantined article and a dead letter, so each batch writes a file to all six tables.
"""

import datetime as dt
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from typing import Any

import duckdb
import pytest
from pyiceberg.catalog import Catalog

from schemas import arrow
from schemas.records import Duplicate, Entity, Outcome, Quarantined, SourceBatch
from tests.kit import INGESTED_AT, ROOT, article, dead_letter
from transforms.io.lake import STAGING, Lake
from transforms.io.lake.iceberg import CATALOG, is_iceberg
from transforms.io.lake.iceberg.catalog import (
    PARTITION_FIELD,
    SCHEMA_VERSION,
    data_schemas,
    ensure_tables,
    open_catalog,
    table_name,
)
from transforms.io.lake.iceberg.commit import (
    COMMIT_ORDER,
    COVERED,
    Recovered,
    commit_manifests,
    commit_table,
    covered_ranges,
    expire,
    recover,
)
from transforms.io.lake.iceberg.durable import DurableFileIO
from transforms.io.lake.iceberg.files import BatchManifest, write_batch

TOPIC = "news"


LATE = INGESTED_AT + dt.timedelta(minutes=45)  # 10:15, the hour after INGESTED_AT's


def outcomes(batch: SourceBatch, late_from: int | None = None) -> list[Outcome]:
    """One outcome per offset: article, duplicate, quarantined, dead letter, in turn by offset.

    All read at :data:`INGESTED_AT`, or from offset ``late_from`` on, at :data:`LATE`.
    """
    made: list[Outcome] = []
    for offset in range(batch.first_offset, batch.end_offset):
        at = LATE if late_from is not None and offset >= late_from else INGESTED_AT
        entities = (Entity("Lloyd Austin", "PERSON", 0, 12, "Lloyd Austin", "lloyd austin"),)
        kept = article(offset, batch, entities=entities, ingested_at=at)
        made.append(
            [
                kept,
                Duplicate(kept, duplicate_of="a0", similarity=1.0, method="exact"),
                Quarantined(kept, failed_expectations=("word_count_positive",)),
                dead_letter(offset, batch, at=at),
            ][offset % 4]
        )
    return made


def open_lake(path) -> tuple[Lake, Catalog]:
    lake = Lake(str(path))
    catalog = open_catalog(lake)
    ensure_tables(catalog, lake)
    return lake, catalog


def written(lake: Lake, catalog: Catalog, partition: int, first: int, end: int) -> BatchManifest:
    batch = SourceBatch(TOPIC, partition, first, end, end - first)
    return write_batch(lake, batch, outcomes(batch), data_schemas(catalog))


def offsets(catalog, table: str) -> list[tuple[int, int]]:
    """``(partition, offset)`` of every row of a table, as pyiceberg scans it, sorted."""
    scanned = catalog.load_table(table_name(table)).scan(selected_fields=("kafka_partition", "kafka_offset"))
    rows = scanned.to_arrow().to_pylist()
    return sorted((row["kafka_partition"], row["kafka_offset"]) for row in rows)


def accounted(catalog) -> list[tuple[int, int]]:
    """``(partition, offset)`` over the four accounting tables, with repeats, sorted."""
    return sorted(pair for table in arrow.ACCOUNTING_TABLES for pair in offsets(catalog, table))


def row_counts(catalog) -> dict[str, int]:
    return {table: len(catalog.load_table(table_name(table)).scan().to_arrow()) for table in arrow.STORED_TABLES}


def test_tables_are_the_stored_tables_partitioned_by_ingestion_hour(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    assert not is_iceberg(lake)
    catalog = open_catalog(lake)
    tables = ensure_tables(catalog, lake)
    assert is_iceberg(lake) and (tmp_path / CATALOG / "catalog.db").is_file()
    assert list(tables) == list(arrow.STORED_TABLES)
    for name, table in tables.items():
        assert table.location() == str(tmp_path / name)
        assert [field.name for field in table.schema().fields] == arrow.STORED_TABLES[name].names
        required = {field.name for field in table.schema().fields if field.required}
        assert required == {field.name for field in arrow.STORED_TABLES[name] if not field.nullable}
        (partition,) = table.spec().fields
        assert (partition.name, str(partition.transform)) == (PARTITION_FIELD, "hour")
        assert table.schema().find_field(partition.source_id).name == "ingested_at"
        assert table.properties["wirestream.schema-version"] == str(SCHEMA_VERSION)
        assert table.properties["commit.retry.num-retries"] == "0"
        assert table.current_snapshot() is None
    again = ensure_tables(open_catalog(lake), lake)  # idempotent
    assert {name: t.metadata_location for name, t in again.items()} == {
        name: t.metadata_location for name, t in tables.items()
    }


def _open_at_once(root: str, barrier: Any) -> str:
    barrier.wait()
    try:
        open_catalog(Lake(root))
    except Exception as error:  # noqa: BLE001 (the error is the test's answer)
        return f"{type(error).__name__}: {error}"
    return "opened"


def test_processes_opening_a_new_lakes_catalog_at_once_all_open_it(tmp_path) -> None:
    """pyiceberg creates the SQLite catalog's tables when it finds none: without the lock two
    processes (a first run and a reader) both create them and one fails ("already exists")."""
    context = multiprocessing.get_context("fork")
    for attempt in range(4):
        root = tmp_path / f"lake-{attempt}"
        with context.Manager() as manager, context.Pool(6) as pool:
            barrier = manager.Barrier(6)
            answers = pool.starmap(_open_at_once, [(str(root), barrier)] * 6)
        assert answers == ["opened"] * 6, answers


def test_a_reader_that_cannot_create_the_lock_file_still_opens_the_catalog(tmp_path) -> None:
    """A read-only lake (here: the lock's name taken by a folder) is read without the lock."""
    ensure_tables(open_catalog(Lake(str(tmp_path))), Lake(str(tmp_path)))
    (tmp_path / CATALOG / "catalog.lock").unlink()
    (tmp_path / CATALOG / "catalog.lock").mkdir()
    assert open_catalog(Lake(str(tmp_path))).table_exists(table_name("articles"))


def test_every_metadata_file_a_commit_names_is_fsynced_before_it_lands(tmp_path, monkeypatch) -> None:
    lake, catalog = open_lake(tmp_path)
    manifest = written(lake, catalog, 0, 0, 8)
    synced, fsync = [], os.fsync

    def recording_fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    commit_manifests(catalog, lake, [manifest])
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        assert isinstance(loaded.io, DurableFileIO)
        snapshot = loaded.current_snapshot()
        written_files = {loaded.metadata_location, snapshot.manifest_list}
        written_files.update(manifest_file.manifest_path for manifest_file in snapshot.manifests(loaded.io))
        assert len(written_files) == 3 and written_files <= set(synced), table
        assert f"{tmp_path}/{table}/metadata" in synced


def test_a_table_recorded_by_another_schema_version_is_refused(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    with catalog.load_table(table_name("duplicates")).transaction() as transaction:
        transaction.set_properties({"wirestream.schema-version": str(SCHEMA_VERSION + 1)})
    with pytest.raises(ValueError, match=f"records wirestream schema version {SCHEMA_VERSION + 1}"):
        ensure_tables(catalog, lake)


def test_a_table_without_ingested_at_is_refused(tmp_path, monkeypatch) -> None:
    import pyarrow as pa

    lake = Lake(str(tmp_path))
    monkeypatch.setitem(arrow.STORED_TABLES, "entities", pa.schema([pa.field("article_id", pa.string())]))
    with pytest.raises(ValueError, match="entities needs a required ingested_at"):
        ensure_tables(open_catalog(lake), lake)


def test_a_committed_batch_is_one_snapshot_per_table_and_the_resume_point(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    first = written(lake, catalog, 0, 0, 8)
    second = written(lake, catalog, 0, 8, 16)
    assert sorted(os.listdir(tmp_path / STAGING)) == [first.key, second.key]
    added = commit_manifests(catalog, lake, [first, second])
    assert added == {"articles": 4, "entities": 4, "duplicates": 4, "quarantine": 4, "dead_letters": 4, "_records": 16}
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 16)]}
    assert os.listdir(tmp_path / STAGING) == []
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        (snapshot,) = loaded.snapshots()
        summary = snapshot.summary.additional_properties
        assert summary["wirestream.ranges"] == '{"news+0":[[0,16]]}'
        assert summary["wirestream.batches"] == f"{first.key},{second.key}"
        assert loaded.properties[COVERED] == '{"news+0":[[0,16]]}'
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(16)]
    assert accounted(catalog) == [(0, offset) for offset in range(16)]
    file = next(iter(catalog.load_table(table_name("articles")).scan().plan_files())).file.file_path
    assert file.startswith(f"{tmp_path}/articles/data/{PARTITION_FIELD}=2026-11-24-09/news+0+")


def test_a_batch_spanning_an_hour_lands_in_both_hour_partitions_and_prunes(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    batch = SourceBatch(TOPIC, 0, 0, 8, 8)
    manifest = write_batch(lake, batch, outcomes(batch, late_from=4), data_schemas(catalog))
    assert sorted({file.path.split("/")[-2] for file in manifest.files}) == [
        f"{PARTITION_FIELD}=2026-11-24-09",
        f"{PARTITION_FIELD}=2026-11-24-10",
    ]
    assert len(manifest.files) == 12  # six tables, two hours each
    commit_manifests(catalog, lake, [manifest])
    records = catalog.load_table(table_name("_records"))
    hour = int(INGESTED_AT.timestamp()) // 3600  # Iceberg's hour: hours since the epoch
    assert sorted(task.file.partition[0] for task in records.scan().plan_files()) == [hour, hour + 1]
    from_ten = records.scan(row_filter="ingested_at >= '2026-11-24T10:00:00+00:00'")
    (task,) = from_ten.plan_files()  # the 09:00 file is pruned
    assert task.file.file_path.split("/")[-2] == f"{PARTITION_FIELD}=2026-11-24-10"
    assert sorted(from_ten.to_arrow()["kafka_offset"].to_pylist()) == [4, 5, 6, 7]


def test_committing_the_same_manifest_again_adds_no_row(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    manifest = written(lake, catalog, 0, 0, 8)
    commit_manifests(catalog, lake, [manifest])
    before = row_counts(catalog)
    assert commit_manifests(catalog, lake, [manifest]) == {}
    assert row_counts(catalog) == before == {
        "articles": 2, "entities": 2, "duplicates": 2, "quarantine": 2, "dead_letters": 2, "_records": 8,
    }  # fmt: skip
    assert all(len(catalog.load_table(table_name(t)).snapshots()) == 1 for t in COMMIT_ORDER)
    retried = written(lake, catalog, 0, 0, 8)  # a runner retry: new files, same range
    assert commit_manifests(catalog, lake, [retried]) == {}
    assert row_counts(catalog) == before
    assert recover(lake, catalog) == Recovered(rolled_forward=0, discarded=0, orphans=6)  # the retry's files
    twice = [written(lake, catalog, 0, 8, 12), written(lake, catalog, 0, 8, 12)]  # one batch given twice
    assert commit_manifests(catalog, lake, twice)["_records"] == 4
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(12)]


def test_a_crash_between_tables_is_rolled_forward_once(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    commit_manifests(catalog, lake, [written(lake, catalog, 0, 0, 8)])
    crashed = written(lake, catalog, 0, 8, 16)
    for table in COMMIT_ORDER[:3]:  # the committer died after three of six tables
        commit_table(catalog, table, [crashed])
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 8)]}  # _records, last, does not carry it yet
    assert recover(lake, catalog) == Recovered(rolled_forward=1, discarded=0, orphans=0)
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 16)]}
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(16)]
    assert accounted(catalog) == [(0, offset) for offset in range(16)]
    assert row_counts(catalog)["entities"] == 4
    for table in COMMIT_ORDER:
        assert len(catalog.load_table(table_name(table)).snapshots()) == 2, table
    assert recover(lake, catalog) == Recovered(rolled_forward=0, discarded=0, orphans=0)


def test_a_batch_partly_overlapping_a_committed_one_is_refused(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    commit_manifests(catalog, lake, [written(lake, catalog, 0, 0, 8)])
    with pytest.raises(ValueError, match=r"overlaps the committed range \[0, 8\)"):
        commit_manifests(catalog, lake, [written(lake, catalog, 0, 4, 12)])


def test_orphans_are_deleted_and_referenced_files_kept(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    commit_manifests(catalog, lake, [written(lake, catalog, 0, 0, 8)])
    pending = written(lake, catalog, 0, 8, 16)  # committed point reached, committer not run yet
    unlisted = written(lake, catalog, 0, 16, 24)
    os.remove(tmp_path / STAGING / unlisted.key / "_MANIFEST.json")  # as if it crashed before its manifest
    stray = tmp_path / "articles" / "metadata" / "00099-stray.metadata.json"  # a commit that lost its race
    stray.write_text("{}")
    referenced = {f.file.file_path for f in catalog.load_table(table_name("articles")).scan().plan_files()}
    assert expire(catalog, lake, keep=10) == 0 and stray.exists()  # too young: it may be a commit in flight
    assert recover(lake, catalog) == Recovered(rolled_forward=1, discarded=1, orphans=7)
    assert not stray.exists()
    assert all(not os.path.exists(file.path) for file in unlisted.files)
    assert all(os.path.exists(file.path) for file in pending.files)
    assert all(os.path.exists(path) for path in referenced)
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 16)]}
    assert accounted(catalog) == [(0, offset) for offset in range(16)]


def test_expiry_keeps_rows_and_coverage_and_deletes_only_what_it_expired(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    for first in range(0, 40, 8):
        commit_manifests(catalog, lake, [written(lake, catalog, 0, first, first + 8)])
    pending = written(lake, catalog, 0, 40, 48)
    counts, covered = row_counts(catalog), covered_ranges(catalog)
    metadata_files = len(os.listdir(tmp_path / "_records" / "metadata"))
    deleted = expire(catalog, lake, keep=2)
    assert deleted == 6 * 3  # per table: the manifest lists of the three expired snapshots (no manifest merged yet)
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        assert len(loaded.snapshots()) == 2, table
        assert loaded.properties[COVERED] == '{"news+0":[[0,40]]}'
    assert row_counts(catalog) == counts and covered_ranges(catalog) == covered
    assert len(os.listdir(tmp_path / "_records" / "metadata")) == metadata_files - 3 + 1  # and the new metadata.json
    assert all(os.path.exists(file.path) for file in pending.files)
    assert recover(lake, catalog) == Recovered(rolled_forward=1, discarded=0, orphans=0)  # nothing left over
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(48)]
    assert expire(catalog, lake, keep=2) == 6 and row_counts(catalog)["_records"] == 48


def _two_batches_and_one_uncommitted(path) -> object:
    lake, catalog = open_lake(path)
    commit_manifests(catalog, lake, [written(lake, catalog, 0, 0, 8), written(lake, catalog, 1, 0, 4)])
    written(lake, catalog, 0, 8, 16)  # its files lie in the data folders, but no reader may see them
    return catalog


def _in_order(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row.get("kafka_partition"), row.get("kafka_offset"), row.get("article_id")))


def test_duckdb_reads_the_planned_files_as_pyiceberg_scans_them(tmp_path) -> None:
    catalog = _two_batches_and_one_uncommitted(tmp_path)
    connection = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for table in arrow.STORED_TABLES:
        loaded = catalog.load_table(table_name(table))
        scanned = loaded.scan().to_arrow()
        assert scanned.schema.names == arrow.STORED_TABLES[table].names
        assert scanned.num_rows == (12 if table == "_records" else 3), table  # not the uncommitted 8
        paths = [task.file.file_path for task in loaded.scan().plan_files()]
        # hive_partitioning=false: DuckDB would add an ingested_at_hour column from the folder names
        query = "SELECT * FROM read_parquet(?, union_by_name=true, hive_partitioning=false)"
        from_duckdb = connection.sql(query, params=[paths]).to_arrow_table()
        assert _in_order(from_duckdb.to_pylist()) == _in_order(scanned.to_pylist()), table
    extension = "SELECT installed OR loaded FROM duckdb_extensions() WHERE extension_name = 'iceberg'"
    assert connection.execute(extension).fetchall() in ([], [(False,)])  # DuckDB read the plan, no extension


def test_polars_reads_the_tables_natively_through_the_field_ids(tmp_path) -> None:
    polars = pytest.importorskip("polars")
    catalog = _two_batches_and_one_uncommitted(tmp_path)
    for table in arrow.STORED_TABLES:
        loaded = catalog.load_table(table_name(table))
        from_polars = polars.scan_iceberg(loaded).collect().to_arrow()
        assert _in_order(from_polars.to_pylist()) == _in_order(loaded.scan().to_arrow().to_pylist()), table


# The committer as a separate process: says "ready" once its imports are done, waits for the start
# file when given one, then commits ``count`` batches of ``size`` records of one partition in a
# loop, printing each batch's end offset once committed.
_COMMITTER = """
import os
import sys
import time
from schemas.records import SourceBatch
from tests.unit.test_iceberg_lake import TOPIC, outcomes
from transforms.io.lake import Lake
from transforms.io.lake.iceberg.catalog import data_schemas, ensure_tables, open_catalog
from transforms.io.lake.iceberg.commit import commit_manifests, covered_ranges
from transforms.io.lake.iceberg.files import write_batch
from transforms.io.offsets import gapless_reach

lake = Lake(sys.argv[1])
partition, count, size = (int(value) for value in sys.argv[2:5])
catalog = open_catalog(lake)
ensure_tables(catalog, lake)
schemas = data_schemas(catalog)
print("ready", flush=True)
while len(sys.argv) > 5 and not os.path.exists(sys.argv[5]):
    time.sleep(0.01)  # every committer starts at once
start = gapless_reach(covered_ranges(catalog).get((TOPIC, partition), []), 0) or 0
for first in range(start, start + count * size, size):
    batch = SourceBatch(TOPIC, partition, first, first + size, size)
    commit_manifests(catalog, lake, [write_batch(lake, batch, outcomes(batch), schemas)])
    print(first + size, flush=True)
"""


def _committer(lake_path, partition: int, count: int, size: int, *start: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _COMMITTER, str(lake_path), str(partition), str(count), str(size), *start],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_kill_9_while_committing_then_recovery_leaves_every_offset_once(tmp_path) -> None:
    open_lake(tmp_path)
    size = 4
    child = _committer(tmp_path, 0, 1000, size)
    assert child.stdout is not None
    for _ in range(4):  # "ready", then three batches
        child.stdout.readline()  # three batches committed: the loop runs at full speed now
    time.sleep(0.05)  # into the middle of a later batch
    child.send_signal(signal.SIGKILL)
    child.wait()
    lake, catalog = Lake(str(tmp_path)), open_catalog(Lake(str(tmp_path)))
    recovered = recover(lake, catalog)
    assert recovered.rolled_forward + recovered.discarded <= 1
    ((key, ranges),) = covered_ranges(catalog).items()
    assert key == (TOPIC, 0) and len(ranges) == 1 and ranges[0][0] == 0
    end = ranges[0][1]
    assert end >= 3 * size and end % size == 0
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(end)]
    assert accounted(catalog) == [(0, offset) for offset in range(end)]
    for table in COMMIT_ORDER:
        assert catalog.load_table(table_name(table)).properties[COVERED] == f'{{"news+0":[[0,{end}]]}}', table
    assert os.listdir(tmp_path / STAGING) == []
    assert recover(lake, catalog) == Recovered(0, 0, 0)


def test_two_committers_on_one_catalog_keep_coverage_exact(tmp_path) -> None:
    open_lake(tmp_path)
    count, size = 5, 4
    start = tmp_path / "start"
    children = [_committer(tmp_path, partition, count, size, str(start)) for partition in (0, 1)]
    assert [child.stdout.readline() for child in children] == ["ready\n", "ready\n"]  # type: ignore[union-attr]
    start.touch()
    assert [child.wait() for child in children] == [0, 0]
    catalog = open_catalog(Lake(str(tmp_path)))
    expected = {(TOPIC, partition): [(0, count * size)] for partition in (0, 1)}
    assert covered_ranges(catalog) == expected
    every = [(partition, offset) for partition in (0, 1) for offset in range(count * size)]
    assert offsets(catalog, "_records") == every
    assert accounted(catalog) == every
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        assert loaded.properties[COVERED] == '{"news+0":[[0,20]],"news+1":[[0,20]]}', table


def test_expiry_while_a_committer_runs_deletes_no_file_a_snapshot_needs(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    start = tmp_path / "start"
    child = _committer(tmp_path, 0, 9, 4, str(start))
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    start.touch()
    expiries = 0
    while child.poll() is None:
        expire(catalog, lake, keep=2)
        expiries += 1
    assert child.returncode == 0 and expiries >= 1
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 36)]}
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(36)]  # every planned file reads
    assert accounted(catalog) == [(0, offset) for offset in range(36)]
    data_files = sorted(tmp_path.glob("*/data/*/*.parquet"))
    assert len(data_files) == 9 * 6
    recover(lake, catalog)  # deletes only metadata files: left by lost races and by pyiceberg's manifest merge
    assert sorted(tmp_path.glob("*/data/*/*.parquet")) == data_files
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(36)]


class _StaleFirst:
    """A catalog whose first load of each table returns the head a racing committer loaded."""

    def __init__(self, catalog, stale: dict) -> None:
        self.catalog, self.stale = catalog, stale

    def load_table(self, name: str):
        return self.stale.pop(name) if name in self.stale else self.catalog.load_table(name)


def test_a_commit_that_lost_the_race_reloads_and_keeps_both_ranges(tmp_path) -> None:
    lake, catalog = open_lake(tmp_path)
    stale = {table_name(table): catalog.load_table(table_name(table)) for table in COMMIT_ORDER}
    commit_manifests(catalog, lake, [written(lake, catalog, 1, 0, 4)])  # the other committer won
    assert commit_manifests(_StaleFirst(catalog, stale), lake, [written(lake, catalog, 0, 0, 8)])["_records"] == 8
    assert not stale  # every table's first attempt was against the stale head, and failed
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 8)], (TOPIC, 1): [(0, 4)]}
    for table in COMMIT_ORDER:
        loaded = catalog.load_table(table_name(table))
        assert loaded.properties[COVERED] == '{"news+0":[[0,8]],"news+1":[[0,4]]}', table
        assert len(loaded.snapshots()) == 2, table
    assert offsets(catalog, "_records") == [(0, offset) for offset in range(8)] + [(1, 0), (1, 1), (1, 2), (1, 3)]


def test_the_package_imports_no_pyiceberg() -> None:
    probe = "import sys, transforms.io.lake.iceberg; sys.exit('pyiceberg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT).returncode == 0


def test_a_lake_made_again_at_the_same_path_gets_a_catalog_of_its_own(tmp_path) -> None:
    import shutil

    from transforms.io.lake import data_files
    from transforms.io.lake.iceberg.read import catalog_for

    path = tmp_path / "lake"
    for first in (0, 100):  # the second lake must not be answered by the first one's open catalog
        lake = Lake(str(path))
        catalog = catalog_for(lake)
        assert catalog is catalog_for(Lake(str(path)))  # opened once per process and lake
        ensure_tables(catalog, lake)
        commit_manifests(catalog, lake, [written(lake, catalog, 0, first, first + 4)])
        assert covered_ranges(catalog_for(Lake(str(path)))) == {(TOPIC, 0): [(first, first + 4)]}
        assert len(data_files(Lake(str(path)), arrow.RECORD_LOG_TABLE)) == 1
        shutil.rmtree(path)
