"""The lake's lease and the stop request, on a real local filesystem with real processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from pipelines.lifecycle import (
    LEASE,
    STALE_AFTER_S,
    LakeBusyError,
    LakeLease,
    Lease,
    StopSignals,
    holder_alive,
    request_stop,
    stop_path,
)
from transforms.io.kafka.source import StopFlag


def _lease(root: Path) -> LakeLease:
    return LakeLease(pafs.LocalFileSystem(), str(root))


def _write(root: Path, lease: Lease) -> None:
    (root / LEASE).write_text(json.dumps(dataclasses.asdict(lease)))


def test_a_second_lease_on_a_lake_is_refused_naming_the_holder_until_it_is_released(tmp_path: Path) -> None:
    first, second = _lease(tmp_path), _lease(tmp_path)
    held = first.acquire(heartbeat=False)
    with pytest.raises(LakeBusyError, match=f"in use by run {held.run_id} \\(process {os.getpid()}"):
        second.acquire()
    first.release()
    assert not (tmp_path / LEASE).exists()
    assert second.acquire(heartbeat=False).run_id == second.run_id
    first.release()  # not its lease any more: left alone
    assert json.loads((tmp_path / LEASE).read_text())["run_id"] == second.run_id


def test_the_lease_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = _lease(tmp_path)
    lease = dataclasses.replace(
        Lease("dead", "", 0, "", "", ""),
        host=os.uname().nodename,
        pid=child.pid,
        process_start=Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19],
        started_at="2026-12-02T00:00:00+00:00",
        heartbeat_at=dt.datetime.now(dt.UTC).isoformat(),
    )
    _write(tmp_path, lease)
    with pytest.raises(LakeBusyError):
        holder.acquire()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert holder.acquire(heartbeat=False).run_id == holder.run_id
    holder.release()


def test_a_recycled_process_id_does_not_keep_a_lease_alive() -> None:
    now = dt.datetime.now(dt.UTC)
    mine = Lease("r", os.uname().nodename, os.getppid(), "1", now.isoformat(), now.isoformat())
    assert not holder_alive(mine, now)  # the parent exists, but did not start at tick 1


def test_a_lease_from_another_host_goes_stale_with_its_heartbeat() -> None:
    now = dt.datetime.now(dt.UTC)
    beat = (now - dt.timedelta(seconds=STALE_AFTER_S - 5)).isoformat()
    remote = Lease("r", "elsewhere", 1, "", beat, beat)
    assert holder_alive(remote, now)
    assert not holder_alive(remote, now + dt.timedelta(seconds=10))
    assert holder_alive(dataclasses.replace(remote, heartbeat=False), now + dt.timedelta(days=9))


def test_an_unreadable_lease_is_replaced(tmp_path: Path) -> None:
    (tmp_path / LEASE).write_text("{not json")
    holder = _lease(tmp_path)
    holder.acquire(heartbeat=False)
    assert json.loads((tmp_path / LEASE).read_text())["run_id"] == holder.run_id
    holder.release()


def test_the_sources_see_a_stop_request_and_the_lease_release_removes_it(tmp_path: Path) -> None:
    holder = _lease(tmp_path)
    holder.acquire(heartbeat=False)
    flag = StopFlag(stop_path(str(tmp_path), holder.run_id), interval_s=0)
    assert not flag.requested()
    request_stop(pafs.LocalFileSystem(), str(tmp_path), holder.run_id)
    assert flag.requested()
    holder.release()
    assert not Path(stop_path(str(tmp_path), holder.run_id)).exists()
    assert flag.requested()  # once seen, it stays seen


def test_the_first_signal_asks_for_a_drain_and_a_second_interrupt_for_an_abort() -> None:
    before = signal.getsignal(signal.SIGINT)
    signals = StopSignals().install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.drain.is_set() and signals.signal_name == "SIGTERM" and not signals.abort.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM changes nothing
        assert not signals.abort.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.abort.is_set()
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGINT) is before
