"""The lake on a real S3 server (SeaweedFS on 127.0.0.1, ``infra/s3/``): the same guarantees as on disk.

Conditional writes really refuse the loser; of two launchers racing for a lake's lease exactly one
wins; a committed batch survives a crash before its files are in place; ``_SUCCESS`` markers;
compaction never shows the lake's readers a row twice or misses one, while a plain listing of the
folder can see both copies until the replaced files are deleted, and recovery deletes them after a
crash; ``wirestream query`` reads through pyarrow; no credential travels in a URI or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipelines.lifecycle import LakeBusyError, LakeLease
from pipelines.query import query
from schemas.arrow import STORED_TABLES, TABLES
from schemas.records import SourceBatch
from tests.conftest import INGESTED_AT_ANSWERS
from tests.kit import ROOT, article, dead_letter, read_while
from transforms.io.lake import (
    MANIFEST,
    STAGING,
    Lake,
    commit_batch,
    compact,
    covered_ranges,
    data_files,
    lake_files,
    mark_complete,
    recover,
)
from transforms.io.objects import ObjectLock

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def _batch(lake: Lake, partition: int, first: int, size: int = 2, at: dt.datetime = T0) -> SourceBatch:
    batch = SourceBatch("news", partition, first, first + size, size)
    outcomes = [
        article(offset, batch, ingested_at=at) if offset % 2 == 0 else dead_letter(offset, batch, at=at)
        for offset in range(first, first + size)
    ]
    commit_batch(lake, batch, outcomes)
    return batch


def _plain_listing(lake: Lake, table: str) -> list[tuple[int, int]]:
    """(partition, offset) of every row a plain reader of the folder's ``*.parquet`` sees."""
    paths = [info.path for info in lake.list(lake.path(table), recursive=True) if info.path.endswith(".parquet")]
    table_ = ds.dataset(paths, format="parquet", filesystem=lake.fs).to_table(
        columns=["kafka_partition", "kafka_offset"]
    )
    return sorted(zip(table_["kafka_partition"].to_pylist(), table_["kafka_offset"].to_pylist(), strict=True))


def test_a_second_create_if_absent_is_refused_and_a_stale_replace_too(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    store, path = lake.conditional, lake.path("probe.json")
    first = store.create(path, b"1")
    assert first is not None
    assert store.create(path, b"2") is None  # the server answered 412: If-None-Match: *
    second = store.replace(path, b"3", first)
    assert second is not None and second != first
    assert store.replace(path, b"4", first) is None  # If-Match a version that is gone
    assert store.read(path) == (b"3", second)
    assert not store.delete(path, first)
    assert store.delete(path, second)
    assert store.read(path) is None


_RACER = """
import sys, time
from pipelines.lifecycle import LakeBusyError, LakeLease
from transforms.io.lake import Lake
lake = Lake(sys.argv[1])
lease = LakeLease(lake.fs, lake.root)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    lease.acquire(heartbeat=False)
    print("won", lease.run_id)
except LakeBusyError as error:
    print("lost", error)
"""


@pytest.mark.parametrize("stale_lease", [False, True], ids=["empty-lake", "stale-lease"])
def test_of_two_launchers_racing_for_the_lease_exactly_one_wins(s3_lake: str, stale_lease: bool) -> None:
    lake = Lake(s3_lake)
    for _ in range(2):
        if stale_lease:  # a lease left by a run on another host whose heartbeat stopped long ago
            gone = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).isoformat()
            record = {"run_id": "gone", "host": "elsewhere", "pid": 1, "process_start": "1"}
            record |= {"started_at": gone, "heartbeat_at": gone, "heartbeat": True}
            lake.write_bytes(lake.path("_lease.json"), json.dumps(record).encode())
        start_at = time.time() + 2.5  # both processes are up by then, and send at the same moment
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", _RACER, s3_lake, str(start_at)], cwd=ROOT, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outcomes = sorted(racer.communicate(timeout=60)[0].split(" ", 1)[0] for racer in racers)
        assert outcomes == ["lost", "won"]
        holder = LakeLease(lake.fs, lake.root).read()
        assert holder is not None and holder.run_id != "gone"
        if not stale_lease:
            lake.fs.delete_file(lake.path("_lease.json"))


def test_a_live_lease_is_refused_and_released_only_by_its_holder(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    holder = LakeLease(lake.fs, lake.root)
    holder.acquire()
    with pytest.raises(LakeBusyError, match="in use by run"):
        LakeLease(lake.fs, lake.root).acquire()
    holder.release()
    second = LakeLease(lake.fs, lake.root)
    second.acquire(heartbeat=False)
    holder.release()  # no longer its lease: leaves the second run's alone
    assert LakeLease(lake.fs, lake.root).read().run_id == second.run_id  # type: ignore[union-attr]
    second.release()
    assert not lake.exists(lake.path("_lease.json"))


def test_the_maintenance_lock_excludes_and_a_dead_holders_lock_is_taken_over(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    path = lake.path("_maintenance.lock")
    first = ObjectLock(lake.conditional, path, renew_s=0.2, stale_after_s=1.5)
    first.acquire()
    taken = threading.Event()
    second = ObjectLock(lake.conditional, path, renew_s=0.2, stale_after_s=1.5)
    waiter = threading.Thread(target=lambda: (second.acquire(poll_s=0.1), taken.set()))
    waiter.start()
    assert not taken.wait(2.5), "a second holder got the lock while the first renewed it"
    first._stop.set()  # the holder dies (kill -9): no more renewals, no release
    assert taken.wait(10), "a lock whose holder stopped renewing it was never taken over"
    waiter.join()
    second.release()
    assert not lake.exists(path)


def test_a_committed_batch_is_rolled_forward_after_a_crash_and_hours_that_ended_get_success(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    _batch(lake, 0, 0)
    batch = SourceBatch("news", 0, 2, 4, 2)
    # A crash after the manifest, before the files were moved: stage the batch by hand as the commit does.
    staged = Lake(s3_lake)
    commit_batch(staged, batch, [article(2, batch, ingested_at=T0), dead_letter(3, batch, at=T0)])
    final = lake.path("articles", "dt=2026-11-24", "hour=09", f"{batch.key}.parquet")
    staging = lake.path(STAGING, batch.key)
    lake.move(final, f"{staging}/articles/dt=2026-11-24/hour=09/{batch.key}.parquet")
    manifest = {"batch": {}, "files": [{"file": f"articles/dt=2026-11-24/hour=09/{batch.key}.parquet", "rows": 1}]}
    lake.write_atomically(f"{staging}/{MANIFEST}", json.dumps(manifest).encode())
    uncommitted = lake.path(STAGING, "news+0+0000000000000000004+0000000000000000006")
    lake.write_bytes(f"{uncommitted}/articles/x.parquet", b"half a file")
    assert recover(lake) == (1, 1)
    assert covered_ranges(lake) == {("news", 0): [(0, 2), (2, 4)]}
    assert not [info for info in lake.list(lake.path(STAGING), recursive=True) if info.type == pafs.FileType.File]
    assert mark_complete(lake, T0 + dt.timedelta(hours=1)) == [
        "articles/dt=2026-11-24/hour=09",
        "dead_letters/dt=2026-11-24/hour=09",
    ]
    assert lake.exists(lake.path("articles", "dt=2026-11-24", "hour=09", "_SUCCESS"))
    assert mark_complete(lake, T0 + dt.timedelta(hours=1)) == []  # never twice
    _, rows = query(s3_lake, "SELECT kafka_offset, dt, hour FROM articles ORDER BY 1")
    assert rows == [(0, dt.date(2026, 11, 24), "09"), (2, dt.date(2026, 11, 24), "09")]


def _many_small_files(lake: Lake, hours: int = 3, batches: int = 6) -> int:
    for hour in range(hours):
        for first in range(0, batches * 2, 2):
            _batch(lake, hour % 2, hour * 1000 + first, at=T0 - dt.timedelta(hours=hour))
    return hours * batches  # one article per batch


def test_readers_never_see_rows_twice_or_miss_any_while_compaction_runs(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    articles = _many_small_files(lake)
    sql = "SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM articles"
    # Any error is recorded (a file listed, then deleted before it was opened), and checked below.
    merged, results, errors = read_while(lambda: query(s3_lake, sql)[1][0], lambda: compact(lake))
    assert len([relative for relative, _ in merged if relative.startswith("articles/")]) == 3
    assert results, "the reader never got an answer"
    assert set(results) == {(articles, articles)}, "a reader saw rows twice or missed some"
    # A file listed, then deleted by the compaction before (or, on SeaweedFS, while) it was read:
    # the query fails and can simply run again; it never answers wrong.
    gone = ("not found", "no such file", "nosuchkey", "resource_not_found", "during getobject operation")
    assert all(any(word in error.lower() for word in gone) for error in errors), errors
    assert len(data_files(lake, "articles")) == 3
    assert compact(lake) == []


def test_a_crash_between_the_merged_upload_and_the_deletes_is_finished_by_recovery(
    s3_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(s3_lake)
    for first in (0, 2, 4):
        _batch(lake, 0, first)
    every_row = _plain_listing(lake, "articles")

    import transforms.io.lake.compaction as compaction

    real = compaction._compact_in_place

    def upload_then_die(lake_: Lake, table, merges) -> None:  # type: ignore[no-untyped-def]
        for merge in merges:
            lake_.write_table(lake_.path(merge.relative), compaction._merge_run(lake_, table, merge))
        raise KeyboardInterrupt("killed between the upload and the deletes")

    monkeypatch.setattr(compaction, "_compact_in_place", upload_then_die)
    with pytest.raises(KeyboardInterrupt):
        compact(lake)
    monkeypatch.setattr(compaction, "_compact_in_place", real)
    assert _plain_listing(lake, "articles") == sorted(every_row * 2)  # what a plain glob sees now: stated in docs
    _, rows = query(s3_lake, "SELECT kafka_partition, kafka_offset FROM articles ORDER BY ALL")
    assert rows == every_row  # the lake's readers skip the replaced files
    assert not lake.exists(lake.path("_maintenance.lock"))  # released on the way out
    recover(lake)
    assert _plain_listing(lake, "articles") == every_row
    assert [path.rsplit("/", 1)[1] for path in data_files(lake, "articles")] == [
        "news+0+0000000000000000000+0000000000000000006.parquet"
    ]


def test_older_files_without_ingested_at_read_filled_and_compact_in_place(
    s3_lake: str, lake_from_before_ingested_at: Path
) -> None:
    """Through pyarrow (the object-store path of ``wirestream query``) and the upload-then-delete merge."""
    lake = Lake(s3_lake)
    for table in STORED_TABLES:
        if (lake_from_before_ingested_at / table).is_dir():
            pafs.copy_files(str(lake_from_before_ingested_at / table), lake.path(table), destination_filesystem=lake.fs)
    for sql, filled in INGESTED_AT_ANSWERS.values():
        assert query(s3_lake, sql)[1] == filled
    merged = sorted(relative.split("/")[0] for relative, _ in compact(lake))
    assert merged == ["_records", "articles", "dead_letters", "entities"]
    for table in ("entities", "dead_letters"):
        (path,) = data_files(lake, table)
        assert pq.read_schema(path, filesystem=lake.fs).equals(TABLES[table], check_metadata=False)
    for sql, filled in INGESTED_AT_ANSWERS.values():
        assert query(s3_lake, sql)[1] == filled


def test_no_credential_travels_in_the_lake_uri_or_a_log_line(s3_lake: str, caplog: pytest.LogCaptureFixture) -> None:
    import os

    bucket = s3_lake.removeprefix("s3://").split("/")[0]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    for uri in (f"s3://key:{secret}@{bucket}/lake", f"s3://{bucket}/lake?secret_key={secret}"):
        with pytest.raises(ValueError, match="must not carry") as refused:
            Lake(uri)
        assert secret not in str(refused.value)
    refused = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "query", f"s3://key:{secret}@{bucket}/lake", "SELECT 1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "must not carry" in refused.stderr
    assert secret not in refused.stdout + refused.stderr
    Lake(s3_lake)
    with caplog.at_level(logging.INFO):
        logging.getLogger("wirestream.test").warning("signing with %s", secret)
    assert secret not in "".join(handler.format(r) for handler in logging.getLogger().handlers for r in caplog.records)


def test_a_batch_committed_again_is_the_same_files_and_its_commit_time_is_measured(  # type: ignore[no-untyped-def]
    s3_lake: str, tmp_path, capsys
) -> None:
    """A runner retry writes the same names with the same rows, on S3 as locally. The median time
    of a commit is printed, not checked: a measurement, not a limit."""
    batch = SourceBatch("news", 0, 0, 20, 20)
    outcomes = [article(offset, batch, ingested_at=T0) for offset in range(20)]
    medians = {}
    for name, uri in (("local", str(tmp_path)), ("s3", s3_lake)):
        lake = Lake(uri)
        times = []
        for _ in range(7):
            started = time.perf_counter()
            commit_batch(lake, batch, outcomes)
            times.append(time.perf_counter() - started)
        medians[name] = statistics.median(times)
    with capsys.disabled():
        print(
            f"\ncommit of a 20-record batch, median of 7: local {medians['local'] * 1000:.0f} ms, "
            f"s3 {medians['s3'] * 1000:.0f} ms"
        )
    assert covered_ranges(Lake(s3_lake)) == {("news", 0): [(0, 20)]}
    assert sorted(lake_files(Lake(s3_lake))) == [
        f"{table}/dt=2026-11-24/hour=09/{batch.key}.parquet" for table in ("_records", "articles")
    ]
    _, rows = query(s3_lake, "SELECT count(*), count(DISTINCT kafka_offset) FROM articles")
    assert rows == [(20, 20)]
