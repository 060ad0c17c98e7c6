"""How the launcher logs: quiet by default, everything at DEBUG, secrets never.

``WIRESTREAM_LOG_LEVEL`` (default ``WARNING``) is the threshold of the one root handler, on
stderr. Above ``DEBUG``:

* our own loggers (``pipelines``, ``transforms``, ``schemas``) show records at the threshold or above;
* every other library's records show only at ``WARNING`` or above, whatever the threshold: Beam's,
  kafka-python's and Great Expectations' ``INFO`` lines are for ``DEBUG``;
* runner chatter shows only at ``DEBUG`` unless it is an error: Beam starting and stopping the
  runner's service (``Really starting service ...``), Prism's own log lines, which Beam relays under
  the names ``PrismRunner``/``PrismJobServer`` and lets through at ``INFO`` whatever the root level,
  and Beam's pipeline-option warnings.

A message repeated while a broker is away shows once a minute (:class:`OncePerInterval`), not
hundreds of times. At ``DEBUG`` every record shows. At every level the records pass
:class:`~transforms.io.log_redaction.RedactSecrets` first, so no secret the process read is written.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from transforms.io.kafka.check import OncePerInterval
from transforms.io.log_redaction import install as install_redaction

__all__ = ["DEFAULT_LEVEL", "FORMAT", "LEVELS", "QuietFilter", "configure", "parse_level", "shown"]

DEFAULT_LEVEL = "WARNING"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_OURS = ("pipelines", "transforms", "schemas", "__main__")
# Loggers, and source files of records sent to the root logger, whose lines are runner chatter.
_CHATTER_LOGGERS = ("PrismRunner", "PrismJobServer", "apache_beam.utils.subprocess_server", "apache_beam.options")
_CHATTER_FILES = ("apache_beam/utils/subprocess_server.py", "apache_beam/options/")


def parse_level(text: str | None) -> int:
    """The logging level named by ``text`` (any case; empty or None: the default); ValueError names the choices."""
    name = (text or DEFAULT_LEVEL).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"WIRESTREAM_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {text!r}")
    return int(getattr(logging, name))


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def shown(name: str, level: int, pathname: str, threshold: int) -> bool:
    """Whether a record of logger ``name`` at ``level``, made in file ``pathname``, shows at ``threshold``."""
    if threshold <= logging.DEBUG:
        return level >= threshold
    if level < logging.ERROR and (
        _under(name, _CHATTER_LOGGERS) or any(part in pathname.replace("\\", "/") for part in _CHATTER_FILES)
    ):
        return False
    if not _under(name, _OURS):
        return level >= max(threshold, logging.WARNING)
    return level >= threshold


class QuietFilter(logging.Filter):
    """A handler filter applying :func:`shown` for one threshold."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102 (logging.Filter's contract)
        return shown(record.name, record.levelno, record.pathname or "", self.threshold)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test may have replaced it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_HANDLER: logging.Handler | None = None


def configure(level_text: str | None) -> int:
    """Log to stderr at the level ``level_text`` names (see the module docstring); returns the level.

    Calling it again replaces the handler it added before. Raises ValueError for an unknown level.
    """
    global _HANDLER
    threshold = parse_level(level_text)
    root = logging.getLogger()
    if _HANDLER is not None:
        root.removeHandler(_HANDLER)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(threshold)
    handler.addFilter(QuietFilter(threshold))
    if threshold > logging.DEBUG:
        handler.addFilter(OncePerInterval())
    root.addHandler(handler)
    root.setLevel(threshold)
    _HANDLER = handler
    install_redaction()  # first among the handler's filters: nothing decides on or writes an unredacted record
    return threshold
