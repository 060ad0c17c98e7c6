"""The live progress display's rules: lag, rate, ETA, what counts as committed, both renderings."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path

import pytest

from pipelines.progress import (
    RateWindow,
    Snapshot,
    eta_seconds,
    format_log_line,
    format_terminal_lines,
    partition_lag,
    resolve_mode,
)
from schemas.records import DeadLetter, SourceBatch, utc_now
from transforms.io.lake import Lake, commit_batch

NOW = dt.datetime(2026, 11, 25, 17, 30, 5, tzinfo=dt.UTC)
ROWS = {"articles": 80, "entities": 900, "duplicates": 5, "quarantine": 2, "dead_letters": 3}


def test_auto_mode_follows_the_terminal_and_other_modes_stay() -> None:
    assert resolve_mode("auto", True) == "tty" and resolve_mode("auto", False) == "log"
    assert resolve_mode("log", True) == "log" and resolve_mode("off", True) == "off"
    with pytest.raises(ValueError, match="unknown progress mode 'loud'"):
        resolve_mode("loud", True)


def test_lag_is_what_the_run_has_to_account_for_less_what_its_batches_cover() -> None:
    assert partition_lag(to_account=100, done=40) == 60
    assert partition_lag(to_account=100, done=100) == 0
    assert partition_lag(to_account=5, done=7) == 0  # never negative


def test_records_are_the_record_log_s_rows_else_the_four_accounting_tables_not_entities() -> None:
    assert Snapshot(1.0, ROWS, {}).records == 80 + 5 + 2 + 3
    assert Snapshot(1.0, ROWS, {}, logged=91).records == 91


def test_the_rate_is_smoothed_over_a_window_not_the_last_second() -> None:
    """Batches commit 100 records every 10 s; polled every second, the rate stays at 10/s."""
    window = RateWindow(window_s=30.0)
    rates = {}
    for second in range(1, 91):
        window = window.add(float(second), 100 * (second // 10))
        rates[second] = window.rate
        assert len(window.samples) <= 32  # a fixed, small memory
    assert rates[5] == 0.0 and rates[10] == 10.0 and rates[15] == pytest.approx(100 / 15)
    assert {rates[second] for second in range(30, 91)} == {10.0}  # the last second's rate swings 0 ↔ 100
    assert RateWindow().rate == 0.0


def test_eta_is_the_lag_at_the_smoothed_rate_and_only_in_a_bounded_run() -> None:
    assert eta_seconds(100, 10.0) == 10.0
    assert eta_seconds(0, 0.0) == 0.0  # nothing left: done, whatever the rate
    assert eta_seconds(5, 0.0) is None  # nothing committed yet: unknown
    lag = {("t", 0): 30, ("t", 1): 20}
    assert Snapshot(9.0, {}, lag, rate=5.0, bounded=True).eta_s == 10.0
    assert Snapshot(9.0, {}, lag, rate=5.0, bounded=False).eta_s is None  # streaming: the end moves
    assert Snapshot(9.0, {}, None, rate=5.0, bounded=True).eta_s is None  # lag unknown


def test_log_line_has_every_count_offsets_eta_and_each_partition_lag() -> None:
    lag = {("articles", 1): 7, ("articles", 0): 0, ("my.topic-x", 2): 3}
    current = Snapshot(20.0, ROWS, lag, logged=90, offsets=100, rate=5.0, bounded=True)
    assert format_log_line(current, NOW) == (
        "ts=2026-11-25T17:30:05Z event=progress final=false elapsed_s=20.0 records=90 records_per_s=5.0 "
        "articles=80 entity_mentions=900 duplicates=5 quarantined=2 dead_letters=3 offsets=100 eta_s=2 "
        "lag=10 lag.articles.0=0 lag.articles.1=7 lag.my.topic-x.2=3"
    )


def test_final_log_line_reports_the_average_rate_and_unknown_lag() -> None:
    line = format_log_line(Snapshot(30.0, ROWS, None, rate=9.0, bounded=True), NOW, final=True)
    assert "final=true" in line and "records_per_s=3.0" in line and line.endswith(" dead_letters=3 lag=?")


def test_terminal_lines_fit_sixty_columns_with_the_worst_partitions_first() -> None:
    lag = {("t", p): p for p in range(8)}
    current = Snapshot(75.0, ROWS, lag, logged=90, offsets=118, rate=5.0, bounded=True)
    assert format_terminal_lines(current, width=60) == [
        "wirestream running 1:15  90/118 records  5.0/s  ETA 0:06",
        "  articles 80  duplicates 5  quarantined 2  dead letters 3",
        "  lag 28  t/7 7  t/6 6  t/5 5  t/4 4  t/3 3  t/2 2  +2 more",
    ]
    assert format_terminal_lines(current, width=100)[1:] == [
        "  articles 80  duplicates 5  quarantined 2  dead letters 3  entity mentions 900",
        "  lag 28  t/7 7  t/6 6  t/5 5  t/4 4  t/3 3  t/2 2  t/1 1  t/0 0",
    ]
    final = format_terminal_lines(Snapshot(90.0, ROWS, None, logged=90), final=True, width=60)
    assert final[0] == "wirestream finished 1:30  90 records  1.0/s average"
    assert final[2] == "  lag unknown (Kafka did not answer; retrying)"
    streaming = format_terminal_lines(Snapshot(5.0, {}, {}, rate=0.0), width=60)
    assert streaming[0] == "wirestream running 0:05  0 records  0.0/s" and streaming[2] == "  lag 0"


def test_every_line_fits_the_width_however_large_the_numbers() -> None:
    from pipelines.progress import Latency

    topic = "a-very-long-topic-name-for-the-overnight-wire-feed"
    rows = {"articles": 9_876_543, "entities": 123_456_789, "duplicates": 1_234_567, "quarantine": 45_678}
    rows["dead_letters"] = 23_456
    lag = {(topic, p): 1000 * p for p in range(64)}
    current = Snapshot(
        3 * 86400 + 5.0, rows, lag, Latency(1234.0, 56789.0, 9_000_000.0, 9), 12_345_678, 14_361_678, 123.4, True
    )
    for width in (60, 40, 24):
        lines = format_terminal_lines(current, width=width)
        assert len(lines) == 4 and all(len(line) <= width for line in lines), lines
    at_60 = format_terminal_lines(current, width=60)
    assert at_60[0] == "running 72:00:05  12.3M/14.4M records  123/s  ETA 4:32:17"
    assert at_60[1] == "  art 9.9M  dup 1.2M  quar 45678  dead 23456  ent 123M"
    assert at_60[3] == "  lag 2016000  a-very-long…/63 63000  +63 more"  # a long topic name is cut


def test_latency_percentiles_come_from_a_fixed_size_histogram_within_five_percent() -> None:
    import numpy as np

    from pipelines.progress import LatencyHistogram

    histogram = LatencyHistogram()
    assert histogram.summary() is None
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=7, sigma=1, size=20_000)  # about 1 s, with a long tail
    for chunk in np.array_split(values, 40):
        histogram.add(chunk)
    histogram.add(np.array([-20.0]))  # a producer clock ahead of ours: counted as 0 ms
    found = histogram.summary()
    assert found is not None and found.records == 20_001
    for got, quantile in ((found.p50_ms, 0.5), (found.p95_ms, 0.95)):
        expected = float(np.quantile(np.append(values, 0.0), quantile))
        assert expected <= got <= expected * 1.05 + 1
    assert found.max_ms == values.max()


def test_the_progress_line_shows_latency_once_known() -> None:
    import datetime as dt

    from pipelines.progress import Latency, Snapshot, format_log_line, format_terminal_lines

    snapshot = Snapshot(10.0, {"articles": 3}, {("t", 0): 0}, Latency(1200.0, 3400.0, 5000.0, 3))
    line = format_log_line(snapshot, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert "latency_p50_ms=1200 latency_p95_ms=3400 latency_max_ms=5000" in line
    assert "  latency (record to lake): p50 1.2 s  p95 3.4 s  max 5.0 s" in format_terminal_lines(snapshot)
    assert "  latency p50 1.2 s  p95 3.4 s  max 5.0 s" in format_terminal_lines(snapshot, width=50)
    assert "latency" not in format_log_line(Snapshot(10.0, {}, {}), dt.datetime(2026, 12, 2, tzinfo=dt.UTC))


def _dead_letters(lake: Lake, topic: str, partition: int, first: int, end: int, offsets: list[int]) -> None:
    """One real batch commit of dead letters (the cheapest outcome) at ``offsets`` of ``[first, end)``."""
    batch = SourceBatch(topic, partition, first, end, len(offsets))
    now = utc_now()
    letters = [DeadLetter("parse", "not_json", "x", b"x", None, now, now, topic, partition, o, batch) for o in offsets]
    commit_batch(lake, batch, letters)


def test_a_bounded_run_shows_records_plus_lag_equal_to_its_offsets_without_asking_kafka(tmp_path: Path) -> None:
    from pipelines.progress import ProgressMonitor
    from transforms.io.kafka import ConsumerConfig, PartitionPlan

    lake = Lake(str(tmp_path))
    plans = [PartitionPlan("t", 0, 0, 10, ((4, 6),)), PartitionPlan("t", 1, 0, 3, ())]  # 8 + 3 offsets to read
    stream = io.StringIO()
    config = ConsumerConfig(bootstrap_servers="127.0.0.1:1")  # nothing listens: bounded ends are the plan's
    monitor = ProgressMonitor(lake, frozenset(), config, plans, "log", 30.0, stream).start()
    _dead_letters(lake, "t", 0, 0, 4, [0, 1, 2, 3])
    _dead_letters(lake, "t", 0, 6, 8, [6, 7])
    _dead_letters(lake, "t", 1, 0, 3, [0, 1, 2])
    monitor.stop()
    (line,) = stream.getvalue().splitlines()
    fields = dict(field.split("=", 1) for field in line.split(" "))
    assert (fields["records"], fields["dead_letters"], fields["offsets"]) == ("9", "9", "11")
    assert line.endswith(" lag=2 lag.t.0=2 lag.t.1=0")
    assert int(fields["records"]) + int(fields["lag"]) == int(fields["offsets"])


def test_monitor_in_log_mode_shows_a_final_line_even_when_kafka_is_unreachable(tmp_path: Path) -> None:
    from pipelines.progress import ProgressMonitor
    from transforms.io.kafka import ConsumerConfig, PartitionPlan

    stream = io.StringIO()
    config = ConsumerConfig(bootstrap_servers="127.0.0.1:1")  # nothing listens there
    plan = PartitionPlan("t", 0, 0, None, ())  # streaming: the end is Kafka's
    monitor = ProgressMonitor(Lake(str(tmp_path)), frozenset(), config, [plan], "log", 30.0, stream).start()
    _dead_letters(Lake(str(tmp_path)), "t", 0, 0, 2, [0, 1])
    monitor.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "final=true" in lines[0] and " records=2 " in lines[0] and lines[0].endswith("lag=?")
    assert "offsets=" not in lines[0] and "eta_s" not in lines[0]


def test_terminal_display_is_redrawn_in_place_and_below_a_log_line(tmp_path: Path) -> None:
    import logging

    from pipelines.progress import ProgressMonitor
    from transforms.io.kafka import ConsumerConfig

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        config = ConsumerConfig(bootstrap_servers="127.0.0.1:1")  # no partitions planned: Kafka is not asked
        monitor = ProgressMonitor(Lake(str(tmp_path)), frozenset(), config, [], "tty", 0.05, stream)
        monitor.start()
        deadline = time.monotonic() + 10
        while stream.getvalue().count("\x1b[3F\x1b[J") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        logging.getLogger("somewhere").warning("a log line")
        monitor.stop()
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    before, after = text.split("a log line\n")
    assert before.endswith("\x1b[3F\x1b[J")  # the display was erased before the log line
    assert after.startswith("wirestream ")  # and drawn afresh below it
    assert "wirestream finished" in after.splitlines()[-3]
    assert monitor._erase_before_log not in handler.filters


def test_a_monitor_shows_nothing_only_when_it_serves_metrics(tmp_path: Path) -> None:
    from pipelines.progress import ProgressMonitor
    from transforms.io.kafka import ConsumerConfig

    with pytest.raises(ValueError, match="a progress monitor shows tty or log"):
        ProgressMonitor(Lake(str(tmp_path)), frozenset(), ConsumerConfig(bootstrap_servers="x:1"), [], "off", 1.0)
