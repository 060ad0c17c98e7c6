"""Waiting for a portable job: a failed bundle after which the runner never ends the job fails the run.

Prism 2.75 can panic in a runner-side bundle under CPU load (a nil worker in its progress tick) and
then never ends the job: before, the run waited forever with ``records=0``. The panic's text is
the one Prism logged in such a run (shortened).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from apache_beam.runners.portability.portable_runner import PipelineResult

from pipelines.runners import BUNDLE_FAILED, PRISM_LOGGER, JobFailedError, wait_for_job

PANIC = (
    f"{BUNDLE_FAILED} (\nerror:\npanic in stage.Execute bundle processing goroutine: runtime error: invalid "
    "memory address or nil pointer dereference, stage: &{ID:stage-014 transforms:[ref_AppliedPTransform_"
    "Deduplicate-BatchesAndLinks_36] primaryInput: envID: },stackTrace:\ngoroutine 249 [running]:\n"
    "runtime/debug.Stack()\n)"
)


class _Job(PipelineResult):  # type: ignore[misc]
    """A portable job's result: each poll of its state calls ``on_poll`` with the poll's number and
    answers what it returns; records a cancel."""

    def __init__(self, on_poll: Callable[[int], str]) -> None:  # no job service: nothing to start
        self.on_poll, self.polls, self.cancelled = on_poll, 0, False
        self._job_service, self._job_id = None, "job"  # the message stream fails at once: nothing to read

    @property
    def state(self) -> str:
        self.polls += 1
        return self.on_poll(self.polls)

    def cancel(self) -> None:
        self.cancelled = True

    def _cleanup(self, *args: Any) -> None:
        pass


def _runner_logs(message: str, level: int = logging.ERROR) -> None:
    logging.getLogger(PRISM_LOGGER).log(level, "%s", message)


def test_a_job_left_running_after_a_failed_bundle_is_cancelled_and_fails_the_run() -> None:
    def poll(number: int) -> str:
        if number == 1:
            _runner_logs(PANIC)
        return "RUNNING"

    job = _Job(poll)
    started = time.monotonic()
    with pytest.raises(JobFailedError) as failed:
        wait_for_job(job, poll_s=0.02, failed_bundle_grace_s=0.3)
    assert job.cancelled
    assert 0.3 <= time.monotonic() - started < 5
    assert str(failed.value) == (
        "the runner failed a bundle and the job did not end in 0.3 s (cancelled): panic in stage.Execute bundle "
        "processing goroutine: runtime error: invalid memory address or nil pointer dereference; the log above "
        "has the details; run again to read what this run did not commit"
    )
    assert not logging.getLogger(PRISM_LOGGER).handlers  # the watch is gone with the wait


def test_a_job_that_ends_on_its_own_after_a_failed_bundle_keeps_its_own_verdict() -> None:
    def poll(number: int) -> str:
        if number == 1:
            _runner_logs(PANIC)
        return "RUNNING" if number < 3 else "FAILED"

    job = _Job(poll)
    with pytest.raises(JobFailedError, match="^the job ended FAILED: "):
        wait_for_job(job, poll_s=0.02, failed_bundle_grace_s=5)
    assert not job.cancelled


def test_other_runner_errors_and_a_failed_bundle_at_info_cancel_nothing() -> None:
    def poll(number: int) -> str:
        if number == 1:
            _runner_logs("SDK worker disconnected")
            _runner_logs(PANIC, logging.INFO)
        return "RUNNING" if number < 20 else "DONE"

    job = _Job(poll)
    assert wait_for_job(job, poll_s=0.02, failed_bundle_grace_s=0.05) == "DONE"
    assert not job.cancelled


def test_a_failed_bundle_of_an_sdk_error_is_named_by_the_errors_last_line() -> None:
    def poll(number: int) -> str:
        if number == 1:
            _runner_logs(
                f"{BUNDLE_FAILED} (\nerror:\nTraceback (most recent call last):\n  File x\nOSError: disk full\n)"
            )
        return "RUNNING"

    with pytest.raises(JobFailedError, match=r"\(cancelled\): OSError: disk full; the log above"):
        wait_for_job(_Job(poll), poll_s=0.02, failed_bundle_grace_s=0.1)
