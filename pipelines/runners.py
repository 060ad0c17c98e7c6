"""Everything runner-specific: which runner runs, its local binaries and options, and the wait for its job.

The launcher (:mod:`pipelines.launcher`) and the options (:mod:`pipelines.options`) ask this
module instead of testing runner names themselves:

* **Prism** (also what ``DirectRunner`` means here, :data:`LOCAL_RUNNERS`): the locally built
  binary is handed to Beam (:func:`with_runner_defaults`, else Beam would download one or fall
  back to a non-streaming runner), dynamic SDF splitting is switched off (:func:`prism_settings`),
  ``--ner-workers`` lanes get worker processes of their own, which puts this interpreter first on
  ``PATH`` (:func:`separate_worker_processes`), and a fallback to another runner is refused
  (:func:`check_runner_used`).
* **Flink**: the job-server jar and Flink version ``make flink`` resolved (:func:`with_runner_defaults`).
* **Dataflow**: a streaming job is submitted and not waited for (:func:`detached`).

Waiting (:func:`wait_for_job`)
    Beam's portable runner uses ``--job_server_timeout`` (default 300 s) as the deadline of the
    state and message streams that ``wait_until_finish`` reads, so an unbounded job waited for that
    way dies with ``DEADLINE_EXCEEDED``. This wait asks for the job state by unary calls instead,
    which carry no deadline, and reads job messages on a stream that has none.

Imports Beam: the read side never imports this module (``pipelines.lifecycle`` keeps the lease
and the stop request, which need no Beam).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, StandardOptions

from pipelines.lifecycle import StopSignals
from transforms.errors import FAILED, UserError

__all__ = [
    "FLINK_MINOR_VERSION",
    "LOCAL_RUNNERS",
    "PRISM_LOGGER",
    "BUNDLE_FAILED",
    "FailedBundles",
    "JobFailedError",
    "check_runner_used",
    "detached",
    "flag_value",
    "flink_job_server_jar",
    "has_flag",
    "prism_binary",
    "prism_settings",
    "requested_runner",
    "runner_used",
    "separate_worker_processes",
    "wait_for_job",
    "with_runner_defaults",
]

LOCAL_RUNNERS = ("DirectRunner", "PrismRunner")
FLINK_MINOR_VERSION = "1.20"  # the job-server variant infra/flink/pom.xml resolves
TERMINAL_STATES = ("DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED")
_LOG = logging.getLogger(__name__)


def requested_runner(options: PipelineOptions) -> str:
    """The ``--runner`` the options name (``DirectRunner`` when none: Prism, see :data:`LOCAL_RUNNERS`)."""
    return options.view_as(StandardOptions).runner or "DirectRunner"


def detached(runner: str, until_caught_up: bool) -> bool:
    """Whether the launcher submits the job and returns without waiting: a streaming Dataflow job."""
    return runner == "DataflowRunner" and not until_caught_up


def prism_binary(environ: Mapping[str, str]) -> Path:
    """Where ``make prism`` puts the Prism runner built for the pinned Beam version."""
    if environ.get("WIRESTREAM_PRISM"):
        return Path(environ["WIRESTREAM_PRISM"])
    cache = Path(environ.get("WIRESTREAM_CACHE", Path.home() / ".cache" / "wirestream"))
    return cache / f"prism-{beam.__version__}" / "prism"


def flink_job_server_jar(environ: Mapping[str, str]) -> Path:
    """Where ``make flink`` puts Beam's Flink job-server jar for the pinned Beam version."""
    if environ.get("WIRESTREAM_FLINK_JOB_SERVER_JAR"):
        return Path(environ["WIRESTREAM_FLINK_JOB_SERVER_JAR"])
    cache = Path(environ.get("WIRESTREAM_CACHE", Path.home() / ".cache" / "wirestream"))
    version = beam.__version__
    return (
        cache
        / f"beam-flink-job-server-{version}"
        / f"beam-runners-flink-{FLINK_MINOR_VERSION}-job-server-{version}.jar"
    )


def has_flag(argv: Sequence[str], *names: str) -> bool:
    """Whether any of ``names`` is in ``argv`` (as ``--name`` or ``--name=value``)."""
    return any(arg == name or arg.startswith(name + "=") for arg in argv for name in names)


def flag_value(argv: Sequence[str], name: str) -> str | None:
    """The value of the last ``name`` in ``argv`` (a later flag overrides an earlier one, as in argparse)."""
    found = None
    for index, arg in enumerate(argv):
        if arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
        elif arg == name and index + 1 < len(argv):
            found = argv[index + 1]
    return found


def with_runner_defaults(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """``argv`` plus the runner's local defaults: ``--runner=DirectRunner``, the locally built Prism.

    The DirectRunner would otherwise try to download Prism from GitHub and, failing, silently fall
    back to a non-streaming runner; handing it the local binary avoids both. Likewise the
    FlinkRunner gets the job-server jar resolved by ``make flink`` (and its Flink version) instead
    of downloading one.
    """
    args = list(argv)
    if not has_flag(args, "--runner"):
        args.append("--runner=DirectRunner")
    runner = flag_value(args, "--runner")
    if runner in LOCAL_RUNNERS and not has_flag(args, "--prism_location"):
        binary = prism_binary(environ)
        if not binary.exists():
            raise UserError(f"Prism runner not found at {binary}: run `make prism` (or set WIRESTREAM_PRISM)")
        args.append(f"--prism_location={binary}")
    if runner == "FlinkRunner":
        if not has_flag(args, "--flink_job_server_jar"):
            jar = flink_job_server_jar(environ)
            if not jar.exists():
                raise UserError(
                    f"Beam's Flink job server is not at {jar}: run `make flink` "
                    "(or set WIRESTREAM_FLINK_JOB_SERVER_JAR, or pass --flink_job_server_jar)"
                )
            args.append(f"--flink_job_server_jar={jar}")
        if not has_flag(args, "--flink_version"):
            args.append(f"--flink_version={FLINK_MINOR_VERSION}")
    return args


def separate_worker_processes(options: PipelineOptions) -> None:
    """Let ``--ner-workers`` lanes run in worker processes of their own (Prism only).

    Prism starts one SDK worker per environment, and the lanes' resource hints give each its own
    environment; Beam's loopback worker pool starts those workers as threads of this process unless
    asked for processes (``use_loopback_process_worker``). It starts them as ``python``, so this
    interpreter's folder goes first on ``PATH``.
    """
    runner = requested_runner(options)
    if runner not in LOCAL_RUNNERS:
        raise UserError(f"--ner-workers applies to Prism; on {runner} use the runner's parallelism")
    debug = options.view_as(DebugOptions)
    if not debug.lookup_experiment("use_loopback_process_worker"):
        debug.add_experiment("use_loopback_process_worker")
    folder = os.path.dirname(sys.executable)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != folder:
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")


def prism_settings(options: PipelineOptions) -> None:
    """Prism's dynamic SDF splitting off: its split residuals lose their watermark.

    Prism 2.75 discards a split residual's output watermark and takes the stage's watermark from
    the latest persisted bundle alone (``stage.go``: "what happens to output watermarks on
    splits?"), so with splitting on, one partition's progress can carry the watermark past
    batches another partition has yet to emit. The source needs no splits: one restriction per
    partition, each checkpointing itself after every poll.
    """
    runner = requested_runner(options)
    if runner in LOCAL_RUNNERS:
        debug = options.view_as(DebugOptions)
        if not debug.lookup_experiment("prism_disable_sdf_split"):
            debug.add_experiment("prism_disable_sdf_split")


def runner_used(result: object) -> str:
    """The runner that actually ran ``result``'s job, by name (Beam may fall back from Prism)."""
    module = type(result).__module__
    if "fn_api_runner" in module:  # first: it lives under apache_beam.runners.portability too
        return "FnApiRunner"
    if "portability" in module:
        return "Prism (portable)"
    if "direct" in module:
        return "BundleBasedDirectRunner"
    return type(result).__name__


def check_runner_used(requested: str, used: str) -> None:
    """Refuse a local run that Beam quietly moved off Prism (it would not stream)."""
    if requested in LOCAL_RUNNERS and used != "Prism (portable)":
        raise RuntimeError(f"the DirectRunner fell back to {used} instead of Prism; see the log above")


# Prism's log message for a bundle that failed, relayed by Beam through the logger of its job
# server. Prism 2.75 runs no bundle after one failed (its errgroup cancels the others), and when the
# failure is its own panic, not the SDK's error, the job never reaches a terminal state: a
# runner-side bundle (a Flatten, a GroupByKey) whose progress tick fires before its result is read
# calls a nil worker (prism/internal/stage.go), which happens under CPU load.
BUNDLE_FAILED = "Bundle Failed."
PRISM_LOGGER = "PrismJobServer"
# How long a job may stay unended after a failed bundle before we cancel it: one failed by an SDK
# error ends FAILED on its own (tests/integration/test_unwritable_lake.py).
FAILED_BUNDLE_GRACE_S = 30.0


class FailedBundles(logging.Handler):
    """Notes when the runner first logged a failed bundle (:data:`BUNDLE_FAILED`), and its message."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.first_at: float | None = None  # time.monotonic()
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if self.first_at is None and text.lstrip().startswith(BUNDLE_FAILED):
            self.first_at, self.message = time.monotonic(), text


class JobFailedError(UserError, RuntimeError):
    """The job ended in a state other than DONE (a failed run: exit 1); what it committed stays."""

    exit_code = FAILED


def _last_line(error: str) -> str:
    """The runner's error in one line, and what to do.

    A worker's traceback ends with the exception; a runner's own panic is named by its first line.
    """
    lines = [line.strip() for line in error.strip().splitlines() if line.strip() not in ("", ")")]
    panics = [line.split(", stage:")[0] for line in lines if line.startswith("panic")]
    what = panics[0] if panics else lines[-1] if lines else "no error message from the runner"
    return f"{what}; the log above has the details; run again to read what this run did not commit"


def wait_for_job(
    result: Any,
    signals: StopSignals | None = None,
    on_drain: Callable[[], None] | None = None,
    poll_s: float = 0.5,
    failed_bundle_grace_s: float = FAILED_BUNDLE_GRACE_S,
) -> str:
    """Wait until the job ends; its final state's name. No client deadline applies.

    ``on_drain`` runs once when a stop is requested; an abort cancels the job and returns
    ``"CANCELLED"``. A job still not ended ``failed_bundle_grace_s`` after the runner reported a
    failed bundle is cancelled and fails the run (:data:`BUNDLE_FAILED`): it would never end, and
    what it had not committed is read again by the next run. Non-portable results (the
    FnApiRunner) are waited for their own way.
    """
    from apache_beam.runners.portability.portable_runner import PipelineResult

    if signals is not None:
        signals.install()  # again: the job server replaced the SIGINT handler when it started
    if not isinstance(result, PipelineResult):
        return str(result.wait_until_finish())
    messages = _JobMessages(result)
    failed_bundles = FailedBundles()
    logging.getLogger(PRISM_LOGGER).addHandler(failed_bundles)
    drained = False
    state = ""
    try:
        while True:
            if signals is not None and signals.abort.is_set():
                with contextlib.suppress(Exception):
                    result.cancel()
                return "CANCELLED"
            if signals is not None and signals.drain.is_set() and not drained:
                drained = True
                if on_drain is not None:
                    on_drain()
            state = str(result.state)  # a unary GetState: no stream, no deadline
            if state in TERMINAL_STATES:
                break
            failed_at = failed_bundles.first_at
            if failed_at is not None and time.monotonic() - failed_at > failed_bundle_grace_s:
                with contextlib.suppress(Exception):
                    result.cancel()
                raise JobFailedError(
                    f"the runner failed a bundle and the job did not end in {failed_bundle_grace_s:g} s "
                    f"(cancelled): {_last_line(failed_bundles.message)}"
                )
            time.sleep(poll_s)
        messages.join(timeout=10)
        if state != "DONE":
            raise JobFailedError(f"the job ended {state}: {_last_line(messages.last_error)}")
        return state
    finally:
        logging.getLogger(PRISM_LOGGER).removeHandler(failed_bundles)
        with contextlib.suppress(Exception):
            result._cleanup()  # what wait_until_finish does at the end: stops the job server


class _JobMessages(threading.Thread):
    """Reads the job's messages into the log on a stream without deadline; keeps the last error."""

    def __init__(self, result: Any) -> None:
        super().__init__(name="wirestream-job-messages", daemon=True)
        self._result = result
        self.last_error = ""
        self.start()

    def run(self) -> None:
        from apache_beam.portability.api import beam_job_api_pb2

        error = beam_job_api_pb2.JobMessage.JOB_MESSAGE_ERROR
        levels = {error: logging.ERROR, beam_job_api_pb2.JobMessage.JOB_MESSAGE_WARNING: logging.WARNING}
        try:
            stream = self._result._job_service.GetMessageStream(
                beam_job_api_pb2.JobMessagesRequest(job_id=self._result._job_id)
            )
            for message in stream:
                if message.HasField("message_response"):
                    response = message.message_response
                    text = response.message_text
                    if response.importance == error and not _LOG.isEnabledFor(logging.DEBUG):
                        text = text.strip().splitlines()[-1] if text.strip() else text  # a traceback's last line
                    _LOG.log(levels.get(response.importance, logging.DEBUG), "%s", text)
                    if response.importance == error:
                        self.last_error = response.message_text
        except Exception:  # noqa: BLE001 - the job server went away at the end: nothing more to read
            _LOG.debug("the job message stream ended", exc_info=True)
