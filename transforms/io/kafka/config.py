"""How the Kafka clients of a run are configured: :class:`ConsumerConfig`, shared by every reader and committer.

Small and picklable: it travels in the job graph, so it holds no secret (``security`` says where
the password is; :meth:`ConsumerConfig.consumer_settings` reads it only where a client is made).
Imports no Beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transforms.io.kafka.security import KafkaSecurity

__all__ = [
    "DEFAULT_BOOTSTRAP_SERVERS",
    "DEFAULT_GROUP_ID",
    "DEFAULT_MAX_BATCH_RECORDS",
    "DEFAULT_MAX_RECORD_BYTES",
    "ConsumerConfig",
]

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:19092"
DEFAULT_GROUP_ID = "wirestream"
DEFAULT_MAX_RECORD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_BATCH_RECORDS = 100


@dataclass(frozen=True)
class ConsumerConfig:
    """How to reach Kafka and how much to read at once (small and picklable; no secrets, see ``security``)."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    group_id: str = DEFAULT_GROUP_ID
    client_id: str = "wirestream"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
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
