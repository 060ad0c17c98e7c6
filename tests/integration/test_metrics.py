"""``--metrics-port`` during a real streaming run on Prism: a scrape agrees with the lake exactly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import kill_group, run_args, subprocess_env
from tests.kit import ROOT

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


_STORIES = (
    "The harbour board of Bergen approved two new cranes for the container terminal on Thursday.",
    "Farmers near Lyon began the grape harvest a week early after a dry and unusually warm August.",
    "A new tram line opened in Tampere, linking the university campus with the central station.",
    "Engineers in Rotterdam tested a floating solar park on a flooded gravel pit south of the port.",
    "The national library in Lisbon put ten thousand digitised maps from the sixteenth century online.",
    "Heavy snow closed the mountain pass between Innsbruck and Bolzano for most of Tuesday evening.",
    "A start-up in Tallinn raised money to build delivery robots for snowy pavements and steep kerbs.",
    "Divers found the wreck of a nineteenth-century schooner off the coast of Gotland this summer.",
)


def _values(topic: str) -> list[bytes]:
    stories = [
        json.dumps({"url": f"https://metrics.example/{topic}/{i}", "body": f"{story} Officials confirmed it."}).encode()
        for i, story in enumerate(_STORIES)
    ]
    no_url = json.dumps({"id": f"{topic}-no-url", "body": "An article with an id and no URL is quarantined."})
    return [*stories, stories[3], b"not JSON at all {", no_url.encode()]  # a copy, a dead letter, a quarantine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _by(samples: Samples, name: str, label: str) -> dict[str, int]:
    return {dict(labels)[label]: int(value) for (found, labels), value in samples.items() if found == name and value}


def _lake_counts(lake: Path) -> dict[str, object]:
    """What the lake holds, read with DuckDB and pyarrow, in the shape of the metrics."""
    tables = {}
    for table in ("articles", "entities", "duplicates", "quarantine", "dead_letters"):
        tables[table] = (
            int(query(str(lake), f"SELECT count(*) FROM {table}")[1][0][0]) if (lake / table).exists() else 0
        )
    reasons = dict(query(str(lake), "SELECT reason, count(*) FROM dead_letters GROUP BY 1")[1])
    expectations = dict(
        query(
            str(lake), "SELECT e, count(*) FROM (SELECT unnest(failed_expectations) AS e FROM quarantine) GROUP BY 1"
        )[1]
    )
    log_files = sorted((lake / "_records").rglob("*.parquet"))
    statuses: Counter[str] = Counter()
    for path in log_files:
        summary = lake / "_quality" / "summaries" / f"{path.stem}.json"
        if summary.exists():
            statuses[json.loads(summary.read_text())["status"]] += 1
    return {
        "tables": {table: count for table, count in tables.items() if count},
        "records": sum(pq.read_metadata(path).num_rows for path in log_files),
        "batches": len(log_files),
        "reasons": {reason: int(count) for reason, count in reasons.items()},
        "expectations": {name: int(count) for name, count in expectations.items()},
        "statuses": dict(statuses),
    }


def _metric_counts(samples: Samples) -> dict[str, object]:
    return {
        "tables": _by(samples, "wirestream_lake_rows_total", "table"),
        "records": int(samples[("wirestream_records_total", ())]),
        "batches": int(samples[("wirestream_batches_total", ())]),
        "reasons": _by(samples, "wirestream_dead_letters_total", "reason"),
        "expectations": _by(samples, "wirestream_quarantined_rows_total", "expectation"),
        "statuses": _by(samples, "wirestream_quality_batches_total", "status"),
    }


def test_a_scrape_during_a_streaming_run_matches_the_lake_exactly(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic, lake, log = f"metrics-{uuid.uuid4().hex[:8]}", tmp_path / "lake", tmp_path / "run.log"
    values = _values(topic)
    produce(values, bootstrap_servers, topic, partitions=3, keys=[b"k%d" % (i % 3) for i in range(len(values))])
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            *run_args(lake, topic, bootstrap_servers),
            f"--metrics-port={port}",
            "--progress=log",
            "--progress-interval=1",
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**subprocess_env(), "WIRESTREAM_LOG_LEVEL": "WARNING"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        samples, metrics, in_lake = None, None, None
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            samples = _scrape(port)
            if samples and samples.get(("wirestream_records_total", ())) == len(values):
                metrics, in_lake = _metric_counts(samples), _lake_counts(lake)
                if metrics == in_lake:
                    break
            time.sleep(1.0)
        assert samples is not None, f"nothing served on port {port}:\n{log.read_text()}"
        assert metrics == in_lake, log.read_text()[-3000:]
        assert (
            in_lake["records"]
            == len(values)
            == sum(count for table, count in in_lake["tables"].items() if table != "entities")
        )
        assert in_lake["reasons"] == {"not_json": 1} and in_lake["tables"]["duplicates"] == 1
        assert in_lake["expectations"] and in_lake["statuses"]
        lag = _by(samples, "wirestream_kafka_lag_records", "partition")
        assert lag == {} and {labels for name, labels in samples if name == "wirestream_kafka_lag_records"} == {
            (("partition", str(p)), ("topic", topic)) for p in range(3)
        }
        assert samples[("wirestream_offsets_to_account", ())] == len(values)  # records + lag, lag 0
        assert samples[("wirestream_end_to_end_latency_seconds_count", ())] == len(values)
        stages = "wirestream_batch_stage_seconds_count"
        assert samples[(stages, (("stage", "read_to_commit"),))] == in_lake["batches"]
        assert samples[(stages, (("stage", "quality"),))] == sum(in_lake["statuses"].values())
        assert "wirestream_eta_seconds" not in {name for name, _ in samples}  # streaming: no ETA
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        kill_group(process)
    assert _scrape(port) is None  # the port is closed with the run
    final = [line for line in log.read_text().splitlines() if " event=progress final=true " in line]
    assert len(final) == 1 and f" records={len(values)} " in final[0] and f" offsets={len(values)} " in final[0]
    assert final[0].endswith(f" lag=0 lag.{topic}.0=0 lag.{topic}.1=0 lag.{topic}.2=0")
