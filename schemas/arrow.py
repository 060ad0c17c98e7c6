"""Explicit pyarrow schemas of the lake tables (the downstream contract in DESIGN.md).

Files are always written with these schemas, never inferred: a batch whose column is entirely null
would otherwise infer the ``null`` type and no longer append (apache/arrow #34397).
"""

from __future__ import annotations

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
    ]
)

ARTICLES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("canonical_url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("authors", pa.list_(pa.string())),
        pa.field("text", pa.string()),
        pa.field("language", pa.string()),
        pa.field("published_at", TIMESTAMP),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field("word_count", pa.int32()),
        pa.field("content_hash", pa.string()),
        pa.field("cluster_id", pa.string()),
        pa.field("entities", pa.list_(ENTITY_STRUCT)),
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
        pa.field("published_at", TIMESTAMP),
        pa.field("source", pa.string()),
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

DEDUP_MEMORY_TABLE = "_dedup"
DEDUP_MEMORY = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("event_time", TIMESTAMP),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field("dedup_memory", pa.binary(), nullable=False),
        *KAFKA_COLUMNS,
    ]
)
"""``_dedup/``: what deduplication remembers of every article it saw (its ticket and index keys,
opaque bytes), committed with the batch, so a later run recalls the articles it decided (kept,
duplicates and quarantined alike) exactly as the run that decided them. Not a table for readers."""

STORED_TABLES: dict[str, pa.Schema] = {**TABLES, DEDUP_MEMORY_TABLE: DEDUP_MEMORY}
"""Everything a batch commit writes: the tables and the deduplication memory."""
