"""Moved to :mod:`transforms.io.kafka.security`; keeps ``from transforms.io.kafka_security import X`` working."""

from transforms.io.kafka.security import (
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    KafkaSecurity,
    KafkaSecurityError,
    read_secret,
)

__all__ = ["SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaSecurity", "KafkaSecurityError", "read_secret"]
