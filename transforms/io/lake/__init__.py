"""The lake: a Hive-partitioned Parquet lake whose file names are the pipeline's resume point.

One module per job; none of those re-exported here imports Beam, because the read side
(``wirestream query``, ``validate``, ``report``, ``compact``) imports this package:

- :mod:`~transforms.io.lake.store`: :class:`Lake`, the one filesystem wrapper (local or object store).
- :mod:`~transforms.io.lake.layout`: table and partition paths, batch file names, listing the lake.
- :mod:`~transforms.io.lake.rows`: each outcome as its table rows, and rows as Arrow tables.
- :mod:`~transforms.io.lake.commit`: the batch commit protocol, its retry, and :func:`recover`.
- :mod:`~transforms.io.lake.staging`: manifests (the commit point), rolling forward, the lock.
- :mod:`~transforms.io.lake.coverage`: which offset ranges the lake accounts for; origins.
- :mod:`~transforms.io.lake.compaction`: merging small files without changing coverage.
- :mod:`~transforms.io.lake.backfill`: a never-null column older files lack, filled exactly.
- :mod:`~transforms.io.lake.markers`: ``_SUCCESS`` once a partition is complete.
- :mod:`~transforms.io.lake.iceberg`: the same tables as Apache Iceberg tables (a package of its own).
- :mod:`~transforms.io.lake.tables`: the one place that chooses between the formats; the listing,
  coverage, recovery, marker and compaction calls exported here are its, and answer both.

The Iceberg lake (:mod:`transforms.io.lake.iceberg`: the same tables as Apache Iceberg tables,
not wired into the pipeline yet) is imported by name too, never from here: it loads pyiceberg.

The Beam side lives in two modules imported by name, never from here:
:mod:`transforms.io.lake.sink` (``WriteLake``, ``MarkComplete``) and
:mod:`transforms.io.lake.seeds` (``LakeSeeds``). The sink commits offsets through an object the
pipeline hands it, so nothing in this package imports the Kafka source.
"""

from __future__ import annotations

from transforms.io.lake.commit import LakeUnwritableError, Written, commit_batch, commit_with_retry
from transforms.io.lake.coverage import read_origins, record_origins
from transforms.io.lake.layout import (
    MAINTENANCE_LOCK,
    MANIFEST,
    ORIGINS,
    STAGING,
    SUCCESS,
    BatchFile,
    batch_file_range,
    batch_files,
    partition_end,
    partition_path,
    superseded,
)
from transforms.io.lake.markers import write_marker
from transforms.io.lake.rows import article_row, rows_by_file
from transforms.io.lake.store import Lake
from transforms.io.lake.tables import (
    compact,
    covered_ranges,
    data_files,
    lake_files,
    mark_complete,
    partition_folders,
    recover,
)

__all__ = [
    "MAINTENANCE_LOCK",
    "MANIFEST",
    "ORIGINS",
    "STAGING",
    "SUCCESS",
    "BatchFile",
    "Lake",
    "LakeUnwritableError",
    "Written",
    "article_row",
    "batch_file_range",
    "batch_files",
    "commit_batch",
    "commit_with_retry",
    "compact",
    "covered_ranges",
    "data_files",
    "lake_files",
    "mark_complete",
    "partition_end",
    "partition_folders",
    "partition_path",
    "read_origins",
    "record_origins",
    "recover",
    "rows_by_file",
    "superseded",
    "write_marker",
]
