"""Where things are in the lake: table and partition paths, batch file names, and listing them.

Layout (the downstream contract, see docs/lake.md)::

    LAKE/<table>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<end>.parquet
    LAKE/_staging/<topic>+<partition>+<first>+<end>/...        never read by anyone
    LAKE/_origins/<topic>+<partition>.json                     where the lake began a partition
    LAKE/<table>/dt=.../hour=.../_SUCCESS                      the partition is complete

A batch file's name is the offset range ``[first, end)`` of one Kafka partition it accounts for:
:func:`batch_file_range` is the one parser of it. Every listing of the lake's data goes through
:func:`data_files`, :func:`batch_files`, :func:`lake_files` or :func:`partition_folders`.

On object stores a compaction uploads the merged file before it deletes the files it replaces
(:mod:`transforms.io.lake.compaction`): a file whose range lies inside another file's range in
the same folder is already merged into it (:func:`superseded`), so :func:`data_files` leaves it
out there, and recovery deletes it.

Partition values come only from timestamps the pipeline computed (ingestion time by default,
``published_at`` with ``partition_by="event_time"``), never from input strings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from schemas import arrow
from transforms.io.lake.store import Lake

__all__ = [
    "MAINTENANCE_LOCK",
    "MANIFEST",
    "ORIGINS",
    "STAGING",
    "SUCCESS",
    "BatchFile",
    "batch_file_range",
    "batch_files",
    "data_files",
    "lake_files",
    "partition_end",
    "partition_folders",
    "parquet_paths",
    "partition_path",
    "superseded",
]

STAGING = "_staging"
MAINTENANCE_LOCK = "_maintenance.lock"
MANIFEST = "_MANIFEST.json"
SUCCESS = "_SUCCESS"
ORIGINS = "_origins"
_BATCH_FILE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)\+(?P<end>\d+)\.parquet$")
_PARTITION = re.compile(r"^dt=(?P<day>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})$")


def partition_path(timestamp: dt.datetime) -> str:
    """``dt=YYYY-MM-DD/hour=HH`` of a UTC timestamp."""
    utc = timestamp.astimezone(dt.UTC)
    return f"dt={utc:%Y-%m-%d}/hour={utc:%H}"


def partition_end(folder: str) -> dt.datetime | None:
    """When the hour of a ``dt=YYYY-MM-DD/hour=HH`` folder (optionally under a table) ends."""
    match = _PARTITION.match(folder.split("/", 1)[1] if folder.count("/") == 2 else folder)
    if not match:
        return None
    return dt.datetime.fromisoformat(f"{match['day']}T{match['hour']}:00:00+00:00") + dt.timedelta(hours=1)


def batch_file_range(name: str) -> tuple[str, int, int, int] | None:
    """``(topic, partition, first, end)`` of a batch file's name, ``None`` for any other file."""
    match = _BATCH_FILE.match(name)
    if not match:
        return None
    return match["topic"], int(match["partition"]), int(match["first"]), int(match["end"])


@dataclass(frozen=True)
class BatchFile:
    """A committed batch file: the offsets ``[first, end)`` of one partition it holds, and where."""

    topic: str
    partition: int
    first: int
    end: int
    relative: str

    @property
    def folder(self) -> str:
        """Its ``table/dt=.../hour=...`` folder, relative to the lake."""
        return self.relative.rsplit("/", 1)[0]


def batch_files(lake: Lake, table: str) -> Iterator[BatchFile]:
    """Every batch file of a table (files whose names are no batch range are left out)."""
    for info in lake.list(lake.path(table), recursive=True):
        found = batch_file_range(info.base_name)
        if found is not None and info.type == pafs.FileType.File:
            yield BatchFile(*found, lake.relative(info.path))


def superseded(paths: Iterable[str]) -> set[str]:
    """The batch files among ``paths`` whose offset range lies inside another one's of the same folder.

    Such a file was merged into the other (a compaction on an object store uploads the merged
    file first, then deletes the files it replaced): reading both would count its rows twice.
    """
    by_run: dict[tuple[str, str, int], list[tuple[int, int, str]]] = defaultdict(list)
    for path in paths:
        folder, _, name = path.rpartition("/")
        found = batch_file_range(name)
        if found is not None:
            topic, partition, first, end = found
            by_run[(folder, topic, partition)].append((first, end, path))
    inside = set()
    for ranges in by_run.values():
        reach = -1
        for _, end, path in sorted(ranges, key=lambda item: (item[0], -item[1])):
            if end <= reach:  # an earlier file starts at or before ``first`` and ends at or after ``end``
                inside.add(path)
            reach = max(reach, end)
    return inside


def parquet_paths(lake: Lake, folder: str, recursive: bool = True) -> list[str]:
    """Every Parquet file under a folder (relative to the lake), as absolute paths, merged away or not."""
    return [info.path for info in lake.list(lake.path(folder), recursive=recursive) if info.path.endswith(".parquet")]


def data_files(lake: Lake, folder: str, recursive: bool = True) -> list[str]:
    """The Parquet files under a table or partition folder (relative to the lake), as absolute paths.

    On an object store, files already merged into another (:func:`superseded`) are left out.
    """
    paths = parquet_paths(lake, folder, recursive)
    if lake.local:
        return paths
    merged_away = superseded(paths)
    return [path for path in paths if path not in merged_away]


def lake_files(lake: Lake) -> frozenset[str]:
    """Every committed data file of the lake (tables and record log), as paths relative to its root."""
    return frozenset(lake.relative(path) for table in arrow.STORED_TABLES for path in data_files(lake, table))


def partition_folders(lake: Lake, table: str) -> Iterator[tuple[str, dt.datetime]]:
    """Each ``table/dt=.../hour=...`` folder of a table (relative to the lake) and when its hour ends."""
    for info in lake.list(lake.path(table), recursive=True):
        if info.type == pafs.FileType.Directory:
            folder = lake.relative(info.path)
            end = partition_end(folder)
            if end is not None:
                yield folder, end
