"""The lake's root on a pyarrow filesystem: the one filesystem wrapper every lake module uses.

:class:`Lake` is a local path or a ``gs://`` / ``s3://`` URI; it knows nothing of tables, batches
or Beam (the read side imports it). Writes are durable when they return (fsync on a local disk);
:meth:`Lake.write_atomically` replaces a small file in one step (:mod:`transforms.io.files`).
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from transforms.io import files

__all__ = ["Lake"]


class Lake:
    """The lake's root on a pyarrow filesystem (a local path, or a ``gs://`` / ``s3://`` URI)."""

    def __init__(self, uri: str) -> None:
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.uri = uri

    def path(self, *parts: str) -> str:
        """An absolute path inside the lake."""
        return "/".join([self.root.rstrip("/"), *parts])

    def relative(self, path: str) -> str:
        """An absolute path inside the lake, relative to its root (``table/dt=.../hour=.../name``)."""
        return path[len(self.root.rstrip("/")) + 1 :]

    def exists(self, path: str) -> bool:
        """Whether a file or folder exists."""
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def list(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        """What a folder holds; nothing if it does not exist."""
        return list(self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive)))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a file and make it durable (fsync on local disks)."""
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)
        self.fsync(path)

    def write_atomically(self, path: str, data: bytes) -> None:
        """Replace ``path`` in one step: a durable temporary file beside it, renamed over it."""
        files.write_atomically(self.fs, path, data)

    def write_table(self, path: str, table: pa.Table) -> None:
        """Write a Parquet file (zstd) and make it durable."""
        with self.fs.open_output_stream(path) as stream:
            pq.write_table(table, stream, compression="zstd")
        self.fsync(path)

    def move(self, source: str, target: str) -> None:
        """Rename (atomic on local disks; copy-then-delete on object stores)."""
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.move(source, target)
        self.fsync(target.rsplit("/", 1)[0])

    def fsync(self, path: str) -> None:
        """Make a file or folder durable (local disks only; a no-op elsewhere)."""
        files.fsync(self.fs, path)
