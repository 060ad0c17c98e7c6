"""A streaming run's life through the real CLI on Prism.

It outlives the job server's deadline, holds its lake alone, and drains on SIGINT and SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.integration.helpers import assert_each_once, kill_group, run_args, wait_until_accounted
from tests.kit import ROOT

pytestmark = pytest.mark.integration


def _values(name: str, count: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "url": f"https://life.example/{name}/{i}",
                "body": f"Dispatch {i} of {name}: the council of Tromsø voted on the harbour budget on Monday.",
            }
        ).encode()
        for i in range(count)
    ]


def _start(lake: Path, topic: str, bootstrap: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, bootstrap), "--progress=off", *extra],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "WIRESTREAM_LOG_LEVEL": "WARNING"},
        start_new_session=True,
    )


def _group_gone(process: subprocess.Popen[bytes]) -> bool:
    """Whether no process of the run's session is left (Prism, workers)."""
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def _send(values: list[bytes], bootstrap: str, topic: str, expected: set[tuple[str, int, int]]) -> None:
    for partition, offset in produce(values, bootstrap, topic, partitions=3):
        expected.add((topic, partition, offset))


def test_a_streaming_run_outlives_the_job_server_deadline_and_drains_on_sigterm(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic, lake, log = f"life-{uuid.uuid4().hex[:8]}", tmp_path / "lake", tmp_path / "run.log"
    expected: set[tuple[str, int, int]] = set()
    _send(_values("before", 9), bootstrap_servers, topic, expected)
    started = time.monotonic()
    process = _start(lake, topic, bootstrap_servers, log, "--job_server_timeout=5")
    try:
        wait_until_accounted(lake, expected)
        time.sleep(max(0.0, started + 14 - time.monotonic()))  # well past the 5 s deadline
        assert process.poll() is None, log.read_text()
        _send(_values("after", 6), bootstrap_servers, topic, expected)
        wait_until_accounted(lake, expected)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        kill_group(process)
    output = log.read_text()
    assert "stopped by SIGTERM" in output and "read (records accounted for this run): 15" in output
    assert "Traceback" not in output and "DEADLINE_EXCEEDED" not in output
    assert _group_gone(process)
    assert not (lake / "_lease.json").exists()
    assert_each_once(lake, expected)
    pages = {path.stem for path in (lake / "_quality" / "docs" / "batches").glob("*.html")}
    index = (lake / "_quality" / "docs" / "index.html").read_text()
    assert pages and all(page in index for page in pages)


def test_ctrl_c_drains_and_a_second_ctrl_c_aborts(bootstrap_servers: str, prism: Path, tmp_path: Path) -> None:
    topic, lake, log = f"life-{uuid.uuid4().hex[:8]}", tmp_path / "lake", tmp_path / "run.log"
    expected: set[tuple[str, int, int]] = set()
    _send(_values("one", 6), bootstrap_servers, topic, expected)
    process = _start(lake, topic, bootstrap_servers, log)
    try:
        wait_until_accounted(lake, expected)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        kill_group(process)
    output = log.read_text()
    assert "stopped by SIGINT" in output and "Traceback" not in output and "KeyboardInterrupt" not in output
    assert _group_gone(process)

    _send(_values("two", 6), bootstrap_servers, topic, expected)
    process = _start(lake, topic, bootstrap_servers, log)
    try:
        wait_until_accounted(lake, expected)
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        kill_group(process)
    assert "aborted by a second interrupt" in log.read_text()
    assert_each_once(lake, expected)


def test_one_pipeline_per_lake_and_a_killed_runs_lease_is_recovered(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic, lake, log = f"life-{uuid.uuid4().hex[:8]}", tmp_path / "lake", tmp_path / "run.log"
    expected: set[tuple[str, int, int]] = set()
    _send(_values("one", 6), bootstrap_servers, topic, expected)
    first = _start(lake, topic, bootstrap_servers, log)
    try:
        wait_until_accounted(lake, expected)
        holder = json.loads((lake / "_lease.json").read_text())
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "run",
                *run_args(lake, topic, bootstrap_servers),
                "--until-caught-up",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert re.search(rf"in use by run {holder['run_id']} \(process {first.pid} ", second.stderr), second.stderr
        assert "Traceback" not in second.stderr
    finally:
        kill_group(first)  # kill -9: the lease stays behind
    assert (lake / "_lease.json").exists()
    _send(_values("two", 6), bootstrap_servers, topic, expected)
    third = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, bootstrap_servers), "--until-caught-up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WIRESTREAM_LOG_LEVEL": "WARNING"},
    )
    assert third.returncode == 0, third.stderr
    assert f"took over the lake from run {holder['run_id']}" in third.stderr
    assert_each_once(lake, expected)
