"""``wirestream produce``: load a JSON-lines file into Kafka, one record per line, as raw bytes.

Lines are sent exactly as they are (a broken line stays broken: that is how the pipeline's dead
letters are exercised). The key is the message's ``id`` or ``url`` when the line is a JSON object
that has one. The producer is idempotent with ``acks=all``, so a retry never doubles a record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from transforms.errors import UserError
from transforms.io.kafka.check import check_kafka
from transforms.io.kafka.security import KafkaSecurity


def ensure_topic(
    bootstrap_servers: str, topic: str, partitions: int, security: KafkaSecurity = KafkaSecurity()
) -> None:
    """Create ``topic`` with ``partitions`` partitions unless it exists."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","), client_id="wirestream-admin", **security.client_settings()
    )
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def _key(line: bytes) -> bytes | None:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict):
        key = message.get("id") or message.get("url")
        if isinstance(key, str):
            return key.encode("utf-8", "backslashreplace")  # a lone surrogate ("\\udfff") has no UTF-8 form
    return None


def read_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a file, as bytes without their line break."""
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def produce(
    values: Iterable[bytes | None],
    bootstrap_servers: str,
    topic: str,
    partitions: int = 3,
    keys: Iterable[bytes | None] | None = None,
    security: KafkaSecurity = KafkaSecurity(),
    timestamp_ms: int | None = None,
) -> list[tuple[int, int]]:
    """Send ``values`` to ``topic``; the ``(partition, offset)`` each one got, in order.

    ``timestamp_ms`` sets every record's Kafka timestamp (the pipeline's event time); by default
    the producer stamps each with the time it is sent.
    """
    from kafka import KafkaProducer

    ensure_topic(bootstrap_servers, topic, partitions, security)
    producer = KafkaProducer(
        **security.client_settings(),
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="wirestream-produce",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
    )
    try:
        values = list(values)
        key_list = list(keys) if keys is not None else [_key(v) if v is not None else None for v in values]
        futures = [
            producer.send(topic, value=value, key=key, timestamp_ms=timestamp_ms)
            for value, key in zip(values, key_list, strict=True)
        ]
        producer.flush()
        return [(meta.partition, meta.offset) for meta in (future.get(timeout=60) for future in futures)]
    finally:
        producer.close()


def produce_file(
    path: Path, bootstrap_servers: str, topic: str, partitions: int = 3, security: KafkaSecurity = KafkaSecurity()
) -> list[tuple[int, int]]:
    """Send every non-empty line of ``path`` as one record.

    Refuses (:class:`~transforms.errors.UserError`) a file it cannot read, then a broker that does
    not answer, before any topic is created.
    """
    try:
        path.open("rb").close()
    except OSError as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else error.strerror or str(error)
        raise UserError(f"cannot read {path}: {reason}; give a JSON-lines file, one record per line") from error
    settings = {**security.client_settings(), "bootstrap_servers": bootstrap_servers.split(",")}
    check_kafka(settings, timeout_s=30.0)
    return produce(read_lines(path), bootstrap_servers, topic, partitions, security=security)
