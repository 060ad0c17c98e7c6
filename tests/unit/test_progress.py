"""The live progress display's rules: lag, what counts as newly committed, both renderings."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.progress import (
    Snapshot,
    _LakeCounter,
    format_log_line,
    format_terminal_lines,
    is_new_batch,
    partition_lag,
    resolve_mode,
)
from transforms.io.lake import Lake

NOW = dt.datetime(2026, 11, 25, 17, 30, 5, tzinfo=dt.UTC)
ROWS = {"articles": 80, "entities": 900, "duplicates": 5, "quarantine": 2, "dead_letters": 3}


def test_auto_mode_follows_the_terminal_and_other_modes_stay() -> None:
    assert resolve_mode("auto", True) == "tty" and resolve_mode("auto", False) == "log"
    assert resolve_mode("log", True) == "log" and resolve_mode("off", True) == "off"
    with pytest.raises(ValueError, match="unknown progress mode 'loud'"):
        resolve_mode("loud", True)


def test_lag_counts_from_the_group_or_from_where_the_lake_let_the_run_start() -> None:
    assert partition_lag(end_offset=100, committed=40, started_from=10) == 60
    assert partition_lag(end_offset=100, committed=None, started_from=10) == 90  # group never committed
    assert partition_lag(end_offset=100, committed=0, started_from=70) == 30  # group reset, lake ahead
    assert partition_lag(end_offset=100, committed=100, started_from=0) == 0
    assert partition_lag(end_offset=5, committed=7, started_from=0) == 0  # never negative


def test_records_are_the_rows_of_the_four_accounting_tables_not_entities() -> None:
    assert Snapshot(1.0, ROWS, {}).records == 80 + 5 + 2 + 3


def test_log_line_has_every_count_and_each_partition_lag() -> None:
    previous = Snapshot(10.0, {"articles": 40}, {("articles", 0): 50, ("articles", 1): 50})
    current = Snapshot(20.0, ROWS, {("articles", 1): 7, ("articles", 0): 0, ("my.topic-x", 2): 3})
    line = format_log_line(current, previous, NOW)
    assert line == (
        "ts=2026-11-25T17:30:05Z event=progress final=false elapsed_s=20.0 records=90 records_per_s=5.0 "
        "articles=80 entity_mentions=900 duplicates=5 quarantined=2 dead_letters=3 "
        "lag=10 lag.articles.0=0 lag.articles.1=7 lag.my.topic-x.2=3"
    )


def test_final_log_line_reports_the_average_rate_and_unknown_lag() -> None:
    previous = Snapshot(10.0, ROWS, {})
    line = format_log_line(Snapshot(30.0, ROWS, None), previous, NOW, final=True)
    assert "final=true" in line and "records_per_s=3.0" in line and line.endswith("lag=?")


def test_terminal_lines_show_the_worst_partitions_first() -> None:
    lag = {("t", p): p for p in range(8)}
    lines = format_terminal_lines(Snapshot(75.0, ROWS, lag), Snapshot(65.0, {"articles": 40}, lag))
    assert lines == [
        "wirestream run running 1:15  records: 90  5.0 records/s",
        "  written: 80 articles (900 entity mentions)  duplicates: 5  quarantined: 2  dead letters: 3",
        "  lag: 28 total  t/7 7  t/6 6  t/5 5  t/4 4  t/3 3  t/2 2  (+2 more)",
    ]
    final = format_terminal_lines(Snapshot(90.0, ROWS, None), None, final=True)
    assert final[0] == "wirestream run finished 1:30  records: 90  1.0 records/s (average)"
    assert final[2] == "  lag: unknown (Kafka did not answer; retrying)"


def test_a_merged_file_overlapping_known_ranges_is_not_counted_again() -> None:
    assert is_new_batch(10, 20, [(0, 10, True), (20, 30, False)])  # touching is not overlapping
    assert is_new_batch(10, 20, [(10, 20, False)])  # same batch, another partition folder
    assert not is_new_batch(0, 20, [(0, 10, True)])  # merged with a file from before the run
    assert not is_new_batch(10, 30, [(10, 20, False), (20, 30, False)])  # merge of counted files
    assert not is_new_batch(10, 20, [(10, 20, True)])


def _write(lake: Path, table: str, name: str, rows: int) -> None:
    import pyarrow.parquet as pq

    folder = lake / table / "dt=2026-11-25" / "hour=17"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"kafka_offset": pa.array(range(rows), pa.int64())}), folder / name)


def test_lake_counter_counts_only_files_committed_since_the_start_and_stays_monotone(tmp_path: Path) -> None:
    from pipelines.ingest import lake_files

    _write(tmp_path, "articles", "t+0+0+5.parquet", 5)
    counter = _LakeCounter(Lake(str(tmp_path)), lake_files(Lake(str(tmp_path))))
    assert counter.poll() == {}
    _write(tmp_path, "articles", "t+0+5+8.parquet", 3)
    _write(tmp_path, "dead_letters", "t+0+5+8.parquet", 1)
    (tmp_path / "articles" / "dt=2026-11-25" / "hour=17" / "t+0+5+8.parquet.tmp").write_bytes(b"partial")
    assert counter.poll() == {"articles": 3, "dead_letters": 1}
    _write(tmp_path, "articles", "t+0+8+12.parquet", 4)
    assert counter.poll() == {"articles": 7, "dead_letters": 1}
    # A compaction merges everything into one file and deletes the parts: nothing is lost or doubled.
    folder = tmp_path / "articles" / "dt=2026-11-25" / "hour=17"
    for part in folder.glob("*.parquet"):
        part.unlink()
    _write(tmp_path, "articles", "t+0+0+12.parquet", 12)
    assert counter.poll() == {"articles": 7, "dead_letters": 1}


def test_monitor_in_log_mode_shows_a_final_line_even_when_kafka_is_unreachable(tmp_path: Path) -> None:
    from pipelines.progress import ProgressMonitor
    from transforms.io.kafka import ConsumerConfig, PartitionPlan

    stream = io.StringIO()
    config = ConsumerConfig(bootstrap_servers="127.0.0.1:1")  # nothing listens there
    plan = PartitionPlan("t", 0, 0, None, ())
    monitor = ProgressMonitor(Lake(str(tmp_path)), frozenset(), config, [plan], "log", 30.0, stream).start()
    _write(tmp_path, "articles", "t+0+0+2.parquet", 2)
    monitor.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "final=true" in lines[0] and "articles=2" in lines[0] and "lag=?" in lines[0]


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
    assert after.startswith("wirestream run")  # and drawn afresh below it
    assert "wirestream run finished" in after.splitlines()[-3]
    assert monitor._erase_before_log not in handler.filters


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
    line = format_log_line(snapshot, None, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert "latency_p50_ms=1200 latency_p95_ms=3400 latency_max_ms=5000" in line
    assert "  latency (record to lake): p50 1.2 s  p95 3.4 s  max 5.0 s" in format_terminal_lines(snapshot, None)
    assert "latency" not in format_log_line(Snapshot(10.0, {}, {}), None, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
