"""The run's consumer group: a kept group consumer, and the offset commits the lake sink makes.

Offsets are committed only after a batch's files are durable in the lake, and never move
backwards. The lake, not the group, is the resume point (see :func:`transforms.io.kafka.plan.resume_plan`),
so a failed or stale commit is logged and retried with the next batch, never raised.
Imports no Beam.
"""

from __future__ import annotations

import logging
from typing import Any

from transforms.io.kafka.config import ConsumerConfig

__all__ = ["GroupConsumer", "OffsetCommitter"]

_LOG = logging.getLogger(__name__)


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
