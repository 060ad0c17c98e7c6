"""What the lake committed since a run started, read from the lake alone: true on every runner.

The launcher cannot see a worker's memory on Flink or Dataflow, so the progress display and the
Prometheus metrics are derived only from what the workers made durable:

* each new data file's rows (its Parquet footer), per table;
* the record log ``_records/``: one row per consumed Kafka record, committed with its batch, with
  the record's event time (its Kafka timestamp), when its batch was read (``ingested_at``) and
  committed (``committed_at``). Its rows are the records the run accounted for; its file names
  give the offset ranges covered; its times give the end-to-end latency and the batch's time;
* ``dead_letters.reason`` and ``quarantine.failed_expectations`` of each new file;
* the batch's quality summary ``_quality/summaries/<batch key>.json`` (written before the batch
  commits): its status, when validation started (``validated_at``) and how long it took.

Invariants: every file is read at most once and, once counted, stays counted (a compaction that
merges counted files away loses nothing; a merged file is never counted again, see
:func:`is_new_batch`), so every total only grows. Files that existed at the start are never
counted. Times from the workers' clocks are differences of two clocks on distributed runners
(reader, validator and writer can be different machines); a negative difference counts as 0.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import arrow
from transforms.io.kafka import PartitionPlan
from transforms.io.lake import Lake, batch_file_range

__all__ = [
    "LATENCY_BOUNDS_S",
    "QUALITY_STATUSES",
    "STAGES",
    "STAGE_BOUNDS_S",
    "Buckets",
    "LakeTally",
    "LakeWatch",
    "Latency",
    "LatencyHistogram",
    "is_new_batch",
    "offsets_to_account",
    "stage_seconds",
]

# Upper bounds (seconds) of the exported histograms; a backfill's latency can be days.
LATENCY_BOUNDS_S = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
STAGE_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STAGES = ("read_to_quality", "quality", "quality_to_commit", "read_to_commit")
"""A batch's stages, as the lake's timestamps delimit them: from its Kafka poll to the start of
validation (parse, clean, and waiting), validation, from the end of validation to the commit
(deduplication, entities, writing), and the whole way."""
QUALITY_STATUSES = ("passed", "rows_quarantined", "batch_failed", "error")
SUMMARIES = ("_quality", "summaries")  # where transforms/io/quality_store.py's write_report puts each batch's summary


@dataclass(frozen=True)
class Latency:
    """End-to-end latency of the records committed this run: Kafka timestamp to lake commit, in ms."""

    p50_ms: float
    p95_ms: float
    max_ms: float
    records: int

    def describe(self) -> str:
        """``p50 1.2 s  p95 3.4 s  max 5.0 s``."""
        return f"p50 {self.p50_ms / 1000:.1f} s  p95 {self.p95_ms / 1000:.1f} s  max {self.max_ms / 1000:.1f} s"


class LatencyHistogram:
    """Latencies in logarithmic buckets (5 % wide), so a run of days keeps a fixed, small memory.

    Percentiles are read at the upper edge of their bucket (at most 5 % high); the maximum is exact.
    """

    GROWTH = 1.05
    BUCKETS = 600  # 1 ms · 1.05^600 ≈ 170 years: every latency fits

    def __init__(self) -> None:
        self._counts = np.zeros(self.BUCKETS + 1, dtype=np.int64)
        self._max = 0.0

    def add(self, latencies_ms: np.ndarray) -> None:
        """Count latencies (ms; negative ones, from clocks ahead of this one, count as 0)."""
        if not len(latencies_ms):
            return
        values = np.maximum(latencies_ms.astype(np.float64), 0.0)
        buckets = np.ceil(np.log(np.maximum(values, 1.0)) / np.log(self.GROWTH)).astype(np.int64)
        np.add.at(self._counts, np.minimum(buckets, self.BUCKETS), 1)
        self._max = max(self._max, float(values.max()))

    def summary(self) -> Latency | None:
        """p50, p95 and max so far, or None before any latency was counted."""
        total = int(self._counts.sum())
        if not total:
            return None
        cumulative = np.cumsum(self._counts)

        def edge(quantile: float) -> float:
            bucket = int(np.searchsorted(cumulative, quantile * total, side="left"))
            return min(self.GROWTH**bucket, self._max)

        return Latency(edge(0.5), edge(0.95), self._max, total)


@dataclass(frozen=True)
class Buckets:
    """A histogram with fixed upper bounds, as Prometheus keeps one: counts per bound, sum, count.

    ``counts[i]`` counts values ``<= bounds[i]`` and above the bound before it; values above the
    last bound are only in ``count`` (the ``+Inf`` bucket). Negative values count as 0.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...] = ()
    total: float = 0.0
    count: int = 0

    def add(self, values: Iterable[float]) -> Buckets:
        """These buckets with ``values`` (seconds) counted too."""
        array = np.maximum(np.asarray(list(values), dtype=np.float64), 0.0)
        if not len(array):
            return self
        positions = np.searchsorted(np.asarray(self.bounds, dtype=np.float64), array, side="left")
        added = np.bincount(positions, minlength=len(self.bounds) + 1)[: len(self.bounds)]
        counts = np.asarray(self.counts or (0,) * len(self.bounds), dtype=np.int64) + added
        return Buckets(
            self.bounds, tuple(int(c) for c in counts), self.total + float(array.sum()), self.count + len(array)
        )

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, values at or below it)`` per bound, then ``(inf, count)``."""
        running = np.cumsum(np.asarray(self.counts or (0,) * len(self.bounds), dtype=np.int64))
        return [*zip(self.bounds, (int(c) for c in running), strict=True), (float("inf"), self.count)]


def is_new_batch(first: int, end: int, known: Iterable[tuple[int, int, bool]]) -> bool:
    """Whether a batch file ``[first, end)`` that appeared since the start holds rows not yet counted.

    ``known``: ``(first, end, existed_at_start)`` of the other files of the same table and Kafka
    partition. A compaction merges files into one named after the union of their ranges; such a
    file overlaps a file that existed at the start, or a different range already counted, and
    counting it would count rows twice. One batch's files in several partition folders
    (event-time partitions) share one range and are each counted.
    """
    for other_first, other_end, at_start in known:
        overlaps = other_first < end and first < other_end
        if overlaps and (at_start or (other_first, other_end) != (first, end)):
            return False
    return True


def _seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


def stage_seconds(
    ingested_at: dt.datetime, committed_at: dt.datetime, quality: Mapping[str, Any] | None
) -> dict[str, float]:
    """A batch's time per stage (see :data:`STAGES`), from the lake's timestamps.

    ``quality``: the batch's quality summary (``validated_at``, ISO 8601, when validation began;
    ``validation_seconds``), or None for a batch with no article (nothing validated), in which
    case only ``read_to_commit`` is known.
    """
    times = {"read_to_commit": _seconds(committed_at, ingested_at)}
    if quality and quality.get("validated_at") and quality.get("validation_seconds") is not None:
        started = dt.datetime.fromisoformat(str(quality["validated_at"]))
        validation = max(0.0, float(quality["validation_seconds"]))
        times["read_to_quality"] = _seconds(started, ingested_at)
        times["quality"] = validation
        times["quality_to_commit"] = _seconds(committed_at, started + dt.timedelta(seconds=validation))
    return times


@dataclass(frozen=True)
class LakeTally:
    """What the files committed since the start hold (see the module docstring for each source).

    ``rows``: per table (``arrow.TABLES``); ``records``: rows of the record log, one per Kafka
    record; ``offsets_done``: per (topic, partition), the offsets the committed batches' ranges
    span (``end - first`` of each); ``batches``: batches committed.
    """

    rows: Mapping[str, int] = field(default_factory=dict)
    records: int = 0
    offsets_done: Mapping[tuple[str, int], int] = field(default_factory=dict)
    batches: int = 0
    dead_letter_reasons: Mapping[str, int] = field(default_factory=dict)
    quarantined_by_expectation: Mapping[str, int] = field(default_factory=dict)
    quality_batches: Mapping[str, int] = field(default_factory=dict)
    latency: Latency | None = None
    latency_buckets: Buckets = field(default_factory=lambda: Buckets(LATENCY_BOUNDS_S))
    stage_buckets: Mapping[str, Buckets] = field(
        default_factory=lambda: {stage: Buckets(STAGE_BOUNDS_S) for stage in STAGES}
    )


class LakeWatch:
    """Reads each file committed since the start once and keeps the running :class:`LakeTally`."""

    def __init__(self, lake: Lake, files_before: frozenset[str]) -> None:
        self._lake = lake
        self._before = files_before
        self._known: dict[tuple[str, str, int], list[tuple[int, int, bool]]] = defaultdict(list)
        for relative in files_before:
            self._remember(relative, at_start=True)
        self._counted: set[str] = set()  # kept when a compaction merges a counted file away
        self._skipped: set[str] = set()
        self._rows: Counter[str] = Counter()
        self._offsets: Counter[tuple[str, int]] = Counter()
        self._reasons: Counter[str] = Counter()
        self._expectations: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._batches = 0
        self._histogram = LatencyHistogram()
        self._latency = Buckets(LATENCY_BOUNDS_S)
        self._stages = {stage: Buckets(STAGE_BOUNDS_S) for stage in STAGES}

    def _remember(self, relative: str, at_start: bool) -> tuple[tuple[str, str, int], int, int] | None:
        found = batch_file_range(relative.rsplit("/", 1)[-1])
        if found is None:
            return None
        topic, partition, first, end = found
        key = (relative.split("/", 1)[0], topic, partition)
        if at_start:
            self._known[key].append((first, end, True))
        return key, first, end

    def poll(self) -> LakeTally:
        """Read the files committed since the last poll; the totals since the start."""
        from transforms.io.lake import lake_files

        for relative in sorted(lake_files(self._lake) - self._before - self._counted - self._skipped):
            found = self._remember(relative, at_start=False)
            if found is None or not is_new_batch(found[1], found[2], self._known[found[0]]):
                self._skipped.add(relative)
                continue
            try:
                self._read(relative, found[0][0])
            except FileNotFoundError:  # merged away between listing and reading
                continue
            self._counted.add(relative)
            self._known[found[0]].append((found[1], found[2], False))
            if found[0][0] == arrow.RECORD_LOG_TABLE:
                self._offsets[found[0][1:]] += found[2] - found[1]
        return LakeTally(
            rows={table: self._rows[table] for table in arrow.TABLES if self._rows[table]},
            records=self._rows[arrow.RECORD_LOG_TABLE],
            offsets_done=dict(self._offsets),
            batches=self._batches,
            dead_letter_reasons=dict(self._reasons),
            quarantined_by_expectation=dict(self._expectations),
            quality_batches=dict(self._statuses),
            latency=self._histogram.summary(),
            latency_buckets=self._latency,
            stage_buckets=dict(self._stages),
        )

    def _read(self, relative: str, table: str) -> None:
        """Count one new file (all or nothing: a file that vanishes while read counts nothing)."""
        with self._lake.fs.open_input_file(self._lake.path(relative)) as handle:
            if table == arrow.RECORD_LOG_TABLE:
                log = pq.read_table(handle, columns=["event_time", "ingested_at", "committed_at"])
            elif table == "dead_letters":
                reasons = Counter(pq.read_table(handle, columns=["reason"]).column("reason").to_pylist())
            elif table == "quarantine":
                failed = pq.read_table(handle, columns=["failed_expectations"]).column("failed_expectations")
                expectations = Counter(name for names in failed.to_pylist() for name in names or ())
            else:
                rows = pq.read_metadata(handle).num_rows
        if table == arrow.RECORD_LOG_TABLE:
            self._count_batch(relative, log)
            rows = log.num_rows
        elif table == "dead_letters":
            self._reasons.update(reasons)
            rows = sum(reasons.values())
        elif table == "quarantine":
            self._expectations.update(expectations)
            rows = len(failed)
        self._rows[table] += rows

    def _count_batch(self, relative: str, log: pa.Table) -> None:
        latencies_ms = _latencies(log)
        self._histogram.add(latencies_ms)
        self._latency = self._latency.add(latencies_ms / 1000.0)
        self._batches += 1
        if not log.num_rows:
            return
        summary = self._quality_summary(relative.rsplit("/", 1)[-1].removesuffix(".parquet"))
        if summary is not None and summary.get("status") in QUALITY_STATUSES:
            self._statuses[summary["status"]] += 1
        ingested = min(log.column("ingested_at").to_pylist())
        committed = max(log.column("committed_at").to_pylist())
        for stage, seconds in stage_seconds(ingested, committed, summary).items():
            self._stages[stage] = self._stages[stage].add([seconds])

    def _quality_summary(self, batch_key: str) -> dict[str, Any] | None:
        """The batch's quality summary; None for a batch with no article (or a report not written)."""
        try:
            with self._lake.fs.open_input_stream(self._lake.path(*SUMMARIES, f"{batch_key}.json")) as stream:
                summary = json.loads(stream.read())
        except (FileNotFoundError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None


def _latencies(table: pa.Table) -> np.ndarray:
    """``committed_at - event_time`` in ms of the rows whose event time is known."""
    event = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
    committed = table.column("committed_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    known = ~table.column("event_time").is_null().to_numpy(zero_copy_only=False)
    return (committed[known] - event[known]) / 1000.0


def offsets_to_account(
    plans: Sequence[PartitionPlan], ends: Mapping[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Per partition, the offsets this run has to account for: ``[start, end)`` less its skipped ranges.

    ``plans``: the run's partition plans; ``ends``: each partition's
    end (its planned stop in a bounded run, Kafka's end offset in a streaming one).
    """
    planned = {}
    for plan in plans:
        key = (plan.topic, plan.partition)
        if key not in ends:
            continue
        start, end = plan.start_offset, max(ends[key], plan.start_offset)
        skipped = sum(max(0, min(last, end) - max(first, start)) for first, last in plan.skip)
        planned[key] = end - start - skipped
    return planned
