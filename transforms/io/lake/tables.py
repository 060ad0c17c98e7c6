"""The lake's contents in either table format: the calls the launcher, the sinks and the read side use.

A lake is Hive-partitioned Parquet (the default) or Apache Iceberg tables
(:func:`~transforms.io.lake.iceberg.is_iceberg`: its ``_catalog/`` exists). These functions answer
both the same way, in the Hive lake's vocabulary (``table/dt=YYYY-MM-DD/hour=HH`` folders, data
files, covered offset ranges), so deduplication's seeds, ``validate``, the report, the run summary,
the progress monitor and ``wirestream query`` need no format of their own:

- Hive: the listing functions of :mod:`~transforms.io.lake.layout`, the coverage of
  :mod:`~transforms.io.lake.coverage` (file names), recovery and compaction as they are.
- Iceberg: the current snapshot's files (:mod:`~transforms.io.lake.iceberg.read`; never a listing
  of ``data/``, which also holds files of batches not yet committed), ``_records``' cumulative
  ``wirestream.covered`` property, Iceberg recovery (roll forward, orphans swept), compaction as
  a rewrite of small files in one snapshot per table; no ``_SUCCESS`` markers yet.

The Hive modules never import the Iceberg package; this module is the one place that chooses.
pyiceberg (3–4 s to import) is imported only for an Iceberg lake. No Beam here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from schemas import arrow
from transforms.io.lake import commit, compaction, coverage, layout, markers
from transforms.io.lake.iceberg import is_iceberg
from transforms.io.lake.store import Lake

__all__ = ["compact", "covered_ranges", "data_files", "lake_files", "mark_complete", "partition_folders", "recover"]


def data_files(lake: Lake, folder: str, recursive: bool = True) -> list[str]:
    """The committed Parquet files under a table or ``table/dt=/hour=`` folder, as absolute paths.

    Hive: :func:`transforms.io.lake.layout.data_files`. Iceberg: the current snapshot's files of
    that table, or of that hour (``recursive`` does not apply: an hour has no subfolders).
    """
    if is_iceberg(lake):
        from transforms.io.lake.iceberg.read import committed_files

        return committed_files(lake, folder)
    return layout.data_files(lake, folder, recursive)


def lake_files(lake: Lake) -> frozenset[str]:
    """Every committed data file of the lake (tables and record log), as paths relative to its root."""
    return frozenset(lake.relative(path) for table in arrow.STORED_TABLES for path in data_files(lake, table))


def partition_folders(lake: Lake, table: str) -> Iterator[tuple[str, dt.datetime]]:
    """Each ``table/dt=.../hour=...`` of a table and when its hour ends (Iceberg: hours with committed files)."""
    if is_iceberg(lake):
        from transforms.io.lake.iceberg.read import committed_folders

        return committed_folders(lake, table)
    return layout.partition_folders(lake, table)


def covered_ranges(lake: Lake) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Offset ranges ``[first, end)`` per topic-partition that the lake accounts for (the resume point)."""
    if is_iceberg(lake):
        from transforms.io.lake.iceberg import commit as iceberg_commit
        from transforms.io.lake.iceberg.read import catalog_for

        return iceberg_commit.covered_ranges(catalog_for(lake))
    return coverage.covered_ranges(lake)


def recover(lake: Lake) -> tuple[int, int]:
    """Finish committed batches and discard uncommitted ones before a run: ``(rolled forward, discarded)``."""
    if is_iceberg(lake):
        from transforms.io.lake.iceberg import commit as iceberg_commit
        from transforms.io.lake.iceberg.read import catalog_for

        recovered = iceberg_commit.recover(lake, catalog_for(lake))
        return recovered.rolled_forward, recovered.discarded
    return commit.recover(lake)


def mark_complete(lake: Lake, before: dt.datetime) -> list[str]:
    """``_SUCCESS`` in every partition whose hour ended by ``before`` (Hive only: an Iceberg lake gets none yet)."""
    if is_iceberg(lake):
        return []
    return markers.mark_complete(lake, before)


def compact(lake: Lake, retain_s: float | None = None) -> list[tuple[str, int]]:
    """Merge small files; ``(merged file, files replaced)`` per merge.

    Hive: :func:`transforms.io.lake.compaction.compact`. Iceberg: a rewrite of each table's small
    files per hour as one snapshot, then expiry of the snapshots superseded more than
    ``retain_s`` ago (:func:`transforms.io.lake.iceberg.compaction.compact`; ``None``: its default).
    """
    if is_iceberg(lake):
        from transforms.io.lake.iceberg import compaction as iceberg_compaction
        from transforms.io.lake.iceberg.read import catalog_for

        if retain_s is None:
            return iceberg_compaction.compact(lake, catalog_for(lake))
        return iceberg_compaction.compact(lake, catalog_for(lake), retain_s)
    return compaction.compact(lake)
