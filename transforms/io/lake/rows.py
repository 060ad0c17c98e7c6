"""Row mappers: each outcome as the rows it becomes in the lake's tables, and those rows as Arrow.

Pure functions over :mod:`schemas.records`, no IO and no Beam: column names and types are those of
the explicit schemas in :mod:`schemas.arrow`. Every record also gets its row in the record log
``_records`` (by ingestion time). Encoding is kept apart from staging, naming and moving files
(:mod:`transforms.io.lake.commit`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from schemas import arrow
from schemas.records import LONE_SURROGATE, Article, DeadLetter, Duplicate, Outcome, Quarantined, utc_now
from schemas.rows import article_row
from transforms.io.lake.layout import partition_path

__all__ = [
    "arrow_table",
    "article_row",
    "dead_letter_row",
    "duplicate_row",
    "entity_rows",
    "log_row",
    "quarantine_row",
    "rows_by_file",
]

_LOG = logging.getLogger(__name__)


def entity_rows(article: Article) -> Iterator[dict[str, Any]]:
    """An article's ``entities`` rows, one per entity mention."""
    for entity in article.entities:
        yield {
            "article_id": article.article_id,
            "text": entity.text,
            "label": entity.label,
            "start": entity.start,
            "end": entity.end,
            "canonical": entity.canonical,
            "key": entity.key,
            "published_at": article.published_at,
            "source": article.source,
            "ingested_at": article.ingested_at,
        }


def duplicate_row(duplicate: Duplicate) -> dict[str, Any]:
    """A duplicate as its ``duplicates`` row: the article it repeats and how similar it is."""
    article = duplicate.article
    return {
        "article_id": article.article_id,
        "duplicate_of": duplicate.duplicate_of,
        "similarity": duplicate.similarity,
        "method": duplicate.method,
        "url": article.url,
        "source": article.source,
        "title": article.title,
        "ingested_at": article.ingested_at,
        "kafka_topic": article.kafka_topic,
        "kafka_partition": article.kafka_partition,
        "kafka_offset": article.kafka_offset,
    }


def quarantine_row(quarantined: Quarantined) -> dict[str, Any]:
    """A quarantined article as its ``quarantine`` row: its article row and the expectations it failed."""
    return {**article_row(quarantined.article), "failed_expectations": list(quarantined.failed_expectations)}


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as its ``dead_letters`` row."""
    return {
        "stage": letter.stage,
        "reason": letter.reason,
        "error": letter.error,
        "raw_value": letter.raw_value,
        "raw_key": letter.raw_key,
        "ingested_at": letter.ingested_at,
        "failed_at": letter.failed_at,
        "kafka_topic": letter.kafka_topic,
        "kafka_partition": letter.kafka_partition,
        "kafka_offset": letter.kafka_offset,
    }


def _partition_of(outcome: Outcome, partition_by: str) -> str:
    if isinstance(outcome, Quarantined):
        outcome = outcome.article
    if isinstance(outcome, Article) and partition_by == "event_time" and outcome.published_at:
        return partition_path(outcome.published_at)
    return partition_path(outcome.ingested_at)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def log_row(outcome: Outcome, committed_at: dt.datetime) -> dict[str, Any]:
    """Any outcome as its record log (``_records``) row, stamped ``committed_at``."""
    seen = outcome.article if isinstance(outcome, Duplicate | Quarantined) else outcome
    return {
        "kafka_topic": seen.kafka_topic,
        "kafka_partition": seen.kafka_partition,
        "kafka_offset": seen.kafka_offset,
        "event_time": _EPOCH + dt.timedelta(microseconds=seen.event_us) if seen.event_us >= 0 else None,
        "ingested_at": outcome.ingested_at,
        "committed_at": committed_at,
        "article_id": seen.article_id if isinstance(seen, Article) else None,
        "dedup_memory": seen.dedup_memory or None if isinstance(seen, Article | DeadLetter) else None,
    }


def rows_by_file(
    outcomes: Iterable[Outcome], partition_by: str = "ingestion_time", committed_at: dt.datetime | None = None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows grouped by ``(table, dt=/hour= partition)``, in offset order.

    Every record also gets its row in the record log ``_records`` (by ingestion time), stamped
    ``committed_at`` (default: now), committed with the batch.
    """
    committed_at = committed_at or utc_now()
    files: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for outcome in sorted(outcomes, key=lambda o: o.kafka_offset):
        partition = _partition_of(outcome, partition_by)
        files[(arrow.RECORD_LOG_TABLE, partition_path(outcome.ingested_at))].append(log_row(outcome, committed_at))
        if isinstance(outcome, Article):
            files[("articles", partition)].append(article_row(outcome))
            files[("entities", partition)].extend(entity_rows(outcome))
        elif isinstance(outcome, Duplicate):
            files[("duplicates", partition)].append(duplicate_row(outcome))
        elif isinstance(outcome, Quarantined):
            files[("quarantine", partition)].append(quarantine_row(outcome))
        else:
            files[("dead_letters", partition)].append(dead_letter_row(outcome))
    return {key: rows for key, rows in files.items() if rows}


def _encodable(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD (no UTF-8 form otherwise)."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {name: _encodable(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value


def arrow_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The rows as a table of ``schema``; a string with no UTF-8 form is repaired, never a crash.

    ParseArticle already rejects or repairs lone surrogates in every input field; this is the last
    line, so that a rule that lets one through (a bug) costs a replacement character, not a stream
    that stops on the same batch at every restart.
    """
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except UnicodeEncodeError as error:
        _LOG.warning("a %s row held a lone surrogate (%s); replaced with U+FFFD", schema.names[0], error.reason)
        return pa.Table.from_pylist(_encodable(rows), schema=schema)
