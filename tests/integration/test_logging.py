"""Quiet by default: a real bounded run through Prism prints its summary and progress, and no runner chatter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.integration.helpers import assert_each_once, run_args
from tests.kit import ROOT

pytestmark = pytest.mark.integration

# What used to show at the default level (or at every level), and where it came from.
CHATTER = [
    "Really starting service",  # Beam's subprocess_server, starting Prism (WARNING)
    "Really destroying service",
    "PrismRunner",  # Prism's own lines, relayed by Beam at INFO even with the root at ERROR
    "Serving JobManagement",
    "pipeline done!",
    "apache_beam",  # any Beam logger (pipeline-option warnings, type-hint INFO, worker set-up)
    "Discarding",
    "kafka.",  # kafka-python's connection INFO
    "great_expectations",
]
PROGRESS = re.compile(r"^ts=\S+ event=progress final=(true|false) elapsed_s=\S+ records=\d+ ")


def test_a_bounded_run_at_the_default_level_shows_only_what_the_operator_needs(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"quiet-{uuid.uuid4().hex[:10]}"
    values = [
        json.dumps(
            {"url": f"https://quiet.example/{i}", "body": f"Dockers in Hamburg ended strike number {i}."}
        ).encode()
        for i in range(5)
    ]
    values[2] = b"{not json"
    placed = produce(values, bootstrap_servers, topic, partitions=2)
    lake = tmp_path / "lake"
    env = {name: value for name, value in os.environ.items() if name != "WIRESTREAM_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, bootstrap_servers), "--until-caught-up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_each_once(lake, {(topic, partition, offset) for partition, offset in placed})
    output = result.stdout + result.stderr
    assert [noise for noise in CHATTER if noise in output] == [], output
    # stderr: the progress lines and nothing else; the last one final and complete.
    lines = result.stderr.splitlines()
    assert lines and all(PROGRESS.match(line) for line in lines), result.stderr
    assert [line for line in lines if " final=true " in line] == lines[-1:]
    assert (
        " records=5 " in lines[-1]
        and " dead_letters=1 " in lines[-1]
        and lines[-1].endswith(" lag=0 " + (f"lag.{topic}.0=0 lag.{topic}.1=0"))
    )
    # stdout: the summary, starting with how the run ended.
    assert result.stdout.splitlines()[:3] == [
        "wirestream run finished: DONE on Prism (portable)",
        "  read (records accounted for this run): 5",
        "  articles written:   4",
    ]
    assert "    by reason: parse/not_json ×1" in result.stdout.splitlines()
