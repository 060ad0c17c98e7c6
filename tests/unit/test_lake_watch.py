"""What the launcher derives from the lake alone: rows, reasons, verdicts, latency and stage times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lake_watch import (
    LATENCY_BOUNDS_S,
    STAGE_BOUNDS_S,
    Buckets,
    LakeWatch,
    is_new_batch,
    offsets_to_account,
    stage_seconds,
)
from schemas.records import Article, DeadLetter, Duplicate, OutcomeBatch, Quarantined, SourceBatch, utc_now
from tests.kit import article, dead_letter
from transforms.io.kafka import PartitionPlan
from transforms.io.lake import Lake, commit_batch

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


def test_buckets_count_each_value_once_at_its_upper_bound_like_prometheus() -> None:
    buckets = Buckets((1.0, 5.0)).add([0.5, 1.0, 1.5, 5.0, 7.0]).add([-2.0]).add([])
    assert buckets.counts == (3, 2)  # -2 counts as 0; a value on a bound belongs to that bucket
    assert buckets.cumulative() == [(1.0, 3), (5.0, 5), (float("inf"), 6)]
    assert buckets.total == 15.0 and buckets.count == 6
    assert Buckets((1.0,)).cumulative() == [(1.0, 0), (float("inf"), 0)]


def test_stage_times_come_from_the_read_validation_and_commit_timestamps() -> None:
    summary = {"validated_at": (T0 + dt.timedelta(seconds=2)).isoformat(), "validation_seconds": 0.5}
    assert stage_seconds(T0, T0 + dt.timedelta(seconds=10), summary) == {
        "read_to_commit": 10.0,
        "read_to_quality": 2.0,
        "quality": 0.5,
        "quality_to_commit": 7.5,
    }
    # No article in the batch: nothing was validated, only the whole time is known.
    assert stage_seconds(T0, T0 + dt.timedelta(seconds=3), None) == {"read_to_commit": 3.0}
    # A reader's clock ahead of the writer's: a negative difference counts as 0.
    assert stage_seconds(T0, T0 - dt.timedelta(seconds=1), None) == {"read_to_commit": 0.0}


def test_a_merged_file_overlapping_known_ranges_is_not_counted_again() -> None:
    assert is_new_batch(10, 20, [(0, 10, True), (20, 30, False)])  # touching is not overlapping
    assert is_new_batch(10, 20, [(10, 20, False)])  # same batch, another partition folder
    assert not is_new_batch(0, 20, [(0, 10, True)])  # merged with a file from before the run
    assert not is_new_batch(10, 30, [(10, 20, False), (20, 30, False)])  # merge of counted files
    assert not is_new_batch(10, 20, [(10, 20, True)])


def test_offsets_to_account_run_from_the_start_to_the_end_less_skipped_ranges() -> None:
    plans = [PartitionPlan("t", 0, 10, 100, ((20, 30), (90, 120))), PartitionPlan("t", 1, 5, None, ())]
    assert offsets_to_account(plans, {("t", 0): 100, ("t", 1): 50}) == {("t", 0): 100 - 10 - 10 - 10, ("t", 1): 45}
    assert offsets_to_account(plans, {("t", 1): 3}) == {("t", 1): 0}  # an end before the start; unknown ends left out


def _article(offset: int, batch: SourceBatch, read_at: dt.datetime) -> Article:
    return article(
        offset,
        batch,
        text="Some words here.",
        ingested_at=read_at,
        event_us=int((read_at - dt.timedelta(seconds=7)).timestamp() * 1_000_000),
    )


def _dead(offset: int, batch: SourceBatch, reason: str, read_at: dt.datetime) -> DeadLetter:
    return dead_letter(offset, batch, reason, at=read_at)


def _write_quality_summary(lake: Lake, batch: SourceBatch, outcomes: list) -> None:
    """The real stage's report for the batch (no validator: status ``error``), written as the stage does."""
    from transforms.io.quality_store import write_report
    from transforms.quality import QualityConfig, load_suite, validate_articles

    config = QualityConfig(lake.uri, load_suite(), run_name="test")
    verdict = validate_articles(None, OutcomeBatch(batch, tuple(outcomes)), config, utc_now())
    assert verdict.report is not None
    write_report(lake, verdict.report)


def test_lake_watch_reads_each_new_batch_once_for_rows_reasons_verdicts_and_times(tmp_path: Path) -> None:
    from transforms.io.lake import lake_files

    lake = Lake(str(tmp_path))
    read_at = utc_now() - dt.timedelta(seconds=1)
    before = SourceBatch("t", 0, 0, 2, 2)
    commit_batch(lake, before, [_article(0, before, read_at), _article(1, before, read_at)])
    watch = LakeWatch(lake, lake_files(lake))
    assert watch.poll().records == 0  # files from before the start are never counted

    first = SourceBatch("t", 0, 2, 6, 4)
    outcomes = [
        _article(2, first, read_at),
        _dead(3, first, "not_json", read_at),
        Quarantined(_article(4, first, read_at), failed_expectations=("url_is_http", "text_length_between")),
        Quarantined(_article(5, first, read_at), failed_expectations=("url_is_http",)),
    ]
    _write_quality_summary(lake, first, outcomes)
    commit_batch(lake, first, outcomes)
    second = SourceBatch("t", 1, 0, 3, 2)  # a gap at offset 1 (a transaction marker): 2 records span 3 offsets
    commit_batch(
        lake,
        second,
        [Duplicate(_article(0, second, read_at), "a2", 1.0, "exact"), _dead(2, second, "oversized", read_at)],
    )
    tally = watch.poll()
    assert dict(tally.rows) == {"articles": 1, "quarantine": 2, "duplicates": 1, "dead_letters": 2}
    assert tally.records == 6 and tally.batches == 2
    assert dict(tally.offsets_done) == {("t", 0): 4, ("t", 1): 3}
    assert dict(tally.dead_letter_reasons) == {"not_json": 1, "oversized": 1}
    assert dict(tally.quarantined_by_expectation) == {"url_is_http": 2, "text_length_between": 1}
    assert dict(tally.quality_batches) == {"error": 1}  # the second batch holds no article: not validated
    # Latency: the four articles' event time is 7 s before their read; dead letters have none.
    assert tally.latency is not None and tally.latency.records == 4
    assert tally.latency_buckets.bounds == LATENCY_BOUNDS_S and tally.latency_buckets.count == 4
    cumulative = dict(tally.latency_buckets.cumulative())
    assert cumulative[5] == 0 and cumulative[30] == 4
    stages = {stage: buckets.count for stage, buckets in tally.stage_buckets.items()}
    assert stages == {"read_to_commit": 2, "read_to_quality": 1, "quality": 1, "quality_to_commit": 1}
    assert tally.stage_buckets["quality"].bounds == STAGE_BOUNDS_S

    assert watch.poll() == tally  # nothing new: the same totals, nothing read twice


def _write(lake: Path, table: str, name: str, rows: int) -> None:
    folder = lake / table / "dt=2026-11-25" / "hour=17"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"kafka_offset": pa.array(range(rows), pa.int64())}), folder / name)


def test_lake_watch_counts_only_files_committed_since_the_start_and_stays_monotone(tmp_path: Path) -> None:
    from transforms.io.lake import lake_files

    _write(tmp_path, "articles", "t+0+0+5.parquet", 5)
    watch = LakeWatch(Lake(str(tmp_path)), lake_files(Lake(str(tmp_path))))
    assert dict(watch.poll().rows) == {}
    _write(tmp_path, "articles", "t+0+5+8.parquet", 3)
    (tmp_path / "articles" / "dt=2026-11-25" / "hour=17" / "t+0+5+8.parquet.tmp").write_bytes(b"partial")
    assert dict(watch.poll().rows) == {"articles": 3}
    _write(tmp_path, "articles", "t+0+8+12.parquet", 4)
    assert dict(watch.poll().rows) == {"articles": 7}
    # A compaction merges everything into one file and deletes the parts: nothing is lost or doubled.
    folder = tmp_path / "articles" / "dt=2026-11-25" / "hour=17"
    for part in folder.glob("*.parquet"):
        part.unlink()
    _write(tmp_path, "articles", "t+0+0+12.parquet", 12)
    assert dict(watch.poll().rows) == {"articles": 7}
