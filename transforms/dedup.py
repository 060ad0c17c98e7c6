"""Deduplicate: exact and near-duplicate articles, decided in keyed state, bounded by a TTL.

``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]``: every batch comes out with the
same records, each live article either kept (``cluster_id`` = its own id) or replaced by a
:class:`~schemas.records.Duplicate` naming the kept article heading its cluster. The rule (what
counts as a duplicate, and of what) is in :mod:`transforms.dedup_core`; this module runs it in Beam.

How it runs (six steps, five of them keyed)
    1. ``Fingerprint`` (stateless) makes a :class:`Ticket` per live article and sends: the batch
       to step 6 (keyed by batch); the batch's articles, as links (:class:`Link`), to step 4
       (keyed by batch); the ticket to step 3 (keyed by record id); and to step 2, for each of
       the ``index_shards`` shards its articles' index keys (URL, content hash, prefix, LSH
       bands, anchors) fall in, one message with those articles and keys.
    2. ``MatchShards``, keyed by shard, keeps the shard's entries (index key, record id, time,
       seed flag; 25 bytes each) in a bag and a copy of them in worker memory. Each probe meets
       every entry under its keys within the TTL and sends the pair to step 3 under the *entry's*
       record id, carrying the probe's ticket; then it is added itself. Whichever of the two
       arrives second finds the first, so every pair that shares a key meets, in whichever order
       the workers saw them. One keyed element per batch and shard, not one per index key (about
       50 an article): on Prism each keyed element and state access is a round trip from the SDK,
       and one per index key cost more than NER itself (see docs/benchmarks.md, Entities).
    3. ``VerifyCandidates``, keyed by record id, holds that article's ticket (its one-byte
       MinHash and where its batch is). It verifies each pair against it (:func:`verify`) and
       sends the match to the batch of the *later* article of the pair (by :func:`order`), and,
       when the earlier one is live and in another batch, to that batch too, as a request.
    4. ``DecideArticles``, keyed by batch, gathers its articles' matches; once the watermark
       passes its latest article's event time (:func:`release_time`) it sends each article's link
       (kept, or its best match) to step 5. A request makes it send an article's link earlier,
       as soon as the watermark passes that article's time (see "Links in time" below).
    5. ``LinkClusters``, one key for the whole stream, finds each link's root
       (:class:`ClusterRoots`: kept articles are their own; a duplicate's is the root of the
       article it matched, known once that article's link has come) and sends the settled
       links to their batches. It holds only links and roots (tens of bytes an article), in a
       bag mirrored in worker memory like the shards, pruned of roots two TTLs old.
    6. ``LinkDuplicates``, keyed by batch, holds the batch until every live article's link is
       settled, then replaces each duplicate by a ``Duplicate`` of its root, and records the root
       in the article's memory for later runs.

Invariants (each holds on any Beam runner: they rest on the model's watermark, not on scheduling)
    * One outcome per record: step 6 emits exactly the batch it received, each article kept or
      turned into a duplicate; nothing is added or dropped (the lake sink checks it again).
    * Complete before release. An article's event time ``e`` is its Kafka record's timestamp as
      the source orders it; within a partition the source never emits a record with ``e`` behind
      the partition's watermark, and stamps each batch with its *earliest* ``e``. Every message
      of steps 2 and 3 carries the timestamp of one of the two batches of its pair, so a message
      that can decide article B (paired with an A that orders before it, so ``e(A) <= e(B)``) is
      stamped no later than ``e(B)``; and every article that orders before B was emitted before
      the watermark passed ``e(B)``. Step 4 sends B's link only once the watermark has passed
      ``e(B)``: it has every match it will ever get.
    * Links resolve: every ``duplicate_of`` is the id of a kept article (or of a seed's root, kept
      by an earlier run). Step 5 sees every live article's link, so a chain A < B < C (C matched
      only B, B matched A) settles C on A whatever the order the links arrive in; a seed's root
      comes with its memory.
    * Links in time (so the batch still holds the watermark at or below its own time, which
      ``MarkComplete`` relies on). A batch X is released at ``r(X)``, its latest ``e`` (to the
      millisecond above). C in X needs B's link, B in batch Y that may be released later. The
      match (C, B) reaches Y stamped no later than ``e(C)``, and Y sets a timer at the later of
      ``e(B)`` and that stamp (both below ``r(X)``) to send B's link then; B in turn has asked
      for A's link no later than ``e(B)``. So every link C's root depends on is sent stamped no
      later than ``r(X)``, and until the last of them reaches step 6, one of them, or a timer
      below ``r(X)``, holds the watermark there. Steps 5 and 6 emit while processing the message
      that completes a batch, with that message's timestamp; never late.
    * Deterministic: :func:`~transforms.dedup_core.order` ranks articles by event time, a
      content tie-break and record coordinates, all read from the records; batch size,
      arrival, bundle order and workers change when a pair meets, never which article is kept
      or which one a duplicate names.
    * State is the truth: a shard's (and the clusters') in-memory copy is used only while it
      carries the token last written to its state (each element writes a new one), so a copy
      left stale by a failed bundle, another worker or a restart is rebuilt from the bag, never
      trusted. This relies on a key being in one bundle at a time, which Beam runners guarantee
      (Prism holds a key back from new bundles while one has it).
    * Bounded: a ticket expires ``ttl_seconds`` (event time) after its article, and a shard's
      entries ``ttl_seconds`` after the shard's newest one, by an event-time timer that clears
      without reading; a shard that is never quiet that long is pruned of entries older than two
      TTLs as it grows, and so are the roots of step 5. Steps 4 and 6 forget a batch once it has
      gone on. State per article is measured by ``benchmarks/dedup.py``.
    * Restart-safe: runner state does not outlive a run here, so it is rebuilt from the lake at
      start. Every article a batch brought to this stage is committed with that batch into
      ``_records/`` as its ticket, keys and root; a new run reads them back within the TTL as
      *seeds*. A seed keeps its place in :func:`order` and is never decided again, so a record
      read again after a ``kill -9`` meets exactly the articles it would have met had the run
      gone on, and gets the same decision and the same root.
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
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Timestamp

from schemas.records import Article, DeadLetter, Duplicate, Outcome, OutcomeBatch
from transforms.dedup_core import (
    CONFLICT,
    VOID,
    ArticleRef,
    ClusterRoots,
    DedupConfig,
    Link,
    Match,
    ShardIndex,
    Ticket,
    best_match,
    chunks,
    decode_links,
    decode_memory,
    decode_probes,
    decode_ticket,
    encode_links,
    encode_memory,
    encode_probes,
    encode_ticket,
    fingerprint,
    id_conflict,
    match_shard,
    probes_by_shard,
    remember_root,
    shard_rows,
    verify,
)

__all__ = ["DedupConfig", "Deduplicate", "apply_links", "release_time"]

STAGE = "dedup"
_LOG = logging.getLogger(__name__)
_TO_BATCH, _TO_DECIDE, _TO_RECORD, _TO_INDEX, _UNTOUCHED = "to_batch", "to_decide", "to_record", "to_index", "untouched"
_TICKET, _CANDIDATE = b"T", b"C"
_SEED_TIME = Timestamp(0)
_CLUSTERS = b"clusters"  # the one key of LinkClusters


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


def _after(micros: int) -> int:
    """The next whole millisecond after ``micros`` (runners keep timers to the millisecond)."""
    return (micros // 1000 + 1) * 1000


def release_time(links: Iterable[Link], timestamp: Timestamp) -> Timestamp:
    """When a batch's articles are all decided: once the watermark passes its latest article's event time.

    Every message that can decide one of its articles is stamped no later than that article's
    event time (see the module docstring), so the release is the next whole millisecond after
    the latest of those times and the batch's own.
    """
    return Timestamp(micros=_after(max([timestamp.micros, *(link.time_us for link in links)])))


def apply_links(element: OutcomeBatch, settled: Iterable[tuple[Link, str]]) -> OutcomeBatch:
    """The batch with each live article kept, turned into a ``Duplicate`` of its root or turned away, as its link says.

    Every live article must have its settled ``(link, root)``; its memory learns its root. An
    article whose root is :data:`VOID` becomes the dead letter ``id_conflict`` (it keeps its
    memory: a later run must know it was turned away).
    """
    by_offset = {link.offset: (link, root) for link, root in settled}
    outcomes: list[Outcome] = []
    for outcome in element.outcomes:
        if not isinstance(outcome, Article):
            outcomes.append(outcome)
            continue
        link, root = by_offset[outcome.kafka_offset]
        if outcome.dedup_memory:
            outcome = outcome.evolve(dedup_memory=remember_root(outcome.dedup_memory, root))
        if root == VOID:
            error = (
                f"article id {outcome.article_id!r} is already taken by an earlier record with other content"
                f" ({link.conflict_with})"
            )
            letter = DeadLetter.for_article(outcome, STAGE, CONFLICT, error)
            outcomes.append(letter.evolve(dedup_memory=outcome.dedup_memory))
        elif link.matched is None:
            outcomes.append(outcome.evolve(cluster_id=outcome.article_id))
        else:
            outcomes.append(Duplicate(outcome, root, link.similarity, link.method))
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
        yield pvalue.TaggedOutput(_TO_DECIDE, (key.encode(), encode_links(Link.kept(t) for t in tickets)))
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
            earlier = match.earlier
            if not earlier.seed and earlier.batch_key != match.later.batch_key:
                yield earlier.batch_key.encode(), match  # the later article's root needs its link in time

    @userstate.on_timer(EXPIRY)
    def expire(self, items: Any = beam.DoFn.StateParam(ITEMS)) -> None:
        items.clear()


class _DecideArticlesFn(beam.DoFn):
    """Keyed by batch: gather the batch's matches; send each article's link once it is decided.

    Its articles (their kept links) and their matches wait in ``ITEMS``; ``RELEASE`` fires when
    the watermark passes the batch's latest article and sends every link not sent yet. A match
    whose *earlier* article is here (the later one is in another batch) is a request: that
    batch needs this article's link no later than its own release, so ``EARLY`` fires at the
    later of the article's time and the request's stamp and sends the links of the articles
    before it (decided: the watermark has passed them). ``EARLY_AT`` is when ``EARLY`` stands,
    ``REQUESTS`` the times still asked for, ``SENT`` the records sent early.
    """

    ITEMS = userstate.BagStateSpec("items", coders.PickleCoder())
    SENT = userstate.BagStateSpec("sent", coders.VarIntCoder())
    REQUESTS = userstate.BagStateSpec("requests", coders.VarIntCoder())
    EARLY_AT = userstate.ReadModifyWriteStateSpec("early_at", coders.VarIntCoder())
    RELEASE = userstate.TimerSpec("release", TimeDomain.WATERMARK)
    EARLY = userstate.TimerSpec("early", TimeDomain.WATERMARK)

    def __init__(self) -> None:
        self._early = beam.metrics.Metrics.counter(STAGE, "links_sent_early")

    def process(
        self,
        element: tuple[bytes, bytes | Match],
        timestamp: Any = beam.DoFn.TimestampParam,
        items: Any = beam.DoFn.StateParam(ITEMS),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        release: Any = beam.DoFn.TimerParam(RELEASE),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> None:
        batch, item = element
        if isinstance(item, bytes):  # the batch's articles
            items.add(item)
            release.set(release_time(decode_links(item), timestamp))
        elif item.later.batch_key.encode() == batch:
            items.add(item)
        else:  # a request for the link of item.earlier, one of ours
            due = max(_after(item.earlier.time_us), _after(timestamp.micros - 1))
            requests.add(due)
            standing = early_at.read()
            if standing is None or due < standing:
                early.set(Timestamp(micros=due))
                early_at.write(due)

    @userstate.on_timer(EARLY)
    def send_early(
        self,
        timestamp: Any = beam.DoFn.TimestampParam,
        items: Any = beam.DoFn.StateParam(ITEMS),
        sent: Any = beam.DoFn.StateParam(SENT),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> Iterator[tuple[bytes, bytes]]:
        now = timestamp.micros
        later = [due for due in requests.read() if due > now]
        requests.clear()
        early_at.clear()
        if later:
            for due in later:
                requests.add(due)
            early.set(Timestamp(micros=min(later)))
            early_at.write(min(later))
        stored = list(items.read())
        if not any(isinstance(item, bytes) for item in stored):
            return  # released already (the articles always come before a request is due)
        done = set(sent.read())
        links = [link for link in _links(stored) if link.time_us < now and link.record_id not in done]
        for link in links:
            sent.add(link.record_id)
        if links:
            self._early.inc(len(links))
            yield _CLUSTERS, encode_links(links)

    @userstate.on_timer(RELEASE)
    def release(
        self,
        items: Any = beam.DoFn.StateParam(ITEMS),
        sent: Any = beam.DoFn.StateParam(SENT),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> Iterator[tuple[bytes, bytes]]:
        stored = list(items.read())
        done = set(sent.read())
        for state in (items, sent, requests, early_at):
            state.clear()
        early.clear()
        links = [link for link in _links(stored) if link.record_id not in done]
        if links:
            yield _CLUSTERS, encode_links(links)


def _links(stored: Iterable[bytes | Match]) -> list[Link]:
    """A batch's links from its stored articles and matches: each article kept unless it has a match."""
    matches: dict[int, list[Match]] = {}
    articles: list[Link] = []
    for item in stored:
        if isinstance(item, bytes):
            articles += decode_links(item)
        else:
            matches.setdefault(item.later.record_id, []).append(item)
    return [
        article.to(best_match(found := matches.get(article.record_id, ())), id_conflict(found)) for article in articles
    ]


class _ClusterCache:
    """The worker's copy of the clusters' roots (one key), with the token of the state it mirrors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.roots: ClusterRoots | None = None
        self.token: bytes | None = None
        self.stored = self.kept_at_pruning = 0


class _LinkClustersFn(beam.DoFn):
    """One key: settle every live article's link on the root of its cluster, send it to its batch.

    ``ENTRIES`` holds the links taken in (one blob per message; after pruning, a snapshot), and
    the worker a :class:`ClusterRoots` built from them, trusted only while it carries the token
    last written to ``TOKEN`` (as :class:`_MatchShardsFn` does with its shards). Once the entries
    have doubled since the last pruning, roots older than two TTLs before the message's earliest
    article are dropped (``FORGOTTEN`` remembers how far) and the bag rewritten. A stream that
    goes quiet keeps its last TTL of roots: no timer clears them, since a link may still come
    for them (a batch's articles can be far older than its release).
    """

    TOKEN = userstate.ReadModifyWriteStateSpec("token", coders.BytesCoder())
    FORGOTTEN = userstate.ReadModifyWriteStateSpec("forgotten", coders.VarIntCoder())
    ENTRIES = userstate.BagStateSpec("entries", coders.BytesCoder())
    PRUNE_FROM = 4096

    def __init__(self, config: DedupConfig, cache: shared.Shared, tag: str) -> None:
        self._config = config
        self._cache_handle = cache
        self._tag = tag
        self._waiting = beam.metrics.Metrics.distribution(STAGE, "links_waiting")

    def setup(self) -> None:
        self._cache: _ClusterCache = self._cache_handle.acquire(_ClusterCache, tag=self._tag)

    def process(
        self,
        element: tuple[bytes, bytes],
        token: Any = beam.DoFn.StateParam(TOKEN),
        forgotten: Any = beam.DoFn.StateParam(FORGOTTEN),
        entries: Any = beam.DoFn.StateParam(ENTRIES),
    ) -> Iterator[tuple[bytes, list[tuple[Link, str]]]]:
        _, message = element
        links = decode_links(message)
        cache = self._cache
        with cache.lock:  # released before anything is yielded
            stored_token = token.read()
            if cache.roots is None or stored_token is None or cache.token != stored_token:
                cache.roots = ClusterRoots(forgotten.read())
                count = 0
                for blob in entries.read():
                    replayed = decode_links(blob)
                    cache.roots.add(replayed)
                    count += len(replayed)
                cache.stored = cache.kept_at_pruning = count
            roots = cache.roots
            settled = roots.add(links)
            entries.add(message)
            cache.stored += len(links)
            if cache.stored >= max(self.PRUNE_FROM, 2 * cache.kept_at_pruning):
                if roots.prune(min(link.time_us for link in links) - 2 * self._config.ttl_micros):
                    entries.clear()
                    entries.add(encode_links(roots.snapshot()))
                    forgotten.write(roots.forgotten_before)
                cache.stored = cache.kept_at_pruning = len(roots)
            cache.token = uuid.uuid4().bytes
            token.write(cache.token)
            self._waiting.update(roots.waiting)
        by_batch: dict[str, list[tuple[Link, str]]] = {}
        for link, root in settled:
            by_batch.setdefault(link.batch_key, []).append((link, root))
        for batch, pairs in by_batch.items():
            yield batch.encode(), pairs


class _LinkDuplicatesFn(beam.DoFn):
    """Keyed by batch: hold the batch until all its live articles' links are settled, then apply them.

    ``EXPECTED`` is how many live articles the batch has (known once the batch is here),
    ``SETTLED`` how many settled links have come; the bag is read once, when they agree.
    """

    ITEMS = userstate.BagStateSpec("items", coders.PickleCoder())
    EXPECTED = userstate.ReadModifyWriteStateSpec("expected", coders.VarIntCoder())
    SETTLED = userstate.ReadModifyWriteStateSpec("settled", coders.VarIntCoder())

    def __init__(self) -> None:
        self._kept = beam.metrics.Metrics.counter(STAGE, "kept")
        self._exact = beam.metrics.Metrics.counter(STAGE, "exact_duplicates")
        self._near = beam.metrics.Metrics.counter(STAGE, "near_duplicates")
        self._conflicts = beam.metrics.Metrics.counter(STAGE, "id_conflicts")

    def process(
        self,
        element: tuple[bytes, OutcomeBatch | list[tuple[Link, str]]],
        items: Any = beam.DoFn.StateParam(ITEMS),
        expected: Any = beam.DoFn.StateParam(EXPECTED),
        settled: Any = beam.DoFn.StateParam(SETTLED),
    ) -> Iterator[OutcomeBatch]:
        _, item = element
        items.add(item)
        if isinstance(item, OutcomeBatch):
            total = len(item.articles())
            expected.write(total)
            count = settled.read() or 0
        else:
            total = expected.read()
            count = (settled.read() or 0) + len(item)
            settled.write(count)
        if total is not None and count >= total:
            yield from self._release(items, expected, settled)

    def _release(self, items: Any, expected: Any, settled: Any) -> Iterator[OutcomeBatch]:
        """The batch with its links applied, once every article of it has one.

        Apart from ``process`` so that it has no bare ``return``: Beam warns about a generator
        that also returns (apache/beam#22969).
        """
        stored = list(items.read())
        batch = next(item for item in stored if isinstance(item, OutcomeBatch))
        pairs = [pair for item in stored if isinstance(item, list) for pair in item]
        if {link.offset for link, _ in pairs} != {article.kafka_offset for article in batch.articles()}:
            return  # a link came twice (it cannot, but a count alone would not tell): wait for the rest
        for state in (items, expected, settled):
            state.clear()
        result = apply_links(batch, pairs)
        for outcome in result.outcomes:
            if isinstance(outcome, Duplicate):
                (self._exact if outcome.method == "exact" else self._near).inc()
            elif isinstance(outcome, Article):
                self._kept.inc()
            elif isinstance(outcome, DeadLetter) and outcome.reason == CONFLICT:
                self._conflicts.inc()
        yield result


class _SeedMessagesFn(beam.DoFn):
    """A seed's remembered ticket (:func:`encode_memory`; see :mod:`transforms.io.lake_seeds`) → its messages.

    The messages keep the seed's timestamp (the epoch): a verdict that waits for a seed's ticket
    is then never stamped later than the batch it concerns.
    """

    def __init__(self, config: DedupConfig) -> None:
        self._config = config

    def process(self, memory: bytes) -> Iterator[pvalue.TaggedOutput]:
        yield from _ticket_messages([decode_memory(memory)], self._config)


def _typed(element_type: Any) -> beam.PTransform:
    """An identity step that declares its elements' type, so keyed state gets a deterministic key coder."""
    return beam.Map(lambda element: element).with_output_types(element_type)


class Deduplicate(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]`` with duplicates marked.

    ``seeds``: optional remembered tickets of articles already in the lake (:func:`encode_memory`
    each, stamped at the epoch: :class:`transforms.io.lake_seeds.LakeSeeds` reads them).
    """

    def __init__(self, config: DedupConfig = DedupConfig(), seeds: beam.PCollection | None = None) -> None:
        super().__init__()
        self._config = config
        self._seeds = seeds

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        config = self._config
        routed = batches | "Fingerprint" >> beam.ParDo(_FingerprintFn(config)).with_outputs(
            _TO_BATCH, _TO_DECIDE, _TO_RECORD, _TO_INDEX, _UNTOUCHED
        )
        to_index = [routed[_TO_INDEX]]
        to_record = [routed[_TO_RECORD]]
        if self._seeds is not None:
            seeded = self._seeds | "SeedMessages" >> beam.ParDo(_SeedMessagesFn(config)).with_outputs(
                _TO_RECORD, _TO_INDEX
            )
            to_index.append(seeded[_TO_INDEX])
            to_record.append(seeded[_TO_RECORD])
        candidates = (
            to_index
            | "AllProbes" >> beam.Flatten()
            | "KeyedByShard" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "MatchShards" >> beam.ParDo(_MatchShardsFn(config, shared.Shared(), uuid.uuid4().hex))
        )
        matches = (
            [*to_record, candidates]
            | "TicketsAndPairs" >> beam.Flatten()
            | "KeyedByRecord" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "VerifyCandidates" >> beam.ParDo(_VerifyCandidatesFn(config))
        )
        links = (
            [routed[_TO_DECIDE], matches]
            | "ArticlesAndMatches" >> beam.Flatten()
            | "KeyedByBatch" >> _typed(Tuple[bytes, Any])  # noqa: UP006
            | "DecideArticles" >> beam.ParDo(_DecideArticlesFn())
        )
        settled = (
            links
            | "KeyedAsOne" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "LinkClusters" >> beam.ParDo(_LinkClustersFn(config, shared.Shared(), uuid.uuid4().hex))
        )
        decided = (
            [routed[_TO_BATCH], settled]
            | "BatchesAndLinks" >> beam.Flatten()
            | "KeyedByBatchAgain" >> _typed(Tuple[bytes, Any])  # noqa: UP006
            | "LinkDuplicates" >> beam.ParDo(_LinkDuplicatesFn())
        )
        return [decided, routed[_UNTOUCHED]] | "AllBatches" >> beam.Flatten()
