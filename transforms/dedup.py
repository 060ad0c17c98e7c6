"""Deduplicate: exact and near-duplicate articles, decided in keyed state, bounded by a TTL.

``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]``: every batch comes out with the
same records, each live article either kept (``cluster_id`` = its own id) or replaced by a
:class:`~schemas.records.Duplicate` naming the earlier article it repeats. The rule (what counts
as a duplicate, and of what) is in :mod:`transforms.dedup_core`; this module runs it in Beam.

How it runs (four steps, three of them keyed)
    1. ``Fingerprint`` (stateless) makes a :class:`Ticket` per live article and sends: the batch
       to step 4 (keyed by batch); the ticket to step 3 (keyed by record id); and to step 2, for
       each of the ``index_shards`` shards its articles' index keys (URL, content hash, prefix,
       LSH bands) fall in, one message with those articles and keys.
    2. ``MatchShards``, keyed by shard, keeps the shard's entries (index key, record id, time,
       seed flag; 25 bytes each) in a bag and a copy of them in worker memory. Each probe meets
       every entry under its keys within the TTL and sends the pair to step 3 under the *entry's*
       record id, carrying the probe's ticket; then it is added itself. Whichever of the two
       arrives second finds the first, so every pair that shares a key meets, in whichever order
       the workers saw them. One keyed element per batch and shard, not one per index key (about
       35 an article): on Prism each keyed element and state access is a round trip from the SDK,
       and one per index key cost more than NER itself (see the README's entity benchmark).
    3. ``VerifyCandidates``, keyed by record id, holds that article's ticket (its one-byte
       MinHash and where its batch is). It verifies each pair against it (:func:`verify`) and
       sends a decision to the batch of the *later* article of the pair (by :func:`order`).
    4. ``ApplyDecisions``, keyed by batch, holds the batch until the watermark passes its latest
       article's event time (:func:`release_time`), then replaces each article that has a
       decision by a ``Duplicate`` of the earliest match.

Invariants (each holds on any Beam runner: they rest on the model's watermark, not on scheduling)
    * One outcome per record: step 4 emits exactly the batch it received, each article kept or
      turned into a duplicate; nothing is added or dropped (the lake sink checks it again).
    * Complete before release. An article's event time ``e`` is its Kafka record's timestamp as
      the source orders it; within a partition the source never emits a record with ``e`` behind
      the partition's watermark, and stamps each batch with its *earliest* ``e``. Every message
      of steps 2 and 3 carries the timestamp of one of the two batches of its pair, so a message
      that can decide article B (paired with an A that orders before it, so ``e(A) <= e(B)``) is
      stamped no later than ``e(B)``; and every article that orders before B was emitted before
      the watermark passed ``e(B)``. Released when the watermark passes the batch's latest
      ``e``, a batch has every decision it will ever get. Pending elements and timers hold the
      watermark on every runner; bag state does not, and nothing here relies on it.
    * Deterministic: :func:`~transforms.dedup_core.order` ranks articles by event time, a
      content tie-break and record coordinates, all read from the records; batch size,
      arrival, bundle order and workers change when a pair meets, never which article is kept.
    * State is the truth: a shard's in-memory copy is used only while it carries the token last
      written to the shard's state (each element writes a new one), so a copy left stale by a
      failed bundle, another worker or a restart is rebuilt from the bag, never trusted. This
      relies on a key being in one bundle at a time, which Beam runners guarantee (Prism holds a
      key back from new bundles while one has it).
    * Bounded: a ticket expires ``ttl_seconds`` (event time) after its article, and a shard's
      entries ``ttl_seconds`` after the shard's newest one, by an event-time timer that clears
      without reading; a shard that is never quiet that long is pruned of entries older than two
      TTLs as it grows. State per article is measured by ``benchmarks/dedup.py``.
    * Restart-safe: runner state does not outlive a run here, so it is rebuilt from the lake at
      start. Every article a batch brought to this stage (kept, duplicate or later quarantined)
      is committed with that batch into ``_records/`` as its ticket and keys; a new run reads them
      back within the TTL as *seeds*. A seed keeps its place in :func:`order` and is never decided
      again, so a record read again after a ``kill -9`` meets exactly the articles it would have
      met had the run gone on, and gets the same decision.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Tuple  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam import coders, pvalue
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Timestamp

from schemas import arrow
from schemas.records import Article, Duplicate, Outcome, OutcomeBatch
from transforms.dedup_core import (
    ArticleRef,
    DedupConfig,
    Match,
    ShardIndex,
    Ticket,
    best_match,
    chunks,
    decode_memory,
    decode_probes,
    decode_ticket,
    encode_memory,
    encode_probes,
    encode_ticket,
    fingerprint,
    match_shard,
    probes_by_shard,
    shard_rows,
    verify,
)

__all__ = ["DedupConfig", "Deduplicate", "LakeSeeds", "apply_matches", "release_time"]

STAGE = "dedup"
_LOG = logging.getLogger(__name__)
_TO_BATCH, _TO_RECORD, _TO_INDEX, _UNTOUCHED = "to_batch", "to_record", "to_index", "untouched"
_TICKET, _CANDIDATE = b"T", b"C"
_SEED_TIME = Timestamp(0)


def _ref(article: Article) -> ArticleRef:
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


def release_time(element: OutcomeBatch, timestamp: Timestamp) -> Timestamp:
    """When a batch may be decided: once the watermark passes its latest article's event time.

    Every message that can decide one of its articles is stamped no later than that article's
    event time (see the module docstring), and runners keep timers to the millisecond, so the
    release is the next whole millisecond after the latest of those times and the batch's own.
    """
    latest = max([timestamp.micros, *(article.event_us for article in element.articles())])
    return Timestamp(micros=(latest // 1000 + 1) * 1000)


def apply_matches(element: OutcomeBatch, matches: Iterable[Match]) -> OutcomeBatch:
    """The batch with each article that has a match turned into a ``Duplicate`` of its best match."""
    by_offset: dict[int, list[Match]] = {}
    for match in matches:
        by_offset.setdefault(match.later.offset, []).append(match)
    outcomes: list[Outcome] = []
    for outcome in element.outcomes:
        if not isinstance(outcome, Article):
            outcomes.append(outcome)
            continue
        best = best_match(by_offset.get(outcome.kafka_offset, ()))
        if best is None:
            outcomes.append(outcome.evolve(cluster_id=outcome.article_id))
        else:
            outcomes.append(Duplicate(outcome, best.earlier.article_id, best.similarity, best.method))
    return OutcomeBatch(element.batch, tuple(outcomes))


def _expiry_time(time_us: int, ttl_us: int) -> Timestamp:
    """When an entry of ``time_us`` is due to go: after its TTL, on the next whole millisecond.

    Runners keep timers to the millisecond; a timer set between two milliseconds would fire at
    the earlier one, find nothing expired yet and, set again, fire again for ever.
    """
    return Timestamp(micros=((time_us + ttl_us) // 1000 + 1) * 1000)


def _record_key(record_id: int) -> bytes:
    return record_id.to_bytes(8, "little")


class _FingerprintFn(beam.DoFn):
    def __init__(self, config: DedupConfig) -> None:
        self._config = config

    def process(self, element: OutcomeBatch, timestamp: Any = beam.DoFn.TimestampParam) -> Iterator[Any]:
        articles = element.articles()
        if not articles:
            yield pvalue.TaggedOutput(_UNTOUCHED, element)
            return
        key = element.batch.key
        tickets = fingerprint([_ref(a) for a in articles], timestamp.micros, key, self._config)
        yield pvalue.TaggedOutput(_TO_BATCH, (key.encode(), _with_memories(element, tickets)))
        yield from _ticket_messages(tickets, self._config)


def _with_memories(element: OutcomeBatch, tickets: Sequence[Ticket]) -> OutcomeBatch:
    """The batch with each live article carrying what the lake will remember of it (its ticket and keys)."""
    memories = {ticket.offset: encode_memory(ticket) for ticket in tickets}
    outcomes = tuple(
        outcome.evolve(dedup_memory=memories[outcome.kafka_offset]) if isinstance(outcome, Article) else outcome
        for outcome in element.outcomes
    )
    return OutcomeBatch(element.batch, outcomes)


def _ticket_messages(tickets: Sequence[Ticket], config: DedupConfig) -> Iterator[pvalue.TaggedOutput]:
    """Each ticket to its record's key, and one message per index shard the batch's keys fall in."""
    encoded = {ticket.record_id: encode_ticket(ticket) for ticket in tickets}
    for ticket in tickets:
        yield pvalue.TaggedOutput(_TO_RECORD, (_record_key(ticket.record_id), _TICKET + encoded[ticket.record_id]))
    for shard, probes in sorted(probes_by_shard(tickets, config.index_shards).items()):
        message = encode_probes([(encoded[ticket.record_id], keys) for ticket, keys in probes])
        yield pvalue.TaggedOutput(_TO_INDEX, (_shard_key(shard), message))


def _shard_key(shard: int) -> bytes:
    return shard.to_bytes(2, "big")


class _ShardCache:
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


class _MatchShardsFn(beam.DoFn):
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
        self._cache: _ShardCache = self._cache_handle.acquire(_ShardCache, tag=self._tag)

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
            expiry.set(_expiry_time(index.newest, ttl))
        self._pairs.inc(len(pairs))
        for record, via, position in pairs:
            yield _record_key(record), _CANDIDATE + via + decoded[position][0]

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


class _VerifyCandidatesFn(beam.DoFn):
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
        own = next((decode_ticket(raw[1:]) for raw in stored if raw[:1] == _TICKET), None)
        if message[:1] == _TICKET:
            if own is None:  # else a replayed message: the ticket is already here
                own = decode_ticket(message[1:])
                items.add(message)
                expiry.set(_expiry_time(own.time_us, self._config.ttl_micros))
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

    @userstate.on_timer(EXPIRY)
    def expire(self, items: Any = beam.DoFn.StateParam(ITEMS)) -> None:
        items.clear()


class _ApplyDecisionsFn(beam.DoFn):
    """Keyed by batch: hold the batch until the watermark passes its time, then apply its matches."""

    ITEMS = userstate.BagStateSpec("items", coders.PickleCoder())
    RELEASE = userstate.TimerSpec("release", TimeDomain.WATERMARK)

    def __init__(self) -> None:
        self._kept = beam.metrics.Metrics.counter(STAGE, "kept")
        self._exact = beam.metrics.Metrics.counter(STAGE, "exact_duplicates")
        self._near = beam.metrics.Metrics.counter(STAGE, "near_duplicates")

    def process(
        self,
        element: tuple[bytes, OutcomeBatch | Match],
        timestamp: Any = beam.DoFn.TimestampParam,
        items: Any = beam.DoFn.StateParam(ITEMS),
        release: Any = beam.DoFn.TimerParam(RELEASE),
    ) -> None:
        _, item = element
        items.add(item)
        if isinstance(item, OutcomeBatch):
            release.set(release_time(item, timestamp))

    @userstate.on_timer(RELEASE)
    def release(self, items: Any = beam.DoFn.StateParam(ITEMS)) -> Iterator[OutcomeBatch]:
        stored = list(items.read())
        items.clear()
        batches = [item for item in stored if isinstance(item, OutcomeBatch)]
        if not batches:
            return
        result = apply_matches(batches[0], [item for item in stored if isinstance(item, Match)])
        for outcome in result.outcomes:
            if isinstance(outcome, Duplicate):
                (self._exact if outcome.method == "exact" else self._near).inc()
            elif isinstance(outcome, Article):
                self._kept.inc()
        yield result


class _SeedTicketsFn(beam.DoFn):
    """Reads one lake partition folder and makes seed tickets of the articles a previous run decided.

    A ``_records/`` folder holds every article deduplication saw (kept, duplicate, quarantined) with
    its ticket and keys, as that run computed them. An ``articles/`` folder is read only for hours
    that have no ``_records/`` folder (a lake written before it existed): its kept articles are
    fingerprinted again, ordered at their ingestion time.
    """

    def __init__(self, lake_uri: str, config: DedupConfig, since_us: int) -> None:
        self._lake_uri = lake_uri
        self._config = config
        self._since_us = since_us

    def process(self, folder: str) -> Iterator[Any]:
        from transforms.io.lake import Lake

        lake = Lake(self._lake_uri)
        for info in lake.list(lake.path(folder)):
            if not info.path.endswith(".parquet"):
                continue
            if folder.startswith(f"{arrow.RECORD_LOG_TABLE}/"):
                seeds = self._remembered(lake, info.path)
            else:
                seeds = self._refingerprinted(lake, info.path)
            for message in _ticket_messages(seeds, self._config):
                # Stamped at the epoch, not at the seed's own time: a verdict that waits for a
                # seed's ticket is then never stamped later than the batch it concerns.
                yield pvalue.TaggedOutput(message.tag, TimestampedValue(message.value, _SEED_TIME))

    def _remembered(self, lake: Any, path: str) -> list[Ticket]:
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["dedup_memory", "ingested_at"], filesystem=lake.fs)
        return [
            decode_memory(row["dedup_memory"])
            for row in table.to_pylist()
            if row["dedup_memory"] and int(row["ingested_at"].timestamp() * 1_000_000) >= self._since_us
        ]

    def _refingerprinted(self, lake: Any, path: str) -> list[Ticket]:
        import pyarrow.parquet as pq

        columns = [
            "article_id",
            "text",
            "canonical_url",
            "content_hash",
            "ingested_at",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
        ]
        refs = []
        for row in pq.read_table(path, columns=columns, filesystem=lake.fs).to_pylist():
            time_us = int(row["ingested_at"].timestamp() * 1_000_000)
            if time_us >= self._since_us:
                refs.append(
                    ArticleRef(
                        row["article_id"],
                        row["text"] or "",
                        row["canonical_url"] or "",
                        row["content_hash"] or "",
                        row["kafka_topic"],
                        row["kafka_partition"],
                        row["kafka_offset"],
                        time_us,
                    )
                )
        return fingerprint(refs, 0, "", self._config, seed=True) if refs else []


class LakeSeeds(beam.PTransform):
    """``PBegin`` → the seed messages of the articles the lake decided within the TTL before ``now_us``.

    ``folders``: ``_records/`` partition folders (and ``articles/`` ones of hours without
    ``_records/``); the TTL is counted on ``ingested_at``; one folder per element, read in parallel.
    """

    def __init__(self, lake_uri: str, folders: Sequence[str], config: DedupConfig, now_us: int) -> None:
        super().__init__()
        self._lake_uri = lake_uri
        self._folders = list(folders)
        self._config = config
        self._since_us = now_us - config.ttl_micros

    def expand(self, begin: pvalue.PBegin) -> pvalue.DoOutputsTuple:
        return (
            begin
            | "ListFolders" >> beam.Create(self._folders)
            | "SeedTickets"
            >> beam.ParDo(_SeedTicketsFn(self._lake_uri, self._config, self._since_us)).with_outputs(
                _TO_RECORD, _TO_INDEX
            )
        )


def _typed(element_type: Any) -> beam.PTransform:
    """An identity step that declares its elements' type, so keyed state gets a deterministic key coder."""
    return beam.Map(lambda element: element).with_output_types(element_type)


class Deduplicate(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]`` with duplicates marked.

    ``seeds``: optional outputs of :class:`LakeSeeds` (articles already in the lake).
    """

    def __init__(self, config: DedupConfig = DedupConfig(), seeds: pvalue.DoOutputsTuple | None = None) -> None:
        super().__init__()
        self._config = config
        self._seeds = seeds

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        config = self._config
        routed = batches | "Fingerprint" >> beam.ParDo(_FingerprintFn(config)).with_outputs(
            _TO_BATCH, _TO_RECORD, _TO_INDEX, _UNTOUCHED
        )
        to_index = [routed[_TO_INDEX]]
        to_record = [routed[_TO_RECORD]]
        if self._seeds is not None:
            to_index.append(self._seeds[_TO_INDEX])
            to_record.append(self._seeds[_TO_RECORD])
        candidates = (
            to_index
            | "AllProbes" >> beam.Flatten()
            | "KeyedByShard" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "MatchShards" >> beam.ParDo(_MatchShardsFn(config, shared.Shared(), uuid.uuid4().hex))
        )
        decisions = (
            [*to_record, candidates]
            | "TicketsAndPairs" >> beam.Flatten()
            | "KeyedByRecord" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "VerifyCandidates" >> beam.ParDo(_VerifyCandidatesFn(config))
        )
        decided = (
            [routed[_TO_BATCH], decisions]
            | "BatchesAndDecisions" >> beam.Flatten()
            | "KeyedByBatch" >> _typed(Tuple[bytes, Any])  # noqa: UP006
            | "ApplyDecisions" >> beam.ParDo(_ApplyDecisionsFn())
        )
        return [decided, routed[_UNTOUCHED]] | "AllBatches" >> beam.Flatten()
