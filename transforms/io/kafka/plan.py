"""What a run reads from each topic-partition: :class:`PartitionPlan`, and how it is planned from the lake.

The launcher plans each topic-partition (:func:`plan_partitions`): where to start, where to stop
(``--until-caught-up``: the end offsets seen at start; otherwise never), and which offset ranges to
skip because the lake already holds them (:func:`resume_plan`: the lake wins over the group's
commit). Each plan becomes one element of the source (:mod:`transforms.io.kafka.source`).

Invariants
    * A plan's ``skip`` ranges are sorted, disjoint and lie at or after its start; a run of
      records (:func:`unskipped_runs`) never straddles one, so a batch is a contiguous, complete
      range of one partition.

Imports no Beam (the progress monitor and the launcher's pre-flight use it): the source turns a
plan into its restriction (``[start_offset, stop_offset)``, or up to :data:`UNBOUNDED`).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms.io.kafka.check import TopicMissingError, check_reachable, missing_topic_message
from transforms.io.kafka.config import ConsumerConfig
from transforms.io.offsets import first_uncovered, gapless_reach, merge_ranges

__all__ = ["UNBOUNDED", "PartitionPlan", "SkipList", "plan_partitions", "resume_plan", "unskipped_runs"]

UNBOUNDED = 2**63 - 1
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class PartitionPlan:
    """What to read from one topic-partition: ``[start_offset, stop_offset)`` minus ``skip``."""

    topic: str
    partition: int
    start_offset: int
    stop_offset: int | None
    skip: tuple[tuple[int, int], ...] = field(default=())


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


class SkipList:
    """Membership test for the skipped ``[first, end)`` ranges of a plan."""

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._firsts = [first for first, _ in ranges]
        self._ranges = list(ranges)

    def __contains__(self, offset: int) -> bool:
        index = bisect.bisect_right(self._firsts, offset) - 1
        return index >= 0 and self._ranges[index][0] <= offset < self._ranges[index][1]


def unskipped_runs(records: Sequence[Any], skip: SkipList) -> Iterator[list[Any]]:
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
