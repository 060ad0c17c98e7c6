"""Writing a file so that a reader sees the old content or the new, never half of it.

One helper for the one idea the lake, its quality results, the report and the lease all need:
write under a temporary name beside the target, make it durable, then rename it over the target.
On a local disk the rename is atomic. An object store needs none of it (an upload appears whole,
and its "rename" is a copy then a delete), so there the file is written directly. The temporary
name ends in ``.tmp`` and never in ``.parquet`` or ``.json``, so no lake reader takes it for data.
:func:`locked` holds an exclusive ``flock`` on an open local file (the lake's lock files). No Beam here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

import pyarrow.fs as pafs

__all__ = ["fsync", "locked", "temporary_beside", "write_atomically"]


@contextlib.contextmanager
def locked(handle: IO[Any]) -> Iterator[None]:
    """An exclusive ``flock`` on the open ``handle`` while the block runs; the handle is closed after."""
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def temporary_beside(path: str) -> str:
    """A unique temporary name in ``path``'s folder (``<path>.<random>.tmp``)."""
    return f"{path}.{uuid.uuid4().hex}.tmp"


def fsync(fs: pafs.FileSystem, path: str) -> None:
    """Make a file or folder durable on a local disk (object stores are durable once written)."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` in one step, so that a reader sees the old content or the new.

    On a local disk: a durable temporary file beside it, renamed over it; on an object store: one upload.
    """
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(path) as stream:
            stream.write(data)
        return
    temporary = temporary_beside(path)
    with fs.open_output_stream(temporary) as stream:
        stream.write(data)
    fsync(fs, temporary)
    fs.move(temporary, path)
