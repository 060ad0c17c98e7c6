"""Chaos: kill -9 at random moments (one during a file write), a broker restart, a replay.

1,200 records over 3 partitions, with bad records and repeated stories among them. The streaming
pipeline is killed four times and restarted each time (once early, once mid-write, twice at
a random moment after that run committed something); the broker is restarted once mid-run; a
final ``--until-caught-up`` run finishes. Then every produced (partition, offset) must be in the
lake exactly once, every file must read back, compaction must keep it so, and a replay from the
earliest offset must add nothing.

The same on an S3 lake (the real local server, ``infra/s3/``), smaller to keep the suite's time:
300 records, a kill while a batch is being written after the run committed others, a kill at a
random moment after the next run committed something, then the end-to-end ``--until-caught-up``
run, ``wirestream query`` and ``wirestream compact`` through the CLI. The broker restart and the
replay are left to the local test: the resume point is computed by the same code from the same
file names, whatever the filesystem.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from pipelines.produce import produce
from pipelines.query import query
from schemas import arrow
from tests.integration.helpers import (
    accounted,
    assert_each_once,
    kill_group,
    reset_group_to_earliest,
    run_until_caught_up,
    start_streaming,
    subprocess_env,
    wirestream,
)
from tests.kit import KAFKA_SCRIPT, ROOT
from transforms.io.lake import STAGING, Lake, lake_files

pytestmark = pytest.mark.integration

RECORDS = 1200  # the suite's time budget; every kind of kill below still lands
KILLS = 4


def _values(rng: random.Random, records: int = RECORDS) -> list[bytes]:
    cities = ["Oslo", "Lagos", "Lima", "Hanoi", "Perth", "Quito", "Porto", "Accra"]
    values = []
    for i in range(records):
        if i % 37 == 0:
            values.append(b"{broken record %d" % i)
        elif i % 23 == 0 and values:
            values.append(values[-1])  # the same story twice
        else:
            city = cities[i % len(cities)]
            body = f"Bulletin {i}: the mayor of {city} met ministers from {rng.choice(cities)} on Tuesday."
            values.append(json.dumps({"url": f"https://chaos.example/{i}", "body": body}).encode())
    return values


def _kill_during_a_write(process: subprocess.Popen[bytes], lake: Path, timeout: float = 180) -> bool:
    """Kill -9 the moment a batch is being staged; True if one was caught mid-write."""
    staging = lake / STAGING
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if staging.exists() and any(staging.iterdir()):
                return True
            time.sleep(0.001)
        return False
    finally:
        kill_group(process)  # also when looking failed: a run left streaming outlives the test


def _committed_files(lake: Path) -> set[Path]:
    """The data files in the lake's table folders: committed ones, not batches staged in ``_staging/``
    (whose folders vanish while they are walked)."""
    return {path for table in arrow.TABLES for path in (lake / table).rglob("*.parquet")}


def _kill_after_progress(
    process: subprocess.Popen[bytes], lake: Path, rng: random.Random, timeout: float = 180
) -> bool:
    """Kill -9 at a random moment after this run committed its first new file; True if it did."""
    try:
        before = _committed_files(lake)
        deadline = time.monotonic() + timeout
        progressed = False
        while time.monotonic() < deadline and not progressed:
            progressed = bool(_committed_files(lake) - before)
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 3))
        return progressed
    finally:
        kill_group(process)


def test_kill_nine_broker_restart_and_replay_keep_the_accounting_exact(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    rng = random.Random(20261125)
    topic = f"chaos-{uuid.uuid4().hex[:10]}"
    lake = tmp_path / "lake"
    log = tmp_path / "pipeline.log"
    values = _values(rng)
    placed = produce(values, bootstrap_servers, topic, partitions=3)
    expected = {(topic, p, o) for p, o in placed}

    caught_mid_write = False
    killed_after_a_commit = 0
    for kill in range(KILLS):
        process = start_streaming(lake, topic, bootstrap_servers, log)
        if kill == 1:
            caught_mid_write = _kill_during_a_write(process, lake)
        elif kill == 0:
            time.sleep(rng.uniform(2, 8))  # possibly before anything was committed
            kill_group(process)
        else:
            killed_after_a_commit += _kill_after_progress(process, lake, rng)
        if kill == 2:
            subprocess.run([str(KAFKA_SCRIPT), "down"], check=True)
            subprocess.run([str(KAFKA_SCRIPT), "up"], check=True)
    assert caught_mid_write, "no kill landed during a file write"
    assert killed_after_a_commit >= 2, "too few kills landed after the run had committed something"

    run_until_caught_up(lake, topic, bootstrap_servers, timeout=900)
    counts = assert_each_once(lake, expected)
    assert not (lake / STAGING).exists() or not any((lake / STAGING).iterdir())
    for table in ("articles", "entities", "dead_letters"):
        _, rows = query(str(lake), f"SELECT count(*) FROM {table}")  # every file reads back whole
        assert rows[0][0] > 0
    _, reasons = query(str(lake), "SELECT reason, count(*) FROM dead_letters GROUP BY 1")
    assert reasons == [("not_json", sum(1 for value in values if value.startswith(b"{broken")))]

    files_before_compaction = len(list(lake.rglob("*.parquet")))
    compacted = wirestream("compact", str(lake))
    assert "compacted" in compacted.stdout
    assert len(list(lake.rglob("*.parquet"))) < files_before_compaction
    assert accounted(lake) == counts  # compaction keeps the accounting exactly

    reset_group_to_earliest(bootstrap_servers, topic)
    before = sorted(path.relative_to(lake) for path in lake.rglob("*.parquet"))
    replay = run_until_caught_up(lake, topic, bootstrap_servers)
    assert "read (records accounted for this run): 0" in replay.stdout
    assert sorted(path.relative_to(lake) for path in lake.rglob("*.parquet")) == before


def _object_files(lake: Lake, folder: str) -> set[str]:
    return {info.path for info in lake.list(lake.path(folder), recursive=True) if info.type == pafs.FileType.File}


def _wait_for_a_commit(lake: Lake, before: frozenset[str], deadline: float) -> bool:
    """Whether a file not in ``before`` was committed before ``deadline``.

    Looks every 0.25 s: each look lists every table (S3) or plans a scan of each (Iceberg), and
    done without pause the looking kept a core busy through the run's start-up."""
    while time.monotonic() < deadline and not lake_files(lake) - before:
        time.sleep(0.25)
    return bool(lake_files(lake) - before)


def _kill_mid_write_after_a_commit(process: subprocess.Popen[bytes], lake: Lake, timeout: float = 120) -> bool:
    """Kill -9 the moment a batch is being staged, once this run has committed one; True if caught so.

    After the first commit only the staging folder is looked at, as often as it answers."""
    try:
        deadline = time.monotonic() + timeout
        if not _wait_for_a_commit(lake, lake_files(lake), deadline):
            return False
        while time.monotonic() < deadline:
            if _object_files(lake, STAGING):
                return True
            time.sleep(0.005)
        return False
    finally:
        kill_group(process)


def _kill_after_an_s3_commit(process: subprocess.Popen[bytes], lake: Lake, rng: random.Random) -> bool:
    """Kill -9 at a random moment after this run committed a new file; True if it did."""
    try:
        progressed = _wait_for_a_commit(lake, lake_files(lake), time.monotonic() + 120)
        time.sleep(rng.uniform(0, 1.5))
        return progressed
    finally:
        kill_group(process)


def test_kill_nine_on_an_s3_lake_keeps_the_accounting_exact(
    bootstrap_servers: str, prism: Path, s3_lake: str, tmp_path: Path
) -> None:
    rng = random.Random(20261203)
    topic = f"chaos-s3-{uuid.uuid4().hex[:10]}"
    values = _values(rng, records=300)
    expected = {(topic, p, o) for p, o in produce(values, bootstrap_servers, topic, partitions=3)}
    lake = Lake(s3_lake)

    log = tmp_path / "pipeline.log"
    streaming = start_streaming(s3_lake, topic, bootstrap_servers, log, "--max-batch-records=20")
    assert _kill_mid_write_after_a_commit(streaming, lake), "no kill landed during a write after a commit"
    streaming = start_streaming(s3_lake, topic, bootstrap_servers, log, "--max-batch-records=20")
    assert _kill_after_an_s3_commit(streaming, lake, rng), "the second run committed nothing before its kill"

    finished = run_until_caught_up(s3_lake, topic, bootstrap_servers, timeout=600)
    assert "wirestream run finished: DONE" in finished.stdout
    counts = assert_each_once(s3_lake, expected)
    assert not _object_files(lake, STAGING)
    dead = sum(1 for value in values if value.startswith(b"{broken"))
    answer = wirestream("query", s3_lake, "SELECT reason, count(*) AS n FROM dead_letters GROUP BY 1", "--format=csv")
    assert answer.stdout.splitlines() == ["reason,n", f"not_json,{dead}"]
    assert f"s3://{lake.path('articles', 'dt=')}" in finished.stdout  # the summary names partitions by URL
    assert wirestream("report", s3_lake).stdout.strip() == f"report: {s3_lake}/_report/index.html"
    assert lake.exists(lake.path("_report", "index.html"))
    validated = subprocess.run(  # exit 1 when a partition fails a batch-level expectation: a verdict too
        [sys.executable, "-m", "pipelines.cli", "validate", s3_lake],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    _, articles = query(s3_lake, "SELECT count(*) FROM articles")
    assert validated.returncode in (0, 1), validated.stderr
    assert validated.stdout.rstrip().endswith(f", {articles[0][0]} articles)"), validated.stdout

    files_before_compaction = len(lake_files(lake))
    assert "compacted" in wirestream("compact", s3_lake).stdout
    assert len(lake_files(lake)) < files_before_compaction
    assert accounted(s3_lake) == counts  # compaction keeps the accounting exactly


def _iceberg_leftovers(lake: Path) -> set[str]:
    """Files in the tables' ``data/`` folders that no current snapshot holds (orphans, uncommitted)."""
    held = lake_files(Lake(str(lake)))
    present = {
        str(path.relative_to(lake)) for table in arrow.STORED_TABLES for path in (lake / table).rglob("*.parquet")
    }
    return present - held


def test_kill_nine_on_an_iceberg_lake_keeps_the_accounting_exact(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    """Iceberg tables: the committer is one step, so a kill lands between a batch's manifest and its
    snapshots, between the snapshots of its tables, or before its manifest; recovery rolls forward
    what has a manifest, the ``_records`` table's covered ranges are the resume point, orphans go."""
    rng = random.Random(20261204)
    topic = f"chaos-ice-{uuid.uuid4().hex[:10]}"
    values = _values(rng, records=400)
    expected = {(topic, p, o) for p, o in produce(values, bootstrap_servers, topic, partitions=3)}
    lake = tmp_path / "lake"
    log = tmp_path / "pipeline.log"
    iceberg = ("--table-format=iceberg", "--max-batch-records=20")

    streaming = start_streaming(lake, topic, bootstrap_servers, log, *iceberg)
    caught = _kill_mid_write_after_a_commit(streaming, Lake(str(lake)))
    assert caught, "no kill landed with a batch written but not yet committed, after a commit"
    streaming = start_streaming(lake, topic, bootstrap_servers, log, *iceberg)
    assert _kill_after_an_s3_commit(streaming, Lake(str(lake)), rng), "the second run committed nothing"
    streaming = start_streaming(lake, topic, bootstrap_servers, log, *iceberg)
    time.sleep(rng.uniform(1, 6))  # possibly while the run starts, recovers or commits
    kill_group(streaming)

    finished = run_until_caught_up(lake, topic, bootstrap_servers, timeout=600)
    assert "wirestream run finished: DONE" in finished.stdout
    assert_each_once(lake, expected)
    assert not (lake / STAGING).exists() or not any((lake / STAGING).iterdir())
    assert not _iceberg_leftovers(lake), "files left in data/ that no snapshot holds"
    _, reasons = query(str(lake), "SELECT reason, count(*) FROM dead_letters GROUP BY 1")
    assert reasons == [("not_json", sum(1 for value in values if value.startswith(b"{broken")))]

    reset_group_to_earliest(bootstrap_servers, topic)
    before = lake_files(Lake(str(lake)))
    replay = run_until_caught_up(lake, topic, bootstrap_servers)
    assert "read (records accounted for this run): 0" in replay.stdout
    assert lake_files(Lake(str(lake))) == before
