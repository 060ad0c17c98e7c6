"""Moved to :mod:`transforms.io.kafka.check`; this name keeps ``from transforms.io.kafka_check import X`` working."""

from transforms.io.kafka.check import (
    KafkaUnreachableError,
    OncePerInterval,
    TopicMissingError,
    check_kafka,
    missing_topic_message,
)

__all__ = ["KafkaUnreachableError", "OncePerInterval", "TopicMissingError", "check_kafka", "missing_topic_message"]
