"""The real pipeline on embedded Flink (``--flink_master=[local]``, parallelism 2), broker → lake.

NOT VERIFIED HERE: the Maven registry this project's machines reach does not serve
``beam-runners-flink-*-job-server`` (any Flink variant, Beam 2.75.0), so ``make flink`` fails and this
test skips with that reason. It is written to run wherever ``make flink`` succeeds (or
``WIRESTREAM_FLINK_JOB_SERVER_JAR`` names the jar). The Python harness runs in LOOPBACK mode (the
FlinkRunner's default for ``[local]``), so no Docker is needed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from pipelines.runners import flink_job_server_jar
from tests.integration.helpers import assert_each_once, run_until_caught_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def job_server_jar() -> Path:
    jar = flink_job_server_jar(os.environ)
    if not jar.exists():
        pytest.skip(f"Beam's Flink job server is not at {jar}: `make flink` could not resolve it from the registry")
    return jar


def test_flink_local_parallelism_two_accounts_for_every_record(
    job_server_jar: Path, bootstrap_servers: str, tmp_path: Path
) -> None:
    topic = f"flink-{uuid.uuid4().hex[:10]}"
    values = [
        json.dumps(
            {"url": f"https://flink.example/{i}", "body": f"Note {i}: the Rotterdam port authority met."}
        ).encode()
        for i in range(30)
    ]
    values[7] = b"\xff not utf-8"
    placed = produce(values, bootstrap_servers, topic, partitions=3)
    lake = tmp_path / "lake"

    started = time.monotonic()
    result = run_until_caught_up(
        lake,
        topic,
        bootstrap_servers,
        "--runner=FlinkRunner",
        "--flink_master=[local]",
        "--parallelism=2",
        f"--flink_job_server_jar={job_server_jar}",
        timeout=170,
    )
    elapsed = time.monotonic() - started

    assert "read (records accounted for this run): 30" in result.stdout, result.stdout
    assert_each_once(lake, {(topic, partition, offset) for partition, offset in placed})
    assert elapsed < 170
