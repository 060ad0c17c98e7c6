"""Compaction of an Iceberg lake: each table's small files, rewritten per hour as one snapshot.

pyiceberg 0.12 has no rewrite API, so :func:`compact` does it (spike, section 5). Per table:

1. plan: the current snapshot's files, grouped by hour partition (their ``ingested_at_hour=``
   folder); an hour with one file is left alone;
2. merge: each hour's files read through pyiceberg (the table's current schema, by field id, so
   a file written before a column was added reads with nulls there), in path order, sorted by
   ``(kafka_topic, kafka_partition, kafka_offset)`` where the table has them, and written as one
   Parquet file with the table's field-id schema beside them (``compacted+<uuid12>.parquet``,
   zstd, fsynced, as :mod:`~transforms.io.lake.iceberg.files` writes);
3. commit: ONE ``overwrite`` snapshot deleting every planned file and adding the merged ones
   (summary ``wirestream.compaction``). Readers see the old files or the merged ones, never both.
   If the running pipeline's committer moved the head meanwhile (``CommitFailedException``:
   tables commit with no retries of pyiceberg's own), the table is reloaded; its new files are
   simply not part of this rewrite, and the same rewrite is committed on the new head while every
   planned file is still current (only compaction removes files, under the maintenance lock),
   otherwise the merged files are deleted and the table planned again.

Invariants: no row is added, lost or changed (the same multiset of rows per table); the
``wirestream.covered`` property, the resume point, is never touched; a second run merges nothing.

The replaced files stay on disk: snapshots before the rewrite still reference them, so a reader
that planned on one still reads. Then :func:`~transforms.io.lake.iceberg.commit.expire` runs with
``keep=1`` and ``retain_s``: every snapshot that stopped being current more than ``retain_s`` ago
is expired and the files only it referenced are deleted. Keeping the pipeline's usual newest 20
would keep the pre-compaction snapshots, and with them every replaced file, so compaction would
free nothing; the price is time travel to before ``retain_s`` ago. With the default a file
replaced now is deleted by the next compaction (or the pipeline's expiry) at least
:data:`DEFAULT_RETAIN_S` later; ``retain_s=0`` deletes it at once (a query still reading it then
fails with "file not found", never with wrong rows). A merged file whose commit failed is deleted
unless the head references it; one left by a crash is referenced by nothing, and recovery deletes
it. No Beam here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, parquet_file_to_data_file, schema_to_pyarrow
from pyiceberg.table import FileScanTask, Table

from transforms.io.lake.iceberg.catalog import table_name
from transforms.io.lake.iceberg.commit import COMMIT_ORDER, expire
from transforms.io.lake.staging import maintenance_lock
from transforms.io.lake.store import Lake

__all__ = ["COMPACTION", "DEFAULT_RETAIN_S", "compact", "compact_table"]

_LOG = logging.getLogger(__name__)

COMPACTION = "wirestream.compaction"
"""The snapshot summary property of a rewrite: ``{"replaced": files, "merged": files}``."""

DEFAULT_RETAIN_S = 300.0
"""Snapshots that were current this recently are kept by compaction's expiry (readers still on them)."""

_ATTEMPTS = 50
_ORDER = ("kafka_topic", "kafka_partition", "kafka_offset")


@dataclass(frozen=True)
class _Rewrite:
    """One hour of one table: the files it replaces and the merged file written in their folder."""

    replaced: tuple[FileScanTask, ...]
    merged: str

    @property
    def replaced_paths(self) -> frozenset[str]:
        return frozenset(task.file.file_path for task in self.replaced)


def _by_hour(loaded: Table) -> list[list[FileScanTask]]:
    """The current snapshot's files grouped by hour folder, in path order; hours with one file left out."""
    hours: dict[str, list[FileScanTask]] = defaultdict(list)
    for task in loaded.scan().plan_files():
        hours[task.file.file_path.rsplit("/", 1)[0]].append(task)
    groups = [sorted(tasks, key=lambda task: task.file.file_path) for _, tasks in sorted(hours.items())]
    return [tasks for tasks in groups if len(tasks) >= 2]


def _merge(lake: Lake, loaded: Table, tasks: Sequence[FileScanTask]) -> str:
    """Read one hour's files as the table's current schema, write them as one file; its path."""
    schema = schema_to_pyarrow(loaded.schema(), include_field_ids=True)
    rows = ArrowScan(loaded.metadata, loaded.io, loaded.schema(), AlwaysTrue()).to_table(tasks)
    if all(column in rows.column_names for column in _ORDER):
        rows = rows.sort_by([(column, "ascending") for column in _ORDER])
    rows = rows.cast(schema)  # the field ids, and string or large_string as pyiceberg reads them
    folder = tasks[0].file.file_path.removeprefix("file://").rsplit("/", 1)[0]
    if not lake.local:
        folder = folder.split("://", 1)[1]
    path = f"{folder}/compacted+{uuid.uuid4().hex[:12]}.parquet"
    with lake.fs.open_output_stream(path) as stream:
        pq.write_table(rows, stream, compression="zstd", store_schema=False)
    lake.fsync(path)
    lake.fsync(folder)
    return lake.url(path)


def _discard(lake: Lake, rewrites: Sequence[_Rewrite]) -> None:
    for rewrite in rewrites:
        lake.fs.delete_file(rewrite.merged.split("://", 1)[1] if "://" in rewrite.merged else rewrite.merged)


def _commit(loaded: Table, rewrites: Sequence[_Rewrite]) -> None:
    """One overwrite snapshot: every replaced file deleted, every merged file added."""
    summary = {COMPACTION: json.dumps({"replaced": sum(len(r.replaced) for r in rewrites), "merged": len(rewrites)})}
    with (
        loaded.transaction() as transaction,
        transaction.update_snapshot(snapshot_properties=summary).overwrite() as overwrite,
    ):
        for rewrite in rewrites:
            for task in rewrite.replaced:
                overwrite.delete_data_file(task.file)
            overwrite.append_data_file(parquet_file_to_data_file(loaded.io, loaded.metadata, rewrite.merged))


def compact_table(lake: Lake, catalog: Catalog, table: str) -> list[tuple[str, int]]:
    """Rewrite one table's hours of several files as one snapshot; ``(merged file, files replaced)`` each."""
    rewrites: list[_Rewrite] = []
    for attempt in range(_ATTEMPTS):
        loaded = catalog.load_table(table_name(table))
        current = {task.file.file_path for task in loaded.scan().plan_files()}
        if not all(rewrite.replaced_paths <= current for rewrite in rewrites):
            _discard(lake, rewrites)  # a planned file is gone: plan again from this head
            rewrites = []
        if not rewrites:
            rewrites = [_Rewrite(tuple(tasks), _merge(lake, loaded, tasks)) for tasks in _by_hour(loaded)]
        if not rewrites:
            return []
        try:
            _commit(loaded, rewrites)
        except CommitFailedException:
            _LOG.info("the table %s moved under compaction attempt %d; reloading it", table, attempt + 1)
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
            continue
        except BaseException:
            with contextlib.suppress(Exception):  # a file the head references stays, whatever went wrong
                current = {task.file.file_path for task in catalog.load_table(table_name(table)).scan().plan_files()}
                _discard(lake, [rewrite for rewrite in rewrites if rewrite.merged not in current])
            raise
        return [(lake.relative(rewrite.merged.split("://", 1)[-1]), len(rewrite.replaced)) for rewrite in rewrites]
    _discard(lake, rewrites)
    raise CommitFailedException(f"the table {table} kept changing under {_ATTEMPTS} compaction attempts")


def compact(lake: Lake, catalog: Catalog, retain_s: float = DEFAULT_RETAIN_S) -> list[tuple[str, int]]:
    """Rewrite every table's hours of several files, one snapshot per table, then expire (see above).

    Safe beside the running pipeline; holds the maintenance lock while rewriting. Returns
    ``(merged file relative to the lake, files it replaced)`` per hour merged.
    """
    merged: list[tuple[str, int]] = []
    with maintenance_lock(lake):
        for table in COMMIT_ORDER:
            merged.extend(compact_table(lake, catalog, table))
    deleted = expire(catalog, lake, keep=1, retain_s=retain_s)
    _LOG.info("Iceberg compaction: %d hours merged, %d files no retained snapshot needs deleted", len(merged), deleted)
    return merged
