"""The pure core of deduplication: fingerprints, index keys, verification and the decision rule.

No Beam here. :mod:`transforms.dedup` runs this core in keyed state; :class:`DedupIndex` runs the
same rule in one process, for tests, benchmarks and as the reference the Beam stages must agree
with.

The rule
    Every live article gets a :class:`Ticket`: where it came from (record id, batch, offset), when
    (its record's event time: the Kafka record timestamp, see :mod:`transforms.io.kafka`), a
    128-permutation MinHash of its text's word shingles (computed with rensa, kept as one byte
    per permutation: "b-bit minwise hashing"), and its *index keys*: the canonical URL, the
    content hash, the first words of the text (truncated copies), ``bands`` LSH band keys of
    ``rows`` MinHash values each, and ``anchors`` anchor keys, the smallest hashes of its runs of
    ``anchor_words`` words (:func:`anchor_keys`: an excerpt cut from anywhere in a longer text
    shares some with it, however low their Jaccard similarity). Articles are totally ordered by
    :func:`order`: by event time, then by a tie-break drawn from the content (a hash of the
    canonical URL and the content hash), then by record id (topic, partition and offset);
    articles a previous run decided ("seeds", remembered in the lake's ``_records/``) take their
    place in the same order, and are never decided again. The order is a function of the records
    alone: never of batch size, of which worker saw what first, or of when a record was read. An
    article is a duplicate when an article before it, within ``ttl_seconds`` of event time (its
    *match*; the earliest one is its best match),

    * shares its canonical URL or content hash (method ``exact``), or
    * shares an LSH band, the prefix key or an anchor key, and whose estimated Jaccard
      similarity is at least ``jaccard_threshold``, or whose estimated containment (how much of
      the shorter text lies in the longer) is at least ``containment_threshold``, the shorter
      having ``min_words`` shingles and the Jaccard estimate reaching ``containment_min_jaccard``
      (method ``near``). That floor is the limit of one-byte MinHash containment: for a text
      under about 7 % of the longer one's size the estimate rests on a few agreeing minima, and a
      short article sharing one sentence with a long one could pass; such excerpts are kept.

    Every other live article is kept; it heads its own cluster (``cluster_id`` = its id).

Id conflicts
    An ``article_id`` names one story. A live article whose ``article_id`` an article before it
    (within the TTL, any outcome) already has, and whose content matches neither that article nor
    any other that stays in the lake, is turned away: the dead letter ``id_conflict``, which
    names the earlier record. The pair is found under an id key (``i``) every article is indexed
    under, and decided by :func:`verify` from the pair itself (method :data:`CONFLICT`), so it
    does not matter under which key they met. Content comes first: a same-id article whose
    content matches an earlier one is that one's duplicate, like any copy (a record produced
    twice). A turned-away article is never a root (its root is :data:`VOID`, and it is
    remembered so): an article whose best match it was is kept, unless it has an id conflict of
    its own. First come, first kept: the stream cannot take back an article already in the lake.
    Like every decision here, this holds within the TTL (7 days by default): an id reused later
    than that is kept again (the suite's ``article_id_unique`` monitor reports it per batch).

Links resolve to kept articles
    A duplicate names the kept article heading the cluster of the article it matched, never a
    duplicate: in a chain A < B < C where B duplicates A and C matches only B, C's
    ``duplicate_of`` is A's id. Formally, the *root* of a kept article is itself, and the root of
    a duplicate is the root of its best match's ``earlier`` (:func:`best_match`: the earliest
    article it matched); each step goes to an earlier article, so every chain ends at a kept
    one, and the answer is a function of the content like every decision here. ``similarity`` and
    ``method`` still describe the pair the article actually matched (C with B above), not C
    with A, which may be less alike: a cluster is what chains of such pairs join, so its members
    can drift apart along a chain (within the TTL of each other pair by pair). A seed's root is
    the one its run recorded in the lake (``Ticket.root``, kept in ``_records/`` since this
    rule); a memory written before has none, and the Beam stage reads it from the seed's
    ``duplicates`` row (:class:`transforms.dedup.LakeSeeds`), else takes the seed for its own root.
    :meth:`DedupIndex.duplicate_of` answers it in one process, :class:`ClusterRoots` from links
    arriving in any order (the Beam stage's way).

The sharded index
    The Beam stage keeps index keys in ``index_shards`` shards: :func:`probes_by_shard` groups a
    batch's keys by shard, :class:`ShardIndex` holds one shard's entries (:data:`SHARD_ENTRY`),
    and :func:`match_shard` is the probe-then-add step of :meth:`DedupIndex.add` over a shard: a
    pair that shares keys in several shards is reported by each, and verification and
    :func:`best_match` make the same decision as the one-process index (tested).

Layout
    This package re-exports the names of its modules, one job each: :mod:`.tickets` (the
    configuration, :class:`Ticket`, the order), :mod:`.hashing` (fingerprints and index keys),
    :mod:`.wire` (the binary format of tickets, memories, probes and links), :mod:`.shards` (the
    sharded index), :mod:`.rule` (verification, best match, id conflicts, roots) and
    :mod:`.index` (:class:`DedupIndex`, the one-process reference).
"""

from __future__ import annotations

from transforms.dedup_core.hashing import (
    ArticleRef,
    anchor_keys,
    band_keys,
    fingerprint,
    index_keys,
    minhashes,
    word_hashes,
    words,
)
from transforms.dedup_core.index import (
    DedupIndex,
)
from transforms.dedup_core.rule import (
    ClusterRoots,
    Link,
    Match,
    best_match,
    id_conflict,
    may_pair,
    seed_root,
    settle,
    similarity,
    verify,
)
from transforms.dedup_core.shards import (
    SHARD_ENTRY,
    ShardIndex,
    chunks,
    key_kind,
    key_number,
    match_shard,
    probes_by_shard,
    shard_of,
    shard_rows,
)
from transforms.dedup_core.tickets import (
    CONFLICT,
    EXACT_KEYS,
    KEY_ANCHOR,
    KEY_HASH,
    KEY_ID,
    KEY_PREFIX,
    KEY_URL,
    SHINGLE_MIXERS,
    VOID,
    DedupConfig,
    Ticket,
    content_tie,
    order,
    record_id,
)
from transforms.dedup_core.wire import (
    decode_links,
    decode_memory,
    decode_probes,
    decode_ticket,
    encode_links,
    encode_memory,
    encode_probes,
    encode_ticket,
    remember_root,
)

__all__ = [
    "ArticleRef",
    "CONFLICT",
    "ClusterRoots",
    "DedupConfig",
    "DedupIndex",
    "EXACT_KEYS",
    "KEY_ANCHOR",
    "KEY_HASH",
    "KEY_ID",
    "KEY_PREFIX",
    "KEY_URL",
    "Link",
    "Match",
    "SHARD_ENTRY",
    "SHINGLE_MIXERS",
    "ShardIndex",
    "Ticket",
    "VOID",
    "anchor_keys",
    "band_keys",
    "best_match",
    "chunks",
    "content_tie",
    "decode_links",
    "decode_memory",
    "decode_probes",
    "decode_ticket",
    "encode_links",
    "encode_memory",
    "encode_probes",
    "encode_ticket",
    "fingerprint",
    "id_conflict",
    "index_keys",
    "key_kind",
    "key_number",
    "match_shard",
    "may_pair",
    "minhashes",
    "order",
    "probes_by_shard",
    "record_id",
    "remember_root",
    "seed_root",
    "settle",
    "shard_of",
    "shard_rows",
    "similarity",
    "verify",
    "word_hashes",
    "words",
]
