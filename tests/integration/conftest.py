"""A lake made once per session by the real pipeline, for the tests that only read a lake.

The report and the downstream recipes need a lake with every table and more than one partition
(to see pruning), so the demo input goes through the broker and Prism once, partitioned by event
time: the demo articles were published on three different days. The readers of an Iceberg lake
are compared on twins: the same input in a Hive lake and an Iceberg lake (``twin_lakes``).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest

from pipelines.demo import DEMO_ARTICLES, seed_message
from pipelines.produce import produce
from tests.integration.helpers import run_until_caught_up

# Two articles the expectation suite quarantines, so that quarantine has rows with real reasons.
EXTRA_ARTICLES = [
    {
        "url": "https://www.lepetitquai.example/rotterdam",
        "language": "fr",
        "published_at": "2026-11-21T10:00:00Z",
        "body": "Le port de Rotterdam ajoute des équipes de nuit pour réduire les files de conteneurs, "
        "a annoncé mardi l'autorité portuaire, qui prévoit un retour à la normale avant Noël.",
    },
    {
        "id": "wire-only-an-id",
        "body": "A freight train derailed near Linz on Wednesday without injuries, and the line to Vienna "
        "reopened in the evening after cranes lifted the wagons back onto the track.",
    },
]


@pytest.fixture(scope="session")
def event_time_lake(bootstrap_servers: str, corpus: Path, prism: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo input (seed article, demo articles incl. a near copy and two broken records) plus a
    French article (kept, with no NER model for it) and an id-only one (quarantined: no URL), run
    with ``--partition-by event_time``."""
    topic = f"lake-{uuid.uuid4().hex[:10]}"
    lake = tmp_path_factory.mktemp("event-time-lake")
    values = [json.dumps(seed_message(corpus)).encode()]
    values += [line for line in DEMO_ARTICLES.read_bytes().splitlines() if line.strip()]
    values += [json.dumps(message).encode() for message in EXTRA_ARTICLES]
    keys = [b"k%d" % (i % 3) for i in range(len(values))]
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=keys)
    run_name = f"it-{topic}"
    result = run_until_caught_up(
        lake, topic, bootstrap_servers, "--partition-by=event_time", f"--quality-run-name={run_name}"
    )
    return {"lake": lake, "topic": topic, "placed": placed, "run": run_name, "result": result}


@pytest.fixture(scope="session")
def twin_lakes(bootstrap_servers: str, corpus: Path, prism: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same records (the demo input of ``event_time_lake``) in a Hive lake and an Iceberg lake.

    Both are run one after the other with the default ingestion-time partitions (Iceberg has no
    other), each with its own consumer group, never across the end of an hour (their partitions
    would differ). The Iceberg lake also gets an orphan copy of a committed ``articles`` and
    ``entities`` file in its ``data/`` folder (as a batch that crashed before its commit leaves), so
    a reader that lists ``data/`` instead of planning the scan counts rows twice.
    """
    seconds_to_the_hour = 3600 - time.time() % 3600
    if seconds_to_the_hour < 150:  # both lakes must ingest in the same UTC hour to hold the same partitions
        time.sleep(seconds_to_the_hour + 1)
    topic = f"twins-{uuid.uuid4().hex[:10]}"
    root = tmp_path_factory.mktemp("twin-lakes")
    values = [json.dumps(seed_message(corpus)).encode()]
    values += [line for line in DEMO_ARTICLES.read_bytes().splitlines() if line.strip()]
    values += [json.dumps(message).encode() for message in EXTRA_ARTICLES]
    keys = [b"k%d" % (i % 3) for i in range(len(values))]
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=keys)
    lakes = {"hive": root / "hive", "iceberg": root / "iceberg"}
    for name, lake in lakes.items():
        run_until_caught_up(
            lake,
            topic,
            bootstrap_servers,
            f"--table-format={name}",
            f"--group-id=g-{name}-{topic}",
        )
    orphans = []
    for table in ("articles", "entities"):
        committed = sorted((lakes["iceberg"] / table / "data").glob("*/*.parquet"))[0]
        orphans.append(committed.with_name(committed.stem[:-8] + "0rphan00.parquet"))
        shutil.copyfile(committed, orphans[-1])
    return {**lakes, "topic": topic, "placed": placed, "orphans": orphans}
