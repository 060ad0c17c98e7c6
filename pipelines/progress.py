"""Live progress of ``wirestream run``: what the lake committed and how far the group lags.

A thread in the launcher polls two things that are true whatever the runner:

* the lake: rows of the data files committed since the run started, per table, read from each new
  file's Parquet footer once (files appear only when their batch is committed, so nothing in flight
  is counted);
* Kafka: lag per partition = the partition's end offset − where the group stands, i.e. the group's
  committed offset, or the offset this run started from when the lake was ahead of the group.

It renders a few lines rewritten in place on a terminal, or one ``key=value`` line every interval
when stderr is not a terminal. A failed poll is logged and tried again at the next tick; the
display never touches the pipeline. The formatting and counting rules are pure functions below.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import arrow
from transforms.io.kafka import ConsumerConfig, GroupConsumer, PartitionPlan
from transforms.io.lake import Lake, batch_file_range

__all__ = [
    "MODES",
    "Latency",
    "LatencyHistogram",
    "ProgressMonitor",
    "Snapshot",
    "format_log_line",
    "format_terminal_lines",
    "is_new_batch",
    "partition_lag",
    "resolve_mode",
]

MODES = ("auto", "tty", "log", "off")
TERMINAL_INTERVAL_S = 1.0
LOG_INTERVAL_S = 10.0
_TABLE_NAMES = {"quarantine": "quarantined", "entities": "entity_mentions"}
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One poll: seconds since start, rows committed per table this run, lag per (topic, partition).

    ``lag`` is ``None`` when Kafka could not be asked this time; ``latency`` is ``None`` until a
    record with a known event time was committed.
    """

    elapsed_s: float
    rows: Mapping[str, int]
    lag: Mapping[tuple[str, int], int] | None
    latency: Latency | None = None

    @property
    def records(self) -> int:
        """Kafka records accounted for this run: rows of the four accounting tables."""
        return sum(self.rows.get(table, 0) for table in arrow.ACCOUNTING_TABLES)


def resolve_mode(mode: str, stream_is_terminal: bool) -> str:
    """``auto`` becomes ``tty`` on a terminal and ``log`` elsewhere; other modes stay."""
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "auto":
        return "tty" if stream_is_terminal else "log"
    return mode


def partition_lag(end_offset: int, committed: int | None, started_from: int) -> int:
    """Records of a partition neither in the lake at start nor committed by the group since."""
    reached = started_from if committed is None else max(committed, started_from)
    return max(0, end_offset - reached)


def _rate(previous: Snapshot | None, current: Snapshot) -> float:
    """Records per second since ``previous`` (since the start when there is none)."""
    if previous is None:
        seconds, records = current.elapsed_s, current.records
    else:
        seconds, records = current.elapsed_s - previous.elapsed_s, current.records - previous.records
    return records / seconds if seconds > 0 else 0.0


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


def _table_counts(rows: Mapping[str, int]) -> list[tuple[str, int]]:
    order = ("articles", "entities", "duplicates", "quarantine", "dead_letters")
    return [(_TABLE_NAMES.get(table, table), rows.get(table, 0)) for table in order]


def format_log_line(current: Snapshot, previous: Snapshot | None, now: dt.datetime, final: bool = False) -> str:
    """One ``key=value`` (logfmt) line; ``lag.<topic>.<partition>=N`` per partition, ``lag=?`` if unknown.

    The final line's ``records_per_s`` is the average over the run; others the rate since the last line.
    """
    rate = _rate(None if final else previous, current)
    fields = [
        f"ts={now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "event=progress",
        f"final={'true' if final else 'false'}",
        f"elapsed_s={current.elapsed_s:.1f}",
        f"records={current.records}",
        f"records_per_s={rate:.1f}",
    ]
    fields += [f"{name}={count}" for name, count in _table_counts(current.rows)]
    if current.latency is not None:
        fields += [
            f"latency_p50_ms={current.latency.p50_ms:.0f}",
            f"latency_p95_ms={current.latency.p95_ms:.0f}",
            f"latency_max_ms={current.latency.max_ms:.0f}",
        ]
    if current.lag is None:
        fields.append("lag=?")
    else:
        fields.append(f"lag={sum(current.lag.values())}")
        fields += [f"lag.{topic}.{partition}={lag}" for (topic, partition), lag in sorted(current.lag.items())]
    return " ".join(fields)


def format_terminal_lines(
    current: Snapshot, previous: Snapshot | None, final: bool = False, most_partitions: int = 6
) -> list[str]:
    """The few lines shown on a terminal; the partitions that lag most first when there are many."""
    minutes, seconds = divmod(int(current.elapsed_s), 60)
    rate = _rate(None if final else previous, current)
    state = "finished" if final else "running"
    lines = [
        f"wirestream run {state} {minutes:d}:{seconds:02d}  records: {current.records}  "
        f"{rate:.1f} records/s{' (average)' if final else ''}",
        "  written: {} articles ({} entity mentions)  duplicates: {}  quarantined: {}  dead letters: {}".format(
            *(count for _, count in _table_counts(current.rows))
        ),
    ]
    if current.latency is not None:
        lines.append(f"  latency (record to lake): {current.latency.describe()}")
    if current.lag is None:
        lines.append("  lag: unknown (Kafka did not answer; retrying)")
    else:
        worst = sorted(current.lag.items(), key=lambda item: (-item[1], item[0]))
        shown = "  ".join(f"{topic}/{partition} {lag}" for (topic, partition), lag in worst[:most_partitions])
        more = f"  (+{len(worst) - most_partitions} more)" if len(worst) > most_partitions else ""
        lines.append(f"  lag: {sum(current.lag.values())} total  {shown}{more}")
    return lines


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


class _LakeCounter:
    """Rows committed since the start per table, and their latency; each new file is read once.

    Table files are counted from their footer; the record log's files (``_records/``) are read
    for their event and commit times.
    """

    def __init__(self, lake: Lake, files_before: frozenset[str]) -> None:
        self._lake = lake
        self._before = files_before
        self._known: dict[tuple[str, str, int], list[tuple[int, int, bool]]] = defaultdict(list)
        for relative in files_before:
            self._remember(relative, at_start=True)
        self._counted: dict[str, int] = {}  # relative path → rows; kept when a compaction merges it away
        self._skipped: set[str] = set()
        self.latency = LatencyHistogram()

    def _remember(self, relative: str, at_start: bool) -> tuple[tuple[str, str, int], int, int] | None:
        found = batch_file_range(relative.rsplit("/", 1)[-1])
        if found is None:
            return None
        topic, partition, first, end = found
        key = (relative.split("/", 1)[0], topic, partition)
        if at_start:
            self._known[key].append((first, end, True))
        return key, first, end

    def poll(self) -> dict[str, int]:
        """Rows per table in the files committed since the start."""
        from pipelines.ingest import lake_files

        for relative in sorted(lake_files(self._lake) - self._before - self._counted.keys() - self._skipped):
            found = self._remember(relative, at_start=False)
            if found is None or not is_new_batch(found[1], found[2], self._known[found[0]]):
                self._skipped.add(relative)
                continue
            try:
                with self._lake.fs.open_input_file(self._lake.path(relative)) as handle:
                    if relative.startswith(f"{arrow.RECORD_LOG_TABLE}/"):
                        log = pq.read_table(handle, columns=["event_time", "committed_at"])
                        self.latency.add(_latencies(log))
                        self._counted[relative] = log.num_rows
                    else:
                        self._counted[relative] = pq.read_metadata(handle).num_rows
            except FileNotFoundError:  # merged away between listing and reading
                continue
            self._known[found[0]].append((found[1], found[2], False))
        totals: dict[str, int] = defaultdict(int)
        for relative, rows in self._counted.items():
            table = relative.split("/", 1)[0]
            if table in arrow.TABLES:
                totals[table] += rows
        return dict(totals)


def _latencies(table: pa.Table) -> np.ndarray:
    """``committed_at - event_time`` in ms of the rows whose event time is known."""
    event = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
    committed = table.column("committed_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    known = ~table.column("event_time").is_null().to_numpy(zero_copy_only=False)
    return (committed[known] - event[known]) / 1000.0


class _KafkaLag(GroupConsumer):
    """End offsets and the group's committed offsets, through one consumer kept between polls."""

    def __init__(self, config: ConsumerConfig, plans: Sequence[PartitionPlan]) -> None:
        super().__init__(config)
        self._plans = list(plans)

    def poll(self) -> dict[tuple[str, int], int]:
        from kafka import TopicPartition

        if not self._plans:
            return {}
        try:
            consumer = self.consumer()
            partitions = [TopicPartition(plan.topic, plan.partition) for plan in self._plans]
            ends = consumer.end_offsets(partitions)
            return {
                (plan.topic, plan.partition): partition_lag(
                    ends[tp], consumer.committed(tp, timeout_ms=10_000), plan.start_offset
                )
                for plan, tp in zip(self._plans, partitions, strict=True)
            }
        except Exception:
            self.close()
            raise


class ProgressMonitor:
    """A daemon thread that shows progress until :meth:`stop`, which shows the final state once.

    ``mode``: ``tty`` (lines rewritten in place with ANSI escapes) or ``log`` (one line per tick).
    """

    def __init__(
        self,
        lake: Lake,
        files_before: frozenset[str],
        config: ConsumerConfig,
        plans: Sequence[PartitionPlan],
        mode: str,
        interval_s: float,
        stream: TextIO | None = None,
    ) -> None:
        if mode not in ("tty", "log"):
            raise ValueError(f"a progress monitor shows tty or log, not {mode!r}")
        self._counter = _LakeCounter(lake, files_before)
        self._lag = _KafkaLag(config, plans)
        self._mode = mode
        self._interval_s = interval_s
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._previous: Snapshot | None = None
        self._rows: dict[str, int] = {}
        self._shown_lines = 0
        self._screen = threading.Lock()  # the display and log lines take turns on the terminal
        self._log_handlers: list[logging.Handler] = []
        self._thread = threading.Thread(target=self._loop, name="wirestream-progress", daemon=True)

    def start(self) -> ProgressMonitor:
        """Start polling in the background."""
        if self._mode == "tty":
            # A log line written to the same terminal first erases the display, which is then
            # drawn again below it at the next tick, instead of being drawn over.
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is self._stream:
                    handler.addFilter(self._erase_before_log)
                    self._log_handlers.append(handler)
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Show the final state and end the thread (waits at most ``timeout_s``)."""
        self._stop.set()
        self._thread.join(timeout_s)
        for handler in self._log_handlers:
            handler.removeFilter(self._erase_before_log)

    def _erase_before_log(self, record: logging.LogRecord) -> bool:
        with self._screen:
            if self._shown_lines:
                self._stream.write(f"\x1b[{self._shown_lines}F\x1b[J")
                self._stream.flush()
                self._shown_lines = 0
        return True

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                self._show(self._poll(), final=False)
            self._show(self._poll(), final=True)
        except Exception:  # a display must never take the run down
            _LOG.exception("progress display stopped")
        finally:
            self._lag.close()

    def _poll(self) -> Snapshot:
        try:
            self._rows = self._counter.poll()
        except Exception:  # noqa: BLE001 - keep the last counts and try again next tick
            _LOG.warning("progress: could not read the lake; retrying", exc_info=True)
        lag: dict[tuple[str, int], int] | None
        try:
            lag = self._lag.poll()
        except Exception:  # noqa: BLE001 - Kafka may be restarting; try again next tick
            _LOG.warning("progress: could not ask Kafka for offsets; retrying", exc_info=True)
            lag = None
        return Snapshot(time.monotonic() - self._start, dict(self._rows), lag, self._counter.latency.summary())

    def _show(self, snapshot: Snapshot, final: bool) -> None:
        with self._screen:
            if self._mode == "log":
                text = format_log_line(snapshot, self._previous, dt.datetime.now(dt.UTC), final) + "\n"
            else:
                lines = format_terminal_lines(snapshot, self._previous, final)
                # Back to the first line shown last time, clear to the end of the screen, draw again.
                back = f"\x1b[{self._shown_lines}F\x1b[J" if self._shown_lines else ""
                text = back + "\n".join(lines) + "\n"
                self._shown_lines = len(lines)
            self._stream.write(text)
            self._stream.flush()
        self._previous = snapshot
