"""Steps 2 and 3 of :class:`~transforms.dedup.Deduplicate`: meet index entries in shards, verify pairs per record.

``MatchShardsFn`` (keyed by index shard) pairs each probe with the shard's earlier entries and
then adds it; ``VerifyCandidatesFn`` (keyed by record id) holds the article's ticket and verifies
each pair against it. Both forget their state by an event-time timer one TTL after the newest
entry (see the invariants in :mod:`transforms.dedup`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils import shared

from transforms.dedup.messages import CANDIDATE, STAGE, TICKET, record_key
from transforms.dedup_core import (
    DedupConfig,
    Match,
    ShardIndex,
    Ticket,
    chunks,
    decode_probes,
    decode_ticket,
    match_shard,
    shard_rows,
    verify,
)
from transforms.stage import hold_until_watermark_passes

__all__ = [
    "MatchShardsFn",
    "ShardCache",
    "VerifyCandidatesFn",
]


class ShardCache:
    """A worker process's copies of the index shards it has served, one lock per shard.

    Shared by every instance of one step in the process (``apache_beam.utils.shared``); a copy is
    used only while its token equals the one in the shard's state, so a stale copy is never used.
    """

    def __init__(self) -> None:
        self.indexes: dict[bytes, ShardIndex] = {}
        self._locks: dict[bytes, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, shard: bytes) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(shard, threading.Lock())


class MatchShardsFn(beam.DoFn):
    """Keyed by index shard: meet the shard's earlier entries, then join them; forget them after the TTL.

    An element is one batch's probes of this shard (:func:`encode_probes`), so a batch costs at most
    ``index_shards`` keyed elements, not one per index key (about 35 an article, each a state
    round trip to the runner). The shard's entries live in its bag (25-byte rows, one blob per
    batch) and, to avoid reading the whole bag for every batch, in a copy in the worker's memory
    (:class:`ShardIndex`), trusted only while it mirrors the state: every element writes a fresh
    random token to the shard's ``TOKEN`` state and to the copy; a copy whose token differs from
    the state's (another worker served the shard, a bundle failed and its writes were dropped, a
    new process) is rebuilt from the bag. Runners process one key in one bundle at a time, so the
    token read and the token written bracket every change.

    Bounded: the shard's timer stands at its newest entry's time plus the TTL and clears it without
    reading. A shard that never rests for a TTL is pruned as it grows: once it holds twice the
    entries it held after the last pruning, entries older than two TTLs before the batch are
    dropped and the bag rewritten (one TTL of margin for batches that arrive out of event-time
    order, e.g. a lagging partition). Pairing does not depend on either: :func:`may_pair` refuses
    entries further apart than the TTL.
    """

    TOKEN = userstate.ReadModifyWriteStateSpec("token", coders.BytesCoder())
    ENTRIES = userstate.BagStateSpec("entries", coders.BytesCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)
    PRUNE_FROM = 4096

    def __init__(self, config: DedupConfig, cache: shared.Shared, tag: str) -> None:
        self._config = config
        self._cache_handle = cache
        self._tag = tag
        self._pairs = beam.metrics.Metrics.counter(STAGE, "candidate_pairs")
        self._reloads = beam.metrics.Metrics.counter(STAGE, "index_shard_reloads")

    def setup(self) -> None:
        self._cache: ShardCache = self._cache_handle.acquire(ShardCache, tag=self._tag)

    def process(
        self,
        element: tuple[bytes, bytes],
        token: Any = beam.DoFn.StateParam(TOKEN),
        entries: Any = beam.DoFn.StateParam(ENTRIES),
        expiry: Any = beam.DoFn.TimerParam(EXPIRY),
    ) -> Iterator[tuple[bytes, bytes]]:
        shard, message = element
        decoded = decode_probes(message)
        probes = [(ticket, keys) for _, ticket, keys in decoded]
        ttl = self._config.ttl_micros
        with self._cache.lock(shard):  # released before anything is yielded
            index = self._current(shard, token, entries)
            pairs = match_shard(index, probes, ttl)
            entries.add(shard_rows(probes).tobytes())
            if index.stored >= max(self.PRUNE_FROM, 2 * index.kept_at_pruning):
                batch_time = min(ticket.time_us for ticket, _ in probes)
                if index.prune(batch_time - 2 * ttl):
                    entries.clear()
                    for blob in chunks(index.entries()):
                        entries.add(blob)
                index.stored = index.kept_at_pruning = len(index)
            index.token = uuid.uuid4().bytes
            token.write(index.token)
            self._cache.indexes[shard] = index
        if index.newest is not None:
            hold_until_watermark_passes(expiry, index.newest + ttl)
        self._pairs.inc(len(pairs))
        for record, via, position in pairs:
            yield record_key(record), CANDIDATE + via + decoded[position][0]

    def _current(self, shard: bytes, token: Any, entries: Any) -> ShardIndex:
        """The cached copy of the shard if it mirrors the state, else one rebuilt from the bag."""
        stored_token = token.read()
        index = self._cache.indexes.get(shard)
        if index is None or stored_token is None or index.token != stored_token:
            self._reloads.inc()
            index = ShardIndex.from_blobs(entries.read(), stored_token)
        return index

    @userstate.on_timer(EXPIRY)
    def expire(
        self,
        shard: Any = beam.DoFn.KeyParam,
        token: Any = beam.DoFn.StateParam(TOKEN),
        entries: Any = beam.DoFn.StateParam(ENTRIES),
    ) -> None:
        with self._cache.lock(shard):
            entries.clear()
            token.clear()
            self._cache.indexes.pop(shard, None)


class VerifyCandidatesFn(beam.DoFn):
    """Keyed by record id: hold the article's ticket, verify pairs against it, send decisions."""

    ITEMS = userstate.BagStateSpec("items", coders.BytesCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, config: DedupConfig) -> None:
        self._config = config
        self._verified = beam.metrics.Metrics.counter(STAGE, "verified_pairs")

    def process(
        self,
        element: tuple[bytes, bytes],
        items: Any = beam.DoFn.StateParam(ITEMS),
        expiry: Any = beam.DoFn.TimerParam(EXPIRY),
    ) -> Iterator[tuple[bytes, Match]]:
        _, message = element
        stored = list(items.read())
        own = next((decode_ticket(raw[1:]) for raw in stored if raw[:1] == TICKET), None)
        if message[:1] == TICKET:
            if own is None:  # else a replayed message: the ticket is already here
                own = decode_ticket(message[1:])
                items.add(message)
                hold_until_watermark_passes(expiry, own.time_us + self._config.ttl_micros)
                for raw in stored:  # pairs that arrived before the ticket
                    yield from self._decide(own, raw)
        elif own is None:
            items.add(message)
        else:
            yield from self._decide(own, message)

    def _decide(self, own: Ticket, candidate: bytes) -> Iterator[tuple[bytes, Match]]:
        via, other = candidate[1:2], decode_ticket(candidate[2:])
        match = verify(own, other, via, self._config)
        if match is not None:
            self._verified.inc()
            yield match.later.batch_key.encode(), match
            earlier = match.earlier
            if not earlier.seed and earlier.batch_key != match.later.batch_key:
                yield earlier.batch_key.encode(), match  # the later article's root needs its link in time

    @userstate.on_timer(EXPIRY)
    def expire(self, items: Any = beam.DoFn.StateParam(ITEMS)) -> None:
        items.clear()
