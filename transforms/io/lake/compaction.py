"""Compaction (``wirestream compact``): merge a partition's small files, atomically and idempotently.

Files of one Kafka partition whose ranges are contiguous (counting what other tables cover in
between) become one file named after the union of their ranges, staged and committed by a
manifest too (:mod:`transforms.io.lake.staging`), so the lake's coverage, and with it the resume
point and the accounting, are unchanged. On a local lake the folder's new content is swapped in
with one atomic directory exchange, so readers see the folder before or after, never half-way.
On an object store the merged file is uploaded into the folder (it appears whole) before the
files it replaces are deleted, so no reader ever misses a row; until they are deleted the lake's
readers skip them (:func:`transforms.io.lake.layout.superseded`), and recovery deletes them
after a crash. A batch still being committed (its folder in ``_staging/``) is neither merged nor
bridged over, so a merged file's range never covers a file that lands later. A never-null column
that older files lack is filled exactly from its source table (:mod:`~transforms.io.lake.backfill`)
or, when it cannot be, the run is left unmerged: a merged file always has the table's schema, with
no null where the schema has none. No Beam here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas import arrow
from schemas.records import SourceBatch
from transforms.io.lake.backfill import filled
from transforms.io.lake.coverage import covered_ranges
from transforms.io.lake.layout import STAGING, BatchFile, batch_file_range, batch_files
from transforms.io.lake.staging import (
    can_exchange,
    commit_manifest,
    finish_exchange,
    maintenance_lock,
    recover_staging,
)
from transforms.io.lake.store import Lake
from transforms.io.offsets import merge_ranges

__all__ = ["compact"]

_LOG = logging.getLogger(__name__)


def _runs(files: list[BatchFile], covered: list[tuple[int, int]]) -> Iterator[list[BatchFile]]:
    """Runs of one partition's files whose ranges are contiguous, counting what other files cover.

    A merged file's name then still says truthfully which offsets it accounts for.
    """
    run: list[BatchFile] = []
    for file in sorted(files, key=lambda f: f.first):
        gap_covered = bool(run) and (
            file.first <= run[-1].end or any(a <= run[-1].end and file.first <= b for a, b in covered)
        )
        if run and not gap_covered:
            yield run
            run = []
        run.append(file)
    if run:
        yield run


@dataclass(frozen=True)
class _Merge:
    """A run of contiguous files of one folder and the file they become (named after their union)."""

    folder: str
    run: list[BatchFile]

    @property
    def key(self) -> str:
        first = self.run[0]
        return SourceBatch(first.topic, first.partition, first.first, max(f.end for f in self.run), 0).key

    @property
    def name(self) -> str:
        return f"{self.key}.parquet"

    @property
    def relative(self) -> str:
        return f"{self.folder}/{self.name}"


def _merge_run(lake: Lake, table: str, merge: _Merge) -> pa.Table | None:
    """The run's rows as one table of the table's schema, in offset order.

    ``None`` when an older file lacks a never-null column and its source table has no value for
    some row: the run is then left unmerged, never written with an invented value or a null.
    """
    schema = arrow.STORED_TABLES[table]
    tables = [pq.read_table(lake.path(f.relative), schema=schema, filesystem=lake.fs) for f in merge.run]
    combined = pa.concat_tables(tables)
    combined = combined.sort_by("kafka_offset") if "kafka_offset" in schema.names else combined
    result = filled(lake, table, merge.folder, combined)
    if result is None:
        _LOG.warning("%s left unmerged: an older file lacks a column the lake cannot fill exactly", merge.relative)
    return result


def _in_flight(lake: Lake) -> set[tuple[str, int, int, int]]:
    """The batches being committed right now: ``(topic, partition, first, end)`` of each staging folder.

    Listed after the coverage, so a batch whose files were moved in part when the coverage was
    read is still in ``_staging/`` now (its folder goes only after its last file is in place).
    """
    in_flight = set()
    for info in lake.list(lake.path(STAGING)):
        found = batch_file_range(f"{info.base_name}.parquet")
        if found is not None:
            in_flight.add(found)
    return in_flight


def _compact_in_place(lake: Lake, table: str, merges: list[_Merge]) -> list[_Merge]:
    """Upload each merged file beside the files it replaces, then delete them (object stores)."""
    done = []
    for merge in merges:
        merged = _merge_run(lake, table, merge)
        if merged is None:
            continue
        lake.write_table(lake.path(merge.relative), merged)
        for file in merge.run:
            if file.relative != merge.relative:
                with contextlib.suppress(FileNotFoundError):
                    lake.fs.delete_file(lake.path(file.relative))
        done.append(merge)
    return done


def _compact_by_exchange(lake: Lake, table: str, folder: str, merges: list[_Merge]) -> list[_Merge]:
    """Build the folder's next content beside it and swap it in at once (see :func:`compact`)."""
    staging = lake.path(STAGING, f"swap+{folder.replace('/', '+')}+{uuid.uuid4().hex[:12]}")
    following = f"{staging}/next"
    lake.fs.create_dir(following, recursive=True)
    replaced: set[str] = set()
    done = []
    for merge in merges:
        rows = _merge_run(lake, table, merge)
        if rows is not None:
            lake.write_table(f"{following}/{merge.name}", rows)
            replaced.update(f.relative for f in merge.run)
            done.append(merge)
    if not done:
        lake.delete_folder(staging)
        return []
    kept = []
    for info in lake.list(lake.path(folder)):
        relative = f"{folder}/{info.base_name}"
        if info.type == pafs.FileType.File and relative not in replaced:
            os.link(info.path, f"{following}/{info.base_name}")  # unmerged files and _SUCCESS stay
            kept.append(relative)
    lake.fsync(following)
    files = [{"file": merge.relative} for merge in done]
    manifest = {"swap": folder, "files": files, "keep": kept, "remove": sorted(replaced)}
    commit_manifest(lake, staging, manifest)
    finish_exchange(lake, staging, manifest)
    return done


def compact(lake: Lake) -> list[tuple[str, int]]:
    """Merge each partition folder's small files, atomically, idempotently, safely for readers.

    Files of one Kafka partition whose ranges are contiguous (counting what other tables cover in
    between) become one file named after the union of their ranges, so the lake's coverage, and
    with it the resume point and the accounting, are unchanged.

    On a local lake each folder changes in one step: its next content (the merged files, plus
    hard links to the files that stay) is built in ``_staging/``, committed by a manifest, then
    swapped with the live folder by one ``renameat2(RENAME_EXCHANGE)``. A reader lists either
    the old files or the new ones, never both and never neither; a query that listed the old
    files and opens one after the swap gets a "file not found" error (never wrong rows) and can
    be run again. A batch committed into the folder while it is being compacted is moved into the
    new folder right after the swap. On object stores each merged file is uploaded into the live
    folder, then the files it replaces are deleted: :func:`transforms.io.lake.data_files` (and so
    every reader of the lake) skips a file whose range lies inside another's, so a reader never
    sees a row twice or misses one; a plain glob over the folder can see the rows twice until the
    deletes are done. :func:`transforms.io.lake.recover` finishes a merge interrupted after its
    manifest (local) or its upload (object stores); recovery and compaction take turns on a lock,
    and compaction leaves the running pipeline's staged batches alone, merging none of them and
    bridging none. Returns ``(merged file, files replaced)`` for every merge.
    """
    with maintenance_lock(lake):
        recover_staging(lake, only_merges=True)
        return _compact(lake)


def _compact(lake: Lake) -> list[tuple[str, int]]:
    listed = covered_ranges(lake)
    in_flight = _in_flight(lake)
    covered = {
        (topic, partition): merge_ranges([r for r in ranges if (topic, partition, *r) not in in_flight])
        for (topic, partition), ranges in listed.items()
    }
    exchange = can_exchange(lake)
    merged: list[tuple[str, int]] = []
    for table in arrow.STORED_TABLES:
        by_folder: dict[str, list[BatchFile]] = defaultdict(list)
        for file in batch_files(lake, table):
            if (file.topic, file.partition, file.first, file.end) not in in_flight:
                by_folder[file.folder].append(file)
        for folder, files in by_folder.items():
            by_partition: dict[tuple[str, int], list[BatchFile]] = defaultdict(list)
            for file in files:
                by_partition[(file.topic, file.partition)].append(file)
            merges = [
                _Merge(folder, run)
                for (topic, partition), group in by_partition.items()
                for run in _runs(group, covered.get((topic, partition), []))
                if len(run) >= 2
            ]
            if not merges:
                continue
            if exchange:
                done = _compact_by_exchange(lake, table, folder, merges)
            else:
                done = _compact_in_place(lake, table, merges)
            merged.extend((merge.relative, len(merge.run)) for merge in done)
    return merged
