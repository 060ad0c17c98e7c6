"""The staging area ``_staging/``: manifests (the commit point), rolling forward, and recovery.

A batch (:mod:`transforms.io.lake.commit`) or a merge (:mod:`transforms.io.lake.compaction`) is
written into its own folder under ``_staging/``, then committed by renaming its manifest to
``_MANIFEST.json`` (:func:`commit_manifest`). From then on it is finished by
:func:`roll_forward` (rename every staged file to its final path, delete what a merge replaced)
or, for a local folder swap, :func:`finish_exchange`; both are idempotent, so recovery can run
them again after a crash at any step. :func:`recover_staging` finishes every committed folder and
deletes every uncommitted one (its batch is read again), and on object stores deletes the files a
compaction merged away but did not get to delete (:func:`remove_superseded`). Recovery and
compaction take turns on :func:`maintenance_lock`: a ``flock`` on a local disk, an
:class:`~transforms.io.objects.ObjectLock` (a conditionally written object) on object stores.

On an object store the commit point is the same: the manifest is one object, uploaded whole (a
reader sees all of it or nothing); the staged files are then copied to their final paths and
deleted, each final file appearing whole. No Beam here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import IO, Any

import pyarrow.fs as pafs

from schemas import arrow
from transforms.io.files import locked
from transforms.io.lake.layout import MAINTENANCE_LOCK, MANIFEST, STAGING, parquet_paths, superseded
from transforms.io.lake.store import Lake
from transforms.io.objects import ObjectLock

__all__ = [
    "can_exchange",
    "commit_manifest",
    "finish_exchange",
    "maintenance_lock",
    "recover_staging",
    "remove_superseded",
    "roll_forward",
]

_LOG = logging.getLogger(__name__)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def commit_manifest(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    """Write a staging folder's manifest under a temporary name, then rename it: the commit point."""
    lake.write_atomically(f"{staging}/{MANIFEST}", json.dumps(manifest).encode())


def roll_forward(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    """Move a committed folder's staged files to their final paths, delete what they replace, drop it."""
    for entry in manifest["files"]:
        staged = f"{staging}/{entry['file']}"
        if lake.exists(staged):
            lake.move(staged, lake.path(entry["file"]))
    for relative in manifest.get("remove", []):  # files a compaction replaced
        if lake.exists(lake.path(relative)):
            lake.fs.delete_file(lake.path(relative))
    lake.delete_folder(staging)


def recover_staging(lake: Lake, only_merges: bool = False) -> tuple[int, int]:
    """Finish committed staging folders, delete uncommitted ones: ``(rolled forward, discarded)``.

    The caller holds :func:`maintenance_lock`. ``only_merges`` leaves batches alone (the running
    pipeline may be writing them right now).
    """
    rolled, discarded = 0, 0
    for info in lake.list(lake.path(STAGING)):
        if only_merges and not info.base_name.startswith(("swap+", "compact+")):
            continue  # a batch the running pipeline is writing right now
        if info.type != pafs.FileType.Directory:
            lake.fs.delete_file(info.path)
            continue
        manifest_path = f"{info.path}/{MANIFEST}"
        if lake.exists(manifest_path):
            with lake.fs.open_input_stream(manifest_path) as stream:
                manifest = json.loads(stream.read())
            if "swap" in manifest:
                finish_exchange(lake, info.path, manifest)
            else:
                roll_forward(lake, info.path, manifest)
            rolled += 1
        else:
            # An object store can list a folder whose objects were all just deleted: no batch.
            held = any(entry.type == pafs.FileType.File for entry in lake.list(info.path, recursive=True))
            lake.delete_folder(info.path)
            discarded += held
    if rolled or discarded:
        _LOG.info("lake recovery: %d batches rolled forward, %d uncommitted batches discarded", rolled, discarded)
    if not lake.local:
        remove_superseded(lake)
    return rolled, discarded


def remove_superseded(lake: Lake) -> list[str]:
    """Delete the files a compaction on an object store merged into another but did not delete.

    The caller holds :func:`maintenance_lock`. Returns the deleted paths (relative to the lake).
    """
    removed = []
    for table in arrow.STORED_TABLES:
        for path in sorted(superseded(parquet_paths(lake, table))):
            with contextlib.suppress(FileNotFoundError):
                lake.fs.delete_file(path)
            removed.append(lake.relative(path))
    if removed:
        _LOG.info("lake recovery: deleted %d files an interrupted compaction had merged", len(removed))
    return removed


@contextlib.contextmanager
def maintenance_lock(lake: Lake) -> Iterator[None]:
    """Only one of recovery and compaction works on a lake at a time.

    Locally an exclusive ``flock`` on ``_maintenance.lock``; on an object store that object itself,
    created only if absent and renewed while held (a holder killed with ``kill -9`` loses it once
    it has not renewed it for a minute).
    """
    if not lake.local:
        lock = ObjectLock(lake.conditional, lake.path(MAINTENANCE_LOCK))
        try:
            lock.acquire()
        except OSError as error:  # as below: a lake that refuses writes has nothing to recover or compact
            _LOG.warning("cannot take the lake's maintenance lock %s (%s); going on without it", lock.path, error)
            yield
            return
        try:
            yield
        finally:
            lock.release()
        return
    path = lake.path(MAINTENANCE_LOCK)
    handle: IO[bytes]
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - a read-only lake: a shared file still locks
        except OSError as error:
            # A lake that refuses writes: nothing to recover or compact anyway; the writes that
            # follow will say so (and retry) in their own words.
            _LOG.warning("cannot open the lake's maintenance lock %s (%s); going on without it", path, error)
            yield
            return
    with locked(handle):
        yield


def _exchange(first: str, second: str) -> None:
    """Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, first.encode(), _AT_FDCWD, second.encode(), _RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), first, None, second)


def can_exchange(lake: Lake) -> bool:
    """Whether folders of this lake can be swapped atomically (a local disk with ``renameat2``)."""
    if not lake.local:
        return False
    import ctypes

    return hasattr(ctypes.CDLL(None), "renameat2")


def finish_exchange(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    """Swap the staged folder in (unless done), rescue files written meanwhile, drop the old folder."""
    live = lake.path(manifest["swap"])
    following = f"{staging}/next"
    swapped = all(lake.exists(lake.path(entry["file"])) for entry in manifest["files"])
    if not swapped:
        _exchange(following, live)
        lake.fsync(live.rsplit("/", 1)[0])
    merged = [entry["file"] for entry in manifest["files"]]
    known = {relative.rsplit("/", 1)[1] for relative in [*manifest["keep"], *manifest["remove"], *merged]}
    if lake.exists(following):
        for info in lake.list(following):
            # A batch committed into the folder between the snapshot and the swap landed in the
            # old folder: move it into the live one before the old one goes.
            rescue = info.type == pafs.FileType.File and info.base_name not in known
            if rescue and not lake.exists(f"{live}/{info.base_name}"):
                lake.move(info.path, f"{live}/{info.base_name}")
    lake.delete_folder(staging)
