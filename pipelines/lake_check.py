"""Which paths are lakes: ``run`` creates one, the other commands refuse a path that is not one.

A lake is a folder that holds at least one entry ``wirestream run`` writes: a table folder
(``articles/``, ``entities/``, ... ``_records/``), ``_origins/`` (written before the first batch
is read, so also by a run that read nothing), ``_quality/``, ``_staging/``, the lease or the
maintenance lock. A mistyped path (missing, a file, or an unrelated or empty folder) is refused
with a :class:`~transforms.errors.UserError` instead of answering "0 rows" or "compacted 0 file
groups".
"""

from __future__ import annotations

import pyarrow.fs as pafs

from pipelines.lifecycle import LEASE
from schemas import arrow
from transforms.errors import UserError
from transforms.io.lake import MAINTENANCE_LOCK, ORIGINS, STAGING, Lake
from transforms.io.lake.iceberg import CATALOG, check_catalog_uri, is_iceberg, recorded_catalog_uri
from transforms.io.lake.store import place

__all__ = ["LAKE_ENTRIES", "catalog_uri_for", "create_lake", "lake_for_run", "require_lake", "table_format_for"]

LAKE_ENTRIES = frozenset({*arrow.STORED_TABLES, ORIGINS, "_quality", STAGING, LEASE, MAINTENANCE_LOCK, CATALOG})


def _open(uri: str) -> Lake:
    try:
        return Lake(uri)
    except Exception as error:  # noqa: BLE001 - pyarrow's errors for a URI it cannot use have no common base
        raise UserError(f"cannot open the lake at {place(uri)}: {error}") from error


def lake_for_run(uri: str) -> Lake:
    """The lake at ``uri`` for ``run``, not created yet; refuses a path that is a file."""
    lake = _open(uri)
    if lake.fs.get_file_info(lake.root).type == pafs.FileType.File:
        raise UserError(f"--lake {uri} is a file, not a folder: give the lake's folder (created if missing)")
    return lake


def table_format_for(lake: Lake, requested: str, partition_by: str, catalog_uri: str = "") -> str:
    """The table format a run writes: the lake's own, else ``requested``, else iceberg given a catalog URI, else hive.

    Refused with a :class:`UserError`: a format other than the lake's (a lake is one format for
    good: nothing converts one into the other), Iceberg with ``--partition-by event_time`` (Iceberg
    partitions by a transform of one column; publication time falling back to ingestion time is
    none), Iceberg on an object store without a REST catalog (the embedded catalog is a SQLite
    file on this machine) and a catalog URI for Hive tables.
    """
    if is_iceberg(lake):
        found = "iceberg"
    elif lake.exists(lake.root) and any(info.base_name in arrow.STORED_TABLES for info in lake.list(lake.root)):
        found = "hive"
    else:
        found = ""
    chosen = found or requested or ("iceberg" if catalog_uri else "hive")
    if requested and found and requested != found:
        raise UserError(
            f"the lake at {place(lake.uri)} holds {found} tables, not {requested}: a lake keeps one table format; "
            f"leave out --table-format, or give a new --lake for {requested}"
        )
    if chosen == "iceberg" and partition_by != "ingestion_time":
        raise UserError(
            "--table-format iceberg partitions by ingestion hour only: --partition-by event_time "
            "(publication time, else ingestion time) is no Iceberg partition transform"
        )
    if chosen == "hive" and catalog_uri:
        raise UserError(
            f"--iceberg-catalog-uri is for Iceberg tables; the lake at {place(lake.uri)} holds hive tables: "
            "leave it out, or give a new --lake"
        )
    if chosen == "iceberg" and not lake.local and not catalog_uri:
        raise UserError(
            f"--table-format iceberg on {place(lake.uri)} needs --iceberg-catalog-uri: the embedded catalog "
            "is a SQLite file on this machine, which the workers writing an object store cannot share"
        )
    return chosen


def catalog_uri_for(lake: Lake, given: str) -> str:
    """The lake's REST catalog URI: the one it records, else ``given``; ``""`` for the embedded catalog.

    Refused with a :class:`UserError`: a URI other than the recorded one, a URI for a lake whose
    catalog is the embedded SQLite one (a lake's catalog never changes: the tables' metadata is
    in it), and a URI that is not ``http(s)://`` or carries a credential.
    """
    try:
        uri = check_catalog_uri(given) if given else ""
    except ValueError as error:
        raise UserError(f"--iceberg-catalog-uri: {error}") from error
    recorded = recorded_catalog_uri(lake) if lake.exists(lake.root) else None
    if recorded is not None:
        if uri and uri != recorded:
            raise UserError(
                f"the lake at {place(lake.uri)} records the Iceberg catalog {recorded}, not {uri}: "
                "a lake's catalog never changes; leave out --iceberg-catalog-uri"
            )
        return recorded
    if uri and is_iceberg(lake):
        raise UserError(
            f"the lake at {place(lake.uri)} keeps its Iceberg tables in its embedded SQLite catalog: "
            "a lake's catalog never changes; leave out --iceberg-catalog-uri"
        )
    return uri


def create_lake(lake: Lake) -> Lake:
    """Create the lake's folder unless it exists; a ``UserError`` when it cannot be created."""
    try:
        lake.fs.create_dir(lake.root, recursive=True)
    except OSError as error:
        raise UserError(
            f"cannot create the lake folder {lake.uri}: {error}; give a --lake where you can write"
        ) from error
    return lake


def require_lake(uri: str) -> Lake:
    """The lake at ``uri``, or a :class:`UserError` saying why ``uri`` is not one."""
    lake = _open(uri)
    kind = lake.fs.get_file_info(lake.root).type
    if kind == pafs.FileType.NotFound:
        raise UserError(f"no lake at {uri}: the folder does not exist; give the --lake that wirestream run wrote")
    if kind != pafs.FileType.Directory:
        raise UserError(f"{uri} is a file, not a lake: give the lake's folder (the --lake of wirestream run)")
    names = {info.base_name for info in lake.list(lake.root)}
    if not names & LAKE_ENTRIES:
        held = f"it holds {len(names)} other entries" if names else "it is empty"
        raise UserError(
            f"{uri} is not a lake: {held}, without the articles/, entities/ or _origins/ folders "
            "wirestream run writes; check the path"
        )
    return lake
