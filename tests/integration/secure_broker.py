"""A throw-away KRaft broker with SASL (PLAIN, SCRAM-SHA-256/512) and TLS listeners, for security tests.

Started through ``infra/kafka/kafka.sh`` with its own state folder, so the SCRAM users are created
when the log directory is formatted. Listeners (ports 195xx, away from the ordinary test broker):

* ``PLAINTEXT`` on ``base``: for producing test data and inter-broker traffic;
* ``SASL_PLAINTEXT`` on ``base + 2``: PLAIN and SCRAM;
* ``SASL_SSL`` on ``base + 3``: SCRAM and PLAIN over TLS;
* ``SSL`` on ``base + 4``: TLS only.

The broker's certificate comes from a CA made with keytool for this broker; its PEM file is ``cafile``.
Passwords are random for each broker, so a test can search output for them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.kit import KAFKA_SCRIPT

USER = "wirestream-reader"


@dataclass(frozen=True)
class SecureBroker:
    """Where the secured broker listens, and its test credentials."""

    base_port: int
    password: str
    cafile: Path

    @property
    def plaintext(self) -> str:
        return f"127.0.0.1:{self.base_port}"

    @property
    def sasl_plaintext(self) -> str:
        return f"127.0.0.1:{self.base_port + 2}"

    @property
    def sasl_ssl(self) -> str:
        return f"127.0.0.1:{self.base_port + 3}"

    @property
    def ssl(self) -> str:
        return f"127.0.0.1:{self.base_port + 4}"


def _keytool(*args: str) -> None:
    subprocess.run(["keytool", *args], check=True, capture_output=True)


def make_certificates(folder: Path, store_password: str) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1/localhost it signed: (broker PKCS12 keystore, CA PEM)."""
    ca_store, keystore = folder / "ca.p12", folder / "broker.p12"
    ca_pem, request, signed = folder / "ca.pem", folder / "broker.csr", folder / "broker.pem"
    common = ["-storetype", "PKCS12", "-storepass", store_password, "-keypass", store_password]
    _keytool("-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
             "-dname", "CN=wirestream test CA", "-ext", "bc:c", "-keystore", str(ca_store), *common)  # fmt: skip
    _keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", store_password,
             "-file", str(ca_pem))  # fmt: skip
    _keytool("-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
             "-dname", "CN=localhost", "-keystore", str(keystore), *common)  # fmt: skip
    _keytool("-certreq", "-alias", "broker", "-keystore", str(keystore), "-storepass", store_password,
             "-file", str(request))  # fmt: skip
    _keytool("-gencert", "-alias", "ca", "-keystore", str(ca_store), "-storepass", store_password, "-rfc",
             "-infile", str(request), "-outfile", str(signed), "-validity", "2",
             "-ext", "SAN=IP:127.0.0.1,DNS:localhost", "-ext", "KU=digitalSignature,keyEncipherment",
             "-ext", "EKU=serverAuth")  # fmt: skip
    _keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem), "-keystore", str(keystore),
             "-storetype", "PKCS12", "-storepass", store_password)  # fmt: skip
    _keytool("-importcert", "-alias", "broker", "-file", str(signed), "-keystore", str(keystore),
             "-storetype", "PKCS12", "-storepass", store_password)  # fmt: skip
    return keystore, ca_pem


def _listener_config(name: str, password: str) -> list[str]:
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{password}";'
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return [
        f"listener.name.{name}.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.{name}.plain.sasl.jaas.config={plain}",
        f"listener.name.{name}.scram-sha-256.sasl.jaas.config={scram}",
        f"listener.name.{name}.scram-sha-512.sasl.jaas.config={scram}",
    ]


@contextmanager
def secure_broker(state: Path, base_port: int) -> Iterator[SecureBroker]:
    """Start the broker in ``state`` (a fresh folder), yield it, stop it."""
    password = secrets.token_urlsafe(18)
    store_password = secrets.token_urlsafe(12)
    state.mkdir(parents=True, exist_ok=True)
    keystore, cafile = make_certificates(state, store_password)
    tls = [
        f"ssl.keystore.location={keystore}",
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.password={store_password}",
        f"ssl.key.password={store_password}",
    ]
    lines = [
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        *_listener_config("sasl_plaintext", password),
        *_listener_config("sasl_ssl", password),
        *(f"listener.name.sasl_ssl.{line}" for line in tls),
        *(f"listener.name.ssl.{line}" for line in tls),
    ]
    extra_config = state / "security.properties"
    extra_config.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "WIRESTREAM_KAFKA_PORT": str(base_port),
        "WIRESTREAM_KAFKA_HOME": str(state / "broker"),
        "WIRESTREAM_KAFKA_HEAP": "512m",
        "WIRESTREAM_KAFKA_EXTRA_LISTENERS": ",".join(
            f"{protocol}://127.0.0.1:{base_port + offset}"
            for protocol, offset in (("SASL_PLAINTEXT", 2), ("SASL_SSL", 3), ("SSL", 4))
        ),
        "WIRESTREAM_KAFKA_EXTRA_CONFIG": str(extra_config),
        "WIRESTREAM_KAFKA_FORMAT_ARGS": " ".join(
            f"--add-scram SCRAM-SHA-{bits}=[name={USER},password={password}]" for bits in (256, 512)
        ),
    }
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True, env=env)
    try:
        yield SecureBroker(base_port, password, cafile)
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=True, env=env)
