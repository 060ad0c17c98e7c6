"""The pure core of deduplication: fingerprints, index keys, verification and the decision rule.

No Beam here. :mod:`transforms.dedup` runs this core in keyed state; :class:`DedupIndex` runs the
same rule in one process, for tests, benchmarks and as the reference the Beam stages must agree
with.

The rule
    Every live article gets a :class:`Ticket`: where it came from (record id, batch, offset), when
    (its batch's event time), a 128-permutation MinHash of its text's word shingles (computed
    with rensa, kept as one byte per permutation: "b-bit minwise hashing"), and its *index keys*:
    the canonical URL, the content hash, the first words of the text (truncated copies), and
    ``bands`` LSH band keys of ``rows`` MinHash values each. Articles are totally ordered by
    :func:`order`: articles already in the lake ("seeds") first, then by event time, then by
    position in the batch, then by record id; the order comes from the data, never from which
    worker saw what first. An article is a duplicate of the *earliest* article before it, within
    ``ttl_seconds`` of event time, that

    * shares its canonical URL or content hash (method ``exact``), or
    * shares an LSH band or the prefix key, and whose estimated Jaccard similarity is at least
      ``jaccard_threshold``, or whose estimated containment (how much of the shorter text lies in
      the longer) is at least ``containment_threshold`` (method ``near``).

    Every other live article is kept; it heads its own cluster (``cluster_id`` = its id).
"""

from __future__ import annotations

import hashlib
import string
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import rensa

__all__ = [
    "DedupConfig",
    "DedupIndex",
    "Match",
    "Ticket",
    "decode_ticket",
    "encode_ticket",
    "fingerprint",
    "order",
    "record_id",
    "verify",
]

_PUNCTUATION = bytes.maketrans(string.punctuation.encode(), b" " * len(string.punctuation))
_MIXERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63]
    + [0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x9FB21C651E98DF25],
    dtype=np.uint64,
)
KEY_URL, KEY_HASH, KEY_PREFIX = b"u", b"h", b"p"
EXACT_KEYS = (KEY_URL, KEY_HASH)


@dataclass(frozen=True)
class DedupConfig:
    """Thresholds and sizes; ``bands * rows`` must not exceed ``num_perm``.

    The defaults were chosen with ``python -m benchmarks.dedup`` (see the README): 32 bands of 4
    rows find most pairs above a Jaccard similarity of about 0.4 while keeping keyed state under
    1 KB per article; 4-word shingles tolerate light edits better than 5.
    """

    shingle_size: int = 4
    num_perm: int = 128
    bands: int = 32
    rows: int = 4
    jaccard_threshold: float = 0.45
    containment_threshold: float = 0.7
    prefix_words: int = 30
    min_words: int = 20
    ttl_seconds: float = 7 * 24 * 3600.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.bands * self.rows > self.num_perm or not 1 <= self.bands <= 100 or self.rows < 1:
            raise ValueError(
                f"need 1–100 bands and bands × rows ({self.bands} × {self.rows}) ≤ num_perm ({self.num_perm})"
            )
        if not 1 <= self.shingle_size <= len(_MIXERS):
            raise ValueError(f"shingle_size must be between 1 and {len(_MIXERS)}")

    @property
    def ttl_micros(self) -> int:
        return int(self.ttl_seconds * 1_000_000)


@dataclass(frozen=True)
class Ticket:
    """Everything the keyed stages need to know about one article, compactly.

    ``time_us`` is its batch's event time; ``seed`` marks an article already in the lake;
    ``position`` its index in the batch (orders articles of one batch by offset); ``signature`` one
    byte per MinHash permutation; ``size`` its number of shingles; ``keys`` its index keys.
    """

    record_id: int
    time_us: int
    seed: bool
    position: int
    article_id: str
    batch_key: str
    offset: int
    signature: bytes
    size: int
    keys: tuple[bytes, ...] = ()


def order(ticket: Ticket) -> tuple[int, int, int, int]:
    """The total order "seen before": seeds first, then event time, position, record id."""
    return (0 if ticket.seed else 1, ticket.time_us, ticket.position, ticket.record_id)


def record_id(topic: str, partition: int, offset: int) -> int:
    """A 63-bit id of one Kafka record (a key of the keyed state)."""
    digest = hashlib.blake2b(f"{topic}\x00{partition}\x00{offset}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def words(text: str) -> list[bytes]:
    """Lower-cased words, ASCII punctuation dropped (fast: all in C)."""
    return text.lower().encode("utf-8").translate(_PUNCTUATION).split()


def _shingle_hashes(word_hashes: np.ndarray, size: int) -> np.ndarray:
    """64-bit hashes of each run of ``size`` consecutive word hashes (one hash when shorter)."""
    count = len(word_hashes) - size + 1
    if count <= 0:
        return word_hashes[:1]
    combined = np.zeros(count, dtype=np.uint64)
    for j in range(size):
        combined ^= word_hashes[j : j + count] * _MIXERS[j]
        combined = (combined << np.uint64(13)) | (combined >> np.uint64(51))
    return combined


def minhashes(texts: Sequence[str], config: DedupConfig) -> tuple[np.ndarray, list[int], list[list[bytes]]]:
    """``(signatures (n, num_perm) uint32, shingle counts, words)`` of each text, in one rensa call."""
    tokens = [words(text) for text in texts]
    hashed = rensa.RMinHash.hash_token_sets(tokens)
    shingles = [_shingle_hashes(np.asarray(h, dtype=np.uint64), config.shingle_size) for h in hashed]
    offsets = np.zeros(len(shingles) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(s) for s in shingles])
    flat = np.concatenate(shingles) if shingles else np.zeros(0, dtype=np.uint64)
    if not len(flat):
        return np.zeros((len(texts), config.num_perm), dtype=np.uint32), [0] * len(texts), tokens
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, config.num_perm, config.seed)
    signatures = np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(texts), config.num_perm)
    return signatures, [len(s) for s in shingles], tokens


def _short_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=7).digest()


def index_keys(
    signature: np.ndarray, tokens: Sequence[bytes], canonical_url: str, content_hash: str, config: DedupConfig
) -> tuple[bytes, ...]:
    """The keys under which an article is indexed.

    URL, content hash and prefix keys are 8 bytes, led by ``u``, ``h``, ``p``; each LSH band key
    is 5 bytes, led by its band number (below 100, so never one of those letters).
    """
    keys = []
    if canonical_url:
        keys.append(KEY_URL + _short_hash(canonical_url.encode()))
    if content_hash:
        keys.append(KEY_HASH + bytes.fromhex(content_hash)[:7])
    if len(tokens) >= config.min_words:
        keys.append(KEY_PREFIX + _short_hash(b" ".join(tokens[: config.prefix_words])))
        bands = signature[: config.bands * config.rows].astype(np.uint64).reshape(config.bands, config.rows)
        mixed = np.bitwise_xor.reduce(bands * _MIXERS[: config.rows], axis=1) >> np.uint64(32)
        # A band key is 1 byte of band number and 4 of hash: a rare false collision costs one
        # verification, never a wrong answer.
        keys.extend(bytes([band]) + value.to_bytes(4, "little") for band, value in enumerate(mixed.tolist()))
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


def fingerprint(
    articles: Sequence[ArticleRef], time_us: int, batch_key: str, config: DedupConfig, seed: bool = False
) -> list[Ticket]:
    """Tickets of a batch's live articles (``position`` is their order in the batch)."""
    signatures, sizes, tokens = minhashes([a.text for a in articles], config)
    low_bytes = (signatures & 0xFF).astype(np.uint8)
    return [
        Ticket(
            record_id=record_id(a.topic, a.partition, a.offset),
            time_us=time_us,
            seed=seed,
            position=position,
            article_id=a.article_id,
            batch_key=batch_key,
            offset=a.offset,
            signature=low_bytes[position].tobytes(),
            size=sizes[position],
            keys=index_keys(signatures[position], tokens[position], a.canonical_url, a.content_hash, config),
        )
        for position, a in enumerate(articles)
    ]


_TICKET_HEAD = struct.Struct("<qq?IqI")


def encode_ticket(ticket: Ticket) -> bytes:
    """A compact byte form of a ticket, without its keys (what state and messages carry)."""
    article_id = ticket.article_id.encode()
    batch_key = ticket.batch_key.encode()
    head = _TICKET_HEAD.pack(ticket.record_id, ticket.time_us, ticket.seed, ticket.position, ticket.offset, ticket.size)
    return b"".join(
        [head, bytes([len(ticket.signature)]), ticket.signature, struct.pack("<HH", len(article_id), len(batch_key))]
        + [article_id, batch_key]
    )


def decode_ticket(data: bytes) -> Ticket:
    """The inverse of :func:`encode_ticket` (keys left empty)."""
    record, time_us, seed, position, offset, size = _TICKET_HEAD.unpack_from(data, 0)
    at = _TICKET_HEAD.size
    signature_length = data[at]
    signature = data[at + 1 : at + 1 + signature_length]
    at += 1 + signature_length
    id_length, key_length = struct.unpack_from("<HH", data, at)
    at += 4
    article_id = data[at : at + id_length].decode()
    batch_key = data[at + id_length : at + id_length + key_length].decode()
    return Ticket(record, time_us, seed, position, article_id, batch_key, offset, signature, size)


_MILLIS_BITS = 47


def encode_entry(ticket: Ticket) -> bytes:
    """What an index key stores per article, in 14 bytes.

    Its record id (to find its ticket) and its time in milliseconds (47 bits, two's complement)
    with the seed flag above it (for the TTL).
    """
    stamp = ((ticket.time_us // 1000) & ((1 << _MILLIS_BITS) - 1)) | (int(ticket.seed) << _MILLIS_BITS)
    return ticket.record_id.to_bytes(8, "little") + stamp.to_bytes(6, "little")


def decode_entry(data: bytes) -> tuple[int, int, bool]:
    """``(record_id, time in microseconds (to the millisecond), seed)``."""
    stamp = int.from_bytes(data[8:14], "little")
    millis = stamp & ((1 << _MILLIS_BITS) - 1)
    if millis >> (_MILLIS_BITS - 1):
        millis -= 1 << _MILLIS_BITS
    return int.from_bytes(data[:8], "little"), millis * 1000, bool(stamp >> _MILLIS_BITS)


def similarity(a: Ticket, b: Ticket) -> tuple[float, float]:
    """Estimated ``(Jaccard, containment of the shorter in the longer)`` from the one-byte MinHashes.

    With one byte per permutation two different minima still agree with probability 1/256, so
    the match rate ``p`` estimates ``J + (1 - J) / 256``.
    """
    length = min(len(a.signature), len(b.signature))
    if not length:
        return 0.0, 0.0
    left = np.frombuffer(a.signature[:length], dtype=np.uint8)
    right = np.frombuffer(b.signature[:length], dtype=np.uint8)
    rate = float(np.count_nonzero(left == right)) / length
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


def verify(first: Ticket, second: Ticket, via: bytes, config: DedupConfig) -> Match | None:
    """The verified match between two tickets that met under an index key of kind ``via``, or None."""
    if first.record_id == second.record_id or (first.seed and second.seed):
        return None
    if abs(first.time_us - second.time_us) > config.ttl_micros:
        return None
    earlier, later = (first, second) if order(first) < order(second) else (second, first)
    jaccard, containment = similarity(earlier, later)
    if via in EXACT_KEYS:
        return Match(later, earlier, 1.0 if via == KEY_HASH else round(jaccard, 4), "exact")
    if jaccard >= config.jaccard_threshold or (
        containment >= config.containment_threshold and min(earlier.size, later.size) >= config.min_words
    ):
        return Match(later, earlier, round(max(jaccard, containment), 4), "near")
    return None


def best_match(matches: Iterable[Match]) -> Match | None:
    """The match with the earliest ``earlier`` (exact preferred on a tie): what the article duplicates."""
    return min(matches, key=lambda m: (order(m.earlier), m.method != "exact"), default=None)


class DedupIndex:
    """The rule in one process: add tickets in any order, then ask which are duplicates.

    Used by tests and benchmarks; it also shows the decision does not depend on arrival order.
    """

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self._by_key: dict[bytes, list[Ticket]] = defaultdict(list)
        self._matches: dict[int, list[Match]] = defaultdict(list)

    def add(self, ticket: Ticket) -> None:
        """Index a ticket, recording every verified pair it forms with tickets already indexed.

        A pair met under several keys is verified once, as met under an exact key if any.
        """
        met: dict[int, tuple[Ticket, bytes]] = {}
        for key in ticket.keys:
            via = key[:1]
            for other in self._by_key[key]:
                earlier = met.get(other.record_id)
                if earlier is None or (via in EXACT_KEYS and earlier[1] not in EXACT_KEYS):
                    met[other.record_id] = (other, via)
            self._by_key[key].append(ticket)
        for other, via in met.values():
            match = verify(ticket, other, via, self.config)
            if match is not None:
                self._matches[match.later.record_id].append(match)

    def decision(self, ticket: Ticket) -> Match | None:
        """What ``ticket`` duplicates, or None when it is kept."""
        return best_match(self._matches.get(ticket.record_id, ()))
