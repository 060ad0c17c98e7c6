"""Conditional writes on object stores: create an object only if absent, replace it only if unchanged.

pyarrow's S3 and GCS filesystems write, read and list objects, but cannot send preconditions, and
an object store has no ``link(2)``, ``rename(2)`` or ``flock``. Two things in the lake need one
writer to win and every other to know it lost: the lease (one pipeline per lake,
:class:`pipelines.lifecycle.LakeLease`) and the maintenance lock (recovery and compaction take
turns, :func:`transforms.io.lake.staging.maintenance_lock`). Both are small JSON objects written
with a precondition:

* **S3** (and S3-compatible stores): ``PutObject`` with ``If-None-Match: *`` (create if absent) or
  ``If-Match: <ETag>`` (replace if unchanged); a lost race answers 412 (or 409 while another
  conditional write of the key is in flight). Sent with **botocore**, the low-level core of the AWS
  SDK for Python (pinned in ``requirements.lock``): the smallest well-kept client that signs
  requests and reads the same configuration as pyarrow (``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
  ``~/.aws``). Tested against a real S3 server (SeaweedFS, ``infra/s3/``).
* **GCS**: generation preconditions (``if_generation_match=0`` to create, ``=<generation>`` to
  replace) through ``google-cloud-storage`` (``requirements-gcp.lock``). Not verified here: no
  GCS endpoint can be reached from this project's machines.

:func:`conditional_store` gives the one for a pyarrow filesystem; paths are pyarrow's
(``bucket/key``). :class:`ObjectLock` is an exclusive lock made of one such object, renewed while
held, taken over once its holder stops renewing it. No Beam here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Protocol

import pyarrow.fs as pafs

__all__ = ["ConditionalStore", "ObjectLock", "conditional_store"]

_LOG = logging.getLogger(__name__)


class ConditionalStore(Protocol):
    """Preconditioned writes of small objects; a *version* is the object's ETag or generation."""

    def read(self, path: str) -> tuple[bytes, str] | None:
        """The object's content and version, or None when it does not exist."""
        ...

    def create(self, path: str, data: bytes) -> str | None:
        """Write the object if none exists: its version, or None when one exists already."""
        ...

    def replace(self, path: str, data: bytes, version: str) -> str | None:
        """Overwrite the object if it is still at ``version``: its new version, or None."""
        ...

    def delete(self, path: str, version: str) -> bool:
        """Delete the object if it is still at ``version``; False if it changed or is gone."""
        ...


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


class S3Store:
    """:class:`ConditionalStore` over botocore (see the module docstring)."""

    _LOST = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}

    def __init__(self) -> None:
        import botocore.config
        import botocore.session

        session = botocore.session.get_session()
        custom_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        # pyarrow addresses buckets by path whenever an endpoint is given; do the same.
        config = botocore.config.Config(
            s3={"addressing_style": "path" if custom_endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._client: Any = session.create_client("s3", region_name=region, config=config)

    def _lost(self, error: Exception) -> bool:
        response = getattr(error, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code in self._LOST or status in self._LOST

    def read(self, path: str) -> tuple[bytes, str] | None:
        """See :class:`ConditionalStore`."""
        import botocore.exceptions

        bucket, key = _split(path)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise OSError(f"cannot read s3://{path}: {error}") from None
        return response["Body"].read(), str(response["ETag"])

    def _put(self, path: str, data: bytes, **condition: str) -> str | None:
        import botocore.exceptions

        bucket, key = _split(path)
        try:
            response = self._client.put_object(Bucket=bucket, Key=key, Body=data, **condition)
        except botocore.exceptions.ClientError as error:
            if self._lost(error):
                return None
            raise OSError(f"cannot write s3://{path}: {error}") from None
        return str(response["ETag"])

    def create(self, path: str, data: bytes) -> str | None:
        """See :class:`ConditionalStore`."""
        return self._put(path, data, IfNoneMatch="*")

    def replace(self, path: str, data: bytes, version: str) -> str | None:
        """See :class:`ConditionalStore`."""
        return self._put(path, data, IfMatch=version)

    def delete(self, path: str, version: str) -> bool:
        """See :class:`ConditionalStore`."""
        import botocore.exceptions

        bucket, key = _split(path)
        try:
            self._client.delete_object(Bucket=bucket, Key=key, IfMatch=version)
        except botocore.exceptions.ClientError as error:
            if self._lost(error) or error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise OSError(f"cannot delete s3://{path}: {error}") from None
        return True


class GcsStore:
    """:class:`ConditionalStore` over google-cloud-storage generations (not verified here: no GCS)."""

    def __init__(self) -> None:
        from google.cloud import storage

        self._client: Any = storage.Client()

    def _blob(self, path: str, generation: int | None = None) -> Any:
        bucket, key = _split(path)
        return self._client.bucket(bucket).blob(key, generation=generation)

    def read(self, path: str) -> tuple[bytes, str] | None:
        """See :class:`ConditionalStore`."""
        bucket, key = _split(path)
        blob = self._client.bucket(bucket).get_blob(key)
        if blob is None:
            return None
        from google.api_core import exceptions

        try:
            return blob.download_as_bytes(if_generation_match=blob.generation), str(blob.generation)
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            return self.read(path)  # replaced or deleted between the two calls: look again

    def _upload(self, path: str, data: bytes, generation: int) -> str | None:
        from google.api_core import exceptions

        blob = self._blob(path)
        try:
            blob.upload_from_string(data, content_type="application/json", if_generation_match=generation)
        except exceptions.PreconditionFailed:
            return None
        return str(blob.generation)

    def create(self, path: str, data: bytes) -> str | None:
        """See :class:`ConditionalStore`."""
        return self._upload(path, data, 0)

    def replace(self, path: str, data: bytes, version: str) -> str | None:
        """See :class:`ConditionalStore`."""
        return self._upload(path, data, int(version))

    def delete(self, path: str, version: str) -> bool:
        """See :class:`ConditionalStore`."""
        from google.api_core import exceptions

        try:
            self._blob(path).delete(if_generation_match=int(version))
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            return False
        return True


def conditional_store(fs: pafs.FileSystem) -> ConditionalStore:
    """The conditional writes of the object store behind ``fs`` (S3 or GCS); ValueError elsewhere."""
    if fs.type_name == "s3":
        return S3Store()
    if fs.type_name == "gcs":
        return GcsStore()
    raise ValueError(f"no conditional writes on a {fs.type_name} filesystem")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ObjectLock:
    """An exclusive lock made of one object: created if absent, renewed while held, then deleted.

    The holder rewrites the object every ``renew_s`` seconds (``If-Match`` its last version); a
    waiter polls, and takes the lock over (again with ``If-Match``, so one waiter wins) once the
    holder has not renewed it for ``stale_after_s`` (a holder killed with ``kill -9``). The object
    names its holder (host, process, a random id) for the log lines of those who wait.
    """

    def __init__(self, store: ConditionalStore, path: str, renew_s: float = 10.0, stale_after_s: float = 60.0) -> None:
        self._store = store
        self.path = path
        self._renew_s = renew_s
        self._stale_after_s = stale_after_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"holder": self._holder, "renewed_at": _now().isoformat()}).encode()

    def _stale(self, content: bytes) -> bool:
        try:
            renewed = dt.datetime.fromisoformat(json.loads(content)["renewed_at"])
        except (ValueError, KeyError, TypeError):
            return True  # unreadable: nobody can be renewing it
        return (_now() - renewed).total_seconds() > self._stale_after_s

    def acquire(self, poll_s: float = 0.5) -> None:
        """Wait until this process holds the lock."""
        told = False
        while True:
            self._version = self._store.create(self.path, self._body())
            if self._version is not None:
                break
            current = self._store.read(self.path)
            if current is not None and self._stale(current[0]):
                self._version = self._store.replace(self.path, self._body(), current[1])
                if self._version is not None:
                    _LOG.warning("took over the stale lock %s (%s)", self.path, current[0].decode(errors="replace"))
                    break
            if current is not None and not told:
                _LOG.info("waiting for the lock %s held by %s", self.path, current[0].decode(errors="replace"))
                told = True
            time.sleep(poll_s)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="wirestream-object-lock", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._renew_s):
            version = self._version
            if version is None:
                return
            try:
                self._version = self._store.replace(self.path, self._body(), version)
            except OSError as error:
                _LOG.warning("cannot renew the lock %s (%s); retrying", self.path, error)
                continue
            if self._version is None:
                _LOG.error("lost the lock %s: another process took it over as stale", self.path)
                return

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._renew_s + 5)
        version, self._version = self._version, None
        if version is not None:
            with contextlib.suppress(OSError):
                self._store.delete(self.path, version)
