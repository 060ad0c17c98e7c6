"""Deduplicate: exact and near-duplicate articles, decided in keyed state, bounded by a TTL.

``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]``: every batch comes out with the
same records, each live article either kept (``cluster_id`` = its own id) or replaced by a
:class:`~schemas.records.Duplicate` naming the kept article heading its cluster. The rule (what
counts as a duplicate, and of what) is in :mod:`transforms.dedup_core`; this package runs it in Beam,
one module per group of steps (:mod:`.messages` step 1, :mod:`.match` steps 2-3, :mod:`.decide` steps 4-5,
:mod:`.link` step 6); here is the composite that wires them.

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

import uuid
from typing import Any, Tuple  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam.utils import shared

from transforms.dedup.decide import DecideArticlesFn, LinkClustersFn, release_time
from transforms.dedup.link import LinkDuplicatesFn, apply_links
from transforms.dedup.match import MatchShardsFn, VerifyCandidatesFn
from transforms.dedup.messages import TO_BATCH, TO_DECIDE, TO_INDEX, TO_RECORD, UNTOUCHED, FingerprintFn, SeedMessagesFn
from transforms.dedup_core import DedupConfig

__all__ = ["DedupConfig", "Deduplicate", "apply_links", "release_time"]


def _typed(element_type: Any) -> beam.PTransform:
    """An identity step that declares its elements' type, so keyed state gets a deterministic key coder."""
    return beam.Map(lambda element: element).with_output_types(element_type)


class Deduplicate(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]`` with duplicates marked.

    ``seeds``: optional remembered tickets of articles already in the lake (:func:`encode_memory`
    each, stamped at the epoch: :class:`transforms.io.lake.seeds.LakeSeeds` reads them).
    """

    def __init__(self, config: DedupConfig = DedupConfig(), seeds: beam.PCollection | None = None) -> None:
        super().__init__()
        self._config = config
        self._seeds = seeds

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        config = self._config
        routed = batches | "Fingerprint" >> beam.ParDo(FingerprintFn(config)).with_outputs(
            TO_BATCH, TO_DECIDE, TO_RECORD, TO_INDEX, UNTOUCHED
        )
        to_index = [routed[TO_INDEX]]
        to_record = [routed[TO_RECORD]]
        if self._seeds is not None:
            seeded = self._seeds | "SeedMessages" >> beam.ParDo(SeedMessagesFn(config)).with_outputs(
                TO_RECORD, TO_INDEX
            )
            to_index.append(seeded[TO_INDEX])
            to_record.append(seeded[TO_RECORD])
        candidates = (
            to_index
            | "AllProbes" >> beam.Flatten()
            | "KeyedByShard" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "MatchShards" >> beam.ParDo(MatchShardsFn(config, shared.Shared(), uuid.uuid4().hex))
        )
        matches = (
            [*to_record, candidates]
            | "TicketsAndPairs" >> beam.Flatten()
            | "KeyedByRecord" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "VerifyCandidates" >> beam.ParDo(VerifyCandidatesFn(config))
        )
        links = (
            [routed[TO_DECIDE], matches]
            | "ArticlesAndMatches" >> beam.Flatten()
            | "KeyedByBatch" >> _typed(Tuple[bytes, Any])  # noqa: UP006
            | "DecideArticles" >> beam.ParDo(DecideArticlesFn())
        )
        settled = (
            links
            | "KeyedAsOne" >> _typed(Tuple[bytes, bytes])  # noqa: UP006
            | "LinkClusters" >> beam.ParDo(LinkClustersFn(config, shared.Shared(), uuid.uuid4().hex))
        )
        decided = (
            [routed[TO_BATCH], settled]
            | "BatchesAndLinks" >> beam.Flatten()
            | "KeyedByBatchAgain" >> _typed(Tuple[bytes, Any])  # noqa: UP006
            | "LinkDuplicates" >> beam.ParDo(LinkDuplicatesFn())
        )
        return [decided, routed[UNTOUCHED]] | "AllBatches" >> beam.Flatten()
