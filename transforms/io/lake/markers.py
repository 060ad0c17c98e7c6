"""Completeness markers: ``_SUCCESS`` in a partition once no batch can add to it any more.

For ingestion-time partitions a marker is written while streaming, when the watermark passes the
end of its hour (:class:`transforms.io.lake.sink.MarkComplete`), and at the start and the end of
every run, for each hour that has ended (:func:`mark_complete`). A marker is written atomically and
never twice. No Beam here.
"""

from __future__ import annotations

import datetime as dt

from schemas import arrow
from transforms.io.lake.layout import SUCCESS, partition_folders
from transforms.io.lake.store import Lake

__all__ = ["mark_complete", "write_marker"]


def write_marker(lake: Lake, folder: str) -> bool:
    """Put ``_SUCCESS`` into ``folder`` (relative to the lake) unless it is there; True if written."""
    marker = lake.path(folder, SUCCESS)
    if lake.exists(marker):
        return False
    lake.write_atomically(marker, b"")
    return True


def mark_complete(lake: Lake, before: dt.datetime) -> list[str]:
    """Write ``_SUCCESS`` into every table partition whose hour ended at or before ``before``.

    For ingestion-time partitions this is sound at start-up (after :func:`recover`, with no other
    pipeline on the lake): every batch read before now is committed or will be read again with a
    new, later ingestion time, so no older partition can still change. Returns the partitions
    marked (relative paths).
    """
    marked = []
    for table in arrow.TABLES:
        for folder, end in partition_folders(lake, table):
            if end <= before and write_marker(lake, folder):
                marked.append(folder)
    return marked
