"""The staging area ``_staging/``: manifests (the commit point), rolling forward, and recovery.

A batch (:mod:`transforms.io.lake.commit`) or a merge (:mod:`transforms.io.lake.compaction`) is
written into its own folder under ``_staging/``, then committed by renaming its manifest to
``_MANIFEST.json`` (:func:`commit_manifest`). From then on it is finished by
:func:`roll_forward` (rename every staged file to its final path, delete what a merge replaced)
or, for a local folder swap, :func:`finish_exchange`; both are idempotent, so recovery can run
them again after a crash at any step. :func:`recover_staging` finishes every committed folder and
deletes every uncommitted one (its batch is read again). Recovery and compaction take turns on
:func:`maintenance_lock`. No Beam here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import IO, Any

import pyarrow.fs as pafs

from transforms.io.lake.layout import MAINTENANCE_LOCK, MANIFEST, STAGING
from transforms.io.lake.store import Lake

__all__ = [
    "can_exchange",
    "commit_manifest",
    "finish_exchange",
    "maintenance_lock",
    "recover_staging",
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
    lake.fs.delete_dir(staging)


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
            lake.fs.delete_dir(info.path)
            discarded += 1
    if rolled or discarded:
        _LOG.info("lake recovery: %d batches rolled forward, %d uncommitted batches discarded", rolled, discarded)
    return rolled, discarded


@contextlib.contextmanager
def maintenance_lock(lake: Lake) -> Iterator[None]:
    """Only one of recovery and compaction works on a local lake at a time (an exclusive flock)."""
    if not lake.local:
        yield
        return
    import fcntl

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
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    lake.fs.delete_dir(staging)
