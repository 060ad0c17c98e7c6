"""Writing a file so that a reader sees the old content or the new, never half of it.

One helper for the one idea the lake, its quality results, the report and the lease all need:
write under a temporary name beside the target, make it durable, then rename it over the target.
On a local disk the rename is atomic. An object store needs none of it (an upload appears whole,
and its "rename" is a copy then a delete), so there the file is written directly. The temporary
name ends in ``.tmp`` and never in ``.parquet`` or ``.json``, so no lake reader takes it for data.
No Beam here.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs

__all__ = ["fsync", "temporary_beside", "write_atomically"]


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
