"""Fingerprints: words, shingles, MinHash signatures and the index keys of a batch of articles.

:func:`fingerprint` turns :class:`ArticleRef` s into :class:`~transforms.dedup_core.tickets.Ticket` s:
word hashes by tabulation hashing (numpy, whole batch at once), shingle MinHash with rensa kept as
one byte per permutation, LSH band keys, the prefix key and anchor keys. Deterministic across
processes and runs (fixed seeds). Pure.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rensa

from transforms.dedup_core.tickets import (
    KEY_ANCHOR,
    KEY_HASH,
    KEY_ID,
    KEY_PREFIX,
    KEY_URL,
    SHINGLE_MIXERS,
    DedupConfig,
    Ticket,
    content_tie,
    record_id,
)
from transforms.matching import matching_text

__all__ = [
    "ArticleRef",
    "anchor_keys",
    "band_keys",
    "fingerprint",
    "index_keys",
    "minhashes",
    "word_hashes",
    "words",
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


_ANCHOR_MIXER = np.uint64(0xD6E8FEB86659FD93)


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
        np.multiply(word_hashes[j : j + count], SHINGLE_MIXERS[j], out=scratch)
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
        shingles[short] = word_hashes[index[short]] * SHINGLE_MIXERS[0]
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
    mixed = (np.bitwise_xor.reduce(rows * SHINGLE_MIXERS[: config.rows], axis=2) >> np.uint64(32)).astype("<u4")
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
