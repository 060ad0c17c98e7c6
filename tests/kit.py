"""The test kit: the records the stages pass, built the same way in every test layer.

Unit, Beam and integration tests build Kafka records, articles and dead letters from here rather
than each writing its own constructor of a twenty-field record, so that a field added to
:mod:`schemas.records` is given a default in one place. Plain functions, no fixtures (those are in
``tests/conftest.py``), nothing imported from a test module.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from schemas.records import Article, DeadLetter, Entity, KafkaRecord, SourceBatch
from transforms.entities import canonicalise

T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "INGESTED_AT",
    "ICEBERG_REST_SCRIPT",
    "KAFKA_SCRIPT",
    "S3_SCRIPT",
    "NEWS_BATCH",
    "ROW_LEVEL_BREAKS",
    "ROOT",
    "article",
    "article_with_mentions",
    "dead_letter",
    "make_record",
    "news_article",
]

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "infra" / "kafka" / "kafka.sh"
S3_SCRIPT = ROOT / "infra" / "s3" / "s3.sh"
ICEBERG_REST_SCRIPT = ROOT / "infra" / "iceberg-rest" / "rest.sh"
INGESTED_AT = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
NEWS_BATCH = SourceBatch("news", 0, 100, 110, 10)
_TRAM = "The mayor of Lisbon opened a new tram line on Friday, the city council said."


def make_record(
    value: bytes | None,
    offset: int = 0,
    partition: int = 0,
    topic: str = "t",
    batch: SourceBatch | None = None,
    key: bytes | None = None,
) -> KafkaRecord:
    """A Kafka record as the source reads it (timestamp and ingestion time fixed)."""
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


def article(
    offset: int = 0,
    batch: SourceBatch | None = None,
    *,
    text: str = "Lloyd Austin spoke.",
    ingested_at: dt.datetime = INGESTED_AT,
    **changes: object,
) -> Article:
    """A cleaned article at ``offset`` of ``batch`` (id ``a{offset}``, URL on x.example), with ``changes``."""
    batch = batch or SourceBatch("t", 0, offset, offset + 1, 1)
    base = Article(
        article_id=f"a{offset}",
        url=f"https://x.example/{offset}",
        title=None,
        body=None,
        html=None,
        published_at=None,
        source="x.example",
        language="en",
        ingested_at=ingested_at,
        kafka_topic=batch.topic,
        kafka_partition=batch.partition,
        kafka_offset=offset,
        batch=batch,
        raw_value=b"{}",
        raw_key=None,
        canonical_url=f"https://x.example/{offset}",
        text=text,
        word_count=len(text.split()),
        content_hash=f"h{offset}",
    )
    return base.evolve(**changes)


def article_with_mentions(offset: int, batch: SourceBatch, mentions: list[tuple[str, str]]) -> Article:
    """An article whose text is its ``(name, label)`` mentions joined by spaces, each an entity."""
    text = " ".join(name for name, _ in mentions)
    found, start = [], 0
    for name, label in mentions:
        found.append((name, label, start, start + len(name)))
        start += len(name) + 1
    return article(offset, batch, text=text, entities=canonicalise(found))


def news_article(offset: int = 100, **changes: object) -> Article:
    """An article of :data:`NEWS_BATCH` that passes the expectation suite (a tram line in Lisbon).

    ``changes`` replace fields as given: changing ``text`` leaves ``word_count`` as it was, and
    ``batch`` changes only the batch (not the Kafka coordinates).
    """
    batch = changes.pop("batch", None)
    fields: dict[str, object] = {
        "url": f"https://n.example/{offset}",
        "canonical_url": f"https://n.example/{offset}",
        "source": "n.example",
        "title": "Tram line opens",
        "published_at": INGESTED_AT - dt.timedelta(hours=1),
        "word_count": len(_TRAM.split()),
        "content_hash": f"hash{offset}",
        "entities": (Entity("Lisbon", "GPE", 13, 19, "Lisbon", "lisbon"),),
        "text": _TRAM,
        **changes,
    }
    built = article(offset, NEWS_BATCH, **fields)
    return built.evolve(batch=batch) if batch is not None else built


ROW_LEVEL_BREAKS: dict[str, dict[str, object]] = {
    "article_id_not_null": {"article_id": ""},
    "url_not_null": {"url": ""},
    "text_not_null": {"text": "", "entities": ()},
    "text_length_in_bounds": {"text": "Too short.", "word_count": 2, "entities": ()},
    "word_count_positive": {"word_count": 0},
    "published_at_not_in_future": {"published_at": INGESTED_AT + dt.timedelta(hours=2)},
}
"""Changes to :func:`news_article` that break exactly one row-level expectation each, by name."""


def dead_letter(
    offset: int,
    batch: SourceBatch = NEWS_BATCH,
    reason: str = "not_json",
    at: dt.datetime = INGESTED_AT,
    error: str = "bad",
    raw: bytes = b"{x",
) -> DeadLetter:
    """A parse dead letter at ``offset`` of ``batch``, failed and ingested ``at``."""
    return DeadLetter("parse", reason, error, raw, None, at, at, batch.topic, batch.partition, offset, batch)


def read_while(
    read: Callable[[], T], action: Callable[[], R], failure: type[Exception] = Exception
) -> tuple[R, list[T], list[str]]:
    """Run ``action`` while another thread calls ``read`` again and again, as a reader racing a
    compaction does: ``action``'s result, every answer ``read`` gave and every ``failure`` it raised."""
    results: list[T] = []
    errors: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                results.append(read())
            except failure as error:
                errors.append(str(error))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        outcome = action()
    finally:
        done.set()
        thread.join()
    return outcome, results, errors
