"""The source's process loop, driven directly with a real tracker and a stand-in consumer.

The consumer is the only stand-in: it replays a fixed log and records seeks, so the test can
split the restriction at exactly the moment a runner might (during a poll).
"""

from types import SimpleNamespace

from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from apache_beam.utils.timestamp import Timestamp

from transforms.io.kafka import ConsumerConfig, PartitionPlan, _ReadPartitionFn


class _Log:
    """A partition log of ``size`` records that serves polls from its own position, like Kafka."""

    def __init__(self, size: int, on_poll=None) -> None:
        self.records = [
            SimpleNamespace(topic="t", partition=0, offset=o, key=None, value=b"{}", headers=[], timestamp=1_000 + o)
            for o in range(size)
        ]
        self.position = 0
        self.on_poll = on_poll

    def seek(self, tp, offset: int) -> None:
        self.position = offset

    def position_of(self) -> int:
        return self.position

    def poll(self, timeout_ms: int, max_records: int):
        if self.on_poll:
            self.on_poll()
        batch = self.records[self.position : self.position + max_records]
        self.position += len(batch)
        from kafka import TopicPartition

        return {TopicPartition("t", 0): batch} if batch else {}


def _fn(log: _Log, max_batch: int = 10) -> _ReadPartitionFn:
    fn = _ReadPartitionFn(ConsumerConfig(max_batch_records=max_batch))
    fn.setup()
    fn._consumers[("t", 0)] = log
    fn._positions[("t", 0)] = 0
    log.position = 0
    return fn


def _tracker(restriction: OffsetRange) -> tuple[ThreadsafeRestrictionTracker, RestrictionTrackerView]:
    """The tracker as the SDK harness hands it to ``process`` (thread-safe, behind a view)."""
    threadsafe = ThreadsafeRestrictionTracker(OffsetRestrictionTracker(restriction))
    return threadsafe, RestrictionTrackerView(threadsafe)


def _drain(fn: _ReadPartitionFn, plan: PartitionPlan, restriction: OffsetRange, on_tracker=None) -> list[int]:
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
    assert [v.timestamp for v in emitted] == [Timestamp(micros=1_002_000), Timestamp(micros=1_007_000)]
