"""Tickets and their order: the configuration, what a keyed stage knows of one article, and "seen before".

Owns :class:`DedupConfig`, :class:`Ticket`, the total order :func:`order` (event time, a content
tie-break, record id: a function of the records alone) and the index-key kinds (``u`` URL, ``h``
content hash, ``p`` prefix, ``e`` anchor, ``i`` id). Pure; see :mod:`transforms.dedup_core` for the rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONFLICT",
    "DedupConfig",
    "EXACT_KEYS",
    "KEY_ANCHOR",
    "KEY_HASH",
    "KEY_ID",
    "KEY_PREFIX",
    "KEY_URL",
    "SHINGLE_MIXERS",
    "Ticket",
    "VOID",
    "content_tie",
    "order",
    "record_id",
]


KEY_URL, KEY_HASH, KEY_PREFIX, KEY_ANCHOR, KEY_ID = b"u", b"h", b"p", b"e", b"i"


EXACT_KEYS = (KEY_URL, KEY_HASH)
CONFLICT = "id_conflict"
"""The ``method`` of a :class:`Match` between two articles that share an ``article_id`` but not their content."""
VOID = "\x00"
"""The root of an article turned away as an id conflict (an ``article_id`` never holds a control character)."""


SHINGLE_MIXERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63]
    + [0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x9FB21C651E98DF25],
    dtype=np.uint64,
)
"""One 64-bit multiplier per word position of a shingle (and per band row); their count bounds ``shingle_size``."""


@dataclass(frozen=True)
class DedupConfig:
    """Thresholds and sizes; ``bands * rows`` must not exceed ``num_perm``.

    The defaults were chosen with ``python -m benchmarks.dedup`` (see docs/benchmarks.md): 32 bands of 4
    rows find most pairs above a Jaccard similarity of about 0.4 while keeping keyed state near
    1 KB per article; 4-word shingles tolerate light edits better than 5. ``index_shards``: how
    many keyed shards hold the index keys (:func:`shard_of`); a batch costs at most that many
    keyed messages, and at most that many workers match at once.

    ``anchors``: how many anchor keys an article gets (0: none), the smallest hashes of its
    ``anchor_words``-word shingles (:func:`anchor_keys`), so that an excerpt meets the longer text
    it was cut from. ``containment_min_jaccard``: containment is trusted only when the estimated
    Jaccard similarity reaches it (about 10 of 128 one-byte minima agreeing): below, the estimate
    rests on a handful of agreeing minima, and a short text that shares one sentence with a long
    one could pass; so the shorter text must hold at least about 7 % of the longer's shingles.
    """

    shingle_size: int = 4
    num_perm: int = 128
    bands: int = 32
    rows: int = 4
    jaccard_threshold: float = 0.45
    containment_threshold: float = 0.7
    containment_min_jaccard: float = 0.07
    prefix_words: int = 30
    anchors: int = 16
    anchor_words: int = 8
    min_words: int = 20
    ttl_seconds: float = 7 * 24 * 3600.0
    seed: int = 42
    index_shards: int = 16

    def __post_init__(self) -> None:
        if self.bands * self.rows > self.num_perm or not 1 <= self.bands <= 100 or self.rows < 1:
            raise ValueError(
                f"need 1–100 bands and bands × rows ({self.bands} × {self.rows}) ≤ num_perm ({self.num_perm})"
            )
        if not 1 <= self.index_shards <= 65536:
            raise ValueError(f"index_shards must be between 1 and 65536, not {self.index_shards}")
        if not 1 <= self.shingle_size <= len(SHINGLE_MIXERS) or not self.shingle_size <= self.anchor_words <= 64:
            raise ValueError(
                f"shingle_size must be between 1 and {len(SHINGLE_MIXERS)}, anchor_words between it and 64"
            )
        if not 0 <= self.anchors <= 64:
            raise ValueError(f"anchors must be between 0 and 64, not {self.anchors}")

    @property
    def ttl_micros(self) -> int:
        return int(self.ttl_seconds * 1_000_000)


@dataclass(frozen=True)
class Ticket:
    """Everything the keyed stages need to know about one article, compactly.

    ``time_us`` is its record's event time; ``seed`` marks an article a previous run decided;
    ``tie`` breaks ties of event time by the content (:func:`content_tie`); ``signature`` one
    byte per MinHash permutation; ``size`` its number of shingles; ``keys`` its index keys;
    ``root``, for a seed, the kept article heading its cluster as its run decided (its own id when
    it was kept; empty when not known: a live article, or a memory written before roots were kept).
    """

    record_id: int
    time_us: int
    seed: bool
    tie: int
    article_id: str
    batch_key: str
    offset: int
    signature: bytes
    size: int
    keys: tuple[bytes, ...] = ()
    root: str = ""


def order(ticket: Ticket) -> tuple[int, int, int]:
    """The total order "seen before": event time, content tie-break, record id.

    Seeds take their place in it like any article: a restarted run must rank a record it reads
    again exactly as the run that was killed would have.
    """
    return (ticket.time_us, ticket.tie, ticket.record_id)


def content_tie(canonical_url: str, content_hash: str) -> int:
    """A 63-bit tie-break for articles of the same event time, from their canonical URL and content.

    Arrival order, batch positions and workers play no part, so two runs over the same records
    order them alike; two records with the same URL and content tie here too and fall back to
    their record id (their place in the topic).
    """
    digest = hashlib.blake2b(f"{canonical_url}\x00{content_hash}".encode(errors="surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def record_id(topic: str, partition: int, offset: int) -> int:
    """A 63-bit id of one Kafka record (a key of the keyed state)."""
    digest = hashlib.blake2b(f"{topic}\x00{partition}\x00{offset}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
