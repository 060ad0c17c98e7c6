"""The Iceberg catalog of a lake and its six tables.

:func:`open_catalog` opens the catalog: by default an embedded SQL catalog on SQLite at
``LAKE/_catalog/catalog.db`` (a local lake only: the committer must open that file, so the runners
that keep it on one machine, Direct, Prism and Flink local, can use it). Given ``uri``, it opens a
REST catalog instead (``properties`` such as ``credential``, ``s3.endpoint``, ``s3.region``); that
path is **untested** (no REST server here), and an ``s3://``/``gs://`` lake needs it.

:func:`ensure_tables` creates the tables of :data:`schemas.arrow.STORED_TABLES` as
``wirestream.<table>``, located at ``LAKE/<table>`` (data in ``data/``, metadata in
``metadata/``), each partitioned by ``hour(ingested_at)`` only: Iceberg refuses day and hour on
one column, and a filter on a day prunes through the hour. Invariants:

- every table has a required ``ingested_at`` column, and creation is refused otherwise;
- every table records ``wirestream.schema-version`` (:data:`SCHEMA_VERSION`); a table recorded
  by another version is refused, never silently written;
- ``commit.retry.num-retries`` is 0: pyiceberg's own retry rebases the snapshot but not the
  cumulative ``wirestream.covered`` property it commits with, so the committer retries itself
  (:mod:`transforms.io.lake.iceberg.commit`);
- manifests are merged and old metadata files deleted after each commit, which keeps the
  per-commit cost bounded once snapshots are expired.

:func:`ensure_tables` is idempotent and safe against a concurrent creator. No Beam here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import TableAlreadyExistsError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table
from pyiceberg.transforms import HourTransform

from schemas import arrow
from transforms.io.lake.iceberg import CATALOG
from transforms.io.lake.store import Lake, place

__all__ = [
    "NAMESPACE",
    "PARTITION_COLUMN",
    "PARTITION_FIELD",
    "SCHEMA_VERSION",
    "TABLE_PROPERTIES",
    "data_schemas",
    "ensure_tables",
    "open_catalog",
    "table_name",
]

NAMESPACE = "wirestream"
PARTITION_COLUMN = "ingested_at"
PARTITION_FIELD = "ingested_at_hour"
SCHEMA_VERSION = 1
"""The wirestream schema version of the tables; bumped together with an additive migration."""

DURABLE_IO = "transforms.io.lake.iceberg.durable.DurableFileIO"
"""pyiceberg never fsyncs; the default catalog's file IO does (:mod:`transforms.io.lake.iceberg.durable`)."""
SCHEMA_VERSION_PROPERTY = "wirestream.schema-version"
TABLE_PROPERTIES: dict[str, str] = {
    SCHEMA_VERSION_PROPERTY: str(SCHEMA_VERSION),
    "commit.retry.num-retries": "0",
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "8",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "10",
}


def table_name(table: str) -> str:
    """The catalog identifier of a lake table (``wirestream.<table>``)."""
    return f"{NAMESPACE}.{table}"


def open_catalog(lake: Lake, uri: str | None = None, properties: Mapping[str, str] | None = None) -> Catalog:
    """The lake's catalog: SQLite in ``LAKE/_catalog/`` by default, a REST catalog at ``uri`` (untested).

    Creates ``LAKE/_catalog/`` (which makes the lake an Iceberg lake, see :func:`is_iceberg`).
    """
    extra = dict(properties or {})
    if uri is None:
        if not lake.local:
            raise ValueError(
                f"the lake {place(lake.uri)} is on an object store: its Iceberg catalog cannot be the "
                "embedded SQLite file; give a REST catalog URI"
            )
        lake.create_folder(lake.path(CATALOG))
        extra.setdefault("py-io-impl", DURABLE_IO)
        return SqlCatalog(NAMESPACE, uri=f"sqlite:///{lake.path(CATALOG, 'catalog.db')}", warehouse=lake.root, **extra)
    catalog = load_catalog(NAMESPACE, **{"type": "rest", "uri": uri, **extra})
    marker = {"catalog": "rest", "uri": place(uri)}
    lake.create_folder(lake.path(CATALOG))
    lake.write_atomically(lake.path(CATALOG, "catalog.json"), json.dumps(marker).encode())
    return catalog


def _create(catalog: Catalog, lake: Lake, table: str, schema: pa.Schema) -> None:
    if schema.get_field_index(PARTITION_COLUMN) < 0 or schema.field(PARTITION_COLUMN).nullable:
        raise ValueError(f"the lake table {table} needs a required {PARTITION_COLUMN} column to be partitioned by")
    location = lake.url(lake.path(table))
    with (
        catalog.create_table_transaction(
            table_name(table), schema=schema, location=location, properties=TABLE_PROPERTIES
        ) as transaction,
        transaction.update_spec() as spec,
    ):
        spec.add_field(PARTITION_COLUMN, HourTransform(), PARTITION_FIELD)


def _check_version(table: Table) -> None:
    recorded = table.properties.get(SCHEMA_VERSION_PROPERTY)
    if recorded != str(SCHEMA_VERSION):
        raise ValueError(
            f"the Iceberg table {table.name()} records wirestream schema version {recorded}; "
            f"this wirestream writes version {SCHEMA_VERSION}"
        )


def ensure_tables(catalog: Catalog, lake: Lake) -> dict[str, Table]:
    """Create the namespace and every missing table of ``STORED_TABLES``; return all six, loaded."""
    catalog.create_namespace_if_not_exists(NAMESPACE)
    tables = {}
    for table, schema in arrow.STORED_TABLES.items():
        if not catalog.table_exists(table_name(table)):
            with contextlib.suppress(TableAlreadyExistsError):  # created meanwhile by another process
                _create(catalog, lake, table, schema)
        loaded = catalog.load_table(table_name(table))
        _check_version(loaded)
        tables[table] = loaded
    return tables


def data_schemas(catalog: Catalog) -> dict[str, pa.Schema]:
    """Each table's current schema as Arrow with Iceberg field ids (``PARQUET:field_id``), to write files with.

    Readers that match columns by id (polars' native Iceberg reader) need the ids in every file.
    """
    return {
        table: schema_to_pyarrow(catalog.load_table(table_name(table)).schema(), include_field_ids=True)
        for table in arrow.STORED_TABLES
    }
