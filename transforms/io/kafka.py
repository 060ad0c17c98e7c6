"""ReadArticles: an unbounded splittable DoFn over kafka-python, one restriction per partition.

How it reads
    The launcher plans each topic-partition (:func:`plan_partitions`): where to start, where to
    stop (``--until-caught-up``: the end offsets seen at start; otherwise never), and which offset
    ranges to skip because the lake already holds them. Each :class:`PartitionPlan` becomes one
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

import bisect
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from schemas.records import KafkaRecord, RecordBatch, SourceBatch, utc_now
from transforms.io.kafka_check import KafkaUnreachableError, TopicMissingError, check_kafka, missing_topic_message
from transforms.io.kafka_security import KafkaSecurity
from transforms.io.offsets import first_uncovered, gapless_reach, merge_ranges

__all__ = [
    "ConsumerConfig",
    "KafkaUnreachableError",
    "TopicMissingError",
    "check_reachable",
    "GroupConsumer",
    "OffsetCommitter",
    "PartitionPlan",
    "ReadArticles",
    "plan_partitions",
    "first_uncovered",
    "gapless_reach",
    "merge_ranges",
    "resume_plan",
]

UNBOUNDED = 2**63 - 1
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerConfig:
    """How to reach Kafka and how much to read at once (small and picklable; no secrets, see ``security``)."""

    bootstrap_servers: str = "127.0.0.1:19092"
    group_id: str = "wirestream"
    client_id: str = "wirestream"
    max_record_bytes: int = 10 * 1024 * 1024
    max_batch_records: int = 100
    poll_timeout_ms: int = 1000
    idle_poll_interval_s: float = 1.0
    idle_watermark_lag_s: float = 5.0
    auto_offset_reset: str = "earliest"
    security: KafkaSecurity = KafkaSecurity()

    def consumer_settings(self) -> dict[str, Any]:
        """Keyword arguments for ``kafka.KafkaConsumer``; call it only where the consumer is made.

        With SASL this reads the password (from the variable or file ``security`` names), so the
        result must never be stored on a DoFn, logged or put into options.
        """
        fetch_bytes = self.max_record_bytes + 1024 * 1024
        return {
            **self.security.client_settings(),
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": self.auto_offset_reset,
            "max_partition_fetch_bytes": fetch_bytes,
            "fetch_max_bytes": max(fetch_bytes, 50 * 1024 * 1024),
            # kafka-python refuses network frames above 1 MB by default, which fails every fetch
            # of a larger record; a fetch response holds at most fetch_max_bytes plus headers.
            "receive_message_max_bytes": max(fetch_bytes, 50 * 1024 * 1024) + 1024 * 1024,
            "receive_buffer_bytes": 1024 * 1024,
            "request_timeout_ms": 30000,
            "reconnect_backoff_max_ms": 2000,
        }


@dataclass(frozen=True, order=True)
class PartitionPlan:
    """What to read from one topic-partition: ``[start_offset, stop_offset)`` minus ``skip``."""

    topic: str
    partition: int
    start_offset: int
    stop_offset: int | None
    skip: tuple[tuple[int, int], ...] = field(default=())

    def restriction(self) -> OffsetRange:
        """The initial restriction of this partition's SDF element."""
        stop = UNBOUNDED if self.stop_offset is None else max(self.stop_offset, self.start_offset)
        return OffsetRange(self.start_offset, stop)


def resume_plan(
    topic: str,
    partition: int,
    covered: Sequence[tuple[int, int]],
    committed: int | None,
    log_start: int,
    log_end: int,
    until_caught_up: bool,
    reset_to_earliest: bool = True,
    origin: int | None = None,
) -> PartitionPlan:
    """Where to resume one partition, from what the lake holds and the group's commit.

    The lake wins. ``origin`` is the offset the lake began this partition at (recorded by the
    launcher before its first read, see :func:`transforms.io.lake.record_origins`): reading resumes
    at the first offset from the origin on that the lake does not hold, and later covered runs are
    skipped. Batches of one partition can commit out of order (a kill can land after ``[100, 200)``
    committed and before ``[0, 100)`` did), so "after the lake's first covered run" would skip such
    a gap forever; the origin is what tells a gap from offsets this lake was never meant to read.
    A lake written before origins were recorded resumes from its first covered offset. The group
    commit is used only when the lake holds nothing of the partition (e.g. a new lake for an old group).
    """
    merged = merge_ranges(covered)
    reach = gapless_reach(merged, origin)
    if reach is not None:
        start = reach
    elif origin is not None:
        start = origin
    elif committed is not None:
        start = committed
    else:
        start = log_start if reset_to_earliest else log_end
    if start < log_start:
        _LOG.warning(
            "%s-%d: offsets %d..%d were deleted by retention before they were read",
            topic,
            partition,
            start,
            log_start - 1,
        )
        start = first_uncovered(log_start, merged)
    if not merged:
        start = min(start, log_end)
    skip = tuple((max(first, start), end) for first, end in merged if end > start)
    return PartitionPlan(topic, partition, start, log_end if until_caught_up else None, skip)


def check_reachable(config: ConsumerConfig, timeout_s: float = 30.0, topics: Sequence[str] = ()) -> None:
    """Fetch cluster metadata once, or fail within ``timeout_s`` (see :func:`~transforms.io.kafka_check.check_kafka`).

    kafka-python retries a refused SASL login (wrong password, unknown mechanism) or a failed TLS
    handshake forever inside ``partitions_for_topic``; this bounded request turns that into an error
    at launch, as it does a broker that is down or a topic in ``topics`` that does not exist.
    """
    check_kafka(config.consumer_settings(), topics, timeout_s)


def plan_partitions(
    config: ConsumerConfig,
    topics: Sequence[str],
    covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]],
    until_caught_up: bool,
    origins: Mapping[tuple[str, int], int] | None = None,
) -> list[PartitionPlan]:
    """A plan for every partition of ``topics``, asking the broker for offsets and commits."""
    from kafka import KafkaConsumer, TopicPartition

    check_reachable(config)
    consumer = KafkaConsumer(group_id=config.group_id, **config.consumer_settings())
    try:
        partitions: list[Any] = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            if not found:
                raise TopicMissingError(
                    missing_topic_message(topic, config.bootstrap_servers, sorted(consumer.topics()))
                )
            partitions.extend(TopicPartition(topic, number) for number in sorted(found))
        starts = consumer.beginning_offsets(partitions)
        ends = consumer.end_offsets(partitions)
        plans = []
        for tp in partitions:
            plans.append(
                resume_plan(
                    tp.topic,
                    tp.partition,
                    covered.get((tp.topic, tp.partition), ()),
                    consumer.committed(tp),
                    starts[tp],
                    ends[tp],
                    until_caught_up,
                    config.auto_offset_reset == "earliest",
                    (origins or {}).get((tp.topic, tp.partition)),
                )
            )
        return plans
    finally:
        consumer.close(autocommit=False)


class _PlanRestrictions(RestrictionProvider):
    def initial_restriction(self, plan: PartitionPlan) -> OffsetRange:
        return plan.restriction()

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, plan: PartitionPlan, restriction: OffsetRange) -> int:
        return int(min(restriction.size(), 2**31))


class _SkipList:
    """Membership test for the skipped ``[first, end)`` ranges of a plan."""

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._firsts = [first for first, _ in ranges]
        self._ranges = list(ranges)

    def __contains__(self, offset: int) -> bool:
        index = bisect.bisect_right(self._firsts, offset) - 1
        return index >= 0 and self._ranges[index][0] <= offset < self._ranges[index][1]


def _batches(records: Sequence[Any], skip: _SkipList) -> Iterator[list[Any]]:
    """Runs of consecutive, non-skipped records (a run never straddles a skipped range)."""
    run: list[Any] = []
    for record in records:
        if record.offset in skip:
            if run:
                yield run
            run = []
        else:
            run.append(record)
    if run:
        yield run


class _StopFlag:
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


class _ReadPartitionFn(beam.DoFn):
    def __init__(self, config: ConsumerConfig, stop_uri: str | None = None) -> None:
        self._config = config
        self._stop_uri = stop_uri
        self._read = beam.metrics.Metrics.counter("kafka", "records_read")
        self._skipped = beam.metrics.Metrics.counter("kafka", "records_skipped")

    def setup(self) -> None:
        self._consumers: dict[tuple[str, int], Any] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._stop = _StopFlag(self._stop_uri)

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
        for run in _batches(claimed, _SkipList(plan.skip)):
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
            | "ReadPartitions" >> beam.ParDo(_ReadPartitionFn(self._config, self._stop_uri))
        )


class GroupConsumer:
    """A consumer of the group, made on first use and kept; :meth:`close` drops it (after an error, too)."""

    def __init__(self, config: ConsumerConfig) -> None:
        self._config = config
        self._consumer: Any = None

    def consumer(self) -> Any:
        """The kept consumer, made now if there is none (it never auto-commits on close)."""
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(group_id=self._config.group_id, **self._config.consumer_settings())
        return self._consumer

    def close(self) -> None:
        """Close the kept consumer, if any."""
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            finally:
                self._consumer = None


class OffsetCommitter(GroupConsumer):
    """Commits a partition's next offset to the consumer group, never moving it backwards.

    Used by the lake sink after a batch is durable. A failed commit is logged, not raised: the
    lake, not the group, is the resume point.
    """

    def commit(self, topic: str, partition: int, next_offset: int) -> bool:
        """Commit ``next_offset`` unless the group already committed a later one."""
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        try:
            consumer = self.consumer()
            tp = TopicPartition(topic, partition)
            committed = consumer.committed(tp)
            if committed is not None and committed >= next_offset:
                return True
            consumer.commit({tp: OffsetAndMetadata(next_offset, "", -1)})
            return True
        except Exception:  # noqa: BLE001 - the lake is the resume point; retry on the next batch
            _LOG.warning("could not commit %s-%d@%d to the group", topic, partition, next_offset, exc_info=True)
            self.close()
            return False
