"""Iceberg schema evolution: a recorded version, additive migrations, old files and old readers.

The release these tests play adds ``articles.region`` (string, optional) as schema version 2: its
Arrow contract gains the column (``monkeypatch`` on ``schemas.arrow.STORED_TABLES``) and
:func:`ensure_tables` gets its migration. The production list of migrations stays empty. Every
batch here is four articles at consecutive offsets of partition 0 (files in ``articles`` and
``_records``).
"""

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import StringType

from pipelines.query import query
from schemas import arrow
from schemas.records import SourceBatch
from tests.kit import article
from transforms.io.lake import Lake
from transforms.io.lake.iceberg.catalog import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    check_migrations,
    data_schemas,
    ensure_tables,
    migrate,
    open_catalog,
    schema_version,
    table_name,
)
from transforms.io.lake.iceberg.commit import COVERED, commit_manifests, covered_ranges
from transforms.io.lake.iceberg.files import BatchManifest, write_batch

TOPIC = "news"
VERSION = "wirestream.schema-version"
REGION = Migration(2, "articles", "region", StringType(), "the article's region")
ARTICLES_V1 = arrow.STORED_TABLES["articles"]
ARTICLES_V2 = ARTICLES_V1.append(pa.field("region", pa.string()))
V2_TABLES = {**arrow.STORED_TABLES, "articles": ARTICLES_V2}


def written(lake: Lake, first: int, end: int, schemas: dict[str, pa.Schema]) -> BatchManifest:
    """A batch of articles ``[first, end)`` written by a worker holding ``schemas``."""
    batch = SourceBatch(TOPIC, 0, first, end, end - first)
    return write_batch(lake, batch, [article(offset, batch) for offset in range(first, end)], schemas)


def fill_region(manifest: BatchManifest, schema: pa.Schema, region: str) -> None:
    """Rewrite the batch's ``articles`` files with ``region`` set (a producer that fills the new column)."""
    for path in manifest.paths("articles"):
        table = pq.ParquetFile(path).read()
        index = table.schema.get_field_index("region")
        field = schema.field("region")
        table = table.set_column(index, field, pa.array([region] * table.num_rows, field.type))
        pq.write_table(table, path, compression="zstd", store_schema=False)


def articles(catalog: Catalog):
    return catalog.load_table(table_name("articles"))


def row_counts(catalog: Catalog) -> dict[str, int]:
    return {table: len(catalog.load_table(table_name(table)).scan().to_arrow()) for table in arrow.STORED_TABLES}


def versions(catalog: Catalog) -> dict[str, str]:
    return {table: catalog.load_table(table_name(table)).properties[VERSION] for table in arrow.STORED_TABLES}


EXPECTED = [(offset, None) for offset in range(4)] + [(offset, "eu") for offset in range(4, 8)]
EXPECTED += [(offset, None) for offset in range(8, 12)]
"""``(kafka_offset, region)``: written before the migration, by an upgraded worker, by a stale worker."""


@dataclass(frozen=True)
class Evolved:
    """A lake migrated to version 2 between its first batch and the next two."""

    lake: Lake
    catalog: Catalog
    v1_snapshot: int
    before: tuple[str, dict, dict[str, int]]
    """``articles``' ``wirestream.covered``, the resume point and the row counts before the migration."""
    after: tuple[str, dict, dict[str, int]]
    """The same right after it."""
    old_schemas: dict[str, pa.Schema]
    new_schemas: dict[str, pa.Schema]
    stale: BatchManifest


def _state(catalog: Catalog) -> tuple[str, dict, dict[str, int]]:
    return articles(catalog).properties[COVERED], covered_ranges(catalog), row_counts(catalog)


@pytest.fixture
def evolved(tmp_path, monkeypatch) -> Evolved:
    """Batch [0, 4) at version 1; the release adding ``articles.region``; [4, 8) by an upgraded worker
    (region ``eu``) and [8, 12) by a worker not restarted yet, committed together."""
    lake = Lake(str(tmp_path))
    catalog = open_catalog(lake)
    ensure_tables(catalog, lake)
    old_schemas = data_schemas(catalog)  # a worker started before the upgrade
    commit_manifests(catalog, lake, [written(lake, 0, 4, old_schemas)])
    v1_snapshot = articles(catalog).current_snapshot().snapshot_id
    before = _state(catalog)
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V2)
    ensure_tables(catalog, lake, (REGION,))
    after = _state(catalog)
    new_schemas = data_schemas(catalog)  # a worker started after the upgrade
    fresh = written(lake, 4, 8, new_schemas)
    fill_region(fresh, new_schemas["articles"], "eu")
    stale = written(lake, 8, 12, old_schemas)
    commit_manifests(catalog, lake, [fresh, stale])
    return Evolved(lake, catalog, v1_snapshot, before, after, old_schemas, new_schemas, stale)


def test_a_migration_adds_the_column_and_bumps_the_version_in_metadata_only(evolved) -> None:
    catalog = evolved.catalog
    assert versions(catalog) == dict.fromkeys(arrow.STORED_TABLES, "2")
    table = articles(catalog)
    assert [field.name for field in table.schema().fields] == ARTICLES_V2.names
    region = table.schema().find_field("region")
    assert (region.required, region.doc, region.field_type) == (False, "the article's region", StringType())
    assert sorted(table.schemas()) == [0, 1]
    schema_ids = {name: catalog.load_table(table_name(name)).schema().schema_id for name in arrow.STORED_TABLES}
    assert schema_ids == {**dict.fromkeys(arrow.STORED_TABLES, 0), "articles": 1}
    # the migration made no snapshot, changed no covered range and no row count
    assert evolved.after == evolved.before
    assert evolved.before[1] == {(TOPIC, 0): [(0, 4)]}
    assert [snapshot.schema_id for snapshot in table.snapshots()] == [0, 1]
    assert table.snapshots()[0].snapshot_id == evolved.v1_snapshot
    # the upgraded worker's files carry the column with its field id; the stale worker's do not
    field_id = evolved.new_schemas["articles"].field("region").metadata[b"PARQUET:field_id"]
    assert field_id == str(region.field_id).encode()
    assert evolved.new_schemas["articles"].remove(len(ARTICLES_V1)) == evolved.old_schemas["articles"]
    assert "region" not in pq.read_schema(evolved.stale.paths("articles")[0]).names
    # both were committed: add_files accepted the file without the column
    assert covered_ranges(catalog) == {(TOPIC, 0): [(0, 12)]}
    assert row_counts(catalog) == {"articles": 12, "entities": 0, "duplicates": 0, "quarantine": 0,
                                   "dead_letters": 0, "_records": 12}  # fmt: skip
    # idempotent: a second start migrates nothing
    again = ensure_tables(catalog, evolved.lake, (REGION,))
    assert again["articles"].metadata_location == articles(catalog).metadata_location


def test_old_files_read_null_and_old_readers_still_read(evolved) -> None:
    table = articles(evolved.catalog)
    scanned = table.scan(selected_fields=("kafka_offset", "region")).to_arrow().sort_by("kafka_offset")
    assert list(zip(*scanned.to_pydict().values(), strict=True)) == EXPECTED

    pinned = table.scan(snapshot_id=evolved.v1_snapshot).to_arrow()  # a reader pinned before the change
    assert pinned.column_names == ARTICLES_V1.names
    assert sorted(pinned["kafka_offset"].to_pylist()) == [0, 1, 2, 3]

    files = [task.file.file_path for task in table.scan().plan_files()]
    assert len(files) == 3
    sql = "SELECT kafka_offset, region FROM read_parquet(?, union_by_name = true) ORDER BY kafka_offset"
    assert duckdb.connect().execute(sql, [files]).fetchall() == EXPECTED

    columns, rows = query(evolved.lake.uri, "SELECT kafka_offset, region FROM articles ORDER BY kafka_offset")
    assert (columns, rows) == (["kafka_offset", "region"], EXPECTED)  # wirestream query

    old_reader = ds.dataset(files, format="parquet", schema=ARTICLES_V1).to_table()
    assert old_reader.column_names == ARTICLES_V1.names
    assert sorted(old_reader["kafka_offset"].to_pylist()) == list(range(12))
    new_reader = ds.dataset(files, format="parquet", schema=ARTICLES_V2).to_table(columns=["kafka_offset", "region"])
    assert sorted(zip(*new_reader.to_pydict().values(), strict=True), key=lambda row: row[0]) == EXPECTED


def test_polars_reads_the_added_column_and_the_pinned_snapshot(evolved) -> None:
    pl = pytest.importorskip("polars")
    table = articles(evolved.catalog)
    current = pl.scan_iceberg(table).select("kafka_offset", "region").sort("kafka_offset").collect()
    assert current.rows() == EXPECTED
    # polars 1.44 projects the table's current schema onto a pinned snapshot: an old reader names
    # its columns (unselected, the native reader panics and pyiceberg's misses ``region``)
    pinned = pl.scan_iceberg(table, snapshot_id=evolved.v1_snapshot).select(ARTICLES_V1.names).collect()
    assert pinned.columns == ARTICLES_V1.names
    assert sorted(pinned["kafka_offset"].to_list()) == [0, 1, 2, 3]


def test_an_older_wirestream_refuses_a_newer_lake(tmp_path, monkeypatch) -> None:
    lake = Lake(str(tmp_path))
    catalog = open_catalog(lake)
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V2)
    tables = ensure_tables(catalog, lake, (REGION,))  # a new lake is created at the newest version
    assert versions(catalog) == dict.fromkeys(arrow.STORED_TABLES, "2")
    assert [field.name for field in tables["articles"].schema().fields] == ARTICLES_V2.names
    assert sorted(tables["articles"].schemas()) == [0]
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V1)  # the release before
    with pytest.raises(ValueError, match="records wirestream schema version 2; this wirestream writes version 1"):
        ensure_tables(catalog, lake)
    assert versions(catalog) == dict.fromkeys(arrow.STORED_TABLES, "2")


def test_a_contract_column_without_its_migration_is_refused(tmp_path, monkeypatch) -> None:
    lake = Lake(str(tmp_path))
    catalog = open_catalog(lake)
    ensure_tables(catalog, lake)
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V2)
    with pytest.raises(ValueError, match=r"wirestream.articles differs .*missing \['region'\], extra \[\]"):
        ensure_tables(catalog, lake)


def test_two_migrators_at_once_migrate_once(tmp_path, monkeypatch) -> None:
    lake = Lake(str(tmp_path))
    catalog = open_catalog(lake)
    ensure_tables(catalog, lake)
    stale = articles(open_catalog(lake))  # loaded by another process before the migration
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V2)
    ensure_tables(catalog, lake, (REGION,))
    winner = articles(catalog).metadata_location
    migrated = migrate(open_catalog(lake), stale, (REGION,))  # its commit fails; reloaded, it finds version 2
    assert migrated.metadata_location == winner
    assert [field.name for field in migrated.schema().fields] == ARTICLES_V2.names
    assert sorted(migrated.schemas()) == [0, 1]


def test_a_migration_from_a_stale_load_keeps_a_batch_committed_meanwhile(tmp_path, monkeypatch) -> None:
    """The catalog applies the migration's updates to the head (its schema-id requirement still
    holds), so the batch's files and ``wirestream.covered`` survive it."""
    lake = Lake(str(tmp_path))
    catalog = open_catalog(lake)
    ensure_tables(catalog, lake)
    stale = articles(catalog)
    commit_manifests(catalog, lake, [written(lake, 0, 4, data_schemas(catalog))])  # moves the head
    monkeypatch.setitem(arrow.STORED_TABLES, "articles", ARTICLES_V2)
    migrated = migrate(catalog, stale, (REGION,))
    assert migrated.properties[VERSION] == "2"
    assert [field.name for field in migrated.schema().fields] == ARTICLES_V2.names
    assert migrated.properties[COVERED] == '{"news+0":[[0,4]]}'
    assert len(migrated.scan().to_arrow()) == 4


def _migration(version: int, table: str, column: str) -> Migration:
    return Migration(version, table, column, StringType(), "")


@pytest.mark.parametrize(
    ("migrations", "refusal"),
    [
        ((_migration(3, "articles", "region"),), "articles.region \\(version 3\\) does not follow version 1"),
        ((REGION, _migration(2, "articles", "region")), "articles.region \\(version 2\\): added twice"),
        ((REGION, _migration(4, "entities", "region")), "does not follow version 2"),
        ((_migration(2, "articles", "colour"),), "not in the Arrow contract"),
        ((_migration(2, "nowhere", "region"),), "not in the Arrow contract"),
        ((_migration(2, "articles", "article_id"),), "an added column must be nullable"),
        ((_migration(2, "articles", "url"),), "not the last of its contract"),
    ],
)
def test_a_migration_list_that_cannot_reach_the_contract_is_refused(migrations, refusal) -> None:
    with pytest.raises(ValueError, match=refusal):
        check_migrations(migrations, V2_TABLES)


def test_the_production_migrations_reach_the_contract() -> None:
    check_migrations(MIGRATIONS)
    check_migrations((REGION,), V2_TABLES)
    assert (MIGRATIONS, SCHEMA_VERSION, schema_version((REGION,))) == ((), 1, 2)
