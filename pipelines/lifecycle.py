"""How a run holds its lake and stops: the lease and the stop request (waiting: :mod:`pipelines.runners`).

One pipeline per lake (:class:`LakeLease`)
    ``LAKE/_lease.json`` names the run that holds the lake: run id, host, process id and start
    time, and a heartbeat the launcher rewrites every ``HEARTBEAT_S`` seconds. A second run finds
    it and refuses with :class:`LakeBusyError` (the CLI exits 2). A lease whose holder is gone is
    taken over: on the same host when no process with that id and start time exists any more (a
    ``kill -9``), on another host when its heartbeat is older than ``STALE_AFTER_S``. On a local
    disk the lease appears by ``link(2)`` and a stale one leaves by ``rename(2)``, both atomic, so
    two runs starting at once cannot both win. On an object store the lease is one object written
    with a precondition (:mod:`transforms.io.objects`): created only if absent (S3
    ``If-None-Match: *``, GCS generation 0), taken over and renewed only if unchanged since read
    (``If-Match: <ETag>``, the generation), so there too exactly one of two racing runs wins, and
    a heartbeat never overwrites a lease another run has taken over. A launcher that hands a
    streaming job to a remote service without waiting for it (Dataflow) leaves a lease without
    heartbeat, which never goes stale: remove it when the job is drained.

Stopping (:class:`StopSignals`, :func:`request_stop`)
    SIGINT or SIGTERM asks the job to drain: the launcher writes ``LAKE/_stop.<run id>``; every
    source partition sees it at its next poll and ends its restriction without reading more, so
    the watermark runs to the end, every batch in flight is decided, written and committed, and the
    job finishes. The launcher then commits the group, writes the summary and the quality index,
    and exits 0. A second SIGINT aborts at once: the job is cancelled and the CLI exits 130.

Imports no Beam: ``validate``, ``compact`` and the lake check read the lease too. Waiting for a
job (and the job-message stream) is runner business: :mod:`pipelines.runners`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import pyarrow.fs as pafs

from transforms.errors import UserError
from transforms.io.files import write_atomically
from transforms.io.objects import ConditionalStore, conditional_store

__all__ = [
    "LakeBusyError",
    "LakeLease",
    "Lease",
    "StopSignals",
    "request_stop",
    "stop_path",
]

LEASE = "_lease.json"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 90.0
_LOG = logging.getLogger(__name__)


class LakeBusyError(UserError, RuntimeError):
    """Another pipeline holds the lake's lease."""


@dataclass(frozen=True)
class Lease:
    """Who holds a lake: a run of ``wirestream run`` on a host, as written in ``_lease.json``."""

    run_id: str
    host: str
    pid: int
    process_start: str
    started_at: str
    heartbeat_at: str
    heartbeat: bool = True

    def describe(self) -> str:
        """The holder, for a message."""
        return f"run {self.run_id} (process {self.pid} on {self.host}, since {self.started_at})"


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot, or "" when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return ""


def holder_alive(lease: Lease, now: dt.datetime, host: str | None = None) -> bool:
    """Whether the run that wrote ``lease`` may still be running.

    On this host the process must exist with the same start time (a recycled process id is
    another process); elsewhere the heartbeat must be recent. A lease without heartbeat (a job
    handed to a remote service) is taken as alive.
    """
    if not lease.heartbeat:
        return True
    if lease.host == (host or socket.gethostname()):
        if lease.pid == os.getpid() and lease.process_start == _process_start(os.getpid()):
            return True
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not lease.process_start or _process_start(lease.pid) == lease.process_start
    beat = dt.datetime.fromisoformat(lease.heartbeat_at)
    return (now - beat).total_seconds() < STALE_AFTER_S


def stop_path(root: str, run_id: str) -> str:
    """Where the launcher asks run ``run_id``'s sources to stop (a path on the lake's filesystem)."""
    return f"{root.rstrip('/')}/_stop.{run_id}"


class LakeLease:
    """The lease of one lake for one run: :meth:`acquire`, heartbeat in a thread, :meth:`release`."""

    def __init__(self, fs: pafs.FileSystem, root: str, run_id: str | None = None) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._local = isinstance(fs, pafs.LocalFileSystem)
        self.path = f"{self._root}/{LEASE}"
        self.run_id = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: Lease | None = None
        self._store: ConditionalStore | None = None if self._local else conditional_store(fs)
        self._version: str | None = None  # the lease object's version as this run last wrote it

    def read(self) -> Lease | None:
        """The lease as it stands, or None when the lake has none (or an unreadable one)."""
        try:
            with self._fs.open_input_stream(self.path) as stream:
                return Lease(**json.loads(stream.read()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as error:
            _LOG.warning("the lake's lease %s is unreadable (%s); taking it as stale", self.path, error)
            return None

    def acquire(self, heartbeat: bool = True) -> Lease:
        """Take the lease, or raise :class:`LakeBusyError` naming the run that holds it."""
        now = dt.datetime.now(dt.UTC)
        lease = Lease(
            run_id=self.run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            process_start=_process_start(os.getpid()),
            started_at=now.isoformat(timespec="seconds"),
            heartbeat_at=now.isoformat(timespec="seconds"),
            heartbeat=heartbeat,
        )
        if self._store is not None:
            return self._acquire_object(lease, now)
        for _ in range(3):
            current = self.read()
            if current is not None and holder_alive(current, now):
                raise self._busy(current)
            if current is not None or self._exists():
                if not self._retire(current):
                    continue  # another run retired it first: look again
                if current is not None:
                    _LOG.warning("took over the lake from %s, which is no longer running", current.describe())
            if self._create(lease):
                return self._held(lease)
        raise LakeBusyError(f"another run is taking the lake's lease at {self.path}; try again")

    def _busy(self, current: Lease) -> LakeBusyError:
        return LakeBusyError(
            f"the lake is in use by {current.describe()}: one pipeline per lake. Stop that run "
            f"first; if it is gone for good, delete {self.path}"
        )

    def _held(self, lease: Lease) -> Lease:
        self._lease = lease
        if lease.heartbeat:
            self._thread = threading.Thread(target=self._beat, name="wirestream-lease", daemon=True)
            self._thread.start()
        return lease

    def _acquire_object(self, lease: Lease, now: dt.datetime) -> Lease:
        """:meth:`acquire` on an object store: create if absent, or take a stale lease over if unchanged."""
        assert self._store is not None
        data = json.dumps(asdict(lease)).encode()
        for _ in range(3):
            found = self._store.read(self.path)
            if found is None:
                self._version = self._store.create(self.path, data)
            else:
                content, version = found
                try:
                    current: Lease | None = Lease(**json.loads(content))
                except (ValueError, TypeError) as error:
                    _LOG.warning("the lake's lease %s is unreadable (%s); taking it as stale", self.path, error)
                    current = None
                if current is not None and holder_alive(current, now):
                    raise self._busy(current)
                self._version = self._store.replace(self.path, data, version)
                if self._version is not None and current is not None:
                    _LOG.warning("took over the lake from %s, which is no longer running", current.describe())
            if self._version is not None:
                return self._held(lease)
        raise LakeBusyError(f"another run is taking the lake's lease at {self.path}; try again")

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_S)
        if self._store is not None:
            if self._version is not None:
                with contextlib.suppress(OSError):
                    self._store.delete(self.path, self._version)  # only if no other run took it over
            self._version = None
        else:
            current = self.read()
            if self._lease is not None and current is not None and current.run_id == self._lease.run_id:
                with contextlib.suppress(FileNotFoundError):
                    self._fs.delete_file(self.path)
        with contextlib.suppress(FileNotFoundError, OSError):
            self._fs.delete_file(stop_path(self._root, self.run_id))
        self._lease = None

    def _exists(self) -> bool:
        return bool(self._fs.get_file_info(self.path).type != pafs.FileType.NotFound)

    def _create(self, lease: Lease) -> bool:
        """Write the lease if the lake has none; False if another run's appeared meanwhile."""
        data = json.dumps(asdict(lease)).encode()
        temporary = f"{self.path}.{lease.run_id}.tmp"
        with self._fs.open_output_stream(temporary) as stream:
            stream.write(data)
        try:
            if self._local:
                try:
                    os.link(temporary, self.path)  # fails if the path exists: atomic create
                except FileExistsError:
                    return False
                return True
            if self._exists():
                return False
            self._fs.move(temporary, self.path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError, OSError):
                self._fs.delete_file(temporary)

    def _retire(self, current: Lease | None) -> bool:
        """Move a stale lease aside; False if it was already gone (another run took it)."""
        aside = f"{self.path}.retired-{current.run_id if current else 'unreadable'}-{uuid.uuid4().hex[:6]}"
        try:
            self._fs.move(self.path, aside)
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError, OSError):
            self._fs.delete_file(aside)
        return True

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            lease = self._lease
            if lease is None:
                return
            beat = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self._lease = lease = Lease(**{**asdict(lease), "heartbeat_at": beat})
            data = json.dumps(asdict(lease)).encode()
            try:
                if self._store is None:
                    write_atomically(self._fs, self.path, data)
                    continue
                if self._version is None:
                    return
                self._version = self._store.replace(self.path, data, self._version)
            except OSError as error:
                _LOG.warning("cannot renew the lake's lease (%s); retrying in %.0f s", error, HEARTBEAT_S)
                continue
            if self._version is None:
                _LOG.error("lost the lake's lease at %s: another run took it over as stale", self.path)
                return


def request_stop(fs: pafs.FileSystem, root: str, run_id: str) -> None:
    """Ask run ``run_id``'s sources to stop reading (they look for this file at every poll)."""
    with fs.open_output_stream(stop_path(root, run_id)) as stream:
        stream.write(dt.datetime.now(dt.UTC).isoformat().encode())


class StopSignals:
    """SIGINT and SIGTERM as requests: the first asks for a drain, a second SIGINT for an abort.

    Installed around the wait for a job in the main thread; the handlers only record the request
    (no exception is raised inside the runner's threads), and :meth:`restore` puts the previous
    handlers back.
    """

    def __init__(self) -> None:
        self.drain = threading.Event()
        self.abort = threading.Event()
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Handle SIGINT and SIGTERM from now on (main thread only; elsewhere a no-op).

        Called again once the job is submitted: Beam's job server puts its own SIGINT handler in
        place when it starts (it stops the runner, then calls the handler it found), and an
        interrupt must ask for a drain, not take the runner away from a job still writing.
        """
        if threading.current_thread() is not threading.main_thread():
            return self
        for number in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(number, self._handle)
            self._previous.setdefault(number, previous)
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.drain.is_set():
            if number == signal.SIGINT:
                self.abort.set()
            return
        self.signal_name = name
        self.drain.set()
