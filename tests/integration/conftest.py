"""A lake made once per session by the real pipeline, for the tests that only read a lake.

The report and the downstream recipes need a lake with every table and more than one partition
(to see pruning), so the demo input goes through the broker and Prism once, partitioned by event
time: the demo articles were published on three different days.
"""

from __future__ import annotations

import json
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
