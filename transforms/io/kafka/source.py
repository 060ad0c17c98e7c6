"""ReadArticles: an unbounded splittable DoFn over kafka-python, one restriction per partition.

How it reads
    The launcher plans each topic-partition (:func:`~transforms.io.kafka.plan.plan_partitions`):
    where to start, where to stop (``--until-caught-up``: the end offsets seen at start; otherwise
    never), and which offset ranges to skip because the lake already holds them. Each
    :class:`~transforms.io.kafka.plan.PartitionPlan` becomes one
    SDF element whose restriction is an ``OffsetRange``; every ``process`` call polls once, claims
    the offsets it emits, and checkpoints (``defer_remainder``) so output flows on promptly and the
    runner can split or resume anywhere. What one poll read is emitted as one
    :class:`RecordBatch`: :class:`KafkaRecord` s with topic, partition, offset, key, headers and
    timestamp, and the :class:`SourceBatch` (offset range) they make up.

Invariants
    * Every offset of the restriction is claimed before its record is emitted, and a batch never
      straddles a skipped range, so a batch is a contiguous, complete range of one partition.
    * Offsets are never committed here. The lake sink commits them to the consumer group after the
      batch's files are durable; the lake itself is the resume point (see ``transforms/io/lake.py``),
      so a lost or stale group commit causes neither loss nor duplicates.
    * Each record's event time (``KafkaRecord.event_us``, what deduplication orders by) is its
      Kafka timestamp, capped at when it was read and raised to the partition's watermark if
      it lies behind it; so within a partition no record is ever late, and for producers that
      stamp records in order at about the time they append them, it is the timestamp itself:
      the same in every run, whatever the batch size or timing.
    * A batch is stamped with its earliest record's event time and the partition's watermark
      then moves to its latest, so a batch holds the watermark at or below every record it
      carries until it is processed downstream.
    * The watermark never runs ahead of wall time. It moves without a record only when the
      partition is idle at the end of its log (to wall time minus ``idle_watermark_lag``); a
      poll that comes back empty while records remain unread (a slow broker, a loaded machine)
      leaves it where it is, since those records may be older.
    * A stop request (``stop_uri``, the launcher's drain) ends each restriction at its next
      poll; nothing read is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from schemas.records import KafkaRecord, RecordBatch, SourceBatch, utc_now
from transforms.io.kafka.config import ConsumerConfig
from transforms.io.kafka.plan import UNBOUNDED, PartitionPlan, SkipList, unskipped_runs

__all__ = ["ReadArticles", "ReadPartitionFn", "StopFlag"]

_LOG = logging.getLogger(__name__)


class _PlanRestrictions(RestrictionProvider):
    """A plan's restriction: ``[start_offset, stop_offset)``, or up to ``UNBOUNDED`` when it has no stop."""

    def initial_restriction(self, plan: PartitionPlan) -> OffsetRange:
        stop = UNBOUNDED if plan.stop_offset is None else max(plan.stop_offset, plan.start_offset)
        return OffsetRange(plan.start_offset, stop)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, plan: PartitionPlan, restriction: OffsetRange) -> int:
        return int(min(restriction.size(), 2**31))


class StopFlag:
    """Whether the launcher asked the sources to stop: a file at ``uri`` (see ``pipelines/lifecycle.py``).

    Looked for at most once a second per worker process and source instance; once seen, it stays seen.
    """

    def __init__(self, uri: str | None, interval_s: float = 1.0) -> None:
        self._uri = uri
        self._interval_s = interval_s
        self._checked_at = float("-inf")
        self._seen = False
        self._fs: Any = None
        self._path = ""

    def requested(self) -> bool:
        """Whether the stop file exists (looked for at most once per interval)."""
        if self._uri is None or self._seen:
            return self._seen
        now = time.monotonic()
        if now - self._checked_at < self._interval_s:
            return False
        self._checked_at = now
        import pyarrow.fs as pafs

        try:
            if self._fs is None:
                self._fs, self._path = (
                    pafs.FileSystem.from_uri(self._uri) if "://" in self._uri else (pafs.LocalFileSystem(), self._uri)
                )
            self._seen = self._fs.get_file_info(self._path).type != pafs.FileType.NotFound
        except OSError:
            _LOG.warning("cannot look for the stop request at %s", self._uri, exc_info=True)
        return self._seen


class ReadPartitionFn(beam.DoFn):
    """``PartitionPlan`` → ``RecordBatch`` per poll: the SDF behind :class:`ReadArticles`.

    Public so that its process loop can be driven directly with a real tracker (the tests do);
    a pipeline uses :class:`ReadArticles`.
    """

    def __init__(self, config: ConsumerConfig, stop_uri: str | None = None) -> None:
        self._config = config
        self._stop_uri = stop_uri
        self._read = beam.metrics.Metrics.counter("kafka", "records_read")
        self._skipped = beam.metrics.Metrics.counter("kafka", "records_skipped")

    def setup(self) -> None:
        self._consumers: dict[tuple[str, int], Any] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._stop = StopFlag(self._stop_uri)

    def teardown(self) -> None:
        for consumer in getattr(self, "_consumers", {}).values():
            consumer.close(autocommit=False)

    def _consumer(self, plan: PartitionPlan, position: int) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        key = (plan.topic, plan.partition)
        tp = TopicPartition(plan.topic, plan.partition)
        consumer = self._consumers.get(key)
        if consumer is None:
            consumer = KafkaConsumer(group_id=None, **self._config.consumer_settings())
            consumer.assign([tp])
            self._consumers[key] = consumer
            self._positions[key] = -1
        if self._positions[key] != position:
            consumer.seek(tp, position)
            self._positions[key] = position
        return consumer

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        plan: PartitionPlan,
        tracker: Any = beam.DoFn.RestrictionParam(_PlanRestrictions()),
        watermark: Any = beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ) -> Iterator[TimestampedValue]:
        from kafka import TopicPartition

        restriction = tracker.current_restriction()
        if restriction.start >= restriction.stop or self._stop.requested():
            # Done, or asked to stop (a drain): claim nothing more, so the restriction ends here
            # and the watermark runs on; what was read before is decided and written as usual.
            tracker.try_claim(restriction.stop)
            return
        key = (plan.topic, plan.partition)
        tp = TopicPartition(plan.topic, plan.partition)
        consumer = self._consumer(plan, restriction.start)
        polled = consumer.poll(timeout_ms=self._config.poll_timeout_ms, max_records=self._config.max_batch_records).get(
            tp, []
        )
        ingested_at = utc_now()
        _LOG.debug(
            "%s-%d: restriction [%d, %d) polled %d",
            plan.topic,
            plan.partition,
            restriction.start,
            restriction.stop,
            len(polled),
        )
        claimed = []
        finished = False
        for message in polled:
            if message.offset < restriction.start:
                continue
            if not tracker.try_claim(message.offset):
                finished = True
                break
            claimed.append(message)
        if polled:
            # The consumer now stands after the last polled record. That is where the next call
            # resumes only if every polled record was claimed; a record left unclaimed (the runner
            # split the restriction during the poll, or the record lies past its end) must be read
            # again by whichever call owns it, so force a seek.
            everything_claimed = bool(claimed) and claimed[-1] is polled[-1] and len(claimed) == len(polled)
            self._positions[key] = polled[-1].offset + 1 if everything_claimed else -1
        emitted = 0
        floor = watermark.current_watermark()
        read_at = Timestamp.from_utc_datetime(ingested_at)
        event_times = {message.offset: _event_time(message, read_at, floor) for message in claimed}
        for run in unskipped_runs(claimed, SkipList(plan.skip)):
            batch = SourceBatch(plan.topic, plan.partition, run[0].offset, run[-1].offset + 1, len(run))
            times = [event_times[message.offset] for message in run]
            records = tuple(_record(m, batch, ingested_at, t) for m, t in zip(run, times, strict=True))
            # Stamped with its earliest record's time, so the batch holds the watermark at or below
            # every record it carries; never behind this partition's watermark, so it is never late.
            yield TimestampedValue(RecordBatch(batch, records), min(times))
            emitted += len(run)
        self._read.inc(emitted)
        self._skipped.inc(len(claimed) - emitted)
        if finished:
            return
        now = Timestamp.now()
        if claimed:
            # Records of a skipped range (already in the lake) move the watermark as far as their
            # own times, never further: records after them may be stamped just as early.
            _advance(watermark, min(max(event_times.values()), now))
            tracker.defer_remainder(Duration(0))
            return
        if restriction.stop != UNBOUNDED and consumer.position(tp) >= restriction.stop:
            _LOG.debug("%s-%d: caught up at %d", plan.topic, plan.partition, restriction.stop)
            tracker.try_claim(restriction.stop)  # caught up: nothing more to claim
            return
        if _at_log_end(consumer, tp):
            # Idle: a record appended from now on is stamped about now, so the watermark may move
            # to now less the lag. A poll that merely came back empty (a slow broker, a loaded
            # machine) says nothing of the records not yet fetched, which may be older: moving the
            # watermark then would make their order depend on when they were read.
            _advance(watermark, now - Duration(seconds=self._config.idle_watermark_lag_s))
        tracker.defer_remainder(Duration(seconds=self._config.idle_poll_interval_s))


def _at_log_end(consumer: Any, tp: Any) -> bool:
    """Whether the consumer has read everything the partition held at its last fetch."""
    highwater = consumer.highwater(tp)
    return highwater is not None and consumer.position(tp) >= highwater


def _advance(watermark: ManualWatermarkEstimator, candidate: Timestamp) -> None:
    current = watermark.current_watermark()
    if current is None or candidate > current:
        watermark.set_watermark(candidate)


def _event_time(message: Any, read_at: Timestamp, floor: Timestamp | None) -> Timestamp:
    """The record's event time: its Kafka timestamp, never later than when it was read nor behind ``floor``.

    Capping at the ingestion time keeps each batch holding the watermark at or below its own
    ingestion time, which is what makes ``_SUCCESS`` markers of ingestion-time partitions sound.
    ``floor`` is the partition's watermark before the poll: a record stamped behind it (a producer
    clock running behind, or timestamps going backwards within the partition) is ordered at the
    watermark, as late data must be. Neither adjustment happens to a partition whose producers
    stamp records in order, at about the time they append them.
    """
    if message.timestamp is not None and message.timestamp >= 0:
        time = min(Timestamp(micros=message.timestamp * 1000), read_at)
    else:
        time = read_at
    return time if floor is None or time >= floor else floor


def _record(message: Any, batch: SourceBatch, ingested_at: Any, event_time: Timestamp) -> KafkaRecord:
    return KafkaRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, value) for name, value in (message.headers or ())),
        timestamp_ms=message.timestamp if message.timestamp is not None else -1,
        ingested_at=ingested_at,
        batch=batch,
        event_us=event_time.micros,
    )


class ReadArticles(beam.PTransform):
    """``PBegin`` → ``PCollection[RecordBatch]``, one SDF element per planned partition.

    ``stop_uri``: a file whose appearance ends every partition's restriction at its next poll
    (the launcher's drain on SIGINT/SIGTERM); None reads until the plans' ends or for ever.
    """

    def __init__(self, plans: Sequence[PartitionPlan], config: ConsumerConfig, stop_uri: str | None = None) -> None:
        super().__init__()
        self._plans = list(plans)
        self._config = config
        self._stop_uri = stop_uri

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            begin
            | "PlanPartitions" >> beam.Create(self._plans)
            | "ReadPartitions" >> beam.ParDo(ReadPartitionFn(self._config, self._stop_uri))
        )
