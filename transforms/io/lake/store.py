"""The lake's root on a pyarrow filesystem: the one filesystem wrapper every lake module uses.

:class:`Lake` is a local path or a ``gs://`` / ``s3://`` URI; it knows nothing of tables, batches
or Beam (the read side imports it). Writes are durable when they return (fsync on a local disk);
:meth:`Lake.write_atomically` replaces a small file in one step (:mod:`transforms.io.files`).

Object stores are configured only by the environment (or the SDKs' own files), never by the URI:
for S3, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (an ``http://`` one for a local server),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION``, read alike by pyarrow and by
botocore (:mod:`transforms.io.objects`), in the launcher and in every worker. A URI carrying a
key or a secret is refused, and the secret key of the environment is redacted from every log line
of the process (:func:`transforms.io.log_redaction.protect`).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from transforms.io import files
from transforms.io.log_redaction import protect
from transforms.io.objects import ConditionalStore, conditional_store

__all__ = ["Lake", "place"]

_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def place(uri: str) -> str:
    """``uri`` without a user, key, secret or ``?option``: what a message may show of it."""
    if "://" not in uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def _refuse_credentials(uri: str) -> None:
    """A lake URI names a place, never a credential (it travels with the job and into logs)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password or parts.query:
        for value in (parts.password, *(v for _, v in urllib.parse.parse_qsl(parts.query))):
            if value:
                protect(value)  # whatever logs the command line from now on shows it as ***
        raise ValueError(
            f"the lake URI {place(uri)} must not carry a user, key, secret or option: set "
            "AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION in the "
            "environment instead (docs/deployment.md)"
        )


class Lake:
    """The lake's root on a pyarrow filesystem (a local path, or a ``gs://`` / ``s3://`` URI)."""

    def __init__(self, uri: str) -> None:
        if "://" in uri:
            _refuse_credentials(uri)
            for name in _SECRET_ENV:
                if os.environ.get(name):
                    protect(os.environ[name])
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.uri = uri
        self._conditional: ConditionalStore | None = None

    def path(self, *parts: str) -> str:
        """An absolute path inside the lake (``bucket/key`` on object stores, as pyarrow names it)."""
        return "/".join([self.root.rstrip("/"), *parts])

    def url(self, path: str) -> str:
        """A path of :meth:`path` as other readers name it: ``s3://bucket/key`` on S3, the path itself locally."""
        return path if self.local else f"{self.uri.split('://', 1)[0]}://{path}"

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
        """Replace ``path`` in one step, so a reader sees the old content or the new, never half.

        Locally: a durable temporary file beside it, renamed over it. On an object store an object
        appears whole when its upload completes, so it is written directly: one upload, no copy
        (:func:`transforms.io.files.write_atomically`).
        """
        files.write_atomically(self.fs, path, data)

    def write_table(self, path: str, table: pa.Table) -> None:
        """Write a Parquet file (zstd) and make it durable (on object stores it appears whole, once written)."""
        with self.fs.open_output_stream(path) as stream:
            pq.write_table(table, stream, compression="zstd")
        self.fsync(path)

    def create_folder(self, path: str) -> None:
        """Create a folder and its parents on a local disk; nothing on object stores.

        Object stores have no folders (an object's key is its whole path); marker objects would
        only cost requests.
        """
        if self.local:
            self.fs.create_dir(path, recursive=True)

    def move(self, source: str, target: str) -> None:
        """Rename (atomic on local disks; on object stores a copy, whole, then a delete)."""
        self.create_folder(target.rsplit("/", 1)[0])
        self.fs.move(source, target)
        self.fsync(target.rsplit("/", 1)[0])

    def delete_folder(self, path: str) -> None:
        """Delete a folder and everything in it; nothing if it is gone already.

        An object store may still list a folder whose last object was just deleted (SeaweedFS
        keeps its directory entry a moment), and then refuses to delete it as missing.
        """
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(path)

    def fsync(self, path: str) -> None:
        """Make a file or folder durable (local disks only; a no-op elsewhere)."""
        files.fsync(self.fs, path)

    @property
    def conditional(self) -> ConditionalStore:
        """Create-if-absent and replace-if-unchanged writes (object stores only; see :mod:`transforms.io.objects`)."""
        if self._conditional is None:
            self._conditional = conditional_store(self.fs)
        return self._conditional
