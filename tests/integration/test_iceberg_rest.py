"""``wirestream run --iceberg-catalog-uri`` against a real Iceberg REST catalog and the real broker.

The catalog is the Iceberg project's own REST test server (``infra/iceberg-rest``), its backend a
JDBC catalog on SQLite, its S3 file IO on the local S3 server (SeaweedFS, ``infra/s3``). On a lake
on this machine's disk and on an ``s3://`` lake: every consumed record lands once, the URI is
recorded in the lake so a second run (without the option) and ``wirestream query`` find the
catalog and resume from the tables, and on S3 a ``kill -9`` mid-run is recovered by the next run
with nothing left in ``_staging/``, then ``wirestream compact`` rewrites it on S3 with the
accounting unchanged. A lake's catalog never changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pipelines.lake_check import catalog_uri_for, table_format_for
from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import (
    accounted,
    assert_each_once,
    kill_group,
    reports,
    run_until_caught_up,
    start_streaming,
    wirestream,
)
from transforms.errors import UserError
from transforms.io.lake import STAGING, Lake, lake_files

pytestmark = pytest.mark.integration


def _count(lake: str, table: str) -> int:
    return int(query(lake, f"SELECT count(*) FROM {table}")[1][0][0])


def test_a_lake_on_disk_with_a_rest_catalog_records_it_and_resumes_from_its_tables(
    bootstrap_servers: str, prism: Path, iceberg_rest: str, tmp_path: Path
) -> None:
    topic = f"rest-{uuid.uuid4().hex[:10]}"
    lake = tmp_path / "lake"
    placed = produce(reports(0, 20, "rest.example"), bootstrap_servers, topic, partitions=2)
    run_until_caught_up(
        lake, topic, bootstrap_servers, f"--iceberg-catalog-uri={iceberg_rest}/", "--max-batch-records=10"
    )
    assert json.loads((lake / "_catalog" / "catalog.json").read_text()) == {"catalog": "rest", "uri": iceberg_rest}
    assert not (lake / "_catalog" / "catalog.db").exists()  # no embedded catalog beside it
    assert not list(lake.glob("articles/dt=*"))  # Iceberg tables, not Hive folders
    assert_each_once(lake, {(topic, p, o) for p, o in placed})

    placed += produce(reports(100, 10, "rest.example"), bootstrap_servers, topic, partitions=2)
    result = run_until_caught_up(lake, topic, bootstrap_servers)  # the recorded catalog, without the option
    assert "read (records accounted for this run): 10" in result.stdout
    assert_each_once(lake, {(topic, p, o) for p, o in placed})
    assert _count(str(lake), "dead_letters") == 2

    with pytest.raises(
        UserError, match=re.escape(f"records the Iceberg catalog {iceberg_rest}, not http://127.0.0.1:1:")
    ):
        catalog_uri_for(Lake(str(lake)), "http://127.0.0.1:1/")


def test_iceberg_on_an_object_store_needs_a_rest_catalog(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    with pytest.raises(UserError, match="needs --iceberg-catalog-uri"):
        table_format_for(lake, "iceberg", "ingestion_time")
    assert table_format_for(lake, "iceberg", "ingestion_time", "http://c:8181") == "iceberg"


def _staged(lake: Lake) -> list[str]:
    return [info.path for info in lake.list(lake.path(STAGING))] if lake.exists(lake.path(STAGING)) else []


def _kill_while_staging(process: subprocess.Popen[bytes], lake: Lake, timeout: float = 90) -> bool:
    """Kill -9 the run as soon as a batch shows in ``_staging/``; True if one did before ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if _staged(lake):
                return True
            time.sleep(0.02)
        return False
    finally:
        kill_group(process)  # also when looking failed: a run left streaming outlives the test


def test_an_s3_lake_with_a_rest_catalog_accounts_once_and_recovers_from_kill_nine(
    bootstrap_servers: str, prism: Path, iceberg_rest: str, s3_lake: str, tmp_path: Path
) -> None:
    topic = f"rest-s3-{uuid.uuid4().hex[:10]}"
    placed = produce(reports(0, 60, "rest.example"), bootstrap_servers, topic, partitions=2)
    lake = Lake(s3_lake)
    log = tmp_path / "run.log"
    uri = f"--iceberg-catalog-uri={iceberg_rest}"
    process = start_streaming(s3_lake, topic, bootstrap_servers, log, uri, "--max-batch-records=5")
    assert _kill_while_staging(process, lake), log.read_text()[-3000:]
    with lake.fs.open_input_stream(lake.path("_catalog", "catalog.json")) as stream:
        assert json.loads(stream.read()) == {"catalog": "rest", "uri": iceberg_rest}

    placed += produce(reports(200, 10, "rest.example"), bootstrap_servers, topic, partitions=2)
    run_until_caught_up(s3_lake, topic, bootstrap_servers)  # the recorded catalog: recovers, then resumes
    assert_each_once(s3_lake, {(topic, p, o) for p, o in placed})
    assert _staged(lake) == []
    assert _count(s3_lake, "dead_letters") == 2  # one per produce, none twice
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in log.read_text()  # handed to pyiceberg, never logged

    counts = accounted(s3_lake)
    files = len(lake_files(lake))
    compacted = wirestream("compact", s3_lake, "--retain=0")  # the rewrite on S3, through the REST catalog
    assert "compacted" in compacted.stdout
    assert len(lake_files(lake)) < files
    assert accounted(s3_lake) == counts


def test_a_rest_catalog_holding_another_lakes_tables_is_refused(iceberg_rest: str, tmp_path: Path) -> None:
    from transforms.io.lake.iceberg.catalog import ensure_tables, open_catalog

    first, second = Lake(str(tmp_path / "first")), Lake(str(tmp_path / "second"))
    tables = ensure_tables(open_catalog(first, iceberg_rest), first)
    assert tables["articles"].location() == str(tmp_path / "first" / "articles")
    with pytest.raises(ValueError, match=re.escape(f"wirestream.articles is at {tmp_path}/first/articles, not in")):
        ensure_tables(open_catalog(second, iceberg_rest), second)
