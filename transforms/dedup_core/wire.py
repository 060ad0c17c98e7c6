"""The binary wire format of tickets, memories, probes and links (what keyed state and the lake hold).

Fixed little-endian ``struct`` heads followed by variable parts; ``decode_x(encode_x(v)) == v``
for each. Memories are what ``_records/`` keeps (``dedup_memory``); a change here must still read
what earlier runs wrote. Pure.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from transforms.dedup_core.rule import Link
from transforms.dedup_core.tickets import Ticket

__all__ = [
    "decode_links",
    "decode_memory",
    "decode_probes",
    "decode_ticket",
    "encode_links",
    "encode_memory",
    "encode_probes",
    "encode_ticket",
    "remember_root",
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
