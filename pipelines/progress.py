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
logged and tried again at the next tick; the display never touches the pipeline. The formatting
and counting rules are pure functions below.
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
from schemas import arrow
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


@dataclass(frozen=True)
class Snapshot:
    """One poll: seconds since start, rows committed per table this run, lag per (topic, partition).

    ``lag`` is ``None`` when Kafka could not be asked this time; ``latency`` is ``None`` until a
    record with a known event time was committed. ``logged``: records per the record log (None:
    the four accounting tables' rows stand in); ``offsets``: offsets the run has to account for so
    far (None when the ends are unknown); ``rate``: smoothed records per second; ``bounded``: a
    ``--until-caught-up`` run, whose ends do not move.
    """

    elapsed_s: float
    rows: Mapping[str, int]
    lag: Mapping[tuple[str, int], int] | None
    latency: Latency | None = None
    logged: int | None = None
    offsets: int | None = None
    rate: float = 0.0
    bounded: bool = False

    @property
    def records(self) -> int:
        """Kafka records accounted for this run: rows of the record log, else of the accounting tables."""
        if self.logged is not None:
            return self.logged
        return sum(self.rows.get(table, 0) for table in arrow.ACCOUNTING_TABLES)

    @property
    def average_rate(self) -> float:
        """Records per second over the whole run."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds until a bounded run has read everything at the current rate (None: unknown)."""
        if not self.bounded or self.lag is None:
            return None
        return eta_seconds(sum(self.lag.values()), self.rate)


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


def eta_seconds(remaining: int, rate: float) -> float | None:
    """Seconds to read ``remaining`` records at ``rate``: 0 when nothing remains, None at no rate."""
    if remaining <= 0:
        return 0.0
    return remaining / rate if rate > 0 else None


def _clock(seconds: float) -> str:
    """``1:05`` or ``2:03:04``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


def _short(number: int) -> str:
    """A count in at most 5 characters: 12345, 123k, 12.3M, 1.2G."""
    if number < 100_000:
        return str(number)
    for divisor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= divisor:
            value = number / divisor
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(number)  # pragma: no cover - every number >= 100,000 has a unit above


def _fit(variants: Sequence[Sequence[str]], width: int, indent: str = "") -> str:
    """The first variant's parts joined that fit ``width``; else the last, less trailing parts, else cut with …."""
    for parts in variants:
        line = indent + "  ".join(parts)
        if len(line) <= width:
            return line
    parts = list(variants[-1])
    while len(parts) > 1 and len(indent + "  ".join(parts)) > width:
        parts.pop()
    line = indent + "  ".join(parts)
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


_TABLE_LABELS = (  # table, log field, terminal label, short label; the last one is dropped first
    ("articles", "articles", "articles", "art"),
    ("duplicates", "duplicates", "duplicates", "dup"),
    ("quarantine", "quarantined", "quarantined", "quar"),
    ("dead_letters", "dead_letters", "dead letters", "dead"),
    ("entities", "entity_mentions", "entity mentions", "ent"),
)
_LOG_FIELDS = {table: field for table, field, _, _ in _TABLE_LABELS}
_LOG_ORDER = ("articles", "entities", "duplicates", "quarantine", "dead_letters")


def format_log_line(current: Snapshot, now: dt.datetime, final: bool = False) -> str:
    """One ``key=value`` (logfmt) line; ``lag.<topic>.<partition>=N`` per partition, ``lag=?`` if unknown.

    ``records_per_s``: the smoothed rate; on the final line, the average over the run. ``offsets``
    (when the ends are known) equals ``records + lag`` on a log without gaps; ``eta_s`` only in a
    bounded run, once a rate is known.
    """
    fields = [
        f"ts={now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "event=progress",
        f"final={'true' if final else 'false'}",
        f"elapsed_s={current.elapsed_s:.1f}",
        f"records={current.records}",
        f"records_per_s={current.average_rate if final else current.rate:.1f}",
    ]
    fields += [f"{_LOG_FIELDS[table]}={current.rows.get(table, 0)}" for table in _LOG_ORDER]
    if current.latency is not None:
        fields += [
            f"latency_p50_ms={current.latency.p50_ms:.0f}",
            f"latency_p95_ms={current.latency.p95_ms:.0f}",
            f"latency_max_ms={current.latency.max_ms:.0f}",
        ]
    if current.offsets is not None:
        fields.append(f"offsets={current.offsets}")
    eta = current.eta_s
    if eta is not None and not final:
        fields.append(f"eta_s={eta:.0f}")
    if current.lag is None:
        fields.append("lag=?")
    else:
        fields.append(f"lag={sum(current.lag.values())}")
        fields += [f"lag.{topic}.{partition}={lag}" for (topic, partition), lag in sorted(current.lag.items())]
    return " ".join(fields)


def _headline(current: Snapshot, final: bool, short: bool) -> list[str]:
    number = _short if short else str
    count = (
        f"{number(current.records)}/{number(current.offsets)}"
        if current.offsets is not None
        else number(current.records)
    )
    state = f"{'finished' if final else 'running'} {_clock(current.elapsed_s)}"
    parts = [state if short else f"wirestream {state}", f"{count} records"]
    rate = current.average_rate if final else current.rate
    parts.append(f"{rate:.0f}/s" if short and rate >= 100 else f"{rate:.1f}/s")
    if final:
        parts[-1] += " average"
        return parts
    eta = current.eta_s
    if current.bounded:
        parts.append(f"ETA {_clock(eta)}" if eta is not None else "ETA ?")
    return parts


def _lag_line(lag: Mapping[tuple[str, int], int], width: int, topic_chars: int | None = None) -> tuple[str, int]:
    """``  lag N  topic/p n ...  +k more``, the partitions that lag most first, as many as fit; and how many.

    ``topic_chars``: topic names longer than this are cut to it (ending in …).
    """
    worst = sorted(lag.items(), key=lambda item: (-item[1], item[0]))
    line = f"  lag {sum(lag.values())}"
    shown = 0
    for (topic, partition), count in worst:
        name = topic if topic_chars is None or len(topic) <= topic_chars else topic[: topic_chars - 1] + "…"
        part = f"  {name}/{partition} {count}"
        left = len(worst) - shown - 1
        reserve = len(f"  +{left} more") if left else 0
        if len(line) + len(part) + reserve > width:
            break
        line += part
        shown += 1
    if shown < len(worst):
        line += f"  +{len(worst) - shown} more"
    return _fit([[line.strip()]], width, "  "), shown


def format_terminal_lines(current: Snapshot, final: bool = False, width: int = 80) -> list[str]:
    """The few lines shown on a terminal, each at most ``width`` characters.

    Exact counts where they fit, short ones (123k) where not, then the least important parts
    dropped (entity mentions first; the partitions that lag least), long topic names cut, then an
    ellipsis.
    """
    lines = [_fit([_headline(current, final, False), _headline(current, final, True)], width)]
    full = [f"{label} {current.rows.get(table, 0)}" for table, _, label, _ in _TABLE_LABELS]
    short = [f"{label} {_short(current.rows.get(table, 0))}" for table, _, _, label in _TABLE_LABELS]
    lines.append(_fit([full, full[:-1], short], width, "  "))
    if current.latency is not None:
        latency = current.latency
        seconds = [f"{name} {ms / 1000:.1f} s" for name, ms in (("p50", latency.p50_ms), ("p95", latency.p95_ms))]
        seconds.append(f"max {latency.max_ms / 1000:.1f} s")
        lines.append(
            _fit(
                [[f"latency (record to lake): {seconds[0]}", *seconds[1:]], [f"latency {seconds[0]}", *seconds[1:]]],
                width,
                "  ",
            )
        )
    if current.lag is None:
        lines.append(_fit([["lag unknown (Kafka did not answer; retrying)"], ["lag unknown"]], width, "  "))
    else:
        full_names, shown = _lag_line(current.lag, width)
        short_names, more = _lag_line(current.lag, width, topic_chars=12)
        lines.append(short_names if more > shown else full_names)
    return lines


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
