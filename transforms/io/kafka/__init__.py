"""Kafka IO: the source the pipeline reads, and what the launcher asks the brokers before it starts.

One job per module:

``config``    :class:`ConsumerConfig`, the clients' settings (no secrets; picklable)
``security``  :class:`KafkaSecurity`: TLS and SASL, holding where the password is, never the password
``check``     the launch-time check: one bounded metadata request (:func:`check_kafka`, :func:`check_reachable`)
``plan``      :class:`PartitionPlan` and :func:`plan_partitions`: what each partition reads, from what the lake holds
``group``     the consumer group: :class:`GroupConsumer`, :class:`OffsetCommitter` (used by the lake sink)
``source``    :class:`ReadArticles`, the unbounded splittable DoFn over kafka-python (the only Beam module)

Every module but ``source`` imports no Beam, and neither does this package: ``ReadArticles``
(and the other names of ``source``) are loaded on first use, so the launcher's pre-flight, the
progress monitor and the read side can import ``transforms.io.kafka`` without loading Beam.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transforms.io.kafka.check import KafkaUnreachableError, TopicMissingError, check_kafka, check_reachable
from transforms.io.kafka.config import ConsumerConfig
from transforms.io.kafka.group import GroupConsumer, OffsetCommitter
from transforms.io.kafka.plan import UNBOUNDED, PartitionPlan, plan_partitions, resume_plan
from transforms.io.kafka.security import KafkaSecurity
from transforms.io.offsets import first_uncovered, gapless_reach, merge_ranges

if TYPE_CHECKING:
    from transforms.io.kafka.source import ReadArticles

__all__ = [
    "UNBOUNDED",
    "ConsumerConfig",
    "GroupConsumer",
    "KafkaSecurity",
    "KafkaUnreachableError",
    "OffsetCommitter",
    "PartitionPlan",
    "ReadArticles",
    "TopicMissingError",
    "check_kafka",
    "check_reachable",
    "first_uncovered",
    "gapless_reach",
    "merge_ranges",
    "plan_partitions",
    "resume_plan",
]

_FROM_SOURCE = frozenset({"ReadArticles"})


def __getattr__(name: str) -> Any:
    """Load the Beam source only when one of its names is asked for."""
    if name in _FROM_SOURCE:
        from transforms.io.kafka import source

        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
