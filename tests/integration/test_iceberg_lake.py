"""``wirestream run --table-format iceberg`` against the real broker on the default runner.

The lake's tables become Apache Iceberg tables (catalog in ``LAKE/_catalog/``): every consumed
record lands once in the accounting tables, a second run resumes from the ``_records`` table's
covered ranges (no record read twice, none skipped), the group's offsets follow the lake, and
``wirestream query`` and pyiceberg's own scan read the same rows. A lake keeps its format.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from pipelines.produce import produce
from schemas import arrow
from tests.integration.helpers import (
    assert_each_once,
    committed_offsets,
    reports,
    run_until_caught_up,
    subprocess_env,
    wirestream,
)
from tests.kit import ROOT

pytestmark = pytest.mark.integration


def _failing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=subprocess_env(),
    )  # fmt: skip


def test_an_iceberg_lake_accounts_for_every_record_once_and_resumes_from_its_tables(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"ice-{uuid.uuid4().hex[:10]}"
    lake = tmp_path / "lake"
    placed = produce(reports(0, 24, "ice.example"), bootstrap_servers, topic, partitions=2)
    run_until_caught_up(lake, topic, bootstrap_servers, "--table-format=iceberg", "--max-batch-records=5")
    assert (lake / "_catalog" / "catalog.db").is_file()
    assert not list(lake.glob("articles/dt=*"))  # no Hive folders
    assert_each_once(lake, {(topic, p, o) for p, o in placed})

    placed += produce(reports(100, 12, "ice.example"), bootstrap_servers, topic, partitions=2)
    result = run_until_caught_up(lake, topic, bootstrap_servers)  # the lake's own format
    assert "read (records accounted for this run): 12" in result.stdout
    assert_each_once(lake, {(topic, p, o) for p, o in placed})
    ends = {p: max(o for q, o in placed if q == p) + 1 for p in (0, 1)}
    assert committed_offsets(bootstrap_servers, topic, partitions=2) == ends

    from pipelines.query import query
    from transforms.io.lake import Lake
    from transforms.io.lake.iceberg.read import catalog_for

    catalog = catalog_for(Lake(str(lake)))
    scanned = catalog.load_table("wirestream.articles").scan(selected_fields=("article_id",)).to_arrow()
    covered = catalog.load_table("wirestream._records").properties["wirestream.covered"]
    _, rows = query(str(lake), "SELECT article_id FROM articles")
    assert sorted(scanned["article_id"].to_pylist()) == sorted(row[0] for row in rows)
    _, hours = query(str(lake), "SELECT DISTINCT dt IS NOT NULL AND hour BETWEEN 0 AND 23 FROM dead_letters")
    assert hours == [(True,)]
    listing = wirestream("query", str(lake), "SELECT count(*) FROM dead_letters", "--format=csv")
    assert listing.stdout.splitlines() == ["count_star()", "2"]

    refused = _failing("run", f"--lake={lake}", f"--topic={topic}", f"--bootstrap-servers={bootstrap_servers}",
                       "--until-caught-up", "--table-format=hive")  # fmt: skip
    assert refused.returncode == 2
    assert "holds iceberg tables, not hive: a lake keeps one table format" in refused.stderr

    before = _files_per_table_hour(catalog)
    started = time.perf_counter()
    compacted = wirestream("compact", str(lake), "--retain=0")
    elapsed = time.perf_counter() - started
    after = _files_per_table_hour(catalog)
    print(f"wirestream compact: {before} -> {after} files per table-hour, {elapsed:.1f} s")
    assert any(count > 1 for count in before.values()) and after == dict.fromkeys(before, 1)
    groups = [count for count in before.values() if count > 1]
    assert compacted.stdout.splitlines()[-1] == f"compacted {len(groups)} file groups ({sum(groups)} files)"
    assert_each_once(lake, {(topic, p, o) for p, o in placed})
    assert catalog.load_table("wirestream._records").properties["wirestream.covered"] == covered
    again = catalog.load_table("wirestream.articles").scan(selected_fields=("article_id",)).to_arrow()
    assert sorted(again["article_id"].to_pylist()) == sorted(scanned["article_id"].to_pylist())
    current = {task.file.file_path for table in arrow.STORED_TABLES for task in _planned(catalog, table)}
    assert {str(path) for path in lake.glob("*/data/*/*.parquet")} == current  # --retain=0: replaced files deleted
    assert wirestream("compact", str(lake)).stdout.splitlines() == ["compacted 0 file groups (0 files)"]


def test_iceberg_refuses_event_time_partitions_before_touching_the_lake(bootstrap_servers: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    refused = _failing("run", f"--lake={lake}", "--topic=never-read", f"--bootstrap-servers={bootstrap_servers}",
                       "--until-caught-up", "--table-format=iceberg", "--partition-by=event_time")  # fmt: skip
    assert refused.returncode == 2
    assert "--table-format iceberg partitions by ingestion hour only" in refused.stderr
    assert not lake.exists()


def _planned(catalog, table: str) -> list:
    return list(catalog.load_table(f"wirestream.{table}").scan().plan_files())


def _files_per_table_hour(catalog) -> dict[tuple[str, str], int]:
    """Files of each (table, hour folder) in the tables' current snapshots."""
    return dict(
        Counter(
            (table, task.file.file_path.split("/")[-2])
            for table in arrow.STORED_TABLES
            for task in _planned(catalog, table)
        )
    )
