"""The sharded index: which shard holds a key, one shard's entries, and the probe-then-add step.

:func:`probes_by_shard` groups a batch's keys by shard, :class:`ShardIndex` holds one shard's
entries (:data:`SHARD_ENTRY`), and :func:`match_shard` reports the pairs that met there; a pair that
shares keys in several shards is reported by each, and the decision (:mod:`.rule`) makes that
harmless. Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from transforms.dedup_core.rule import may_pair
from transforms.dedup_core.tickets import EXACT_KEYS, Ticket

__all__ = [
    "SHARD_ENTRY",
    "ShardIndex",
    "chunks",
    "key_kind",
    "key_number",
    "match_shard",
    "probes_by_shard",
    "shard_of",
    "shard_rows",
]


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
