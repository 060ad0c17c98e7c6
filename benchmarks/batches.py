"""Synthetic lake batches for the storage benchmarks (``lake_stores``, ``iceberg_commit``).

One outcome per offset, in turn an article with one entity, its duplicate, its quarantined copy
and a dead letter, so a batch writes a file to every table and to the record log.
"""

from __future__ import annotations

import datetime as dt

from schemas.records import Article, DeadLetter, Duplicate, Entity, Outcome, Quarantined, SourceBatch

__all__ = ["mixed_outcomes"]

_INGESTED = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
_TEXT = "The harbour council met on Monday to vote on the fees paid by cruise ships. " * 8


def mixed_outcomes(batch: SourceBatch) -> list[Outcome]:
    """One outcome per offset of ``batch``: article, duplicate, quarantined, dead letter, in turn."""
    made: list[Outcome] = []
    for offset in range(batch.first_offset, batch.end_offset):
        article = Article(
            article_id=f"a{offset}",
            url=f"https://bench.example/{offset}",
            title=f"Bulletin {offset}",
            body=None,
            html=None,
            published_at=None,
            source="bench.example",
            language="en",
            ingested_at=_INGESTED,
            kafka_topic=batch.topic,
            kafka_partition=batch.partition,
            kafka_offset=offset,
            batch=batch,
            raw_value=b"{}",
            raw_key=None,
            canonical_url=f"https://bench.example/{offset}",
            text=_TEXT,
            word_count=len(_TEXT.split()),
            content_hash=f"h{offset}",
            entities=(Entity("Monday", "DATE", 27, 33, "Monday", "monday"),),
        )
        letter = DeadLetter(
            "parse", "not_json", "bad", b"{x", None, _INGESTED, _INGESTED, batch.topic, batch.partition, offset, batch
        )
        kinds: list[Outcome] = [
            article,
            Duplicate(article, duplicate_of="a0", similarity=1.0, method="exact"),
            Quarantined(article, failed_expectations=("word_count_positive",)),
            letter,
        ]
        made.append(kinds[offset % 4])
    return made
