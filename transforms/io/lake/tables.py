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
  ``wirestream.covered`` property, Iceberg recovery (roll forward, orphans swept); no ``_SUCCESS``
  markers and no compaction yet (:func:`compact` refuses an Iceberg lake).

The Hive modules never import the Iceberg package; this module is the one place that chooses.
pyiceberg (3–4 s to import) is imported only for an Iceberg lake. No Beam here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from schemas import arrow
from transforms.errors import UserError
from transforms.io.lake import commit, compaction, coverage, layout, markers
from transforms.io.lake.iceberg import is_iceberg
from transforms.io.lake.store import Lake, place

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


def compact(lake: Lake) -> list[tuple[str, int]]:
    """Merge small files (see :func:`transforms.io.lake.compaction.compact`); refused on an Iceberg lake for now."""
    if is_iceberg(lake):
        raise UserError(
            f"{place(lake.uri)} is an Iceberg lake: its compaction (a rewrite of small files into one "
            "snapshot) is not built yet"
        )
    return compaction.compact(lake)
