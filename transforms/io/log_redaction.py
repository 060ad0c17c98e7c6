r"""Keep Kafka secrets out of every log record of this process, at every level.

A :class:`RedactSecrets` filter sits on the root logger's handlers, so it sees the records of every
logger (ours, Beam's, kafka-python's, the Prism lines Beam relays) just before they are written.
It rewrites each record in place and never drops one:

* every **known secret** (each value :func:`~transforms.io.kafka.security.read_secret` returned in
  this process, handed over by :func:`protect`) is replaced by ``***`` in each form a log line
  can carry it: as is, escaped as in a ``str`` or ``bytes`` repr (either quote style), JSON-escaped,
  percent-encoded;
* **pattern forms** are redacted whether the value is known or not: SASL exchanges
  (``auth_bytes=b'...'``, PLAIN's ``authzid\\x00user\\x00password``), and any value given to a key
  ending in ``password``, ``passwd`` or ``secret`` (``password=...``, ``'ssl_password': '...'``).
  Keys that say *where* a secret is (``--kafka-sasl-password-env=NAME``) end otherwise and are kept.

After the filter, a record's ``msg`` is the formatted, redacted text and its ``args`` are empty;
an exception is formatted once, redacted into ``exc_text``, and ``exc_info`` is cleared, so no
handler can format the original exception (whose message may hold the secret) again.

A secret is read where a Kafka client is made: on the launcher, and on each SDK worker when its
consumer is built. :func:`protect` runs there too and installs the filter on that process's root
handlers, so SDK worker processes (whose root handler sends records to the runner) are covered
without any set-up of their own. Handlers added to the root logger later are covered by the next
:func:`install`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["MASK", "RedactSecrets", "Redactor", "install", "protect", "redact"]

MASK = "***"

_QUOTED = r"""b?(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?)"""  # a str or bytes repr, possibly cut short
# A SASL exchange as kafka-python's request and response reprs show it, whatever the mechanism; an
# empty one (b'') is kept. The repr may be cut short (kafka-python ends long ones with "...").
_AUTH_BYTES = re.compile(r"(auth_bytes\s*[=:]\s*)(b?)(['\"])(?:\\.|(?!\3)[^\\])+\3?")
# PLAIN's message: authorisation id NUL user NUL password, raw or escaped.
_PLAIN = re.compile(r"((?:\\x00|\x00)[^\\\x00'\"\s]+(?:\\x00|\x00))(?:\\.|[^'\"\\\s\x00])+")
# A value given to a key that names a secret; the key may be quoted, the value quoted or bare.
_KEYED = re.compile(
    r"((?<![\w-])[\w-]*(?:password|passwd|secret)['\"]?\s*[=:]\s*)"
    r"(" + _QUOTED + r"|[^\s,;)}\]'\"]+)",
    re.IGNORECASE,
)


def _forms(secret: str) -> set[str]:
    """The texts ``secret`` can appear as in a log line."""
    both_quotes = secret + "'\""  # forces the escaped-quote style of repr; the 3 added characters cut off below
    forms = {
        secret,
        repr(secret)[1:-1],
        repr(both_quotes)[1:-4],
        repr(secret.encode())[2:-1],
        repr(both_quotes.encode())[2:-4],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
    }
    forms |= {json.dumps(form)[1:-1] for form in list(forms)}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return {form for form in forms if form}


def _known_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = sorted({form for secret in secrets for form in _forms(secret)}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, forms))) if forms else None


@dataclass(frozen=True)
class Redactor:
    """Redacts the known secrets (in every form) and the pattern forms from a text."""

    secrets: frozenset[str] = frozenset()
    _known: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_known", _known_pattern(self.secrets))

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that also knows ``secrets`` (empty values are ignored)."""
        added = frozenset(secret for secret in secrets if secret)
        return self if added <= self.secrets else Redactor(self.secrets | added)

    def redact(self, text: str) -> str:
        """``text`` without the known secrets or anything in a secret-bearing form."""
        if self._known is not None:
            text = self._known.sub(MASK, text)
        text = _AUTH_BYTES.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{MASK}{m[3]}", text)
        text = _PLAIN.sub(lambda m: m[1] + MASK, text)
        return _KEYED.sub(_masked_value, text)


def _masked_value(match: re.Match[str]) -> str:
    value = match[2]
    prefix = "b" if value[:2] in ("b'", 'b"') else ""
    quote = value[len(prefix) : len(prefix) + 1] if value[len(prefix) : len(prefix) + 1] in ("'", '"') else ""
    return f"{match[1]}{prefix}{quote}{MASK}{quote}"


class RedactSecrets(logging.Filter):
    """A handler filter that redacts each record it passes (see the module docstring); never drops one."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` too from now on."""
        with self._lock:
            self.redactor = self.redactor.with_secrets(secrets)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102 (logging.Filter's contract)
        redactor = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: show both, redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redactor.redact(message), ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True


_FILTER = RedactSecrets()


def install() -> RedactSecrets:
    """Put this process's filter on every handler of the root logger (once each); returns it."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.filters.insert(0, _FILTER)  # before any filter that might write the record itself
    return _FILTER


def protect(secret: str) -> None:
    """Never let ``secret`` reach a log line of this process (and install the filter where it is not)."""
    _FILTER.add([secret])
    install()


def redact(text: str) -> str:
    """``text`` as this process's filter would write it."""
    return _FILTER.redactor.redact(text)
