"""Explicit pyarrow schemas of the lake tables (the downstream contract in DESIGN.md).

Every column is documented in docs/lake.md, and ``tests/unit/test_lake_reference.py`` fails when a
schema here and that reference disagree: add, retype or remove a column in both at once.

Files are always written with these schemas, never inferred: a batch whose column is entirely null
would otherwise infer the ``null`` type and no longer append (apache/arrow #34397).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

KAFKA_COLUMNS = [
    pa.field("kafka_topic", pa.string(), nullable=False),
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
]

ENTITY_STRUCT = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("canonical", pa.string()),
        pa.field("key", pa.string()),
    ]
)

ARTICLES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("canonical_url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("site_name", pa.string()),
        pa.field("authors", pa.list_(pa.string())),
        pa.field("text", pa.string()),
        pa.field("language", pa.string()),
        pa.field("published_at", TIMESTAMP),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field("word_count", pa.int32()),
        pa.field("content_hash", pa.string()),
        pa.field("cluster_id", pa.string()),
        pa.field("entities", pa.list_(ENTITY_STRUCT)),
        pa.field("ner_status", pa.string()),
        pa.field("ner_model", pa.string()),
        *KAFKA_COLUMNS,
    ]
)

ENTITIES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("canonical", pa.string()),
        pa.field("key", pa.string()),
        pa.field("published_at", TIMESTAMP),
        pa.field("source", pa.string()),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
    ]
)

DUPLICATES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string()),
        pa.field("similarity", pa.float64()),
        pa.field("method", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        *KAFKA_COLUMNS,
    ]
)

QUARANTINE = ARTICLES.append(pa.field("failed_expectations", pa.list_(pa.string())))

DEAD_LETTERS = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("raw_value", pa.binary()),
        pa.field("raw_key", pa.binary()),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field("failed_at", TIMESTAMP, nullable=False),
        *KAFKA_COLUMNS,
    ]
)

TABLES: dict[str, pa.Schema] = {
    "articles": ARTICLES,
    "entities": ENTITIES,
    "duplicates": DUPLICATES,
    "quarantine": QUARANTINE,
    "dead_letters": DEAD_LETTERS,
}
"""Every lake table by name. ``entities`` is derived from ``articles``; the other four account
for consumed Kafka records (each record lands in exactly one of them)."""

ACCOUNTING_TABLES = ("articles", "duplicates", "quarantine", "dead_letters")

RECORD_LOG_TABLE = "_records"
RECORD_LOG = pa.schema(
    [
        *KAFKA_COLUMNS,
        pa.field("event_time", TIMESTAMP),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field("committed_at", TIMESTAMP, nullable=False),
        pa.field("article_id", pa.string()),
        pa.field("dedup_memory", pa.binary()),
    ]
)
"""``_records/``: one row per consumed record, committed with its batch: its event time (the Kafka
timestamp as the source orders it), when it was read and when its batch was committed (so
``committed_at - event_time`` is its end-to-end latency), and, for every article deduplication
saw (kept, duplicate or quarantined), what it remembers of it (ticket and index keys, opaque
bytes) so a later run recalls it exactly as the run that decided it. The pipeline's own log, not a
table for readers (``wirestream query`` does not show it)."""

STORED_TABLES: dict[str, pa.Schema] = {**TABLES, RECORD_LOG_TABLE: RECORD_LOG}
"""Everything a batch commit writes: the tables and the record log."""


@dataclass(frozen=True)
class LaterColumn:
    """A never-null column that ``table`` gained after files had been written without it.

    The rows of such a file find their value exactly: ``column`` of the row of table ``source``, in
    the partition folder of the same name, whose ``keys`` equal theirs (unique there).
    """

    table: str
    column: str
    source: str
    keys: tuple[str, ...]


LATER_COLUMNS = (
    LaterColumn("entities", "ingested_at", "articles", ("article_id",)),
    LaterColumn("dead_letters", "ingested_at", RECORD_LOG_TABLE, ("kafka_topic", "kafka_partition", "kafka_offset")),
)
"""Every later never-null column (docs/lake.md, "Versioning"). Entity rows share their article's
partition folder, and dead letters their record log row's (both by ingestion time), so a reader or
a compaction looks in one folder. Later nullable columns (``entities.key``, ``articles.site_name``)
are not listed: they read as null, and a reader that can fills them by its own rule."""
