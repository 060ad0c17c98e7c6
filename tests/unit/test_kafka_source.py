"""The source's process loop, driven directly with a real tracker and a stand-in consumer.

The consumer is the only stand-in: it replays a fixed log and records seeks, so the test can
split the restriction at exactly the moment a runner might (during a poll).
"""

from types import SimpleNamespace

from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from apache_beam.utils.timestamp import Timestamp

from transforms.io.kafka import ConsumerConfig, PartitionPlan
from transforms.io.kafka.source import ReadPartitionFn


class _Log:
    """A partition log of ``size`` records that serves polls from its own position, like Kafka."""

    def __init__(self, size: int, on_poll=None, timestamps=None) -> None:
        self.records = [
            SimpleNamespace(
                topic="t",
                partition=0,
                offset=o,
                key=None,
                value=b"{}",
                headers=[],
                timestamp=timestamps[o] if timestamps else 1_000 + o,
            )
            for o in range(size)
        ]
        self.at = 0
        self.on_poll = on_poll
        self.fetched: int | None = None  # the high watermark of the last fetch, as Kafka reports it
        self.slow = False  # polls come back empty (a loaded machine, a slow broker)

    def seek(self, tp, offset: int) -> None:
        self.at = offset

    def position(self, tp) -> int:
        return self.at

    def highwater(self, tp) -> int | None:
        return self.fetched

    def poll(self, timeout_ms: int, max_records: int):
        if self.on_poll:
            self.on_poll()
        if self.slow:
            return {}
        self.fetched = len(self.records)
        batch = self.records[self.at : self.at + max_records]
        self.at += len(batch)
        from kafka import TopicPartition

        return {TopicPartition("t", 0): batch} if batch else {}


def _fn(log: _Log, max_batch: int = 10) -> ReadPartitionFn:
    fn = ReadPartitionFn(ConsumerConfig(max_batch_records=max_batch))
    fn.setup()
    fn._consumers[("t", 0)] = log
    fn._positions[("t", 0)] = 0
    log.at = 0
    return fn


def _tracker(restriction: OffsetRange) -> tuple[ThreadsafeRestrictionTracker, RestrictionTrackerView]:
    """The tracker as the SDK harness hands it to ``process`` (thread-safe, behind a view)."""
    threadsafe = ThreadsafeRestrictionTracker(OffsetRestrictionTracker(restriction))
    return threadsafe, RestrictionTrackerView(threadsafe)


def _drain(fn: ReadPartitionFn, plan: PartitionPlan, restriction: OffsetRange, on_tracker=None) -> list[int]:
    threadsafe, view = _tracker(restriction)
    if on_tracker:
        on_tracker(threadsafe)
    watermark = ManualWatermarkEstimator(None)
    emitted = fn.process(plan, tracker=view, watermark=watermark)
    return [record.offset for value in emitted for record in value.value.records]


def test_split_during_a_poll_loses_nothing() -> None:
    plan = PartitionPlan("t", 0, 0, 6)
    state = {}
    log = _Log(6, on_poll=lambda: state.setdefault("split", state["tracker"].try_split(0)))
    fn = _fn(log)
    first = _drain(fn, plan, OffsetRange(0, 6), on_tracker=lambda t: state.__setitem__("tracker", t))
    primary, residual = state["split"]
    assert first == [] and (primary.start, primary.stop) == (0, 0)
    log.on_poll = None
    assert _drain(fn, plan, residual) == [0, 1, 2, 3, 4, 5]


def test_batches_cover_contiguous_ranges_and_skip_what_the_lake_has() -> None:
    plan = PartitionPlan("t", 0, 0, 8, skip=((3, 5),))
    fn = _fn(_Log(8), max_batch=8)
    _, view = _tracker(OffsetRange(0, 8))
    emitted = list(fn.process(plan, tracker=view, watermark=ManualWatermarkEstimator(None)))
    batches = [(v.value.batch.first_offset, v.value.batch.end_offset, v.value.batch.size) for v in emitted]
    assert batches == [(0, 3, 3), (5, 8, 3)]
    assert [[r.offset for r in v.value.records] for v in emitted] == [[0, 1, 2], [5, 6, 7]]
    assert all(r.batch == v.value.batch for v in emitted for r in v.value.records)
    # A batch is stamped with its earliest record's time and each record carries its own.
    assert [v.timestamp for v in emitted] == [Timestamp(micros=1_000_000), Timestamp(micros=1_005_000)]
    assert [r.event_us for v in emitted for r in v.value.records] == [1_000_000, 1_001_000, 1_002_000] + [
        1_005_000,
        1_006_000,
        1_007_000,
    ]


def _poll_once(fn: ReadPartitionFn, plan: PartitionPlan, watermark: ManualWatermarkEstimator) -> list:
    _, view = _tracker(OffsetRange(fn._positions[("t", 0)] if fn._positions[("t", 0)] >= 0 else 0, 2**63 - 1))
    return list(fn.process(plan, tracker=view, watermark=watermark))


def test_an_empty_poll_moves_the_watermark_only_at_the_end_of_the_log() -> None:
    plan = PartitionPlan("t", 0, 0, None)
    log = _Log(4)
    fn = _fn(log, max_batch=2)
    watermark = ManualWatermarkEstimator(None)
    log.slow = True  # nothing fetched yet: the records are there, just not read
    assert _poll_once(fn, plan, watermark) == []
    assert watermark.current_watermark() is None
    log.slow = False
    _poll_once(fn, plan, watermark)
    assert watermark.current_watermark() == Timestamp(micros=1_001_000)
    log.slow = True  # two records still unread: an empty poll must not move the watermark past them
    _poll_once(fn, plan, watermark)
    assert watermark.current_watermark() == Timestamp(micros=1_001_000)
    log.slow = False
    emitted = _poll_once(fn, plan, watermark)
    assert [r.event_us for v in emitted for r in v.value.records] == [1_002_000, 1_003_000]
    _poll_once(fn, plan, watermark)  # at the end of the log: idle, so the watermark follows the clock
    assert watermark.current_watermark() > Timestamp.now() - 60


def test_a_record_stamped_behind_the_watermark_is_ordered_at_the_watermark() -> None:
    plan = PartitionPlan("t", 0, 0, None)
    log = _Log(4, timestamps=[5_000, 6_000, 2_000, 7_000])
    fn = _fn(log, max_batch=2)
    watermark = ManualWatermarkEstimator(None)
    first = _poll_once(fn, plan, watermark)
    second = _poll_once(fn, plan, watermark)
    assert [r.event_us for r in first[0].value.records] == [5_000_000, 6_000_000]
    assert [r.event_us for r in second[0].value.records] == [6_000_000, 7_000_000]
    assert second[0].timestamp == Timestamp(micros=6_000_000)  # never behind the partition's watermark


def test_a_poll_that_reads_only_what_the_lake_holds_moves_the_watermark_no_further_than_those_records() -> None:
    plan = PartitionPlan("t", 0, 0, None, skip=((0, 2),))
    log = _Log(4)
    fn = _fn(log, max_batch=2)
    watermark = ManualWatermarkEstimator(None)
    assert _poll_once(fn, plan, watermark) == []  # offsets 0 and 1 are in the lake already
    assert watermark.current_watermark() == Timestamp(micros=1_001_000)
    emitted = _poll_once(fn, plan, watermark)
    assert [r.event_us for v in emitted for r in v.value.records] == [1_002_000, 1_003_000]
