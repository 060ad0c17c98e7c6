"""A partition's batches can commit out of order: a gap before the lake's first run is read again.

A kill -9 can land after batch ``[10, 20)`` of a partition committed and before ``[0, 10)`` did
(batches leave deduplication and NER in no fixed order). The next run must read ``[0, 10)``:
the lake records where it began each partition (``_origins/``), so the gap is told apart from
offsets the lake never meant to read.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.integration.helpers import assert_each_once, run_until_caught_up
from transforms.io.lake import Lake, read_origins

pytestmark = pytest.mark.integration


def test_a_batch_missing_before_later_committed_ones_is_read_again(
    bootstrap_servers: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"gap-{uuid.uuid4().hex[:10]}"
    values = [
        json.dumps(
            {"url": f"https://gap.example/{i}", "body": f"Report {i}: ministers met in Vienna on day {i}."}
        ).encode()
        for i in range(30)
    ]
    placed = produce(values, bootstrap_servers, topic, partitions=1)
    expected = {(topic, p, o) for p, o in placed}
    lake = tmp_path / "lake"
    run_until_caught_up(lake, topic, bootstrap_servers, "--max-batch-records=10")
    assert_each_once(lake, expected)
    assert read_origins(Lake(str(lake))) == {(topic, 0): 0}

    first_batch = [path for path in lake.rglob(f"{topic}+0+{0:019d}+*.parquet")]
    later = [path for path in lake.rglob("*.parquet") if path not in first_batch]
    assert first_batch and later, "the run should have written more than one batch"
    for path in first_batch:  # as if a kill -9 landed before this batch committed, after the later ones
        path.unlink()

    result = run_until_caught_up(lake, topic, bootstrap_servers, "--max-batch-records=10")
    assert "NOT CAUGHT UP" not in result.stderr
    assert_each_once(lake, expected)


def test_the_group_commit_never_passes_a_batch_still_in_flight(bootstrap_servers: str, tmp_path: Path) -> None:
    """The sink commits the end of the lake's gapless run from the origin, not each batch's own end."""
    from schemas.records import OutcomeBatch, SourceBatch
    from tests.integration.helpers import committed_offsets
    from tests.kit import make_record
    from transforms.io.kafka import ConsumerConfig, OffsetCommitter
    from transforms.io.lake import record_origins
    from transforms.io.lake import sink as sink_module
    from transforms.io.lake.sink import CommitBatchFn
    from transforms.parse import parse_record

    topic = f"order-{uuid.uuid4().hex[:10]}"
    produce([b"{oops"] * 40, bootstrap_servers, topic, partitions=1)
    lake = Lake(str(tmp_path / "lake"))
    record_origins(lake, {(topic, 0): 0})
    consumer = ConsumerConfig(bootstrap_servers=bootstrap_servers, group_id=f"g-{topic}")

    def batch(first: int, end: int) -> OutcomeBatch:
        source = SourceBatch(topic, 0, first, end, end - first)
        records = [make_record(b"{oops", offset=o, topic=topic, batch=source) for o in range(first, end)]
        return OutcomeBatch(source, tuple(parse_record(r) for r in records))

    sink = CommitBatchFn(lake.root, "ingestion_time", partial(OffsetCommitter, consumer), 5.0)
    sink.setup()
    try:
        (report,) = list(sink.process(batch(10, 20)))
        assert not report.offset_committed and committed_offsets(bootstrap_servers, topic, 1) == {0: None}
        (report,) = list(sink.process(batch(0, 10)))
        assert report.offset_committed and committed_offsets(bootstrap_servers, topic, 1) == {0: 20}
        (report,) = list(sink.process(batch(30, 40)))
        assert not report.offset_committed and committed_offsets(bootstrap_servers, topic, 1) == {0: 20}
    finally:
        sink.teardown()
    sink_module._REACHES.clear()  # what a new worker process starts with
    restarted = CommitBatchFn(
        lake.root, "ingestion_time", partial(OffsetCommitter, consumer), 5.0
    )  # learns from the lake
    restarted.setup()
    try:
        (report,) = list(restarted.process(batch(20, 30)))
        assert report.offset_committed and committed_offsets(bootstrap_servers, topic, 1) == {0: 40}
    finally:
        restarted.teardown()
