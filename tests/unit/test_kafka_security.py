"""Kafka security settings: validation, where the password comes from, and that it never enters the job graph."""

from __future__ import annotations

import base64
import binascii
import bz2
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

from pipelines.ingest import build, consumer_config
from pipelines.options import IngestOptions, refuse_secret_options
from transforms.errors import UserError
from transforms.io.kafka import PartitionPlan
from transforms.io.kafka.security import KafkaSecurity, KafkaSecurityError, read_secret

SECRET = "s3cret-Kafka-password-7f1c2b"


def test_password_from_environment_variable() -> None:
    assert read_secret("KAFKA_PASSWORD", None, {"KAFKA_PASSWORD": SECRET}) == SECRET


def test_password_from_file_drops_one_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n")
    assert read_secret(None, str(path), {}) == SECRET
    path.write_text(SECRET + " \r\n")
    assert read_secret(None, str(path), {}) == SECRET + " "


@pytest.mark.parametrize(
    ("env_name", "file_name", "environ", "message"),
    [
        ("MISSING", None, {}, "MISSING is not set"),
        ("EMPTY", None, {"EMPTY": ""}, "EMPTY is not set or empty"),
        (None, "nowhere/password", {}, "cannot read the password file"),
        (None, None, {}, "exactly one"),
        ("A", "b", {"A": SECRET}, "exactly one"),
    ],
)
def test_unreadable_password_errors_name_the_source_not_the_value(
    env_name: str | None, file_name: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(KafkaSecurityError, match=message) as error:
        read_secret(env_name, file_name, environ)
    assert SECRET not in str(error.value)


def test_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("\n")
    with pytest.raises(KafkaSecurityError, match="is empty"):
        read_secret(None, str(tmp_path / "password"), {})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"protocol": "SASL_PLAIN"}, "security protocol must be one of"),
        ({"protocol": "SASL_SSL", "sasl_username": "u", "sasl_password_env": "P"}, "needs a SASL mechanism"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_password_env": "P"}, "user name"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"}, "exactly one"),
        ({"protocol": "PLAINTEXT", "sasl_username": "u"}, "SASL settings given"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "sasl_username": "u"}, "SASL mechanism"),
        ({"protocol": "PLAINTEXT", "ssl_cafile": "ca.pem"}, "TLS files given"),
        ({"protocol": "SSL", "ssl_certfile": "client.pem"}, "both a certificate file and a key file"),
    ],
)
def test_inconsistent_settings_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message):
        KafkaSecurity(**settings)  # type: ignore[arg-type]


def test_client_settings_read_the_password_only_when_asked() -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="reader",
        sasl_password_env="KAFKA_PASSWORD",
        ssl_cafile="/etc/kafka/ca.pem",
    )
    assert SECRET not in repr(security)
    assert security.client_settings({"KAFKA_PASSWORD": SECRET}) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "reader",
        "sasl_plain_password": SECRET,
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/kafka/ca.pem",
    }
    assert KafkaSecurity().client_settings({}) == {"security_protocol": "PLAINTEXT"}


# The job graph ------------------------------------------------------------------------------------

SECURE_ARGS = [
    "--lake=/tmp/lake",
    "--topic=articles",
    "--kafka-security-protocol=SASL_SSL",
    "--kafka-sasl-mechanism=SCRAM-SHA-256",
    "--kafka-sasl-username=reader",
    "--kafka-sasl-password-env=WIRESTREAM_TEST_KAFKA_PASSWORD",
    "--kafka-ssl-cafile=/etc/kafka/ca.pem",
]


def _decoded(blob: bytes) -> Iterator[bytes]:
    """The blob, and what it decodes to: Beam 2.75 stores pickled DoFns as base64 of bz2 (or zlib)."""
    yield blob
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return
    yield raw
    for decompress in (bz2.decompress, zlib.decompress):
        try:
            plain = decompress(raw)
        except (OSError, ValueError, zlib.error):
            continue
        yield plain


def _graph_blobs(proto: beam_runner_api_pb2.Pipeline) -> Iterator[bytes]:
    yield proto.SerializeToString()
    for transform in proto.components.transforms.values():
        yield from _decoded(transform.spec.payload)
        if transform.spec.urn == "beam:transform:pardo:v1":
            pardo = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
            yield from _decoded(pardo.do_fn.payload)
    for coder in proto.components.coders.values():
        yield from _decoded(coder.spec.payload)


def _graph_contains(proto: beam_runner_api_pb2.Pipeline, text: str) -> bool:
    return any(text.encode() in blob for blob in _graph_blobs(proto))


def _secure_pipeline(extra: list[str]) -> tuple[beam.Pipeline, PipelineOptions]:
    options = PipelineOptions([*SECURE_ARGS, *extra])
    ingest = options.view_as(IngestOptions)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, ingest, [PartitionPlan("articles", 0, 0, 10)])
    return pipeline, options


def test_the_password_is_in_neither_the_job_graph_nor_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRESTREAM_TEST_KAFKA_PASSWORD", SECRET)
    pipeline, options = _secure_pipeline([])
    config = consumer_config(options.view_as(IngestOptions))
    assert config.consumer_settings()["sasl_plain_password"] == SECRET  # the launcher can read it

    proto = pipeline.to_runner_api()
    assert _graph_contains(proto, "WIRESTREAM_TEST_KAFKA_PASSWORD")  # the variable's name travels...
    assert not _graph_contains(proto, SECRET)  # ...its value does not
    assert SECRET not in json.dumps(options.get_all_options(retain_unknown_options=True), default=str)


def test_the_graph_check_would_see_a_password_captured_by_a_dofn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRESTREAM_TEST_KAFKA_PASSWORD", SECRET)
    pipeline, _ = _secure_pipeline([])
    leaked = {"password": SECRET}
    _ = pipeline | "Leak" >> beam.Create([1]) | "CapturesSecret" >> beam.Map(lambda x: (x, leaked["password"]))
    assert _graph_contains(pipeline.to_runner_api(), SECRET)


@pytest.mark.parametrize("flag", ["--kafka-sasl-password", "--kafka_sasl_password", "--kafka-ssl-password"])
def test_a_password_given_as_an_option_is_refused_before_it_can_reach_the_runner(flag: str) -> None:
    """Beam would keep an unknown option and send it to the job server: refuse it, without echoing it."""
    with pytest.raises(UserError) as error:
        refuse_secret_options([*SECURE_ARGS, f"{flag}={SECRET}"])
    assert SECRET not in str(error.value) and "--kafka-sasl-password-env" in str(error.value)
    with pytest.raises(UserError):
        refuse_secret_options([*SECURE_ARGS, flag, SECRET])
    refuse_secret_options(SECURE_ARGS)  # the -env / -file forms are fine
