"""How progress is shown: a :class:`Snapshot` of one poll, as a ``key=value`` log line or terminal lines.

Pure functions over a snapshot: :func:`format_log_line` (logfmt, one line per interval when
stderr is not a terminal) and :func:`format_terminal_lines` (a few lines, each fitted to the
terminal's width, dropping the least important parts first). The monitor that takes the
snapshots is :mod:`pipelines.progress`. Imports no Beam.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipelines.lake_watch import Latency
from schemas import arrow

__all__ = ["Snapshot", "eta_seconds", "format_log_line", "format_terminal_lines"]


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
