"""Streaming on Prism: records produced while the pipeline runs, a kill -9, a restart, a broker restart."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import (
    assert_each_once,
    committed_offsets,
    kill_group,
    start_streaming,
    wait_until_accounted,
)
from tests.kit import KAFKA_SCRIPT
from transforms.io.lake import STAGING

pytestmark = pytest.mark.integration


def _wave(name: str, count: int) -> list[bytes]:
    values = [
        json.dumps(
            {
                "url": f"https://stream.example/{name}/{i}",
                "body": f"Report {i} of wave {name}: officials in Oslo said the ferry to Bergen was late.",
            }
        ).encode()
        for i in range(count)
    ]
    values[count // 2] = b"\x00\xff broken bytes"
    return values


def test_a_streaming_run_rides_out_a_broker_restart_and_a_kill(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"stream-{uuid.uuid4().hex[:10]}"
    lake = tmp_path / "lake"
    log = tmp_path / "pipeline.log"
    expected: set[tuple[str, int, int]] = set()

    def send(values: list[bytes]) -> None:
        for partition, offset in produce(values, bootstrap_servers, topic, partitions=3):
            expected.add((topic, partition, offset))

    send(_wave("a", 30))
    pipeline = start_streaming(lake, topic, bootstrap_servers, log)
    try:
        wait_until_accounted(lake, expected)
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=True)  # while the run streams on
        time.sleep(3)
        subprocess.run([str(KAFKA_SCRIPT), "up"], check=True)
        send(_wave("b", 30))
        wait_until_accounted(lake, expected)
        send(_wave("c", 30))
        time.sleep(1.5)
        kill_group(pipeline)  # kill -9, likely with batches of wave c in flight
        send(_wave("d", 9))  # arrives while the pipeline is down
        pipeline = start_streaming(lake, topic, bootstrap_servers, log)
        send(_wave("e", 30))
        wait_until_accounted(lake, expected)
        ends: dict[int, int] = {}
        for _, partition, offset in expected:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        deadline = time.monotonic() + 20
        while committed_offsets(bootstrap_servers, topic) != ends and time.monotonic() < deadline:
            time.sleep(0.5)
        # While streaming, offsets reach the group only after the lake holds their batch, then all do.
        assert committed_offsets(bootstrap_servers, topic) == ends
        pipeline.send_signal(signal.SIGTERM)
        assert pipeline.wait(timeout=120) == 0
    finally:
        kill_group(pipeline)
    assert_each_once(lake, expected)
    assert not (lake / STAGING).exists() or not any((lake / STAGING).iterdir())
    _, doubled = query(str(lake), "SELECT article_id FROM articles GROUP BY 1 HAVING count(*) > 1")
    assert doubled == []
