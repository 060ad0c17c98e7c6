"""Kafka over SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and TLS, against a real broker with those listeners.

The broker (``secure_broker.py``) also has a plaintext listener, used only to produce the test
records and to read the group's commits; the pipeline and the consumers under test use the
secured listeners alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.produce import produce
from tests.conftest import worker_port_offset
from tests.integration.helpers import assert_each_once, committed_offsets, wirestream
from tests.integration.secure_broker import USER, SecureBroker, secure_broker
from transforms.io.kafka import ConsumerConfig, KafkaUnreachableError, check_reachable, plan_partitions
from transforms.io.kafka.security import KafkaSecurity

pytestmark = pytest.mark.integration

BASE_PORT = 19520 + worker_port_offset(os.environ)  # and the next four; a pytest-xdist worker's own
PASSWORD_VARIABLE = "WIRESTREAM_TEST_KAFKA_PASSWORD"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with secure_broker(tmp_path_factory.mktemp("secure-kafka"), BASE_PORT) as running:
        yield running


@pytest.fixture(scope="module")
def produced(broker: SecureBroker) -> tuple[str, list[tuple[int, int]]]:
    topic = f"secure-{uuid.uuid4().hex[:10]}"
    values = [
        json.dumps({"url": f"https://secure.example/{i}", "body": f"Item {i}: the port of Hamburg reopened."}).encode()
        for i in range(9)
    ]
    values[3] = b"{broken"
    placed = produce(values, broker.plaintext, topic, partitions=3, keys=[b"k%d" % (i % 3) for i in range(9)])
    return topic, placed


def _config(
    broker: SecureBroker, protocol: str, mechanism: str | None, password_file: Path | None = None
) -> ConsumerConfig:
    address = {"SASL_PLAINTEXT": broker.sasl_plaintext, "SASL_SSL": broker.sasl_ssl, "SSL": broker.ssl}[protocol]
    sasl = {}
    if mechanism:
        where = {"sasl_password_env": PASSWORD_VARIABLE}
        if password_file:
            where = {"sasl_password_file": str(password_file)}
        sasl = {"sasl_mechanism": mechanism, "sasl_username": USER, **where}
    tls = {"ssl_cafile": str(broker.cafile)} if "SSL" in protocol else {}
    return ConsumerConfig(
        bootstrap_servers=address,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        security=KafkaSecurity(protocol=protocol, **sasl, **tls),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_SSL", "PLAIN"),
        ("SSL", None),
    ],
)
def test_consumer_reads_every_record_over_the_secured_listener(
    broker: SecureBroker,
    produced: tuple[str, list[tuple[int, int]]],
    protocol: str,
    mechanism: str | None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    topic, placed = produced
    password_file = None
    if mechanism == "SCRAM-SHA-512":  # one of them reads the password from a file instead
        password_file = tmp_path / "kafka-password"
        password_file.write_text(broker.password + "\n")
    else:
        monkeypatch.setenv(PASSWORD_VARIABLE, broker.password)
    config = _config(broker, protocol, mechanism, password_file)

    plans = plan_partitions(config, [topic], {}, until_caught_up=True)
    assert sorted((plan.partition, plan.start_offset, plan.stop_offset) for plan in plans) == [
        (p, 0, sum(1 for q, _ in placed if q == p)) for p in range(3)
    ]
    consumer = KafkaConsumer(group_id=None, **config.consumer_settings())
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 30
        while len(seen) < len(placed) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                seen.update((record.partition, record.offset) for record in records)
    finally:
        consumer.close(autocommit=False)
    assert seen == set(placed)


@pytest.mark.parametrize(("protocol", "mechanism"), [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN")])
def test_a_wrong_password_fails_at_launch_instead_of_hanging(
    broker: SecureBroker, protocol: str, mechanism: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "not-the-password")
    started = time.monotonic()
    with pytest.raises(KafkaUnreachableError, match="credentials"):
        check_reachable(_config(broker, protocol, mechanism), timeout_s=5)
    assert time.monotonic() - started < 20


def test_tls_refuses_a_broker_its_ca_file_does_not_trust(broker: SecureBroker, tmp_path: Path) -> None:
    from tests.integration.secure_broker import make_certificates

    _, other_ca = make_certificates(tmp_path, "another-store-password")
    config = ConsumerConfig(
        bootstrap_servers=broker.ssl, security=KafkaSecurity(protocol="SSL", ssl_cafile=str(other_ca))
    )
    with pytest.raises(KafkaUnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
        check_reachable(config, timeout_s=5)


def test_pipeline_over_sasl_ssl_scram_accounts_for_everything_and_never_shows_the_password(
    broker: SecureBroker, produced: tuple[str, list[tuple[int, int]]], prism: Path, tmp_path: Path
) -> None:
    topic, placed = produced
    lake = tmp_path / "lake"
    result = wirestream(
        "run",
        f"--lake={lake}",
        f"--topic={topic}",
        f"--bootstrap-servers={broker.sasl_ssl}",
        f"--group-id=g-{topic}",
        "--until-caught-up",
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-mechanism=SCRAM-SHA-512",
        f"--kafka-sasl-username={USER}",
        f"--kafka-sasl-password-env={PASSWORD_VARIABLE}",
        f"--kafka-ssl-cafile={broker.cafile}",
        env={PASSWORD_VARIABLE: broker.password, "WIRESTREAM_LOG_LEVEL": "DEBUG"},
    )
    assert "read (records accounted for this run): 9" in result.stdout
    # The progress display asked the secured listener for the group's offsets too.
    final = [line for line in result.stderr.splitlines() if " event=progress final=true " in line]
    assert (
        len(final) == 1
        and " records=9 " in final[0]
        and final[0].endswith(f" lag=0 lag.{topic}.0=0 lag.{topic}.1=0 lag.{topic}.2=0")
    ), final
    assert_each_once(lake, {(topic, partition, offset) for partition, offset in placed})
    # The offsets were committed over the secured listener; read them back over the plaintext one.
    ends = {p: max((o + 1 for q, o in placed if q == p), default=None) for p in range(3)}  # None: nothing read
    assert committed_offsets(broker.plaintext, topic) == ends
    assert broker.password not in result.stdout + result.stderr
    assert "sasl_plain_password" not in result.stdout + result.stderr


def _produce_over_sasl(
    broker: SecureBroker, mechanism: str, topic: str, count: int, folder: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """``wirestream produce`` of ``count`` small records over the SASL listener, the password by environment."""
    lines = folder / "articles.jsonl"
    lines.write_text(
        "".join(json.dumps({"url": f"https://p.example/{i}", "body": "text"}) + "\n" for i in range(count))
    )
    return wirestream(
        "produce",
        str(lines),
        f"--topic={topic}",
        f"--bootstrap-servers={broker.sasl_plaintext}",
        "--kafka-security-protocol=SASL_PLAINTEXT",
        f"--kafka-sasl-mechanism={mechanism}",
        f"--kafka-sasl-username={USER}",
        f"--kafka-sasl-password-env={PASSWORD_VARIABLE}",
        env={PASSWORD_VARIABLE: broker.password, **env},
    )


def test_produce_command_over_sasl_scram(broker: SecureBroker, tmp_path: Path) -> None:
    topic = f"secure-produce-{uuid.uuid4().hex[:8]}"
    result = _produce_over_sasl(broker, "SCRAM-SHA-256", topic, 5, tmp_path)
    assert f"produced 5 records to {topic}" in result.stdout
    plans = plan_partitions(ConsumerConfig(bootstrap_servers=broker.plaintext), [topic], {}, until_caught_up=True)
    assert sum(plan.stop_offset or 0 for plan in plans) == 5
    assert broker.password not in result.stdout + result.stderr


def _password_shown(password: str, output: str) -> list[str]:
    """The forms of ``password`` found in ``output``: whole, or any 8-character piece of it (a cut repr)."""
    pieces = {password[i : i + 8] for i in range(len(password) - 7)}
    return sorted(piece for piece in {password, *pieces} if piece in output)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_produce_at_debug_logs_every_sasl_exchange_redacted(
    broker: SecureBroker, mechanism: str, tmp_path: Path
) -> None:
    topic = f"secure-debug-{uuid.uuid4().hex[:8]}"
    result = _produce_over_sasl(broker, mechanism, topic, 3, tmp_path, WIRESTREAM_LOG_LEVEL="DEBUG")
    output = result.stdout + result.stderr
    assert f"produced 3 records to {topic}" in result.stdout
    # The client logged its whole session, the authentication requests included (PLAIN's carries the
    # password, SCRAM's the proof), each with its bytes redacted.
    assert f"Authenticated as {USER} via SASL / {mechanism}".lower() in output.lower()  # kafka-python says "Plain"
    exchanges = re.findall(r"SaslAuthenticateRequest_v\d\(auth_bytes=(b'[^']*')\)", output)
    assert exchanges and set(exchanges) == {"b'***'"}, exchanges
    assert _password_shown(broker.password, output) == []


def test_pipeline_at_debug_over_sasl_plain_never_logs_the_password(
    broker: SecureBroker, produced: tuple[str, list[tuple[int, int]]], prism: Path, tmp_path: Path
) -> None:
    """The case that logged the password 38 times: a run at DEBUG with PLAIN, launcher and workers."""
    topic, placed = produced
    result = wirestream(
        "run",
        f"--lake={tmp_path / 'lake'}",
        f"--topic={topic}",
        f"--bootstrap-servers={broker.sasl_plaintext}",
        f"--group-id=g-plain-{topic}",
        "--until-caught-up",
        "--kafka-security-protocol=SASL_PLAINTEXT",
        "--kafka-sasl-mechanism=PLAIN",
        f"--kafka-sasl-username={USER}",
        f"--kafka-sasl-password-env={PASSWORD_VARIABLE}",
        env={PASSWORD_VARIABLE: broker.password, "WIRESTREAM_LOG_LEVEL": "DEBUG"},
    )
    output = result.stdout + result.stderr
    assert f"read (records accounted for this run): {len(placed)}" in result.stdout
    redacted = output.count("SaslAuthenticateRequest_v0(auth_bytes=b'***')")
    assert redacted >= 10, redacted  # every connection of the planner, the source, the committer and the progress
    assert "Sending username and password in the clear" in output
    assert _password_shown(broker.password, output) == []
