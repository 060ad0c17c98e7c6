"""The Iceberg lake: the same six tables as Apache Iceberg tables, one snapshot per commit.

Issue #20 part 2 (``--table-format iceberg``, ``--iceberg-catalog-uri``). One
module per job, none of them imports Beam, and this package itself imports no pyiceberg (about
3–4 s to import), so the launcher and the read side can ask :func:`is_iceberg` cheaply:

- :mod:`~transforms.io.lake.iceberg.catalog`: opening the catalog, creating the tables
  (``wirestream.<table>``, ``hour(ingested_at)``), the recorded schema version and its additive
  migrations.
- :mod:`~transforms.io.lake.iceberg.files`: a batch's rows as Parquet files with Iceberg field
  ids in each table's ``data/`` folder, then its manifest in ``_staging/`` (the commit point).
- :mod:`~transforms.io.lake.iceberg.commit`: the one committer (a snapshot per table for many
  manifests, ``_records`` last), the resume point read from the tables, recovery and expiry.
- :mod:`~transforms.io.lake.iceberg.durable`: pyiceberg's file IO, fsyncing what it writes.
- :mod:`~transforms.io.lake.iceberg.compaction`: ``wirestream compact``: each table's hours of
  small files rewritten as one overwrite snapshot, then expiry.

Layout (absolute paths are written into Iceberg metadata, so an Iceberg lake must never be
moved or copied elsewhere)::

    LAKE/_catalog/catalog.db                  the SQL catalog (SQLite), unless a REST catalog is used
    LAKE/_catalog/catalog.json                the REST catalog's URI, when the lake has one (recorded at creation)
    LAKE/<table>/metadata/                    Iceberg metadata: metadata.json, manifest lists, manifests
    LAKE/<table>/data/ingested_at_hour=YYYY-MM-DD-HH/<batch key>+<uuid8>.parquet
    LAKE/<table>/data/ingested_at_hour=YYYY-MM-DD-HH/compacted+<uuid12>.parquet   an hour merged
    LAKE/_staging/<batch key>/_MANIFEST.json  a written batch the committer has not finished yet

A lake is an Iceberg lake if and only if ``LAKE/_catalog/`` exists. A lake's catalog never
changes: the embedded SQLite one, or the REST catalog recorded in ``catalog.json``
(:func:`recorded_catalog_uri`), whose URI names a place only (no user, password or query).
"""

from __future__ import annotations

import json
import urllib.parse

from transforms.io.lake.store import Lake

__all__ = ["CATALOG", "CATALOG_MARKER", "check_catalog_uri", "is_iceberg", "recorded_catalog_uri"]

CATALOG = "_catalog"
CATALOG_MARKER = "catalog.json"
"""``LAKE/_catalog/catalog.json``: ``{"catalog": "rest", "uri": URI}`` for a lake with a REST catalog."""


def check_catalog_uri(uri: str) -> str:
    """``uri`` without a trailing slash; a ``ValueError`` unless it is an ``http(s)://host[:port][/path]``.

    It is recorded in the lake and shown in logs, so it names a place, never a credential.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the Iceberg REST catalog URI must be http(s)://HOST[:PORT][/PATH], not {uri!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            "the Iceberg REST catalog URI must not carry a user, password or query: it is recorded in the lake"
        )
    return uri.rstrip("/")


def is_iceberg(lake: Lake) -> bool:
    """Whether ``lake`` holds Iceberg tables (its ``_catalog/`` folder exists); imports no pyiceberg.

    A yes is kept on the ``Lake`` (a lake never stops being an Iceberg lake); a no is asked again,
    since the first run creates the catalog of a new lake.
    """
    if getattr(lake, "_iceberg", False):
        return True
    found = lake.exists(lake.path(CATALOG))
    if found:
        lake._iceberg = True  # type: ignore[attr-defined]
    return found


def recorded_catalog_uri(lake: Lake) -> str | None:
    """The REST catalog URI the lake records, or None (no catalog yet, or the embedded SQLite one)."""
    marker = lake.path(CATALOG, CATALOG_MARKER)
    if not lake.exists(marker):
        return None
    with lake.fs.open_input_stream(marker) as stream:
        return str(json.loads(stream.read())["uri"])
