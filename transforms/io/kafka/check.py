"""The launch-time Kafka check: one bounded metadata request, before anything is created or read.

``run`` and ``produce`` call :func:`check_kafka` first, so a broker that is down, a wrong
address, protocol or password, or a mistyped topic is refused in one line (``UserError``, exit 2)
before the lake is touched or a topic is created.

kafka-python logs every refused connection attempt (about 40 ``ECONNREFUSED`` lines in the two
seconds it spends looking for a broker) and retries a refused SASL login forever. During the check
its log lines are kept back, unless the log level is DEBUG, and the last error among them goes into
the message instead; the request is bounded by ``timeout_s``.

:func:`check_reachable` is the same check for a run's :class:`~transforms.io.kafka.config.ConsumerConfig`.

Imports no Beam (``produce`` uses it too).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from transforms.errors import UserError

if TYPE_CHECKING:
    from transforms.io.kafka.config import ConsumerConfig

__all__ = [
    "KafkaUnreachableError",
    "OncePerInterval",
    "TopicMissingError",
    "check_kafka",
    "check_reachable",
    "missing_topic_message",
]

_ADVICE = (
    "is the broker running? check --bootstrap-servers (or $WIRESTREAM_BOOTSTRAP_SERVERS), "
    "the security protocol, the TLS files and the credentials"
)


class KafkaUnreachableError(UserError, RuntimeError):
    """The brokers did not answer a metadata request in time (down, or address, protocol or credentials wrong)."""


class TopicMissingError(UserError, ValueError):
    """A topic to read does not exist on the cluster."""


def missing_topic_message(topic: str, servers: str, existing: Sequence[str]) -> str:
    """Says that ``topic`` is not among ``existing``, the closest names, and how to create it."""
    close = difflib.get_close_matches(topic, existing, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(name) for name in close)}? " if close else ""
    if not existing:
        has = "it has no topics"
    elif len(existing) <= 10:
        has = f"it has {', '.join(sorted(existing))}"
    else:
        has = f"it has {len(existing)} other topics"
    return (
        f"topic {topic!r} does not exist on {servers}; {hint}{has}. Fix --topic, or create it: "
        f"wirestream produce FILE --topic {topic} creates it and loads FILE"
    )


class OncePerInterval(logging.Filter):
    """Lets each of the Kafka client's messages through once per ``interval_s``; others pass untouched.

    A message is its logger and format string, so "Connect attempt to <broker 1> returned error
    111" repeated every few milliseconds while a broker restarts is one line a minute. Install
    it on a handler (a logger's filters do not apply to its children's records).
    """

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._shown: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show ``record``."""
        if record.name != "kafka" and not record.name.startswith("kafka."):
            return True
        key, now = (record.name, str(record.msg)), self._clock()
        if now - self._shown.get(key, -self._interval_s) < self._interval_s:
            return False
        self._shown[key] = now
        return True


class _Kept(logging.Handler):
    """Keeps the client's warnings and errors instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.kept: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # "<BrokerConnection client_id=..., host=...>: Closing connection. ..." -> what happened
        self.kept.append((record.levelno, record.getMessage().split(">: ", 1)[-1]))

    def last(self) -> str:
        """The last error the client logged (else its last warning), or ""."""
        errors = [message for level, message in self.kept if level >= logging.ERROR]
        return (errors or [message for _, message in self.kept] or [""])[-1]


@contextmanager
def _client_log_kept() -> Iterator[_Kept]:
    kept = _Kept()
    client_log = logging.getLogger("kafka")
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield kept  # DEBUG: the operator wants every line as it comes
        return
    propagate = client_log.propagate
    client_log.addHandler(kept)
    client_log.propagate = False
    try:
        yield kept
    finally:
        client_log.removeHandler(kept)
        client_log.propagate = propagate


def check_kafka(settings: Mapping[str, Any], topics: Sequence[str] = (), timeout_s: float = 30.0) -> frozenset[str]:
    """Fetch the cluster's metadata once, within ``timeout_s``; the names of its topics.

    ``settings``: keyword arguments of a kafka-python client (``bootstrap_servers`` and the
    security settings; others are ignored). Raises :class:`KafkaUnreachableError` when no broker
    answers, and :class:`TopicMissingError` for the first of ``topics`` the cluster lacks.
    """
    from kafka import KafkaClient
    from kafka.errors import KafkaError

    servers = ",".join(settings["bootstrap_servers"])
    where = f"Kafka at {servers} ({settings.get('security_protocol', 'PLAINTEXT')})"
    client = None
    with _client_log_kept() as kept:
        try:
            client = KafkaClient(**settings)  # connects to learn the broker version
            client.cluster.need_all_topic_metadata = True
            future = client.cluster.request_update()
            client.poll(future=future, timeout_ms=int(timeout_s * 1000))
            answered = future.is_done and not future.failed()
            existing = frozenset(client.cluster.topics()) if answered else frozenset()
        except OSError as error:  # a refused TLS handshake (ssl.SSLError), a socket error: they say what
            raise KafkaUnreachableError(
                f"no answer from {where}: {type(error).__name__}: {error}; {_ADVICE}"
            ) from error
        except KafkaError as error:  # NoBrokersAvailable says nothing more: the client's log says why
            said = kept.last() or f"{type(error).__name__}: {error}"
            raise KafkaUnreachableError(f"no answer from {where}: {said}; {_ADVICE}") from error
        finally:
            if client is not None:
                client.close()
    if not answered:
        said = f" (the client said: {kept.last()})" if kept.last() else ""
        raise KafkaUnreachableError(f"no metadata from {where} within {timeout_s:.0f} s{said}; {_ADVICE}")
    for topic in topics:
        if topic not in existing:
            raise TopicMissingError(missing_topic_message(topic, servers, sorted(existing)))
    return existing


def check_reachable(config: ConsumerConfig, timeout_s: float = 30.0, topics: Sequence[str] = ()) -> None:
    """Fetch cluster metadata once, or fail within ``timeout_s`` (see :func:`check_kafka`).

    kafka-python retries a refused SASL login (wrong password, unknown mechanism) or a failed TLS
    handshake forever inside ``partitions_for_topic``; this bounded request turns that into an error
    at launch, as it does a broker that is down or a topic in ``topics`` that does not exist.
    """
    check_kafka(config.consumer_settings(), topics, timeout_s)
