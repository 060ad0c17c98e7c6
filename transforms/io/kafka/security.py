"""How the Kafka clients authenticate (SASL PLAIN / SCRAM) and encrypt (TLS), without carrying secrets.

:class:`KafkaSecurity` is small, picklable configuration: the security protocol, the SASL mechanism
and user name, and *where* the password is (the name of an environment variable, or a file path),
never the password itself. The password is read by :func:`read_secret` only where a Kafka client is
created (on the launcher for planning, on each worker when its consumer is built), so it never
enters the pipeline options, the pickled DoFns or the job graph. Each value read is handed to
:func:`~transforms.io.log_redaction.protect` in the process that read it, so no log line of that
process shows it, the Kafka client's DEBUG lines included.

This is the one deliberate exception to "transforms never read the environment": a secret must not
travel through the job graph, so its *name* does and its value is read where it is used. On a
cluster, make the variable or file exist on every worker (a Kubernetes Secret mounted as a file or
exposed as an environment variable of the TaskManager or SDK harness containers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transforms.errors import UserError
from transforms.io.log_redaction import protect

__all__ = ["SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaSecurity", "KafkaSecurityError", "read_secret"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(UserError, ValueError):
    """The security settings are inconsistent, or the secret they point at cannot be read."""


def read_secret(env_name: str | None, file_path: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The secret in environment variable ``env_name`` or in file ``file_path`` (one trailing newline dropped).

    Errors name the variable or file, never the value. The value is redacted from this process's logs from now on.
    """
    if (env_name is None) == (file_path is None):
        raise KafkaSecurityError("give exactly one of a password environment variable or a password file")
    if env_name is not None:
        value = environ.get(env_name)
        if not value:
            raise KafkaSecurityError(f"environment variable {env_name} is not set or empty on this machine")
        protect(value)
        return value
    assert file_path is not None
    try:
        value = Path(file_path).read_text("utf-8")
    except OSError as error:
        raise KafkaSecurityError(f"cannot read the password file {file_path}: {error.strerror}") from None
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise KafkaSecurityError(f"the password file {file_path} is empty")
    protect(value)
    return value


@dataclass(frozen=True)
class KafkaSecurity:
    """Security settings for kafka-python clients; holds where the password is, not the password."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise KafkaSecurityError(f"security protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
        uses_sasl = self.protocol.startswith("SASL_")
        if uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(f"{self.protocol} needs a SASL mechanism: {', '.join(SASL_MECHANISMS)}")
            if not self.sasl_username:
                raise KafkaSecurityError(f"{self.protocol} needs a SASL user name")
            if (self.sasl_password_env is None) == (self.sasl_password_file is None):
                raise KafkaSecurityError(
                    f"{self.protocol} needs exactly one of a password environment variable or a password file"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password_env or self.sasl_password_file:
            raise KafkaSecurityError(f"SASL settings given but the security protocol is {self.protocol}")
        uses_tls = self.protocol in ("SSL", "SASL_SSL")
        if not uses_tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise KafkaSecurityError(f"TLS files given but the security protocol is {self.protocol}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise KafkaSecurityError("a client certificate needs both a certificate file and a key file")

    def client_settings(self, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients; reads the password now, where the client is made."""
        settings: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL_"):
            settings["sasl_mechanism"] = self.sasl_mechanism
            settings["sasl_plain_username"] = self.sasl_username
            settings["sasl_plain_password"] = read_secret(self.sasl_password_env, self.sasl_password_file, environ)
        if self.protocol in ("SSL", "SASL_SSL"):
            settings["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name):
                    settings[name] = getattr(self, name)
        return settings
