"""A lake that refuses writes: the pipeline retries, then fails loudly, and commits no offset.

A lake read-only from the start refuses the run's lease first: the run retries that write for
``--lake-retry-seconds`` like a batch's, then refuses to start (exit 2) before reading anything.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.integration.helpers import assert_each_once, committed_offsets, run_args, run_until_caught_up
from tests.kit import ROOT

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """``folder`` read-only even for root (``chattr +i``) while the block runs; skipped where it cannot be."""
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip(f"the filesystem under {folder} does not support chattr +i")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _run_until_caught_up(lake: Path, topic: str, servers: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``wirestream run --until-caught-up`` at the default log level, not checked (these runs must fail)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, servers), "--until-caught-up", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr to make a folder read-only for root")
def test_read_only_lake_fails_loudly_and_commits_nothing(bootstrap_servers: str, prism: Path, tmp_path: Path) -> None:
    topic = f"ro-{uuid.uuid4().hex[:10]}"
    values = [
        json.dumps({"url": f"https://ro.example/{i}", "body": f"Item {i} about Madrid."}).encode() for i in range(9)
    ]
    placed = produce(values, bootstrap_servers, topic, partitions=3)
    lake = tmp_path / "lake"
    lake.mkdir()
    with _immutable(lake):
        result = _run_until_caught_up(lake, topic, bootstrap_servers, "--lake-retry-seconds=2")
    output = result.stdout + result.stderr
    assert result.returncode == 2  # refused at launch: nothing was read
    assert "retrying" in output and "Traceback" not in output
    assert result.stderr.splitlines()[-1].startswith(
        f"wirestream run: cannot write the lake's lease at {lake}/_lease.json"
    )
    assert result.stderr.endswith(
        "make the lake folder writable (permissions, a read-only mount, free space) or give another --lake\n"
    )
    assert committed_offsets(bootstrap_servers, topic) == {0: None, 1: None, 2: None}
    assert not list(lake.rglob("*.parquet"))

    run_until_caught_up(lake, topic, bootstrap_servers)
    assert_each_once(lake, {(topic, p, o) for p, o in placed})


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr to make a folder read-only for root")
def test_a_lake_that_refuses_batches_fails_the_run_with_exit_1(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    """The lease is written, then every batch is refused: the job fails, the CLI says so in its last words."""
    topic = f"ro-{uuid.uuid4().hex[:10]}"
    produce(
        [json.dumps({"url": "https://ro.example/1", "body": "One item about Madrid."}).encode()],
        bootstrap_servers,
        topic,
        1,
    )
    lake = tmp_path / "lake"
    (lake / "_staging").mkdir(parents=True)
    with _immutable(lake / "_staging"):
        result = _run_until_caught_up(lake, topic, bootstrap_servers, "--lake-retry-seconds=1", "--progress=off")
    assert result.returncode == 1, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if line.startswith("wirestream run: ")]
    assert len(said) == 1 and said[0].startswith(
        "wirestream run: the job ended FAILED: transforms.io.lake.LakeUnwritableError: cannot write batch "
        f"{topic}+0+0000000000000000000+0000000000000000001 to the lake at {lake} after 1 s: "
    )
    assert said[0].endswith("; the log above has the details; run again to read what this run did not commit")
    assert committed_offsets(bootstrap_servers, topic, partitions=1) == {0: None}
    assert not list(lake.rglob("*.parquet"))
