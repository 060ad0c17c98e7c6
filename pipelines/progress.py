"""Live progress of ``wirestream run``: what the lake committed and how much is left to read.

A thread in the launcher polls two things that are true whatever the runner:

* the lake (:mod:`pipelines.lake_watch`): the files committed since the run started, each read
  once. ``records`` are the rows of the record log ``_records/`` (one per Kafka record, committed
  with its batch); the tables' rows come from the same batches' files;
* Kafka: each partition's end offset (in a bounded run, ``--until-caught-up``, the planned stop
  instead, which Kafka need not be asked for).

Lag per partition = offsets from where this run started to the end, less the ranges the lake
already held (the plan's skips), less the ranges of the batches committed this run. So
``records + lag = offsets`` (the offsets the run has to account for so far) exactly when the log
has no offset gaps (transaction markers, compaction); gaps keep the lag above 0 by their size.
The rate is the records per second over the last :data:`RATE_WINDOW_S` seconds (a batch commits
many records at once: a per-second rate would jump); the ETA (bounded runs) is lag / rate.

It renders a few lines rewritten in place on a terminal, each fitted to the terminal's width,
or one ``key=value`` line every interval when stderr is not a terminal; with ``--metrics-port``
it also hands each poll to the Prometheus exporter (:mod:`pipelines.metrics`). A failed poll is
logged and tried again at the next tick; the display never touches the pipeline. The counting
rules are pure functions below; the formatting rules are in :mod:`pipelines.progress_display`
(their names are re-exported here).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from pipelines.lake_watch import LakeTally, LakeWatch, Latency, LatencyHistogram, is_new_batch, offsets_to_account
from pipelines.progress_display import Snapshot, eta_seconds, format_log_line, format_terminal_lines
from transforms.io.kafka import ConsumerConfig, GroupConsumer, PartitionPlan
from transforms.io.lake import Lake


class MetricsSink(Protocol):
    """What the monitor hands each poll to (:class:`pipelines.metrics.MetricsExporter`)."""

    def update(self, snapshot: Snapshot, tally: LakeTally, errors: Mapping[str, int] | None = None) -> None: ...

    def stop(self) -> None: ...


__all__ = [
    "MODES",
    "RATE_WINDOW_S",
    "Latency",
    "LatencyHistogram",
    "ProgressMonitor",
    "RateWindow",
    "Snapshot",
    "eta_seconds",
    "format_log_line",
    "format_terminal_lines",
    "is_new_batch",
    "partition_lag",
    "resolve_mode",
]

MODES = ("auto", "tty", "log", "off")
TERMINAL_INTERVAL_S = 1.0
LOG_INTERVAL_S = 10.0
METRICS_INTERVAL_S = 5.0  # the lake is polled at least this often while metrics are served
RATE_WINDOW_S = 30.0
_LOG = logging.getLogger(__name__)


def resolve_mode(mode: str, stream_is_terminal: bool) -> str:
    """``auto`` becomes ``tty`` on a terminal and ``log`` elsewhere; other modes stay."""
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "auto":
        return "tty" if stream_is_terminal else "log"
    return mode


def partition_lag(to_account: int, done: int) -> int:
    """A partition's offsets still to account for: those planned less those the run's batches cover."""
    return max(0, to_account - done)


@dataclass(frozen=True)
class RateWindow:
    """Records per second over the last ``window_s`` seconds (since the start while shorter).

    ``samples``: ``(elapsed seconds, records)``, oldest first, starting at ``(0, 0)``; only the
    newest sample at least ``window_s`` old and the later ones are kept.
    """

    window_s: float = RATE_WINDOW_S
    samples: tuple[tuple[float, int], ...] = ((0.0, 0),)

    def add(self, elapsed_s: float, records: int) -> RateWindow:
        """The window with a new sample."""
        samples = (*self.samples, (elapsed_s, records))
        cut = elapsed_s - self.window_s
        while len(samples) > 2 and samples[1][0] <= cut:
            samples = samples[1:]
        return RateWindow(self.window_s, samples)

    @property
    def rate(self) -> float:
        """(newest records − oldest kept records) / the seconds between them."""
        (first_s, first_records), (last_s, last_records) = self.samples[0], self.samples[-1]
        return (last_records - first_records) / (last_s - first_s) if last_s > first_s else 0.0


class _EndOffsets(GroupConsumer):
    """Kafka's end offset of each partition, through one consumer kept between polls."""

    def poll(self, plans: Sequence[PartitionPlan]) -> dict[tuple[str, int], int]:
        from kafka import TopicPartition

        if not plans:
            return {}
        try:
            partitions = [TopicPartition(plan.topic, plan.partition) for plan in plans]
            ends = self.consumer().end_offsets(partitions)
            return {(tp.topic, tp.partition): int(ends[tp]) for tp in partitions}
        except Exception:
            self.close()
            raise


class ProgressMonitor:
    """A daemon thread that polls and shows progress until :meth:`stop`, which shows the final state once.

    ``mode``: ``tty`` (lines rewritten in place with ANSI escapes, fitted to the terminal's width),
    ``log`` (one line per ``interval_s``) or ``off`` (nothing shown: only with ``metrics``).
    ``metrics``: the exporter each poll is handed to; the lake is then polled at least every
    :data:`METRICS_INTERVAL_S`, and the exporter is stopped by :meth:`stop`.
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
        metrics: MetricsSink | None = None,
    ) -> None:
        if mode not in ("tty", "log") and not (mode == "off" and metrics is not None):
            raise ValueError(f"a progress monitor shows tty or log (or off, serving metrics), not {mode!r}")
        self._watch = LakeWatch(lake, files_before)
        self._ends = _EndOffsets(config)
        self._plans = list(plans)
        self._bounded = bool(self._plans) and all(plan.stop_offset is not None for plan in self._plans)
        self._mode = mode
        self._interval_s = interval_s
        self._poll_s = min(interval_s, METRICS_INTERVAL_S) if metrics is not None else interval_s
        self._metrics = metrics
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._last_shown = 0.0
        self._tally = LakeTally()
        self._rate = RateWindow()
        self._errors: Counter[str] = Counter()
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
        """Show the final state, end the thread (waits at most ``timeout_s``), stop serving metrics."""
        self._stop.set()
        self._thread.join(timeout_s)
        for handler in self._log_handlers:
            handler.removeFilter(self._erase_before_log)
        if self._metrics is not None:
            self._metrics.stop()

    def _erase_before_log(self, record: logging.LogRecord) -> bool:
        with self._screen:
            if self._shown_lines:
                self._stream.write(f"\x1b[{self._shown_lines}F\x1b[J")
                self._stream.flush()
                self._shown_lines = 0
        return True

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._poll_s):
                snapshot = self._poll()
                if snapshot.elapsed_s - self._last_shown >= self._interval_s - 0.05:
                    self._show(snapshot, final=False)
            self._show(self._poll(), final=True)
        except Exception:  # a display must never take the run down
            _LOG.exception("progress display stopped")
        finally:
            self._ends.close()

    def _poll(self) -> Snapshot:
        try:
            self._tally = self._watch.poll()
        except Exception:  # noqa: BLE001 - keep the last counts and try again next tick
            self._errors["lake"] += 1
            _LOG.warning("progress: could not read the lake; retrying", exc_info=True)
        ends: dict[tuple[str, int], int] | None = {
            (plan.topic, plan.partition): plan.stop_offset for plan in self._plans if plan.stop_offset is not None
        }
        try:
            assert ends is not None
            ends.update(self._ends.poll([plan for plan in self._plans if plan.stop_offset is None]))
        except Exception:  # noqa: BLE001 - Kafka may be restarting; try again next tick
            self._errors["kafka"] += 1
            _LOG.warning("progress: could not ask Kafka for offsets; retrying", exc_info=True)
            ends = None
        elapsed = time.monotonic() - self._start
        self._rate = self._rate.add(elapsed, self._tally.records)
        lag = offsets = None
        if ends is not None:
            to_account = offsets_to_account(self._plans, ends)
            lag = {key: partition_lag(count, self._tally.offsets_done.get(key, 0)) for key, count in to_account.items()}
            offsets = sum(to_account.values())
        snapshot = Snapshot(
            elapsed,
            self._tally.rows,
            lag,
            self._tally.latency,
            self._tally.records,
            offsets,
            self._rate.rate,
            self._bounded,
        )
        if self._metrics is not None:
            self._metrics.update(snapshot, self._tally, dict(self._errors))
        return snapshot

    def _show(self, snapshot: Snapshot, final: bool) -> None:
        self._last_shown = snapshot.elapsed_s
        if self._mode == "off":
            return
        with self._screen:
            if self._mode == "log":
                text = format_log_line(snapshot, dt.datetime.now(dt.UTC), final) + "\n"
            else:
                width = shutil.get_terminal_size((80, 24)).columns
                lines = format_terminal_lines(snapshot, final, width)
                # Back to the first line shown last time, clear to the end of the screen, draw again.
                back = f"\x1b[{self._shown_lines}F\x1b[J" if self._shown_lines else ""
                text = back + "\n".join(lines) + "\n"
                self._shown_lines = len(lines)
            self._stream.write(text)
            self._stream.flush()
