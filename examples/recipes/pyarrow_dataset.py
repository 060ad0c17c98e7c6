"""pyarrow.dataset over the lake: top entities per day, reading only the chosen days' files.

    python -m examples.recipes.pyarrow_dataset LAKE --first 2026-11-22 --last 2026-11-24

The partitioning is declared (``dt`` a date, ``hour`` an int) rather than inferred, so filters
compare dates; a filter on ``dt`` prunes whole folders, and ``get_fragments(filter=...)`` lists
the files a scan with that filter will open.

Entities are counted by ``key`` and label, so "US", "U.S." and "the United States" are one
entity, shown by its most frequent canonical form that day; numbers and times are left out. The
entities dataset is opened with the table's schema, so files written before the ``key`` column
existed read with a NULL key, filled in by the pipeline's own rule.

On an Iceberg lake (it has ``LAKE/_catalog/``) the dataset is the list of files pyiceberg's scan
plans for those days (``row_filter`` on ``ingested_at``, pruned by the ``hour(ingested_at)``
partitions; never a listing of ``LAKE/<table>/data/``, which also holds files of batches not
committed yet), and ``dt`` is the UTC day of ``ingested_at``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from schemas import arrow
from schemas.entity_keys import NOT_NAMED, entity_key

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.date32()), ("hour", pa.int32())]), flavor="hive")
ENTITIES_SCHEMA = arrow.ENTITIES.append(pa.field("dt", pa.date32())).append(pa.field("hour", pa.int32()))


def is_iceberg(lake: str) -> bool:
    """Whether the lake keeps Apache Iceberg tables: it has a ``_catalog/`` folder."""
    return (Path(lake) / "_catalog").is_dir()


def _day_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    return start, dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)


def iceberg_files(lake: str, name: str, first: dt.date | None = None, last: dt.date | None = None) -> list[str]:
    """The current snapshot's data files of an Iceberg table (those of the chosen days, when given).

    From pyiceberg's scan plan, never a listing of the table's ``data/`` folder.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    lake = lake.rstrip("/")
    catalog = SqlCatalog("wirestream", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake)
    row_filter = "True"
    if first is not None and last is not None:
        start, end = _day_bounds(first, last)
        row_filter = f"ingested_at >= '{start.isoformat()}' AND ingested_at < '{end.isoformat()}'"
    scan = catalog.load_table(f"wirestream.{name}").scan(row_filter=row_filter)
    return sorted(task.file.file_path.removeprefix("file://") for task in scan.plan_files())


def table(lake: str, name: str, schema: pa.Schema | None = None) -> ds.Dataset:
    """One Hive lake table as a dataset with its Hive partitions as typed columns (``schema``: all columns)."""
    return ds.dataset(f"{lake.rstrip('/')}/{name}", format="parquet", partitioning=PARTITIONING, schema=schema)


def days(first: dt.date, last: dt.date) -> ds.Expression:
    """The filter for a range of partition days (Hive lake)."""
    return (ds.field("dt") >= first) & (ds.field("dt") <= last)


def ingested(first: dt.date, last: dt.date) -> ds.Expression:
    """The filter for rows ingested on a range of UTC days (Iceberg lake, where ``dt`` is not stored)."""
    start, end = _day_bounds(first, last)
    return (ds.field("ingested_at") >= pa.scalar(start, arrow.ENTITIES.field("ingested_at").type)) & (
        ds.field("ingested_at") < pa.scalar(end, arrow.ENTITIES.field("ingested_at").type)
    )


def files_scanned(lake: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """(files a scan of those days opens, files in the entities table)."""
    if is_iceberg(lake):
        return len(iceberg_files(lake, "entities", first, last)), len(iceberg_files(lake, "entities"))
    entities = table(lake, "entities")
    return len(list(entities.get_fragments(filter=days(first, last)))), len(entities.files)


def named_mentions(lake: str, first: dt.date, last: dt.date) -> pa.Table:
    """``dt``, ``key``, ``canonical``, ``label``, ``article_id`` of the chosen days' named entity mentions."""
    named = ~ds.field("label").isin(list(NOT_NAMED))
    columns = ["key", "canonical", "label", "article_id"]
    if not is_iceberg(lake):
        entities = table(lake, "entities", ENTITIES_SCHEMA)
        return entities.to_table(filter=days(first, last) & named, columns=["dt", *columns])
    files = iceberg_files(lake, "entities", first, last)
    read = ds.dataset(files, format="parquet", schema=arrow.ENTITIES).to_table(
        filter=ingested(first, last) & named, columns=[*columns, "ingested_at"]
    )
    day = pc.cast(read["ingested_at"], pa.date32())  # the UTC day: the column is timestamp[us, UTC]
    return read.drop_columns("ingested_at").add_column(0, "dt", day)


def keyed(mentions: pa.Table) -> pa.Table:
    """``mentions`` with ``key`` filled in where older files have none."""
    if mentions["key"].null_count == 0:
        return mentions
    pairs = zip(mentions["key"].to_pylist(), mentions["canonical"].to_pylist(), strict=True)
    keys = [key if key is not None else entity_key(name) for key, name in pairs]
    return mentions.set_column(mentions.schema.get_field_index("key"), "key", pa.array(keys, pa.string()))


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, entity, label, articles, mentions): the ``top`` named entities of each day."""
    mentions = keyed(named_mentions(lake, first, last))
    forms = mentions.group_by(["dt", "key", "label", "canonical"]).aggregate([("article_id", "count")])
    shown: dict[tuple[Any, ...], str] = {}
    for row in forms.sort_by([("article_id_count", "descending"), ("canonical", "ascending")]).to_pylist():
        shown.setdefault((row["dt"], row["key"], row["label"]), row["canonical"])
    counts = mentions.group_by(["dt", "key", "label"]).aggregate(
        [("article_id", "count_distinct"), ("article_id", "count")]
    )
    ranked = sorted(
        (
            (row["dt"], shown[(row["dt"], row["key"], row["label"])], row["label"])
            + (row["article_id_count_distinct"], row["article_id_count"])
            for row in counts.to_pylist()
        ),
        key=lambda row: (row[0], -row[3], -row[4], row[1], row[2]),
    )
    rows: list[tuple[Any, ...]] = []
    taken: dict[dt.date, int] = {}
    for row in ranked:
        if taken.get(row[0], 0) < top:
            taken[row[0]] = taken.get(row[0], 0) + 1
            rows.append(row)
    return rows


def articles_of(lake: str, first: dt.date, last: dt.date) -> int:
    """How many kept articles the chosen days hold (a count computed without reading any column)."""
    if is_iceberg(lake):
        files = iceberg_files(lake, "articles", first, last)
        return ds.dataset(files, format="parquet", schema=arrow.ARTICLES).count_rows(filter=ingested(first, last))
    return table(lake, "articles").count_rows(filter=days(first, last))


def main() -> None:
    """Print the top entities per day."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    read, total = files_scanned(args.lake, args.first, args.last)
    print(
        f"{articles_of(args.lake, args.first, args.last)} articles; top entities per day "
        f"({read} of {total} entity files read):"
    )
    for day, entity, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {entity} ({label}): {articles} articles, {mentions} mentions")


if __name__ == "__main__":
    main()
