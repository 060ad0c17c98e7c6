"""Typed, immutable records that flow between wirestream's stages.

One definition of each record lives here. The pipeline's elements are batches: a
:class:`RecordBatch` is what one poll read from one partition (a contiguous offset range), and
every stage turns it into an :class:`OutcomeBatch` holding exactly one outcome per record, an
:class:`Article` or a :class:`DeadLetter`. Keeping a batch together as one element is what lets
the lake sink write a whole offset range atomically without any runner state (see
``transforms/io/lake/commit.py``). Every record also carries its own Kafka coordinates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""A surrogate code point in a ``str``: JSON can spell one alone (``"\\udfff"``), but it has no UTF-8
form, so any field holding one must be rejected or repaired before it is hashed or written."""


@dataclass(frozen=True, order=True)
class SourceBatch:
    """A contiguous offset range ``[first_offset, end_offset)`` of one topic-partition.

    ``size`` is the number of records in the range (fewer than ``end - first`` when the log has
    gaps, e.g. transaction markers or compaction). The name encodes the range, so a file written
    for the batch says which offsets it accounts for.
    """

    topic: str
    partition: int
    first_offset: int
    end_offset: int
    size: int

    @property
    def key(self) -> str:
        """A stable name, also the stem of every lake file written for this batch."""
        return f"{self.topic}+{self.partition}+{self.first_offset:019d}+{self.end_offset:019d}"


@dataclass(frozen=True)
class KafkaRecord:
    """One consumed Kafka record, with its metadata, exactly as read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int
    ingested_at: dt.datetime
    batch: SourceBatch
    event_us: int = -1
    """The record's event time in µs, as the source orders it (see ``transforms/io/kafka/source.py``); -1 unknown."""


@dataclass(frozen=True)
class Entity:
    """One named-entity mention; ``start``/``end`` are character offsets into the article text."""

    text: str
    label: str
    start: int
    end: int
    canonical: str
    """The article's fullest name of the entity (see ``transforms/entity_names.py``)."""
    key: str
    """``entity_key(canonical)``: the same for every spelling of one entity (``schemas/entity_keys.py``)."""


@dataclass(frozen=True)
class Article:
    """An article as it moves through parse → clean → entities; later stages fill more fields."""

    article_id: str
    url: str
    title: str | None
    body: str | None
    html: str | None
    published_at: dt.datetime | None
    source: str | None
    language: str | None
    ingested_at: dt.datetime
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    batch: SourceBatch
    raw_value: bytes
    raw_key: bytes | None
    authors: tuple[str, ...] = ()
    canonical_url: str = ""
    text: str = ""
    word_count: int = 0
    content_hash: str = ""
    cluster_id: str = ""
    entities: tuple[Entity, ...] = field(default_factory=tuple)
    event_us: int = -1
    """Its record's event time in µs (deduplication's "earliest copy"); -1 when not known."""
    dedup_memory: bytes = b""
    """What deduplication remembers of it for later runs (opaque here; written to ``_records/``)."""
    site_name: str | None = None
    """The outlet's name as its page or title gives it ("9to5Mac"), taken off the end of ``title``."""
    ner_status: str | None = None
    """``annotated``, ``no_model`` (no model for its language) or None (NER has not run on it)."""
    ner_model: str | None = None
    """The model that found its entities ("en_core_web_sm 3.8.0"), None when none ran."""

    def evolve(self, **changes: object) -> Article:
        """A copy with some fields changed (records are immutable)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DeadLetter:
    """A record turned away by a stage, with a machine-readable reason and the raw bytes."""

    stage: str
    reason: str
    error: str
    raw_value: bytes | None
    raw_key: bytes | None
    failed_at: dt.datetime
    ingested_at: dt.datetime
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    batch: SourceBatch
    event_us: int = -1
    """Its record's event time in µs (see :class:`KafkaRecord`); -1 when not known."""
    dedup_memory: bytes = b""
    """What deduplication remembers of an article it turned away (``id_conflict``); empty otherwise."""

    def evolve(self, **changes: object) -> DeadLetter:
        """A copy with some fields changed (records are immutable)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def for_record(cls, record: KafkaRecord, stage: str, reason: str, error: str) -> DeadLetter:
        """A dead letter for a raw Kafka record."""
        return cls(
            stage=stage,
            reason=reason,
            error=error,
            raw_value=record.value,
            raw_key=record.key,
            failed_at=utc_now(),
            ingested_at=record.ingested_at,
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
            batch=record.batch,
            event_us=record.event_us,
        )

    @classmethod
    def for_article(cls, article: Article, stage: str, reason: str, error: str) -> DeadLetter:
        """A dead letter for an article that a later stage could not process."""
        return cls(
            stage=stage,
            reason=reason,
            error=error,
            raw_value=article.raw_value,
            raw_key=article.raw_key,
            failed_at=utc_now(),
            ingested_at=article.ingested_at,
            kafka_topic=article.kafka_topic,
            kafka_partition=article.kafka_partition,
            kafka_offset=article.kafka_offset,
            batch=article.batch,
            event_us=article.event_us,
        )


@dataclass(frozen=True)
class _FinalArticle:
    """An article a stage settled for good; it keeps the article's Kafka coordinates."""

    article: Article

    @property
    def kafka_offset(self) -> int:
        return self.article.kafka_offset

    @property
    def ingested_at(self) -> dt.datetime:
        return self.article.ingested_at


@dataclass(frozen=True)
class Duplicate(_FinalArticle):
    """An article that repeats one seen before it: it goes to ``duplicates``, not ``articles``.

    ``duplicate_of`` is the ``article_id`` of the earlier article it matched, ``similarity`` the
    verified similarity of the pair (1.0 for an identical text), ``method`` ``exact`` (same
    canonical URL or same content hash) or ``near`` (MinHash LSH candidate, verified).
    """

    duplicate_of: str
    similarity: float
    method: str


@dataclass(frozen=True)
class Quarantined(_FinalArticle):
    """An article that failed row-level expectations: it goes to ``quarantine`` with their names."""

    failed_expectations: tuple[str, ...]


Outcome = Article | Duplicate | Quarantined | DeadLetter
"""What a stage makes of a record: exactly one outcome per consumed Kafka record.

Only an :class:`Article` is still in flight; the other three are final and later stages pass them
through untouched.
"""


@dataclass(frozen=True)
class RecordBatch:
    """The records one poll read from one partition: all of ``batch``'s range, in offset order."""

    batch: SourceBatch
    records: tuple[KafkaRecord, ...]


@dataclass(frozen=True)
class OutcomeBatch:
    """One outcome per record of ``batch``, in offset order."""

    batch: SourceBatch
    outcomes: tuple[Outcome, ...]

    def articles(self) -> list[Article]:
        """The outcomes that are (still) articles."""
        return [outcome for outcome in self.outcomes if isinstance(outcome, Article)]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC, truncated to microseconds."""
    return dt.datetime.now(dt.UTC)
