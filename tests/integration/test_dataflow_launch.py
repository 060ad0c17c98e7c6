"""``wirestream run --runner=DataflowRunner`` as a Flex Template launcher runs it, up to the submission.

``--dry_run`` stops Beam just before it would stage files and call the Dataflow API (no account
here): the launcher still recovers the lake, plans partitions from the real broker, builds the job
and returns without waiting for a streaming job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.produce import ensure_topic
from tests.integration.helpers import run_args, wirestream

pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient", reason="apache-beam[gcp] extras missing")
pytestmark = pytest.mark.integration


def test_launcher_plans_builds_and_returns_without_waiting(bootstrap_servers: str, topic: str, tmp_path: Path) -> None:
    ensure_topic(bootstrap_servers, topic, 3)
    result = wirestream(
        "run",
        *run_args(tmp_path / "lake", topic, bootstrap_servers),
        "--runner=DataflowRunner",
        "--project=test-project",
        "--region=europe-west1",
        "--temp_location=gs://test-bucket/tmp",
        "--no_auth",
        "--dry_run=True",
        "--sdk_location=container",
        "--sdk_container_image=europe-west1-docker.pkg.dev/test-project/wirestream/wirestream-worker:2.75.0",
        timeout=120,
    )
    assert "submitted to" in result.stdout and "not waited for" in result.stdout, result.stdout
    assert "plan " + topic in result.stderr  # the partitions were planned from the broker
