"""Secrets never reach a log line: the redaction filter on the forms they take in real records."""

from __future__ import annotations

import io
import json
import logging
import secrets
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from kafka.protocol.sasl_authenticate import SaslAuthenticateRequest, SaslAuthenticateResponse
from kafka.sasl.scram import ScramClient

from transforms.io import log_redaction
from transforms.io.kafka.security import KafkaSecurity, KafkaSecurityError, read_secret
from transforms.io.log_redaction import MASK, Redactor, RedactSecrets

USER = "wirestream-reader"


@pytest.fixture
def password() -> str:
    return "pw-" + secrets.token_urlsafe(12)


def _log(filter_: RedactSecrets, emit) -> str:  # type: ignore[no-untyped-def]
    """What a handler with ``filter_`` writes when ``emit(logger)`` logs (at DEBUG, to a private handler)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(filter_)
    # A new logger each time: pytest attaches its capture handlers to the non-propagating ones it finds.
    logger = logging.getLogger(f"test_log_redaction.{uuid.uuid4().hex}")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.fixture
def knowing(password: str) -> Iterator[RedactSecrets]:
    yield RedactSecrets(Redactor().with_secrets([password]))


def test_plain_authentication_request_as_kafka_python_logs_it(knowing: RedactSecrets, password: str) -> None:
    request = SaslAuthenticateRequest[0](auth_bytes=f"{USER}\x00{USER}\x00{password}".encode())
    written = _log(knowing, lambda log: log.debug("%s: Request %d (timeout_ms %s): %s", "<conn>", 3, 30000, request))
    assert written == "DEBUG: <conn>: Request 3 (timeout_ms 30000): " + (
        f"SaslAuthenticateRequest_v0(auth_bytes=b'{MASK}')\n"
    )


def test_patterns_alone_redact_a_plain_exchange_whose_secret_is_unknown(password: str) -> None:
    request = SaslAuthenticateRequest[0](auth_bytes=f"{USER}\x00{USER}\x00{password}".encode())
    written = _log(RedactSecrets(), lambda log: log.debug("Sending request %s", request))
    assert password not in written and f"auth_bytes=b'{MASK}'" in written
    # A PLAIN message outside a request repr: the password after the second NUL goes.
    raw = _log(RedactSecrets(), lambda log: log.debug("sent %r", f"\x00{USER}\x00{password}".encode()))
    assert raw == f"DEBUG: sent b'\\x00{USER}\\x00{MASK}'\n"


def test_a_password_cut_by_kafka_pythons_100_byte_repr_limit_still_goes(password: str) -> None:
    long_user = "u" * 40
    request = SaslAuthenticateRequest[0](auth_bytes=f"{long_user}\x00{long_user}\x00{password}".encode())
    shown = repr(request)
    assert password not in shown and password[:5] in shown  # kafka-python shows only the start of it
    written = _log(RedactSecrets(Redactor().with_secrets([password])), lambda log: log.debug("%s", request))
    assert password[:5] not in written and written.endswith(f"(auth_bytes=b'{MASK}')\n")


def test_scram_messages_both_ways(knowing: RedactSecrets, password: str) -> None:
    client = ScramClient(USER, password, "SCRAM-SHA-256")
    first = client.first_message()
    server_first = client.nonce + b"server"
    client.process_server_first_message(b"r=" + server_first + b",s=c2FsdA==,i=4096")
    final = client.final_message()
    lines = [
        SaslAuthenticateRequest[0](auth_bytes=first),
        SaslAuthenticateResponse[0](error_code=0, error_message="", auth_bytes=b"r=" + server_first + b",s=c2FsdA=="),
        SaslAuthenticateRequest[0](auth_bytes=final),
        SaslAuthenticateResponse[0](error_code=0, error_message="", auth_bytes=b""),
    ]
    written = _log(knowing, lambda log: [log.debug("%s", line) for line in lines])
    proof = final.split(b",p=")[1].decode()
    assert proof[:12] not in written and "c2FsdA" not in written and client.nonce.decode() not in written
    assert written.count(f"auth_bytes=b'{MASK}'") == 3 and "auth_bytes=b'')" in written  # an empty one is kept


@pytest.mark.parametrize("secret", ["pässwörd-ünïcode", 'it\'s "quoted" \\ and back', "a%b&c=d e+f/"])
def test_every_form_of_a_known_secret(secret: str) -> None:
    filter_ = RedactSecrets(Redactor().with_secrets([secret]))
    forms = {
        "str": secret,
        "str repr": repr(secret),
        "str repr in a tuple": repr((secret, "x'y\"")),
        "bytes repr": repr(secret.encode()),
        "bytes repr, both quotes around": repr(b"'\"" + secret.encode()),
        "json": json.dumps({"k": secret}),
        "json, not ascii": json.dumps({"k": secret}, ensure_ascii=False),
        "json of a bytes repr": json.dumps(repr(secret.encode())),
        "percent-encoded": urllib.parse.quote(secret, safe=""),
        "form-encoded": urllib.parse.quote_plus(secret),
    }
    for form, text in forms.items():
        written = _log(filter_, lambda log, text=text: log.warning("value %s end", text))
        assert MASK in written, form
        for fragment in (secret, *(word for word in secret.split() if len(word) > 3)):
            assert fragment not in written, (form, written)


def test_arguments_of_every_shape(knowing: RedactSecrets, password: str) -> None:
    written = _log(
        knowing,
        lambda log: [
            log.info("tuple %s %r", "u", password.encode()),
            log.info("mapping %(user)s %(pw)s", {"user": "u", "pw": password}),
            log.info({"sasl_plain_password": password}),  # a non-string message
            log.info("wrong arity %d", password),  # arguments that do not fit: shown, redacted, no crash
        ],
    )
    assert password not in written and written.count(MASK) == 4, written
    assert "wrong arity" in written


def test_exceptions_carrying_the_secret(knowing: RedactSecrets, password: str) -> None:
    records: list[logging.LogRecord] = []

    def emit(log: logging.Logger) -> None:
        log.addFilter(lambda record: records.append(record) or True)
        try:
            raise KafkaSecurityError(f"broker refused {USER} with {password}")
        except KafkaSecurityError:
            log.exception("login failed")
        log.error("login failed: %s", ValueError(password), stack_info=True)

    written = _log(knowing, emit)
    assert password not in written
    assert f"KafkaSecurityError: broker refused {USER} with {MASK}" in written and "Traceback" in written
    assert f"login failed: {MASK}" in written and "Stack (most recent call last)" in written
    # No handler after this one can format the original exception again.
    assert records[0].exc_info is None and records[0].exc_text and password not in records[0].exc_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{'sasl_plain_password': 'a b', 'ssl_password': \"c'd\"}",
            f"{{'sasl_plain_password': '{MASK}', 'ssl_password': \"{MASK}\"}}",
        ),
        (
            "--kafka-sasl-password=hunter2 --kafka-sasl-password-env=PW_VAR",
            f"--kafka-sasl-password={MASK} --kafka-sasl-password-env=PW_VAR",
        ),
        ("password: hunter2, next", f"password: {MASK}, next"),
        ('"client_secret":"s3"', f'"client_secret":"{MASK}"'),
        ("ssl_password=b'k'", f"ssl_password=b'{MASK}'"),
        ("Sending username and password in the clear", "Sending username and password in the clear"),
        ("the password file /run/secrets/kafka is empty", "the password file /run/secrets/kafka is empty"),
        ("auth_bytes=b''", "auth_bytes=b''"),
        ("auth_bytes=b'n,,n=user,r=abc", f"auth_bytes=b'{MASK}'"),  # cut short, no closing quote
        ('auth_bytes=b"it\'s"', f'auth_bytes=b"{MASK}"'),
    ],
)
def test_pattern_forms(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_read_secret_protects_what_it_read_on_the_root_handlers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from_env, from_file = "env-" + secrets.token_urlsafe(12), "file-" + secrets.token_urlsafe(12)
    (tmp_path / "pw").write_text(from_file + "\n")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)  # a handler added after the filter was first installed
    try:
        settings = KafkaSecurity(
            protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username=USER, sasl_password_env="PW"
        ).client_settings({"PW": from_env})
        assert settings["sasl_plain_password"] == from_env  # the client still gets the real value
        assert read_secret(None, str(tmp_path / "pw")) == from_file
        logging.getLogger("kafka.conn").error("auth with %s then %s", from_env, from_file)
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == f"auth with {MASK} then {MASK}\n"
    assert log_redaction.redact(f"x{from_env}y") == f"x{MASK}y"
