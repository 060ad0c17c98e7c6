"""pyiceberg's file IO, made durable: every metadata file it writes is fsynced, with its folder, on close.

pyiceberg never fsyncs. After a power loss, the catalog (SQLite, which does fsync) could point at a
``metadata.json``, manifest list or manifest that never reached the disk, and the table would no
longer load. :class:`DurableFileIO` closes that hole on a local disk: :func:`open_catalog` passes
it as ``py-io-impl``, so each file pyiceberg writes is durable before the commit that names it
swaps the catalog row. On object stores a file is durable once written, and nothing changes.

Invariant: no catalog row or metadata file ever names a file that is not on disk. No Beam here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pyarrow.fs as pafs
from pyiceberg.io import OutputStream
from pyiceberg.io.pyarrow import BUFFER_SIZE, ONE_MEGABYTE, PyArrowFile, PyArrowFileIO

from transforms.io.files import fsync

__all__ = ["DurableFileIO"]


class _DurableStream:
    """An output stream that fsyncs its file and the file's folder when closed."""

    def __init__(self, stream: OutputStream, fs: pafs.FileSystem, path: str) -> None:
        self._stream, self._fs, self._path = stream, fs, path
        self._synced = False

    def write(self, data: bytes) -> int:
        return self._stream.write(data)

    def close(self) -> None:
        self._stream.close()
        if not self._synced:
            fsync(self._fs, self._path)
            fsync(self._fs, self._path.rsplit("/", 1)[0])
            self._synced = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> _DurableStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class _DurableFile(PyArrowFile):
    def create(self, overwrite: bool = False) -> OutputStream:
        stream = super().create(overwrite)
        if not isinstance(self._filesystem, pafs.LocalFileSystem):
            return stream
        return _DurableStream(stream, self._filesystem, self._path)  # type: ignore[return-value]


class DurableFileIO(PyArrowFileIO):
    """:class:`~pyiceberg.io.pyarrow.PyArrowFileIO` whose every written file is fsynced on a local disk."""

    def new_output(self, location: str) -> PyArrowFile:
        """A file to write at ``location``, made durable when its stream closes."""
        scheme, netloc, path = self.parse_location(location, self.properties)
        return _DurableFile(
            fs=self.fs_by_scheme(scheme, netloc),
            location=location,
            path=path,
            buffer_size=int(self.properties.get(BUFFER_SIZE, ONE_MEGABYTE)),
        )
