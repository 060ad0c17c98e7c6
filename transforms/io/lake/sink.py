"""WriteLake and MarkComplete: the Beam sink around the lake's commit protocol.

``WriteLake`` (``PCollection[OutcomeBatch]`` → ``PCollection[BatchReport]``) writes every outcome
of a Kafka batch by :func:`transforms.io.lake.commit_with_retry` (steps 1-4 of the protocol in
:mod:`transforms.io.lake.commit`), then step 5: only now is an offset committed to the Kafka
consumer group, where the lake's gapless run from the partition's origin ends (``end`` when the
batches came in order). Batches of one partition can commit out of order, and the group must never
claim one still in flight. No offset is committed for a batch that was not written.

The sink never touches the consumer group itself: the pipeline hands it a picklable
:data:`OpenCommitter` (for Kafka, ``functools.partial(OffsetCommitter, consumer_config)``), called
once per worker in ``setup()``; what it returns is a :class:`Committer`. So this package never
imports the Kafka source.

``MarkComplete`` puts ``_SUCCESS`` into an ingestion-time partition once the watermark passes the
end of its hour (the launcher marks the hours that ended at the start and end of every run, with
:func:`transforms.io.lake.mark_complete`).

Everything that does not need Beam (layout, commit, recovery, compaction, reading) stays in the
other modules of :mod:`transforms.io.lake`, which the read-side commands import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.transforms import userstate
from apache_beam.utils.timestamp import Timestamp

from schemas.records import OutcomeBatch, SourceBatch, utc_now
from transforms.io.lake.commit import commit_with_retry
from transforms.io.lake.coverage import covered_ranges, read_origins
from transforms.io.lake.layout import partition_end
from transforms.io.lake.markers import write_marker
from transforms.io.lake.store import Lake
from transforms.io.offsets import first_uncovered, gapless_reach, merge_ranges

__all__ = ["BatchReport", "CommitBatchFn", "Committer", "MarkComplete", "OpenCommitter", "WriteLake"]


class Committer(Protocol):
    """Where the source keeps its position: commits a partition's next offset once the lake holds it.

    ``commit`` never moves the position backwards and reports failure instead of raising (the
    lake, not the group, is the resume point); ``close`` releases its connection.
    """

    def commit(self, topic: str, partition: int, next_offset: int) -> bool:
        """Commit ``next_offset``; False if it could not (it is tried again after the next batch)."""
        ...

    def close(self) -> None:
        """Release the connection (a later ``commit`` may open it again)."""
        ...


OpenCommitter = Callable[[], Committer]
"""A picklable factory of a :class:`Committer`, called once per worker in ``setup()``."""


@dataclass(frozen=True)
class BatchReport:
    """What one committed batch wrote: rows per table."""

    batch: SourceBatch
    rows: tuple[tuple[str, int], ...]
    offset_committed: bool
    folders: tuple[str, ...] = ()


class _WrittenReach:
    """Per worker process and lake: how far each partition is written without a gap from its origin.

    Batches can commit out of order, and committing a batch's own end would tell Kafka that an
    earlier batch still in flight is done, so the sink commits this reach instead. A worker runs
    several instances of the sink at once (one per concurrent bundle), so they share one record of
    the ranges they wrote; the lake is listed only when something before a batch is not known to
    be written (a batch still in flight, or one a previous run or another worker wrote).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._origins: dict[tuple[str, int], int] = {}

    def after(self, lake: Lake, batch: SourceBatch) -> int | None:
        """The offset to commit once ``batch`` is written, or None while nothing past the origin is."""
        key = (batch.topic, batch.partition)
        with self._lock:
            known = self._known[key] = merge_ranges([*self._known.get(key, []), (batch.first_offset, batch.end_offset)])
            if key not in self._origins or first_uncovered(self._origins[key], known) < batch.end_offset:
                self._origins = {**self._origins, **read_origins(lake)}
                known = self._known[key] = merge_ranges([*known, *covered_ranges(lake).get(key, [])])
                self._origins.setdefault(key, known[0][0])  # a lake from before origins were recorded
            origin = self._origins[key]
            reach = gapless_reach(known, origin)
        return reach if reach is not None and reach > origin else None


_REACHES: dict[str, _WrittenReach] = {}
_REACHES_LOCK = threading.Lock()


def _written_reach(lake_uri: str) -> _WrittenReach:
    with _REACHES_LOCK:
        return _REACHES.setdefault(lake_uri, _WrittenReach())


class CommitBatchFn(beam.DoFn):
    def __init__(
        self, lake_uri: str, partition_by: str, open_committer: OpenCommitter | None, retry_seconds: float
    ) -> None:
        self._lake_uri = lake_uri
        self._partition_by = partition_by
        self._open_committer = open_committer
        self._retry_seconds = retry_seconds
        self._batches = beam.metrics.Metrics.counter("lake", "batches_committed")
        self._records = beam.metrics.Metrics.counter("lake", "records_committed")

    def setup(self) -> None:
        self._lake = Lake(self._lake_uri)
        self._committer = self._open_committer() if self._open_committer is not None else None
        self._reach = _written_reach(self._lake_uri)

    def teardown(self) -> None:
        committer = getattr(self, "_committer", None)
        if committer is not None:
            committer.close()

    def process(self, element: OutcomeBatch) -> Iterator[BatchReport]:
        batch = element.batch
        written = commit_with_retry(self._lake, batch, element.outcomes, self._partition_by, self._retry_seconds)
        self._batches.inc()
        self._records.inc(batch.size)
        committed = False
        if self._committer is not None:
            reach = self._reach.after(self._lake, batch)
            if reach is not None:
                committed = self._committer.commit(batch.topic, batch.partition, reach) and reach >= batch.end_offset
        yield BatchReport(batch, tuple(sorted(written.rows.items())), committed, written.folders)


class WriteLake(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[BatchReport]``, one per committed batch.

    ``open_committer`` makes the object that commits offsets after each batch (see
    :class:`Committer`); without one no offset is committed anywhere.
    """

    def __init__(
        self,
        lake_uri: str,
        open_committer: OpenCommitter | None = None,
        partition_by: str = "ingestion_time",
        retry_seconds: float = 300.0,
    ) -> None:
        super().__init__()
        self._retry_seconds = retry_seconds
        if partition_by not in ("ingestion_time", "event_time"):
            raise ValueError(f"partition_by must be ingestion_time or event_time, not {partition_by!r}")
        self._lake_uri = lake_uri
        self._open_committer = open_committer
        self._partition_by = partition_by

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "CommitBatches" >> beam.ParDo(
            CommitBatchFn(self._lake_uri, self._partition_by, self._open_committer, self._retry_seconds)
        )


class _MarkPartitionsFn(beam.DoFn):
    HOUR_END = userstate.TimerSpec("hour_end", userstate.TimeDomain.WATERMARK)

    def __init__(self, lake_uri: str) -> None:
        self._lake_uri = lake_uri
        self._marked = beam.metrics.Metrics.counter("lake", "partitions_marked")

    def setup(self) -> None:
        self._lake = Lake(self._lake_uri)

    def process(self, element: tuple[str, int], hour_end: Any = beam.DoFn.TimerParam(HOUR_END)) -> None:
        _, end_micros = element
        hour_end.set(Timestamp(micros=end_micros))

    @userstate.on_timer(HOUR_END)
    def on_hour_end(self, folder: Any = beam.DoFn.KeyParam) -> None:
        end = partition_end(folder)
        # The watermark also jumps to the end of time when a bounded run finishes; an hour that
        # has not ended on the clock can still receive batches, so it is left for a later run.
        if end is not None and utc_now() >= end and write_marker(self._lake, folder):
            self._marked.inc()


def _hour_ends(report: BatchReport) -> Iterator[tuple[str, int]]:
    for folder in report.folders:
        end = partition_end(folder)
        if end is not None:
            yield folder, int(end.timestamp() * 1_000_000)


class MarkComplete(beam.PTransform):
    """``PCollection[BatchReport]`` → ``_SUCCESS`` in each folder once the watermark passes its hour.

    For ingestion-time partitions: the source's watermark never runs ahead of the ingestion clock,
    and a batch holds it at or below its own ingestion time until the batch is committed.
    """

    def __init__(self, lake_uri: str) -> None:
        super().__init__()
        self._lake_uri = lake_uri

    def expand(self, reports: beam.PCollection) -> beam.PCollection:
        return (
            reports
            | "HourEnds" >> beam.FlatMap(_hour_ends).with_output_types(tuple[str, int])
            | "MarkWhenWatermarkPasses" >> beam.ParDo(_MarkPartitionsFn(self._lake_uri))
        )
