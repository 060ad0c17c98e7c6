"""What the lake accounts for: covered offset ranges per partition, and where it began each one.

The resume point is derived from the lake itself: the batch files' names say which offset ranges
are accounted for (:func:`covered_ranges`), so a lost or stale consumer-group commit causes
neither loss nor duplicates. It is the first offset from the partition's origin
(:func:`record_origins`, written before the partition is first read) that no file covers, so a
gap before later committed batches is read again. An origin, once recorded, never changes.
No Beam here.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.fs as pafs

from schemas import arrow
from schemas.records import utc_now
from transforms.io.lake.layout import ORIGINS, batch_files
from transforms.io.lake.store import Lake

__all__ = ["covered_ranges", "read_origins", "record_origins"]


def read_origins(lake: Lake) -> dict[tuple[str, int], int]:
    """The offset at which this lake began each topic-partition (see :func:`record_origins`)."""
    origins: dict[tuple[str, int], int] = {}
    if not lake.exists(lake.path(ORIGINS)):
        return origins
    for info in lake.list(lake.path(ORIGINS)):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            with lake.fs.open_input_stream(info.path) as stream:
                record = json.loads(stream.read())
            origins[(record["topic"], int(record["partition"]))] = int(record["origin"])
    return origins


def record_origins(lake: Lake, origins: dict[tuple[str, int], int]) -> None:
    """Write ``_origins/<topic>+<partition>.json`` for partitions that have none yet, each atomically.

    The launcher records a partition's first planned offset before the pipeline first reads it,
    so a later run can tell offsets the lake never meant to read (before the origin) from a gap
    left by batches that committed out of order (after it). An existing origin is never changed.
    """
    if origins:
        lake.create_folder(lake.path(ORIGINS))
    for (topic, partition), origin in sorted(origins.items()):
        target = lake.path(ORIGINS, f"{topic}+{partition}.json")
        if lake.exists(target):
            continue
        record = {"topic": topic, "partition": partition, "origin": origin, "recorded_at": utc_now().isoformat()}
        lake.write_atomically(target, json.dumps(record).encode())


def covered_ranges(lake: Lake) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Offset ranges ``[first, end)`` per topic-partition that the lake accounts for."""
    covered: dict[tuple[str, int], set[tuple[int, int]]] = defaultdict(set)
    for table in arrow.ACCOUNTING_TABLES:
        for file in batch_files(lake, table):
            covered[(file.topic, file.partition)].add((file.first, file.end))
    return {key: sorted(ranges) for key, ranges in covered.items()}
