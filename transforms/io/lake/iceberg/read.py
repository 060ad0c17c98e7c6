"""What an Iceberg lake holds now, in the Hive lake's vocabulary, for the code both formats share.

The lake's readers and its launcher speak of ``table/dt=YYYY-MM-DD/hour=HH`` folders and of data
files (:func:`transforms.io.lake.layout.data_files`, :func:`~transforms.io.lake.layout.partition_folders`).
On an Iceberg lake those answer from the catalog: the files of each table's **current snapshot**
(never a listing of its ``data/`` folder, which also holds files of batches not yet committed and
orphans of a crash), and the folder ``table/dt=D/hour=H`` stands for the Iceberg partition
``ingested_at_hour=D-H``. So deduplication's seeds, ``validate``, the report, the run summary and
``wirestream query`` read an Iceberg lake through the same calls.

The catalog is opened once per process and lake (:func:`catalog_for`); every call loads the
table's head afresh, so a reader sees each commit as soon as it is made. Imports pyiceberg
(3–4 s) on first use only. No Beam here.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from typing import Any

from schemas import arrow
from transforms.io.lake.iceberg import CATALOG, CATALOG_MARKER, recorded_catalog_uri
from transforms.io.lake.layout import partition_end
from transforms.io.lake.store import Lake

__all__ = ["catalog_for", "committed_files", "committed_folders"]

_CATALOGS: dict[tuple[str, int | None], Any] = {}
_LOCK = threading.Lock()


def _identity(lake: Lake) -> tuple[str, int | None]:
    """The lake's root and its SQLite file's (or REST catalog record's) inode.

    A lake deleted and made again at the same path (tests do) gets a catalog of its own, never one
    still holding the deleted file open.
    """
    if not lake.local:
        return lake.root, None
    for name in ("catalog.db", CATALOG_MARKER):  # the SQLite catalog, else the REST catalog's record
        try:
            return lake.root, os.stat(lake.path(CATALOG, name)).st_ino
        except FileNotFoundError:
            continue
    return lake.root, None


def catalog_for(lake: Lake) -> Any:
    """The lake's catalog, opened once per process: the embedded SQLite one, or the REST one it records."""
    from transforms.io.lake.iceberg.catalog import open_catalog

    with _LOCK:
        key = _identity(lake)
        if key not in _CATALOGS or (lake.local and key[1] is None):
            catalog = open_catalog(lake, recorded_catalog_uri(lake))  # creates the SQLite file of a new lake
            key = _identity(lake)
            if key[1] is None and lake.local:
                return catalog
            _CATALOGS[key] = catalog
        return _CATALOGS[key]


def _current_files(lake: Lake, table: str) -> list[str]:
    from transforms.io.lake.iceberg.catalog import table_name

    catalog = catalog_for(lake)
    if not catalog.table_exists(table_name(table)):
        return []
    scan = catalog.load_table(table_name(table)).scan()
    return sorted(_lake_path(task.file.file_path) for task in scan.plan_files())


def _lake_path(url: str) -> str:
    """A data file's URL as ``Lake.fs`` names it: ``/path`` for ``file:///path``, ``bucket/key`` for ``s3://bucket/key``."""
    return url.split("://", 1)[1] if "://" in url else url


def _hive_folder(table: str, path: str) -> str | None:
    """``table/dt=D/hour=H`` of a data file at ``.../table/data/ingested_at_hour=D-H/name``."""
    parent = path.rsplit("/", 2)[-2]
    if not parent.startswith("ingested_at_hour="):
        return None
    day, _, hour = parent.removeprefix("ingested_at_hour=").rpartition("-")
    return f"{table}/dt={day}/hour={hour}"


def committed_files(lake: Lake, folder: str) -> list[str]:
    """The current snapshot's files of a table (``folder`` = ``table``) or of one hour (``table/dt=/hour=``).

    As paths on ``lake.fs``, like :func:`~transforms.io.lake.layout.data_files` (``bucket/key`` on S3).
    """
    table, _, partition = folder.strip("/").partition("/")
    if table not in arrow.STORED_TABLES:
        return []
    files = _current_files(lake, table)
    if not partition:
        return files
    return [path for path in files if _hive_folder(table, path) == f"{table}/{partition}"]


def committed_folders(lake: Lake, table: str) -> Iterator[tuple[str, dt.datetime]]:
    """Each ``table/dt=.../hour=...`` the current snapshot has files in, and when its hour ends."""
    folders = {_hive_folder(table, path) for path in _current_files(lake, table)}
    for folder in sorted(folder for folder in folders if folder is not None):
        end = partition_end(folder)
        if end is not None:
            yield folder, end
