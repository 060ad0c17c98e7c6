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
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import rensa

from transforms.matching import matching_text

__all__ = [
    "CONFLICT",
    "VOID",
    "ClusterRoots",
    "DedupConfig",
    "DedupIndex",
    "Link",
    "Match",
    "ShardIndex",
    "Ticket",
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
    "settle",
    "key_number",
    "match_shard",
    "may_pair",
    "content_tie",
    "order",
    "probes_by_shard",
    "record_id",
    "remember_root",
    "seed_root",
    "verify",
]

_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.split() splits on
_FOLD = bytes.maketrans(
    string.ascii_uppercase.encode() + string.punctuation.encode() + _ASCII_WHITESPACE,
    string.ascii_lowercase.encode() + b" " * (len(string.punctuation) + len(_ASCII_WHITESPACE)),
)
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(_ASCII_WHITESPACE)] = True
_TABULATION_POSITIONS = 16
_TABULATION = np.random.default_rng(20261125).integers(0, 2**64, size=(_TABULATION_POSITIONS, 256), dtype=np.uint64)
_TABULATION[:, _WHITESPACE] = 0
_TABULATION = _TABULATION.ravel()
_MIXERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63]
    + [0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x9FB21C651E98DF25],
    dtype=np.uint64,
)
KEY_URL, KEY_HASH, KEY_PREFIX, KEY_ANCHOR, KEY_ID = b"u", b"h", b"p", b"e", b"i"
_ANCHOR_MIXER = np.uint64(0xD6E8FEB86659FD93)
EXACT_KEYS = (KEY_URL, KEY_HASH)
CONFLICT = "id_conflict"
"""The ``method`` of a :class:`Match` between two articles that share an ``article_id`` but not their content."""
VOID = "\x00"
"""The root of an article turned away as an id conflict (an ``article_id`` never holds a control character)."""


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
        if not 1 <= self.shingle_size <= len(_MIXERS) or not self.shingle_size <= self.anchor_words <= 64:
            raise ValueError(f"shingle_size must be between 1 and {len(_MIXERS)}, anchor_words between it and 64")
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


def words(text: str) -> list[bytes]:
    """The words :func:`word_hashes` hashes, as bytes (ASCII lower-cased, ASCII punctuation dropped)."""
    return matching_text(text).encode("utf-8").translate(_FOLD).split()


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of every word of every text, back to back, and how many words each text has.

    Vectorised over the whole batch with no Python object per word: the texts' UTF-8 bytes are
    folded (ASCII upper → lower, punctuation → space) and each word hashed by tabulation (a
    random 64-bit value per byte and position in the word, summed), the sums taken per word with
    ``np.add.reduceat``. A batch's texts must total under 2 GiB (positions are 32-bit). Words are
    what ``bytes.split`` would give: runs of non-whitespace bytes.
    """
    encoded = [matching_text(text).encode("utf-8") for text in texts]
    data = np.frombuffer(b" ".join(encoded).translate(_FOLD), dtype=np.uint8)  # any whitespace is now b" "
    if not len(data):
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    space = data == ord(" ")
    starts_mask = ~space
    starts_mask[1:] &= space[:-1]
    starts = np.flatnonzero(starts_mask)
    if not len(starts):
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    first = np.zeros(len(data), dtype=np.int32)  # the first byte of each byte's word
    first[starts] = starts
    np.maximum.accumulate(first, out=first)
    position = np.arange(len(data), dtype=np.int32)
    position -= first
    position &= _TABULATION_POSITIONS - 1
    position <<= 8
    position |= data
    values = _TABULATION[position]  # whitespace bytes weigh nothing (indexing: faster than take here)
    hashes = np.add.reduceat(values, starts)
    text_starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(e) + 1 for e in encoded], out=text_starts[1:])
    lengths = np.diff(np.searchsorted(starts, text_starts))
    return hashes, lengths


def _runs(word_hashes: np.ndarray, size: int) -> np.ndarray:
    """The hash of every run of ``size`` consecutive words of ``word_hashes`` (crossing documents)."""
    count = max(len(word_hashes) - size + 1, 0)
    combined = np.zeros(count, dtype=np.uint64)
    scratch = np.empty(count, dtype=np.uint64)
    for j in range(size):  # combined = rotate_left(combined ^ word * mixer, 13), in place
        np.multiply(word_hashes[j : j + count], _MIXERS[j], out=scratch)
        combined ^= scratch
        np.right_shift(combined, np.uint64(51), out=scratch)
        combined <<= np.uint64(13)
        combined |= scratch
    return combined


def _document_starts(lengths: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def _shingle_hashes(
    word_hashes: np.ndarray, lengths: np.ndarray, size: int, runs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``size`` consecutive words of each document, for a whole batch at once.

    ``word_hashes`` holds the documents' word hashes back to back, ``lengths`` how many each has;
    ``runs``: :func:`_runs` of them, if already at hand. Returns the shingle hashes back to back
    and each document's count (a document shorter than ``size`` words gives one shingle, from its
    first word; an empty one gives none).
    """
    combined = _runs(word_hashes, size) if runs is None else runs
    count = len(combined)
    starts = _document_starts(lengths)
    per_document = np.maximum(lengths - size + 1, np.minimum(lengths, 1))
    # shingle k of a document starts at its first word + k
    index = np.repeat(starts - np.cumsum(np.concatenate([[0], per_document[:-1]])), per_document)
    index += np.arange(int(per_document.sum()), dtype=np.int64)
    short = np.repeat(lengths < size, per_document)
    shingles = combined[np.minimum(index, count - 1)] if count else np.zeros(len(index), dtype=np.uint64)
    if short.any():
        shingles[short] = word_hashes[index[short]] * _MIXERS[0]
    return shingles, per_document


def minhashes(
    texts: Sequence[str], config: DedupConfig
) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray, np.ndarray]:
    """``(signatures (n, num_perm) uint32, shingle counts, word hashes, word counts, runs)``, one rensa call.

    ``runs``: the hash of every run of ``shingle_size`` words of the word hashes (:func:`_runs`).
    """
    flat_words, lengths = word_hashes(texts)
    runs = _runs(flat_words, config.shingle_size)
    shingles, counts = _shingle_hashes(flat_words, lengths, config.shingle_size, runs)
    if not len(shingles):
        empty = np.zeros((len(texts), config.num_perm), dtype=np.uint32)
        return empty, [0] * len(texts), flat_words, lengths, runs
    offsets = np.zeros(len(texts) + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(shingles, offsets, config.num_perm, config.seed)
    signatures = np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(texts), config.num_perm)
    return signatures, counts.tolist(), flat_words, lengths, runs


def anchor_keys(lengths: np.ndarray, runs: np.ndarray, config: DedupConfig) -> list[list[bytes]]:
    """Each document's anchor keys: ``e`` and 7 bytes of each of its ``anchors`` smallest anchor hashes.

    An anchor hash covers a run of ``anchor_words`` words (from the hashes of its first and last
    ``shingle_size`` words, ``runs`` being :func:`_runs` of the batch's word hashes); the smallest
    of a text's are a sample of it drawn by content alone (bottom-k). Every anchor of a longer
    text that falls inside a contiguous excerpt of it is also among the excerpt's own smallest
    (fewer of the excerpt's hashes can be smaller), so an excerpt holding a share ``f`` of the
    longer text misses all of its anchors with probability about ``(1 - f) ** anchors`` (0.19 at
    ``f`` = 0.1, 0.03 at 0.2). Eight-word runs rarely repeat across unrelated stories, so an
    anchor key rarely gathers many articles; a boilerplate sentence shared by many can (each
    such pair costs a verification, see docs/dedup.md). A text under ``anchor_words`` words has none.
    """
    wanted, span = config.anchors, config.anchor_words
    keys: list[list[bytes]] = [[] for _ in lengths]
    gap = span - config.shingle_size
    if not wanted or len(runs) <= gap:
        return keys
    mixed = runs[: len(runs) - gap] * _ANCHOR_MIXER
    mixed ^= runs[gap:]
    mixed ^= mixed >> np.uint64(31)
    per_document = np.maximum(lengths - span + 1, 0)
    starts = _document_starts(lengths)
    # Only the values below about 2 × wanted / count of their document can be among its smallest;
    # a document left with fewer than ``wanted`` distinct ones (it repeats itself) is done in full.
    # Position i of ``mixed`` is the run starting at word i: its document's, unless it runs over the end.
    limit = np.full(len(lengths), np.iinfo(np.uint64).max, dtype=np.uint64)
    thinned = per_document > 4 * wanted
    limit[thinned] = (2 * wanted / per_document[thinned] * 2.0**64).astype(np.uint64)
    positions = np.flatnonzero(mixed <= np.repeat(limit, lengths)[: len(mixed)])
    documents = np.searchsorted(starts, positions, side="right") - 1
    inside = positions - starts[documents] < per_document[documents]
    positions, documents = positions[inside], documents[inside]
    values = mixed[positions]
    order = np.lexsort((values, documents))
    values, documents = values[order], documents[order]
    distinct = np.ones(len(values), dtype=bool)
    distinct[1:] = (values[1:] != values[:-1]) | (documents[1:] != documents[:-1])
    values, documents = values[distinct], documents[distinct]
    found = np.bincount(documents, minlength=len(lengths))
    chosen = np.arange(len(values)) - np.concatenate([[0], np.cumsum(found)[:-1]])[documents] < wanted
    # each key: the kind byte over the value's top byte (the smallest values' top bits are zeros)
    raw = ((values[chosen] & np.uint64(2**56 - 1)) | np.uint64(KEY_ANCHOR[0] << 56)).astype(">u8").tobytes()
    flat = [raw[at : at + 8] for at in range(0, len(raw), 8)]
    at = 0
    for document, count in enumerate(np.minimum(found, wanted).tolist()):
        keys[document] = flat[at : at + count]
        at += count
    for document in np.flatnonzero(thinned & (found < wanted)).tolist():
        start = starts[document]
        smallest = np.unique(mixed[start : start + per_document[document]])[:wanted]
        keys[document] = [KEY_ANCHOR + value.to_bytes(8, "big")[1:] for value in smallest.tolist()]
    return keys


def _short_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=7).digest()


def band_keys(signatures: np.ndarray, config: DedupConfig) -> list[list[bytes]]:
    """Each document's LSH band keys: 1 byte of band number, 4 of hash of the band's rows.

    A false collision of two bands costs one verification, never a wrong answer.
    """
    count = len(signatures)
    rows = signatures[:, : config.bands * config.rows].astype(np.uint64).reshape(count, config.bands, config.rows)
    mixed = (np.bitwise_xor.reduce(rows * _MIXERS[: config.rows], axis=2) >> np.uint64(32)).astype("<u4")
    packed = np.zeros((count, config.bands), dtype=[("band", "u1"), ("hash", "<u4")])
    packed["band"] = np.arange(config.bands, dtype=np.uint8)
    packed["hash"] = mixed
    raw = packed.tobytes()
    every = [raw[at : at + 5] for at in range(0, len(raw), 5)]
    return [every[first : first + config.bands] for first in range(0, len(every), config.bands)]


def index_keys(
    bands: Sequence[bytes],
    words: np.ndarray,
    canonical_url: str,
    content_hash: str,
    config: DedupConfig,
    anchors: Sequence[bytes] = (),
    article_id: str = "",
) -> tuple[bytes, ...]:
    """The keys under which an article is indexed.

    URL, content hash, article id, prefix and anchor keys are 8 bytes, led by ``u``, ``h``, ``i``,
    ``p``, ``e``; each LSH band key is 5 bytes, led by its band number (below 100, so never one of
    those letters). The id key makes two articles with the same ``article_id`` meet, whatever
    their content (see :func:`verify`).
    """
    keys = []
    if article_id:
        keys.append(KEY_ID + _short_hash(article_id.encode(errors="surrogatepass")))
    if canonical_url:
        keys.append(KEY_URL + _short_hash(canonical_url.encode()))
    if content_hash:
        keys.append(KEY_HASH + bytes.fromhex(content_hash)[:7])
    if len(words) >= config.min_words:
        keys.append(KEY_PREFIX + _short_hash(words[: config.prefix_words].tobytes()))
        keys.extend(bands)
        keys.extend(anchors)
    return tuple(keys)


@dataclass(frozen=True)
class ArticleRef:
    """The fields of a live article that fingerprinting reads."""

    article_id: str
    text: str
    canonical_url: str
    content_hash: str
    topic: str
    partition: int
    offset: int
    time_us: int | None = None


def fingerprint(
    articles: Sequence[ArticleRef], time_us: int, batch_key: str, config: DedupConfig, seed: bool = False
) -> list[Ticket]:
    """Tickets of a batch's live articles; ``time_us`` is the time of those whose ref has none."""
    signatures, sizes, flat_words, lengths, runs = minhashes([a.text for a in articles], config)
    first = np.concatenate([[0], np.cumsum(lengths)])
    low_bytes = (signatures & 0xFF).astype(np.uint8)
    bands = band_keys(signatures, config)
    anchors = anchor_keys(lengths, runs, config)
    return [
        Ticket(
            record_id=record_id(a.topic, a.partition, a.offset),
            time_us=time_us if a.time_us is None else a.time_us,
            seed=seed,
            tie=content_tie(a.canonical_url, a.content_hash),
            article_id=a.article_id,
            batch_key=batch_key,
            offset=a.offset,
            signature=low_bytes[position].tobytes(),
            size=sizes[position],
            keys=index_keys(
                bands[position],
                flat_words[first[position] : first[position + 1]],
                a.canonical_url,
                a.content_hash,
                config,
                anchors[position],
                a.article_id,
            ),
        )
        for position, a in enumerate(articles)
    ]


_TICKET_HEAD = struct.Struct("<qq?QqI")


def encode_ticket(ticket: Ticket) -> bytes:
    """A compact byte form of a ticket, without its keys (what state and messages carry).

    The root comes last, as its length and bytes: forms written before it existed end before
    it, and :func:`decode_ticket` reads them with an empty root.
    """
    article_id = ticket.article_id.encode()
    batch_key = ticket.batch_key.encode()
    root = ticket.root.encode()
    head = _TICKET_HEAD.pack(ticket.record_id, ticket.time_us, ticket.seed, ticket.tie, ticket.offset, ticket.size)
    return b"".join(
        [head, bytes([len(ticket.signature)]), ticket.signature, struct.pack("<HH", len(article_id), len(batch_key))]
        + [article_id, batch_key, struct.pack("<H", len(root)), root]
    )


def decode_ticket(data: bytes) -> Ticket:
    """The inverse of :func:`encode_ticket` (keys left empty)."""
    record, time_us, seed, tie, offset, size = _TICKET_HEAD.unpack_from(data, 0)
    at = _TICKET_HEAD.size
    signature_length = data[at]
    signature = data[at + 1 : at + 1 + signature_length]
    at += 1 + signature_length
    id_length, key_length = struct.unpack_from("<HH", data, at)
    at += 4
    article_id = data[at : at + id_length].decode()
    batch_key = data[at + id_length : at + id_length + key_length].decode()
    at += id_length + key_length
    root = ""
    if at < len(data):
        (root_length,) = struct.unpack_from("<H", data, at)
        root = data[at + 2 : at + 2 + root_length].decode()
    return Ticket(record, time_us, seed, tie, article_id, batch_key, offset, signature, size, root=root)


_KEYS_HEAD = struct.Struct("<IH")


def encode_memory(ticket: Ticket) -> bytes:
    """A ticket with its index keys, as the lake remembers it for later runs (``_records/``).

    Give the ticket its ``root`` (:func:`remember_root`) before the lake keeps it, so that a
    later run knows which kept article an article that matches this one must name.
    """
    encoded = encode_ticket(ticket)
    keys = b"".join(bytes([len(key)]) + key for key in ticket.keys)
    return _KEYS_HEAD.pack(len(encoded), len(ticket.keys)) + encoded + keys


def decode_memory(data: bytes, seed: bool = True) -> Ticket:
    """The inverse of :func:`encode_memory`; marked as a seed unless ``seed`` is false."""
    length, count = _KEYS_HEAD.unpack_from(data, 0)
    at = _KEYS_HEAD.size
    ticket = decode_ticket(data[at : at + length])
    at += length
    keys = []
    for _ in range(count):
        size = data[at]
        keys.append(data[at + 1 : at + 1 + size])
        at += 1 + size
    return dataclasses.replace(ticket, keys=tuple(keys), seed=seed)


def remember_root(memory: bytes, root: str) -> bytes:
    """A memory (:func:`encode_memory`) with its article's root set: what the lake keeps once it is decided."""
    return encode_memory(dataclasses.replace(decode_memory(memory, seed=False), root=root))


SHARD_ENTRY = np.dtype([("key", "<u8"), ("record", "<i8"), ("time_us", "<i8"), ("seed", "u1")])
"""One index entry as a shard stores it (25 bytes): index key (:func:`key_number`), record id, time, seed flag."""


def key_number(index_key: bytes) -> int:
    """An index key (at most 8 bytes) as a 64-bit number, padded on the right so its kind byte leads.

    Distinct keys give distinct numbers: URL, content-hash and prefix keys are 8 bytes led by a
    letter, band keys 5 bytes led by a band number below 100.
    """
    return int.from_bytes(index_key.ljust(8, b"\0"), "big")


def key_kind(number: int) -> bytes:
    """The kind byte of a :func:`key_number` (``u``, ``h``, ``i``, ``p``, ``e``, a band number): how two met."""
    return bytes([number >> 56])


def shard_of(index_key: bytes, shards: int) -> int:
    """Which of ``shards`` index shards holds ``index_key`` (the same on every worker and run)."""
    return zlib.crc32(index_key) % shards


def probes_by_shard(tickets: Sequence[Ticket], shards: int) -> dict[int, list[tuple[Ticket, list[int]]]]:
    """The tickets' index keys grouped by shard: for each shard, its tickets with their keys there."""
    grouped: dict[int, list[tuple[Ticket, list[int]]]] = {}
    for ticket in tickets:
        own: dict[int, list[int]] = {}
        for key in ticket.keys:
            own.setdefault(shard_of(key, shards), []).append(key_number(key))
        for shard, numbers in own.items():
            grouped.setdefault(shard, []).append((ticket, numbers))
    return grouped


_PROBE_HEAD = struct.Struct("<IH")


def encode_probes(probes: Sequence[tuple[bytes, Sequence[int]]]) -> bytes:
    """One shard's message for one batch: each encoded ticket (:func:`encode_ticket`) with its key numbers there."""
    parts = []
    for encoded, keys in probes:
        parts += [_PROBE_HEAD.pack(len(encoded), len(keys)), encoded, np.asarray(keys, dtype="<u8").tobytes()]
    return b"".join(parts)


def decode_probes(data: bytes) -> list[tuple[bytes, Ticket, list[int]]]:
    """The inverse of :func:`encode_probes`: ``(encoded ticket, ticket, key numbers)`` each."""
    probes = []
    at = 0
    while at < len(data):
        length, count = _PROBE_HEAD.unpack_from(data, at)
        at += _PROBE_HEAD.size
        encoded = data[at : at + length]
        at += length
        keys = np.frombuffer(data, dtype="<u8", count=count, offset=at).tolist()
        at += 8 * count
        probes.append((encoded, decode_ticket(encoded), keys))
    return probes


class ShardIndex:
    """One shard of the index: its entries, looked up by key number.

    A sorted numpy base (binary search) plus a dict of recent entries, merged into the base once
    it outgrows a quarter of it (so appending is amortised O(log n) and memory stays at about the
    25 bytes of :data:`SHARD_ENTRY` per entry). ``token`` names the state version it mirrors
    (see :class:`transforms.dedup._MatchShardsFn`); ``stored`` counts the entries the shard's
    state holds, expired ones included, and ``kept_at_pruning`` how many it kept when last pruned
    (or loaded), so the owner knows when pruning pays.
    """

    MERGE_AT = 4096

    def __init__(self, entries: np.ndarray | None = None, token: bytes | None = None) -> None:
        base = np.zeros(0, dtype=SHARD_ENTRY) if entries is None else entries
        self._base = base[np.argsort(base["key"], kind="stable")]
        self._keys = np.ascontiguousarray(self._base["key"])
        self._recent: dict[int, list[tuple[int, int, bool]]] = {}
        self._recent_count = 0
        self.token = token
        self.stored = self.kept_at_pruning = len(base)
        self.newest = int(base["time_us"].max()) if len(base) else None

    @classmethod
    def from_blobs(cls, blobs: Iterable[bytes], token: bytes | None) -> ShardIndex:
        """The index of a shard's stored blobs (each :data:`SHARD_ENTRY` rows back to back)."""
        return cls(np.frombuffer(b"".join(blobs), dtype=SHARD_ENTRY), token)

    def __len__(self) -> int:
        return len(self._base) + self._recent_count

    def lookup(self, key: int) -> list[tuple[int, int, bool]]:
        """The ``(record_id, time_us, seed)`` entries under ``key``."""
        found = self._recent.get(key, [])
        low = int(np.searchsorted(self._keys, key, "left"))
        if low < len(self._keys) and self._keys[low] == key:
            high = int(np.searchsorted(self._keys, key, "right"))
            rows = self._base[low:high]
            found = [
                (int(record), int(time_us), bool(seed))
                for record, time_us, seed in zip(rows["record"], rows["time_us"], rows["seed"], strict=True)
            ] + found
        return found

    def add(self, key: int, entry: tuple[int, int, bool]) -> None:
        """Index ``entry`` under ``key`` (the caller stores it too: ``stored`` counts it)."""
        self._recent.setdefault(key, []).append(entry)
        self._recent_count += 1
        self.stored += 1
        self.newest = entry[1] if self.newest is None else max(self.newest, entry[1])
        if self._recent_count > max(self.MERGE_AT, len(self._base) // 4):
            self._merge()

    def entries(self) -> np.ndarray:
        """Every entry, sorted by key."""
        self._merge()
        return self._base

    def prune(self, older_than_us: int) -> int:
        """Drop the entries of before ``older_than_us``; how many went."""
        self._merge()
        keep = self._base["time_us"] >= older_than_us
        dropped = len(keep) - int(keep.sum())
        if dropped:
            self._base = self._base[keep]
            self._keys = np.ascontiguousarray(self._base["key"])
        return dropped

    def _merge(self) -> None:
        if not self._recent_count:
            return
        recent = np.array(
            [(key, *entry) for key, entries in self._recent.items() for entry in entries], dtype=SHARD_ENTRY
        )
        merged = np.concatenate([self._base, recent])
        self._base = merged[np.argsort(merged["key"], kind="stable")]
        self._keys = np.ascontiguousarray(self._base["key"])
        self._recent, self._recent_count = {}, 0


def shard_rows(probes: Sequence[tuple[Ticket, Sequence[int]]]) -> np.ndarray:
    """The :data:`SHARD_ENTRY` rows a batch's probes add to their shard."""
    return np.array([(key, t.record_id, t.time_us, t.seed) for t, keys in probes for key in keys], dtype=SHARD_ENTRY)


def match_shard(
    index: ShardIndex, probes: Sequence[tuple[Ticket, Sequence[int]]], ttl_micros: int
) -> list[tuple[int, bytes, int]]:
    """Index a batch's probes of one shard; the candidate pairs they form, once each.

    Each probe meets every entry under its keys that :func:`may_pair` allows (the earlier probes
    of the same batch included: each is indexed before the next is looked up). A pair is
    ``(the entry's record id, the kind of key they met under, the probe's position)``; met under
    several keys it is reported once, as met under an exact key if any.
    """
    met: dict[tuple[int, int], bytes] = {}
    for position, (ticket, keys) in enumerate(probes):
        probe = (ticket.record_id, ticket.time_us, ticket.seed)
        for key in keys:
            via = key_kind(key)
            for entry in index.lookup(key):
                if may_pair(entry, probe, ttl_micros):
                    pair = (entry[0], position)
                    if pair not in met or (via in EXACT_KEYS and met[pair] not in EXACT_KEYS):
                        met[pair] = via
            index.add(key, probe)
    return [(record, via, position) for (record, position), via in met.items()]


def chunks(rows: np.ndarray, rows_per_chunk: int = 1 << 16) -> Iterator[bytes]:
    """``rows`` as byte blobs of at most ``rows_per_chunk`` rows (what a shard's bag stores)."""
    for first in range(0, len(rows), rows_per_chunk):
        yield rows[first : first + rows_per_chunk].tobytes()


def similarity(a: Ticket, b: Ticket) -> tuple[float, float]:
    """Estimated ``(Jaccard, containment of the shorter in the longer)`` from the one-byte MinHashes.

    With one byte per permutation two different minima still agree with probability 1/256, so
    the match rate ``p`` estimates ``J + (1 - J) / 256``.
    """
    length = min(len(a.signature), len(b.signature))
    if not length:
        return 0.0, 0.0
    # the bytes that agree are the zero bytes of the two signatures XORed (as integers: no numpy call per pair)
    differ = int.from_bytes(a.signature[:length], "little") ^ int.from_bytes(b.signature[:length], "little")
    rate = differ.to_bytes(length, "little").count(0) / length
    jaccard = max(0.0, (rate - 1 / 256) / (1 - 1 / 256))
    smaller = min(a.size, b.size)
    if smaller <= 0:
        return jaccard, 0.0
    intersection = jaccard * (a.size + b.size) / (1 + jaccard)
    return jaccard, min(1.0, intersection / smaller)


@dataclass(frozen=True)
class Match:
    """A verified pair: ``later`` duplicates ``earlier``."""

    later: Ticket
    earlier: Ticket
    similarity: float
    method: str


def may_pair(first: tuple[int, int, bool], second: tuple[int, int, bool], ttl_micros: int) -> bool:
    """Whether two articles, as ``(record_id, time_us, seed)``, can be a pair at all.

    Not an article with itself, not two seeds (both already in the lake), not further apart than
    the TTL. The index-key stage asks it of its compact entries before sending a pair on.
    """
    (first_record, first_time, first_seed), (second_record, second_time, second_seed) = first, second
    if first_record == second_record or (first_seed and second_seed):
        return False
    return abs(first_time - second_time) <= ttl_micros


def verify(first: Ticket, second: Ticket, via: bytes, config: DedupConfig) -> Match | None:
    """The verified match between two tickets that met under an index key of kind ``via``, or None.

    Two articles with the same ``article_id`` whose content does not match form a match of
    method :data:`CONFLICT` (under whichever key they met: the answer is the pair's, not the key's).
    """
    if not may_pair(
        (first.record_id, first.time_us, first.seed), (second.record_id, second.time_us, second.seed), config.ttl_micros
    ):
        return None
    earlier, later = (first, second) if order(first) < order(second) else (second, first)
    if later.seed:
        return None  # a previous run decided it, having seen every article that orders before it
    jaccard, containment = similarity(earlier, later)
    if via in EXACT_KEYS:
        return Match(later, earlier, 1.0 if via == KEY_HASH else round(jaccard, 4), "exact")
    if jaccard >= config.jaccard_threshold or (
        containment >= config.containment_threshold
        and jaccard >= config.containment_min_jaccard
        and min(earlier.size, later.size) >= config.min_words
    ):
        return Match(later, earlier, round(max(jaccard, containment), 4), "near")
    if earlier.article_id == later.article_id:
        return Match(later, earlier, round(jaccard, 4), CONFLICT)
    return None


def best_match(matches: Iterable[Match]) -> Match | None:
    """The content match with the earliest ``earlier`` (exact preferred on a tie): the article's own decision.

    Id conflicts (:data:`CONFLICT`) are not content matches: see :func:`id_conflict`.
    """
    return min(
        (m for m in matches if m.method != CONFLICT),
        key=lambda m: (order(m.earlier), m.method != "exact"),
        default=None,
    )


def id_conflict(matches: Iterable[Match]) -> Match | None:
    """The earliest article that has the same ``article_id`` but other content, or None.

    An article with one is turned away (the dead letter ``id_conflict``) unless its content
    matches an article that stays in the lake: then it is that article's duplicate, like any copy.
    """
    return min((m for m in matches if m.method == CONFLICT), key=lambda m: order(m.earlier), default=None)


def seed_root(ticket: Ticket) -> str:
    """The kept article heading a seed's cluster: as its run recorded it, else (an old memory) itself."""
    return ticket.root or ticket.article_id


@dataclass(frozen=True)
class Link:
    """One live article's own decision, before the kept article heading its cluster is known.

    ``matched`` is the record id of the article it matched best (:func:`best_match`), None when it
    is kept, with that article's time and id; ``matched_root`` is that article's root when already
    known (a seed's, :func:`seed_root`), else empty; ``similarity`` and ``method`` describe the
    pair. ``conflict_with`` names the earliest article with the same ``article_id`` and other
    content (:func:`id_conflict`: its topic, partition and offset), empty when there is none. A kept
    article's link is its bare ticket fields (:meth:`kept`).
    """

    record_id: int
    time_us: int
    article_id: str
    batch_key: str
    offset: int
    matched: int | None = None
    matched_time_us: int = 0
    matched_id: str = ""
    matched_root: str = ""
    similarity: float = 0.0
    method: str = ""
    conflict_with: str = ""

    @classmethod
    def kept(cls, ticket: Ticket) -> Link:
        """The link of ``ticket``'s article as if it were kept."""
        return cls(ticket.record_id, ticket.time_us, ticket.article_id, ticket.batch_key, ticket.offset)

    def to(self, best: Match | None, conflict: Match | None = None) -> Link:
        """The article's link once its best match (None: none) and its id conflict (None: none) are known."""
        conflict_with = ""
        if conflict is not None:
            topic, partition, *_ = conflict.earlier.batch_key.split("+")  # topic names hold no "+"
            conflict_with = f"topic {topic}, partition {partition}, offset {conflict.earlier.offset}"
        if best is None:
            return dataclasses.replace(
                self, matched=None, matched_time_us=0, matched_id="", matched_root="", conflict_with=conflict_with
            )
        earlier = best.earlier
        return dataclasses.replace(
            self,
            conflict_with=conflict_with,
            matched=earlier.record_id,
            matched_time_us=earlier.time_us,
            matched_id=earlier.article_id,
            matched_root=seed_root(earlier) if earlier.seed else "",
            similarity=best.similarity,
            method=best.method,
        )


def settle(link: Link, matched_root: str | None) -> tuple[Link, str]:
    """An article's final link and root, given the root of the article it matched (None: it matched none).

    Kept (the link without a match, its own id for root) when it matched none or only an article
    turned away, unless it has an id conflict: then turned away (root :data:`VOID`). Otherwise a
    duplicate of ``matched_root``.
    """
    if matched_root is None or matched_root == VOID:
        kept = link.to(None) if link.matched is not None else link
        kept = dataclasses.replace(kept, conflict_with=link.conflict_with)
        return kept, VOID if link.conflict_with else link.article_id
    return link, matched_root


class ClusterRoots:
    """The roots of live articles' clusters, found from their links in whatever order they come.

    ``add`` settles each link whose matched article's root is known (kept articles at once; a
    link waits for the link of the live article it matched) and returns every link it settles,
    those that waited included, with its root. The Beam stage keeps one of these for the whole
    stream (:class:`transforms.dedup._LinkClustersFn`); :meth:`DedupIndex.duplicate_of` gives the
    same answers in one process (tested). Roots are kept per record with its time, so that
    :meth:`prune` can drop those no later article can match (beyond the TTL). A link whose
    matched article was forgotten so (it would have to arrive more than a TTL out of event-time
    order) settles on that article's own id rather than wait for ever.

    Id conflicts: an article with no content match (or whose match settles on :data:`VOID`) is
    kept unless its link names an id conflict; then its root is :data:`VOID` (it is turned away,
    :func:`settle`). So a turned-away article is never a root: an article that matched only it is
    kept (or turned away too, when it has an id conflict of its own).
    """

    def __init__(self, forgotten_before: int | None = None) -> None:
        self._roots: dict[int, tuple[str, int]] = {}
        self._waiting: dict[int, list[Link]] = {}
        self.waiting = 0
        self.forgotten_before = forgotten_before

    def __len__(self) -> int:
        return len(self._roots) + self.waiting

    def add(self, links: Iterable[Link]) -> list[tuple[Link, str]]:
        """Take in links; the ``(link, root)`` of each link settled now."""
        settled: list[tuple[Link, str]] = []
        for new in links:
            if new.matched is None:
                matched_root = None
            elif new.matched_root:
                matched_root = new.matched_root
            elif new.matched in self._roots:
                matched_root = self._roots[new.matched][0]
            elif self.forgotten_before is not None and new.matched_time_us < self.forgotten_before:
                matched_root = new.matched_id
            else:
                self._waiting.setdefault(new.matched, []).append(new)
                self.waiting += 1
                continue
            pending = [settle(new, matched_root)]
            while pending:
                done, root = pending.pop()
                self._roots[done.record_id] = (root, done.time_us)
                settled.append((done, root))
                for waiter in self._waiting.pop(done.record_id, ()):
                    self.waiting -= 1
                    pending.append(settle(waiter, root))
        return settled

    def prune(self, older_than_us: int) -> int:
        """Forget the roots of articles before ``older_than_us`` (links still waiting stay); how many went."""
        old = [record for record, (_, time_us) in self._roots.items() if time_us < older_than_us]
        for record in old:
            del self._roots[record]
        self.forgotten_before = max(older_than_us, self.forgotten_before or older_than_us)
        return len(old)

    def snapshot(self) -> list[Link]:
        """Links that rebuild this state in an empty one: each root as a kept link, then those waiting."""
        kept = [Link(record, time_us, root, "", -1) for record, (root, time_us) in self._roots.items()]
        return kept + [waiter for waiters in self._waiting.values() for waiter in waiters]


_LINK_HEAD = struct.Struct("<qqq?qqdHHHHBH")


def encode_links(links: Iterable[Link]) -> bytes:
    """A compact byte form of links (what the cluster step's state keeps and its messages carry)."""
    parts = []
    for item in links:
        texts = [item.article_id, item.batch_key, item.matched_id, item.matched_root, item.method, item.conflict_with]
        encoded = [text.encode() for text in texts]
        head = _LINK_HEAD.pack(
            item.record_id,
            item.time_us,
            item.offset,
            item.matched is not None,
            item.matched or 0,
            item.matched_time_us,
            item.similarity,
            *(len(text) for text in encoded),
        )
        parts += [head, *encoded]
    return b"".join(parts)


def decode_links(data: bytes) -> list[Link]:
    """The inverse of :func:`encode_links`."""
    links = []
    at = 0
    while at < len(data):
        record, time_us, offset, has_match, matched, matched_time, similarity, *lengths = _LINK_HEAD.unpack_from(
            data, at
        )
        at += _LINK_HEAD.size
        texts = []
        for length in lengths:
            texts.append(data[at : at + length].decode())
            at += length
        article_id, batch_key, matched_id, root, method, conflict_with = texts
        links.append(
            Link(
                record,
                time_us,
                article_id,
                batch_key,
                offset,
                matched if has_match else None,
                matched_time,
                matched_id,
                root,
                similarity,
                method,
                conflict_with,
            )
        )
    return links


class DedupIndex:
    """The rule in one process: add tickets in any order, then ask which are duplicates and of what.

    Used by tests and benchmarks; it also shows the decision does not depend on arrival order.
    """

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self._by_key: dict[bytes, list[Ticket]] = {}
        self._matches: dict[int, list[Match]] = defaultdict(list)

    def add(self, ticket: Ticket) -> None:
        """Index a ticket, recording every verified pair it forms with tickets already indexed.

        A pair met under several keys is verified once, as met under an exact key if any.
        """
        met: dict[int, tuple[Ticket, bytes]] = {}
        bucket_of = self._by_key.setdefault
        for key in ticket.keys:
            bucket = bucket_of(key, [])
            if bucket:
                via = key[:1]
                if via in EXACT_KEYS:
                    for other in bucket:
                        earlier = met.get(other.record_id)
                        if earlier is None or earlier[1] not in EXACT_KEYS:
                            met[other.record_id] = (other, via)
                else:
                    for other in bucket:
                        if other.record_id not in met:
                            met[other.record_id] = (other, via)
            bucket.append(ticket)
        for other, via in met.values():
            match = verify(ticket, other, via, self.config)
            if match is not None:
                self._matches[match.later.record_id].append(match)

    def decision(self, ticket: Ticket) -> Match | None:
        """``ticket``'s best content match (None: it matched no earlier article's content)."""
        return best_match(self._matches.get(ticket.record_id, ()))

    def conflict(self, ticket: Ticket) -> Match | None:
        """``ticket``'s earliest id conflict (:func:`id_conflict`), or None."""
        return id_conflict(self._matches.get(ticket.record_id, ()))

    def root(self, ticket: Ticket) -> str:
        """The root of ``ticket``: its own id when kept, :data:`VOID` when turned away, else its cluster's kept article.

        Follows best matches back to an article with none (or to a seed, whose root its run
        recorded), then settles each step on the way back (:func:`settle`); each step goes to an
        earlier article, so the walk ends.
        """
        path: list[tuple[Ticket, Match]] = []
        current = ticket
        while not current.seed and (match := self.decision(current)) is not None:
            path.append((current, match))
            current = match.earlier
        if current.seed:
            root = seed_root(current)
        else:
            root = settle(Link.kept(current).to(None, self.conflict(current)), None)[1]
        for article, match in reversed(path):
            root = settle(Link.kept(article).to(match, self.conflict(article)), root)[1]
        return root

    def outcome(self, ticket: Ticket) -> tuple[str, str | None]:
        """``("kept", None)``, ``("duplicate", root)`` or ``(CONFLICT, None)``: what becomes of ``ticket``."""
        match = self.decision(ticket)
        matched_root = None
        if match is not None:
            matched_root = seed_root(match.earlier) if match.earlier.seed else self.root(match.earlier)
        link, root = settle(Link.kept(ticket).to(match, self.conflict(ticket)), matched_root)
        if root == VOID:
            return CONFLICT, None
        return ("kept", None) if link.matched is None else ("duplicate", root)

    def duplicate_of(self, ticket: Ticket) -> str | None:
        """The ``article_id`` of the kept article heading ``ticket``'s cluster, or None when it is not a duplicate."""
        kind, root = self.outcome(ticket)
        return root if kind == "duplicate" else None
