"""UserError: a failure the operator can fix, with a message that says what happened and what to do.

It is raised where the failure is known (the Kafka check, the lake, the suite file, the SQL) and
caught once, in ``pipelines.cli.main``, which prints ``wirestream COMMAND: MESSAGE`` on stderr and
exits with :attr:`UserError.exit_code`, without a traceback unless asked (``--debug``, or
``WIRESTREAM_LOG_LEVEL=DEBUG``). Anything else that escapes is a bug and keeps its traceback.

Invariants
    * The message is one sentence or two, complete without the traceback: it names the thing
      (the file, the topic, the broker address) and says what to do next.
    * A message never repeats a secret's value.
    * Exit code 2: refused before doing anything (bad input, unreachable service, a path that is
      not a lake); 1: a run that started and then failed.

This module imports nothing, so every layer (stages, I/O, pipelines) may raise it.
"""

from __future__ import annotations

__all__ = ["UserError", "REFUSED", "FAILED"]

REFUSED = 2
FAILED = 1


class UserError(Exception):
    """A known failure; ``str(error)`` is the whole message shown to the operator."""

    exit_code: int = REFUSED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
