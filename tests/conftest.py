"""Shared fixtures: records, the corpus setting, the real broker and the locally built Prism."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.options import prism_binary
from schemas.records import KafkaRecord, SourceBatch

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "infra" / "kafka" / "kafka.sh"
INGESTED_AT = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def make_record(
    value: bytes | None,
    offset: int = 0,
    partition: int = 0,
    topic: str = "t",
    batch: SourceBatch | None = None,
    key: bytes | None = None,
) -> KafkaRecord:
    return KafkaRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=(("h", b"v"),),
        timestamp_ms=1764000000000,
        ingested_at=INGESTED_AT,
        batch=batch or SourceBatch(topic, partition, offset, offset + 1, 1),
    )


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = Path(os.environ.get("WIRESTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (path / "seed").is_dir():
        pytest.skip(f"the shared corpus is missing at {path} (set WIRESTREAM_CORPUS): test needs real articles")
    return path


@pytest.fixture(scope="session")
def seed_text(corpus: Path) -> str:
    return (corpus / "seed" / "kursk-deployment.txt").read_text("utf-8")


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """The real local broker: started if it is not running, and stopped only if we started it."""
    status = subprocess.run([str(KAFKA_SCRIPT), "status"], capture_output=True, text=True)
    started = status.returncode != 0
    if started:
        subprocess.run([str(KAFKA_SCRIPT), "up"], check=True)
    port = os.environ.get("WIRESTREAM_KAFKA_PORT", "19092")
    yield f"127.0.0.1:{port}"
    if started:
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=True)


@pytest.fixture(scope="session")
def prism() -> Path:
    binary = prism_binary(os.environ)
    if not binary.exists():
        pytest.fail(f"Prism is not built at {binary}: run `make prism`")
    return binary


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
