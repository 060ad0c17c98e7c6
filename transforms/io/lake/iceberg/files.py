"""A batch's files in the Iceberg lake, and its manifest: what a worker does before the committer.

:func:`write_batch` (one :class:`~schemas.records.SourceBatch` and its outcomes, as the Hive lake's
``commit_batch`` takes them):

1. checks that it holds exactly one outcome per record of the batch;
2. writes each table's rows (:func:`~transforms.io.lake.rows.rows_by_file`, by ingestion time)
   as one Parquet file per (table, hour): the table's schema **with Iceberg field ids**, zstd,
   no stored Arrow schema (readers get ``string``, not ``large_string``), fsynced, straight into
   ``LAKE/<table>/data/ingested_at_hour=YYYY-MM-DD-HH/<batch key>+<uuid8>.parquet``: a new name per
   attempt, so a retried batch never overwrites a file a snapshot may already reference;
3. writes ``_staging/<batch key>/_MANIFEST.json`` (:class:`BatchManifest`: the batch's range and
   every file with its table and rows) atomically: **the commit point** (invariant I1: no snapshot
   holds a batch's file before its manifest is durable).

A file written before a crash and listed by no manifest is an orphan: no snapshot references
it, and recovery deletes it (:func:`transforms.io.lake.iceberg.commit.recover`); its batch is read
again. No Beam here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.records import Outcome, SourceBatch
from transforms.io.lake.commit import check_complete
from transforms.io.lake.layout import MANIFEST, STAGING
from transforms.io.lake.rows import arrow_table, rows_by_file
from transforms.io.lake.staging import commit_manifest
from transforms.io.lake.store import Lake

__all__ = ["BatchManifest", "StagedFile", "hour_folder", "read_manifest", "write_batch"]

FORMAT = "iceberg"


@dataclass(frozen=True)
class StagedFile:
    """One data file of a batch: its table, its path as the catalog names it, and its rows."""

    table: str
    path: str
    rows: int


@dataclass(frozen=True)
class BatchManifest:
    """A written batch: the offsets ``[first_offset, end_offset)`` of one partition and its files."""

    topic: str
    partition: int
    first_offset: int
    end_offset: int
    size: int
    files: tuple[StagedFile, ...]

    @property
    def key(self) -> str:
        """The batch's key, also its staging folder's name."""
        return SourceBatch(self.topic, self.partition, self.first_offset, self.end_offset, self.size).key

    def paths(self, table: str) -> list[str]:
        """The files of ``table``, in the order written."""
        return [file.path for file in self.files if file.table == table]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``_MANIFEST.json``."""
        return {
            "format": FORMAT,
            "batch": {
                "topic": self.topic,
                "partition": self.partition,
                "first_offset": self.first_offset,
                "end_offset": self.end_offset,
                "size": self.size,
            },
            "files": [{"table": file.table, "path": file.path, "rows": file.rows} for file in self.files],
        }

    @classmethod
    def from_json(cls, manifest: Mapping[str, Any]) -> BatchManifest:
        """A manifest read back; refuses a Hive lake's manifest."""
        if manifest.get("format") != FORMAT:
            raise ValueError(f"not an Iceberg batch manifest: {manifest.get('batch')}")
        batch = manifest["batch"]
        files = tuple(StagedFile(entry["table"], entry["path"], int(entry["rows"])) for entry in manifest["files"])
        return cls(
            batch["topic"], int(batch["partition"]), int(batch["first_offset"]), int(batch["end_offset"]),
            int(batch["size"]), files,
        )  # fmt: skip


def hour_folder(partition: str) -> str:
    """The Iceberg data folder of a ``dt=YYYY-MM-DD/hour=HH`` partition: ``ingested_at_hour=YYYY-MM-DD-HH``."""
    day, hour = partition.split("/")
    return f"ingested_at_hour={day.removeprefix('dt=')}-{hour.removeprefix('hour=')}"


def _write_parquet(lake: Lake, path: str, table: pa.Table) -> None:
    with lake.fs.open_output_stream(path) as stream:
        pq.write_table(table, stream, compression="zstd", store_schema=False)
    lake.fsync(path)


def write_batch(
    lake: Lake, batch: SourceBatch, outcomes: Sequence[Outcome], schemas: Mapping[str, pa.Schema]
) -> BatchManifest:
    """Write a batch's files into the tables' data folders, then its manifest (the commit point).

    ``schemas`` are the tables' Arrow schemas with field ids
    (:func:`transforms.io.lake.iceberg.catalog.data_schemas`), loaded once per worker.
    """
    check_complete(batch, outcomes)
    attempt = uuid.uuid4().hex[:8]
    written = []
    for (table, partition), rows in rows_by_file(outcomes, "ingestion_time").items():
        folder = lake.path(table, "data", hour_folder(partition))
        lake.create_folder(folder)
        path = f"{folder}/{batch.key}+{attempt}.parquet"
        _write_parquet(lake, path, arrow_table(rows, schemas[table]))
        lake.fsync(folder)
        written.append(StagedFile(table, lake.url(path), len(rows)))
    manifest = BatchManifest(
        batch.topic, batch.partition, batch.first_offset, batch.end_offset, batch.size, tuple(written)
    )
    staging = lake.path(STAGING, batch.key)
    lake.create_folder(staging)
    commit_manifest(lake, staging, manifest.to_json())
    return manifest


def read_manifest(lake: Lake, staging: str) -> BatchManifest | None:
    """The manifest of a staging folder, or ``None`` when it has none (the batch was never committed)."""
    path = f"{staging}/{MANIFEST}"
    if not lake.exists(path):
        return None
    with lake.fs.open_input_stream(path) as stream:
        return BatchManifest.from_json(json.loads(stream.read()))
