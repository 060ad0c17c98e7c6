"""WriteIcebergLake: the Beam sink of the Iceberg lake: writers in parallel, one committer.

``PCollection[OutcomeBatch]`` → ``PCollection[BatchReport]``, like the Hive lake's
:class:`~transforms.io.lake.sink.WriteLake`, in three labelled steps:

1. ``WriteBatchFiles`` (parallel, any worker): :func:`~transforms.io.lake.iceberg.files.write_batch`
   writes a batch's data files into the tables' ``data/`` folders and then its manifest in
   ``_staging/`` (the commit point), retried with backoff while the lake refuses writes, as the
   Hive sink retries; it emits the :class:`~transforms.io.lake.iceberg.files.BatchManifest`.
2. ``ToTheCommitter``: every manifest gets the one key ``"lake"``.
3. ``CommitSnapshots``: a stateful DoFn on that key. Beam runs a stateful DoFn's elements of one
   key one at a time on every runner (Prism, Flink, Dataflow), so this is the job's only committer
   and no two snapshots of a table race. For each manifest it commits that manifest **and every
   other one already durable in** ``_staging/`` (batches whose elements are still on their way):
   when the committer falls behind, many batches share one snapshot per table, which keeps the
   snapshot count, and pyiceberg's per-commit cost that grows with it, down. A manifest committed
   early is found already covered when its own element arrives (the commit is idempotent, see
   :mod:`transforms.io.lake.iceberg.commit`).

Only after the snapshots does the committer commit Kafka offsets, at the gapless reach of
``_records``' ``wirestream.covered`` from each partition's origin: the offsets a restart would not
read again. Every :data:`EXPIRE_EVERY` commits it expires snapshots, keeping :data:`KEEP_SNAPSHOTS`
per table (and deleting the files only expired snapshots referenced).

Invariants: no offset is committed to Kafka for a batch before all its tables' snapshots are
committed; a batch's rows appear once in each table whatever the runner retries (a retried
writer writes new file names and overwrites its manifest; whichever manifest is committed first
wins, and the other's files are orphans, referenced by no snapshot and deleted by the next
start's recovery). Not yet here: completeness markers (the reports carry no folders, so the Hive
lake's ``_SUCCESS`` is not written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate

from schemas import arrow
from schemas.records import OutcomeBatch, SourceBatch
from transforms.io.lake.commit import LakeUnwritableError
from transforms.io.lake.coverage import read_origins
from transforms.io.lake.iceberg.files import BatchManifest, write_batch
from transforms.io.lake.sink import BatchReport, OpenCommitter
from transforms.io.lake.store import Lake
from transforms.io.offsets import gapless_reach

__all__ = ["EXPIRE_EVERY", "KEEP_SNAPSHOTS", "CatalogConfig", "WriteIcebergLake"]

_LOG = logging.getLogger(__name__)

EXPIRE_EVERY = 50
"""Commits between two expiries of old snapshots."""

KEEP_SNAPSHOTS = 20
"""Snapshots kept per table at each expiry (time travel that far back; the rest is deleted)."""

_COMMITTER_KEY = "lake"


@dataclass(frozen=True)
class CatalogConfig:
    """Where the lake's Iceberg catalog is: the embedded SQLite one (``uri`` None) or a REST catalog."""

    lake_uri: str
    uri: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)

    def open(self) -> tuple[Lake, Any]:
        """The lake and its catalog, tables created if missing (imports pyiceberg: call in ``setup()``)."""
        from transforms.io.lake.iceberg.catalog import ensure_tables, open_catalog

        lake = Lake(self.lake_uri)
        catalog = open_catalog(lake, self.uri, dict(self.properties))
        ensure_tables(catalog, lake)
        return lake, catalog


class _WriteFilesFn(beam.DoFn):
    def __init__(self, catalog: CatalogConfig, retry_seconds: float) -> None:
        self._catalog = catalog
        self._retry_seconds = retry_seconds

    def setup(self) -> None:
        from transforms.io.lake.iceberg.catalog import data_schemas

        self._lake, catalog = self._catalog.open()
        self._schemas = data_schemas(catalog)

    def process(self, element: OutcomeBatch) -> Iterator[BatchManifest]:
        batch = element.batch
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.5
        while True:
            try:
                yield write_batch(self._lake, batch, element.outcomes, self._schemas)
                return
            except OSError as error:
                if time.monotonic() + delay > deadline:
                    raise LakeUnwritableError(
                        f"cannot write batch {batch.key} to the lake at {self._lake.uri} "
                        f"after {self._retry_seconds:.0f} s: {error}"
                    ) from error
                _LOG.error("cannot write batch %s (%s); retrying in %.1f s", batch.key, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)


def _rows(manifest: BatchManifest) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for file in manifest.files:
        if file.table in arrow.TABLES:
            totals[file.table] = totals.get(file.table, 0) + file.rows
    return tuple(sorted(totals.items()))


class _CommitSnapshotsFn(beam.DoFn):
    COMMITS = userstate.ReadModifyWriteStateSpec("commits", VarIntCoder())

    def __init__(self, catalog: CatalogConfig, open_committer: OpenCommitter | None) -> None:
        self._catalog_config = catalog
        self._open_committer = open_committer
        self._snapshots = beam.metrics.Metrics.counter("lake", "iceberg_commits")
        self._batches = beam.metrics.Metrics.counter("lake", "batches_committed")
        self._records = beam.metrics.Metrics.counter("lake", "records_committed")

    def setup(self) -> None:
        self._lake, self._catalog = self._catalog_config.open()
        self._committer = self._open_committer() if self._open_committer is not None else None
        self._origins: dict[tuple[str, int], int] = {}

    def teardown(self) -> None:
        committer = getattr(self, "_committer", None)
        if committer is not None:
            committer.close()

    def process(
        self, element: tuple[str, BatchManifest], commits: Any = beam.DoFn.StateParam(COMMITS)
    ) -> Iterator[BatchReport]:
        from transforms.io.lake.iceberg.commit import commit_manifests, covered_ranges, expire, pending_manifests

        _, manifest = element
        waiting = {found.key: found for found in pending_manifests(self._lake)}
        waiting[manifest.key] = manifest
        added = commit_manifests(self._catalog, self._lake, [waiting[key] for key in sorted(waiting)])
        if added:
            self._snapshots.inc()
            done = (commits.read() or 0) + 1
            commits.write(done)
            if done % EXPIRE_EVERY == 0:
                expire(self._catalog, self._lake, KEEP_SNAPSHOTS)
        batch = SourceBatch(
            manifest.topic, manifest.partition, manifest.first_offset, manifest.end_offset, manifest.size
        )
        self._batches.inc()
        self._records.inc(batch.size)
        yield BatchReport(batch, _rows(manifest), self._commit_offset(batch, covered_ranges(self._catalog)))

    def _commit_offset(self, batch: SourceBatch, covered: Mapping[tuple[str, int], list[tuple[int, int]]]) -> bool:
        """Commit the partition's gapless reach to the consumer group; whether it covers ``batch``."""
        if self._committer is None:
            return False
        key = (batch.topic, batch.partition)
        if key not in self._origins:
            self._origins = {**self._origins, **read_origins(self._lake)}
        reach = gapless_reach(covered.get(key, []), self._origins.get(key))
        origin = self._origins.get(key)
        if reach is None or (origin is not None and reach <= origin):
            return False
        return self._committer.commit(batch.topic, batch.partition, reach) and reach >= batch.end_offset


class WriteIcebergLake(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[BatchReport]``: files in parallel, one committer.

    ``open_committer`` makes the object that commits Kafka offsets (see
    :class:`~transforms.io.lake.sink.Committer`); without one no offset is committed anywhere.
    """

    def __init__(
        self, catalog: CatalogConfig, open_committer: OpenCommitter | None = None, retry_seconds: float = 300.0
    ) -> None:
        super().__init__()
        self._catalog = catalog
        self._open_committer = open_committer
        self._retry_seconds = retry_seconds

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return (
            batches
            | "WriteBatchFiles" >> beam.ParDo(_WriteFilesFn(self._catalog, self._retry_seconds))
            | "ToTheCommitter" >> beam.WithKeys(lambda _: _COMMITTER_KEY)
            | "CommitSnapshots" >> beam.ParDo(_CommitSnapshotsFn(self._catalog, self._open_committer))
        )
