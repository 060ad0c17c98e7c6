"""Known failures that need the real broker: one line ``wirestream run: ...``, exit 2, nothing created.

The cases without a broker (broker down, a lake that is a file, bad SQL, a broken suite, ...) are
in ``tests/component/test_errors.py``; a lake whose lease cannot be written is in
``test_unwritable_lake.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.produce import ensure_topic
from tests.integration.helpers import run_args, run_until_caught_up, wirestream
from tests.kit import ROOT

pytestmark = pytest.mark.integration


def refused_run(*args: str) -> subprocess.CompletedProcess[str]:
    """``wirestream run ARGS`` at the default log level, expected to fail."""
    environment = {k: v for k, v in os.environ.items() if k != "WIRESTREAM_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    return result


def test_a_missing_topic_is_named_with_the_closest_one_and_how_to_create_it(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topic = f"e{uuid.uuid4().hex}"
    ensure_topic(bootstrap_servers, topic, 1)
    mistyped = topic[:-1]
    lake = tmp_path / "lake"
    result = refused_run(*run_args(lake, mistyped, bootstrap_servers), "--until-caught-up")
    head = f"wirestream run: topic {mistyped!r} does not exist on {bootstrap_servers}; did you mean {topic!r}? it has "
    tail = f". Fix --topic, or create it: wirestream produce FILE --topic {mistyped} creates it and loads FILE\n"
    assert result.stderr.startswith(head) and result.stderr.endswith(tail), result.stderr
    assert result.stderr.count("\n") == 1 and not lake.exists()


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr to make a folder read-only for root")
def test_a_lake_folder_that_cannot_be_created_is_refused(bootstrap_servers: str, tmp_path: Path) -> None:
    topic = f"e{uuid.uuid4().hex}"
    ensure_topic(bootstrap_servers, topic, 1)
    parent = tmp_path / "read-only"
    parent.mkdir()
    if subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode != 0:
        pytest.skip(f"the filesystem under {parent} does not support chattr +i")
    try:
        result = refused_run(*run_args(parent / "lake", topic, bootstrap_servers), "--until-caught-up")
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    lake = parent / "lake"
    assert result.stderr == (
        f"wirestream run: cannot create the lake folder {lake}: [Errno 1] Cannot create directory '{lake}'. "
        "Detail: [errno 1] Operation not permitted; give a --lake where you can write\n"
    )


def test_the_lake_of_a_run_that_read_nothing_is_a_lake(bootstrap_servers: str, prism: Path, tmp_path: Path) -> None:
    topic = f"e{uuid.uuid4().hex}"
    ensure_topic(bootstrap_servers, topic, 2)
    lake = tmp_path / "lake"
    run_until_caught_up(lake, topic, bootstrap_servers)
    assert not list(lake.rglob("*.parquet"))
    result = wirestream("query", str(lake), "SELECT count(*) AS n FROM articles")
    assert result.stdout == "n\n-\n0\n(1 row)\n"
