"""Step 1 of :class:`~transforms.dedup.Deduplicate`: a batch's tickets and the messages they send.

``FingerprintFn`` makes a :class:`~transforms.dedup_core.Ticket` per live article and routes the
batch, its kept links, each ticket (keyed by record id) and one probe message per index shard to
the tagged outputs named here; ``SeedMessagesFn`` sends a seed's remembered ticket the same way.
Also owns the keys and message kinds every keyed step shares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam import pvalue

from schemas.records import Article, OutcomeBatch
from transforms.dedup_core import (
    ArticleRef,
    DedupConfig,
    Link,
    Ticket,
    decode_memory,
    encode_links,
    encode_memory,
    encode_probes,
    encode_ticket,
    fingerprint,
    probes_by_shard,
)
from transforms.outcomes import rewrite_live

__all__ = [
    "CANDIDATE",
    "CLUSTERS",
    "FingerprintFn",
    "STAGE",
    "SeedMessagesFn",
    "TICKET",
    "TO_BATCH",
    "TO_DECIDE",
    "TO_INDEX",
    "TO_RECORD",
    "UNTOUCHED",
    "article_ref",
    "record_key",
    "shard_key",
    "ticket_messages",
    "with_memories",
]

_LOG = logging.getLogger(__name__)


STAGE = "dedup"
_LOG = logging.getLogger(__name__)
TO_BATCH, TO_DECIDE, TO_RECORD, TO_INDEX, UNTOUCHED = "to_batch", "to_decide", "to_record", "to_index", "untouched"
TICKET, CANDIDATE = b"T", b"C"
CLUSTERS = b"clusters"  # the one key of LinkClusters


def article_ref(article: Article) -> ArticleRef:
    return ArticleRef(
        article.article_id,
        article.text,
        article.canonical_url,
        article.content_hash,
        article.kafka_topic,
        article.kafka_partition,
        article.kafka_offset,
        article.event_us if article.event_us >= 0 else None,
    )


def record_key(record_id: int) -> bytes:
    return record_id.to_bytes(8, "little")


def shard_key(shard: int) -> bytes:
    return shard.to_bytes(2, "big")


class FingerprintFn(beam.DoFn):
    def __init__(self, config: DedupConfig) -> None:
        self._config = config

    def process(self, element: OutcomeBatch, timestamp: Any = beam.DoFn.TimestampParam) -> Iterator[Any]:
        articles = element.articles()
        if not articles:
            yield pvalue.TaggedOutput(UNTOUCHED, element)
            return
        key = element.batch.key
        tickets = fingerprint([article_ref(a) for a in articles], timestamp.micros, key, self._config)
        yield pvalue.TaggedOutput(TO_BATCH, (key.encode(), with_memories(element, tickets)))
        yield pvalue.TaggedOutput(TO_DECIDE, (key.encode(), encode_links(Link.kept(t) for t in tickets)))
        yield from ticket_messages(tickets, self._config)


def with_memories(element: OutcomeBatch, tickets: Sequence[Ticket]) -> OutcomeBatch:
    """The batch with each live article carrying what the lake will remember of it (its ticket and keys)."""
    memories = {ticket.offset: encode_memory(ticket) for ticket in tickets}
    remembered = rewrite_live(
        element.outcomes, lambda article: article.evolve(dedup_memory=memories[article.kafka_offset])
    )
    return OutcomeBatch(element.batch, remembered)


def ticket_messages(tickets: Sequence[Ticket], config: DedupConfig) -> Iterator[pvalue.TaggedOutput]:
    """Each ticket to its record's key, and one message per index shard the batch's keys fall in."""
    encoded = {ticket.record_id: encode_ticket(ticket) for ticket in tickets}
    for ticket in tickets:
        yield pvalue.TaggedOutput(TO_RECORD, (record_key(ticket.record_id), TICKET + encoded[ticket.record_id]))
    for shard, probes in sorted(probes_by_shard(tickets, config.index_shards).items()):
        message = encode_probes([(encoded[ticket.record_id], keys) for ticket, keys in probes])
        yield pvalue.TaggedOutput(TO_INDEX, (shard_key(shard), message))


class SeedMessagesFn(beam.DoFn):
    """A seed's remembered ticket (:func:`encode_memory`; see :mod:`transforms.io.lake.seeds`) → its messages.

    The messages keep the seed's timestamp (the epoch): a verdict that waits for a seed's ticket
    is then never stamped later than the batch it concerns.
    """

    def __init__(self, config: DedupConfig) -> None:
        self._config = config

    def process(self, memory: bytes) -> Iterator[pvalue.TaggedOutput]:
        yield from ticket_messages([decode_memory(memory)], self._config)
