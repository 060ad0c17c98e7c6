"""``--runner=PrismRunner`` named explicitly: the locally built Prism runs the real pipeline, nothing is downloaded."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.integration.helpers import assert_each_once, run_until_caught_up

pytestmark = pytest.mark.integration


def _story(index: int) -> bytes:
    body = f"Story {index}: the mayor of Leeds opened a library for {index} children on Monday."
    return json.dumps({"url": f"https://prism.example/{index}", "body": body}).encode()


def test_prism_runner_accounts_for_every_record(bootstrap_servers: str, prism: Path, tmp_path: Path) -> None:
    topic = f"prism-{uuid.uuid4().hex[:10]}"
    values = [_story(i) for i in range(9)]
    values[4] = b"not json at all"
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=[b"k%d" % (i % 3) for i in range(9)])
    lake = tmp_path / "lake"

    result = run_until_caught_up(lake, topic, bootstrap_servers, "--runner=PrismRunner")

    output = result.stdout + result.stderr
    assert "finished: DONE on Prism (portable)" in result.stdout
    assert "github.com" not in output and "Falling back" not in output and "download" not in output.lower()
    assert "read (records accounted for this run): 9" in result.stdout
    assert_each_once(lake, {(topic, partition, offset) for partition, offset in placed})
