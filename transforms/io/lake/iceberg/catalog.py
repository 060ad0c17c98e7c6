"""The Iceberg catalog of a lake and its six tables.

:func:`open_catalog` opens the catalog: by default an embedded SQL catalog on SQLite at
``LAKE/_catalog/catalog.db`` (a local lake only: the committer must open that file, so the runners
that keep it on one machine, Direct, Prism and Flink local, can use it). Given ``uri``, it opens a
REST catalog instead, and records ``uri`` in ``LAKE/_catalog/catalog.json`` the first time; an
``s3://``/``gs://`` lake needs one. pyiceberg then reads and writes the tables' metadata files
itself: on an ``s3://`` lake with the ``s3.*`` properties of :func:`s3_properties`, taken from the
same ``AWS_*`` environment as the lake's own filesystem (never from the URI or the command line).
Tested against the Iceberg project's REST test server (``infra/iceberg-rest``) on a local disk
and on a local S3 server.

:func:`ensure_tables` creates the tables of :data:`schemas.arrow.STORED_TABLES` as
``wirestream.<table>``, located at ``LAKE/<table>`` (data in ``data/``, metadata in
``metadata/``), each partitioned by ``hour(ingested_at)`` only: Iceberg refuses day and hour on
one column, and a filter on a day prunes through the hour. Invariants:

- every table has a required ``ingested_at`` column, and creation is refused otherwise;
- every table is located in the lake the catalog is opened for (``LAKE/<table>``): a catalog
  holding the tables of another lake (a REST catalog shared by two lakes) is refused;
- every table records ``wirestream.schema-version``; a table recording an older version is
  migrated to :data:`SCHEMA_VERSION` by the additive :data:`MIGRATIONS` after its version (each an
  optional column, never a removal or a retype), in one transaction per table that also bumps the
  version; a table recording a newer version (or none) is refused, never written: an older
  wirestream must not write a newer lake;
- after it, every table's columns are those of its Arrow contract (``schemas.arrow``), in order:
  a column added to the contract without its migration is refused, not silently missing;
- ``commit.retry.num-retries`` is 0: pyiceberg's own retry rebases the snapshot but not the
  cumulative ``wirestream.covered`` property it commits with, so the committer retries itself
  (:mod:`transforms.io.lake.iceberg.commit`);
- manifests are merged and old metadata files deleted after each commit, which keeps the
  per-commit cost bounded once snapshots are expired;
- a migration changes no data file, no snapshot and no other property (``wirestream.covered``,
  the resume point, stays as it was): files written before it read with null in the new column.

:func:`ensure_tables` is idempotent and safe against a concurrent creator or migrator, and
:func:`open_catalog` against another process opening a new lake's SQLite catalog at the same
time (:func:`_creation_lock`). No Beam here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table
from pyiceberg.transforms import HourTransform
from pyiceberg.types import IcebergType

from schemas import arrow
from transforms.io.files import locked
from transforms.io.lake.iceberg import CATALOG, CATALOG_MARKER, check_catalog_uri, recorded_catalog_uri
from transforms.io.lake.store import Lake, place
from transforms.io.log_redaction import protect

__all__ = [
    "BASE_VERSION",
    "MIGRATIONS",
    "NAMESPACE",
    "PARTITION_COLUMN",
    "PARTITION_FIELD",
    "SCHEMA_VERSION",
    "TABLE_PROPERTIES",
    "Migration",
    "check_migrations",
    "data_schemas",
    "ensure_tables",
    "migrate",
    "open_catalog",
    "s3_properties",
    "schema_version",
    "table_name",
]

NAMESPACE = "wirestream"
PARTITION_COLUMN = "ingested_at"
PARTITION_FIELD = "ingested_at_hour"
BASE_VERSION = 1
"""The schema version of the tables before any migration: the first Iceberg lakes'."""


@dataclass(frozen=True)
class Migration:
    """One additive schema change: ``version`` adds the optional ``column`` to ``table``.

    The column must also be in the table's Arrow contract (``schemas.arrow``), nullable and last,
    so that a table created new and a table migrated to ``version`` have the same columns.
    Several migrations may share a version (one release adding columns to several tables).
    """

    version: int
    table: str
    column: str
    type: IcebergType
    doc: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column} (version {self.version})"


MIGRATIONS: tuple[Migration, ...] = ()
"""Every migration so far, in version order; none yet (the first Iceberg schema is the current one)."""


def schema_version(migrations: Sequence[Migration]) -> int:
    """The version tables have after ``migrations``: the last one's, or :data:`BASE_VERSION`."""
    return max((migration.version for migration in migrations), default=BASE_VERSION)


SCHEMA_VERSION = schema_version(MIGRATIONS)
"""The wirestream schema version this code writes; a newer one is refused."""

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

_ATTEMPTS = 50


def table_name(table: str) -> str:
    """The catalog identifier of a lake table (``wirestream.<table>``)."""
    return f"{NAMESPACE}.{table}"


def s3_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``s3.*`` file IO properties of pyiceberg from the lake's ``AWS_*`` environment (only those set).

    The endpoint is ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, as pyarrow and botocore read it.
    """
    names = {
        "s3.endpoint": environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"),
        "s3.access-key-id": environ.get("AWS_ACCESS_KEY_ID"),
        "s3.secret-access-key": environ.get("AWS_SECRET_ACCESS_KEY"),
        "s3.session-token": environ.get("AWS_SESSION_TOKEN"),
        "s3.region": environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
    }
    return {name: value for name, value in names.items() if value}


@contextlib.contextmanager
def _creation_lock(lake: Lake) -> Iterator[None]:
    """An exclusive ``flock`` on ``LAKE/_catalog/catalog.lock`` while the SQLite catalog is opened.

    pyiceberg's ``SqlCatalog`` creates its tables when it finds none, a check and then a
    ``CREATE TABLE``: two processes opening a new lake at once (the pipeline's first run and a
    reader, or two workers) both find none, and one fails with "table iceberg_tables already
    exists". The lock makes the check and the creation one step across processes and threads.
    A reader that cannot write the folder (a read-only lake) goes without it: it cannot create the
    tables either, so it is no party to the race.
    """
    try:
        handle = open(lake.path(CATALOG, "catalog.lock"), "a")  # noqa: SIM115 (closed below)
    except OSError:
        yield
        return
    with locked(handle):
        yield


def open_catalog(lake: Lake, uri: str | None = None, properties: Mapping[str, str] | None = None) -> Catalog:
    """The lake's catalog: SQLite in ``LAKE/_catalog/`` by default, a REST catalog at ``uri``.

    Creates ``LAKE/_catalog/`` (which makes the lake an Iceberg lake, see :func:`is_iceberg`) and
    records a REST ``uri`` there unless already recorded; a ``ValueError`` if the lake records
    another catalog.
    """
    extra = dict(properties or {})
    if lake.local:
        extra.setdefault("py-io-impl", DURABLE_IO)
    if uri is None:
        if not lake.local:
            raise ValueError(
                f"the lake {place(lake.uri)} is on an object store: its Iceberg catalog cannot be the "
                "embedded SQLite file; give a REST catalog URI"
            )
        lake.create_folder(lake.path(CATALOG))
        uri = f"sqlite:///{lake.path(CATALOG, 'catalog.db')}"
        with _creation_lock(lake):
            return SqlCatalog(NAMESPACE, uri=uri, warehouse=lake.root, **extra)
    uri = check_catalog_uri(uri)
    recorded = recorded_catalog_uri(lake)
    if recorded is None and lake.exists(lake.path(CATALOG, "catalog.db")):
        raise ValueError(f"the lake {place(lake.uri)} has its embedded SQLite catalog, not the REST catalog {uri}")
    if recorded is not None and recorded != uri:
        raise ValueError(f"the lake {place(lake.uri)} records the REST catalog {recorded}, not {uri}")
    if lake.uri.startswith("s3://"):
        file_io = s3_properties(os.environ)
        for name in ("s3.secret-access-key", "s3.session-token"):
            if name in file_io:
                protect(file_io[name])
        extra = {**file_io, **extra}
    catalog = load_catalog(NAMESPACE, **{"type": "rest", "uri": uri, **extra})
    if recorded is None:
        lake.create_folder(lake.path(CATALOG))
        marker = {"catalog": "rest", "uri": uri}
        lake.write_atomically(lake.path(CATALOG, CATALOG_MARKER), json.dumps(marker).encode())
    return catalog


def check_migrations(migrations: Sequence[Migration], tables: Mapping[str, pa.Schema] = arrow.STORED_TABLES) -> None:
    """Refuse a migration list that could not bring every older table to the Arrow contract.

    Versions run from ``BASE_VERSION + 1`` without a gap and never go back; each column is a
    nullable field of its table's contract, added once, and the columns a table gains come last
    in its contract, in migration order.
    """
    expected = BASE_VERSION
    added: dict[str, list[str]] = {}
    for migration in migrations:
        if migration.version not in (expected, expected + 1) or migration.version == BASE_VERSION:
            raise ValueError(f"migration {migration} does not follow version {expected}")
        expected = migration.version
        contract = tables.get(migration.table)
        if contract is None or contract.get_field_index(migration.column) < 0:
            raise ValueError(f"migration {migration}: the column is not in the Arrow contract")
        if not contract.field(migration.column).nullable:
            raise ValueError(f"migration {migration}: an added column must be nullable")
        if migration.column in added.get(migration.table, []):
            raise ValueError(f"migration {migration}: added twice")
        added.setdefault(migration.table, []).append(migration.column)
    for table, columns in added.items():
        if tables[table].names[-len(columns) :] != columns:
            raise ValueError(f"the columns {columns} added to {table} are not the last of its contract, in order")


def _create(catalog: Catalog, lake: Lake, table: str, schema: pa.Schema, properties: Mapping[str, str]) -> None:
    if schema.get_field_index(PARTITION_COLUMN) < 0 or schema.field(PARTITION_COLUMN).nullable:
        raise ValueError(f"the lake table {table} needs a required {PARTITION_COLUMN} column to be partitioned by")
    location = lake.url(lake.path(table))
    with (
        catalog.create_table_transaction(
            table_name(table), schema=schema, location=location, properties=dict(properties)
        ) as transaction,
        transaction.update_spec() as spec,
    ):
        spec.add_field(PARTITION_COLUMN, HourTransform(), PARTITION_FIELD)


def _check_location(table: Table, lake: Lake, name: str) -> None:
    """A catalog serves one lake: a table of the same name kept elsewhere is another lake's (a shared REST catalog)."""
    expected = lake.url(lake.path(name))
    if table.location().removeprefix("file://").rstrip("/") != expected:
        raise ValueError(
            f"the catalog's table {table_name(name)} is at {place(table.location())}, not in the lake "
            f"{place(lake.uri)}: a catalog serves one lake; give this lake a catalog of its own"
        )


def _recorded_version(table: Table, current: int) -> int:
    """The table's recorded version; refuses one newer than ``current`` (or none)."""
    recorded = table.properties.get(SCHEMA_VERSION_PROPERTY)
    if recorded is None or not recorded.isdigit() or int(recorded) > current:
        raise ValueError(
            f"the Iceberg table {'.'.join(table.name())} records wirestream schema version {recorded}; "
            f"this wirestream writes version {current}"
        )
    return int(recorded)


def migrate(catalog: Catalog, loaded: Table, migrations: Sequence[Migration] = MIGRATIONS) -> Table:
    """Bring one table to ``schema_version(migrations)``: add the columns of the migrations after its version.

    One transaction adds the columns and sets ``wirestream.schema-version``, applied by the catalog
    to the table's head (a batch committed since ``loaded`` was read is kept, with its
    ``wirestream.covered``). If the commit fails (``CommitFailedException``: another process
    migrated the table first, or moved its head during the swap), the table is reloaded and its
    version checked again. Returns the table, loaded after.
    """
    current = schema_version(migrations)
    name = ".".join(loaded.name())
    for _ in range(_ATTEMPTS):
        recorded = _recorded_version(loaded, current)
        if recorded == current:
            return loaded
        due = [m for m in migrations if m.version > recorded and table_name(m.table) == name]
        try:
            with loaded.transaction() as transaction:
                if due:
                    with transaction.update_schema() as update:
                        for migration in due:
                            update.add_column(migration.column, migration.type, doc=migration.doc)
                transaction.set_properties({SCHEMA_VERSION_PROPERTY: str(current)})
        except CommitFailedException:
            pass
        loaded = catalog.load_table(name)
    raise CommitFailedException(f"could not migrate {name} in {_ATTEMPTS} attempts")


def ensure_tables(catalog: Catalog, lake: Lake, migrations: Sequence[Migration] = MIGRATIONS) -> dict[str, Table]:
    """Create the namespace and every missing table of ``STORED_TABLES``, migrate the older ones; return all six.

    New tables are created at ``schema_version(migrations)`` from the Arrow contract; ``migrations``
    is :data:`MIGRATIONS` but for tests.
    """
    check_migrations(migrations)
    properties = {**TABLE_PROPERTIES, SCHEMA_VERSION_PROPERTY: str(schema_version(migrations))}
    catalog.create_namespace_if_not_exists(NAMESPACE)
    tables = {}
    for table, schema in arrow.STORED_TABLES.items():
        if not catalog.table_exists(table_name(table)):
            with contextlib.suppress(TableAlreadyExistsError):  # created meanwhile by another process
                _create(catalog, lake, table, schema, properties)
        loaded = catalog.load_table(table_name(table))
        _check_location(loaded, lake, table)
        loaded = migrate(catalog, loaded, migrations)
        columns = [field.name for field in loaded.schema().fields]
        if columns != schema.names:
            missing = [name for name in schema.names if name not in columns]
            extra = [name for name in columns if name not in schema.names]
            raise ValueError(
                f"the Iceberg table {table_name(table)} differs from its Arrow contract (missing {missing}, "
                f"extra {extra}, or another order): a column added to the contract needs its migration, "
                "and none is ever removed"
            )
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
