"""pyarrow.dataset over the lake: top entities per day, reading only the chosen days' files.

    python -m examples.recipes.pyarrow_dataset LAKE --first 2026-11-22 --last 2026-11-24

The partitioning is declared (``dt`` a date, ``hour`` an int) rather than inferred, so filters
compare dates; a filter on ``dt`` prunes whole folders, and ``get_fragments(filter=...)`` lists
the files a scan with that filter will open.

Entities are counted by ``key`` and label, so "US", "U.S." and "the United States" are one
entity, shown by its most frequent canonical form that day; numbers and times are left out. The
entities dataset is opened with the table's schema, so files written before the ``key`` column
existed read with a NULL key, filled in by the pipeline's own rule.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from schemas import arrow
from schemas.entity_keys import NOT_NAMED, entity_key

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.date32()), ("hour", pa.int32())]), flavor="hive")
ENTITIES_SCHEMA = arrow.ENTITIES.append(pa.field("dt", pa.date32())).append(pa.field("hour", pa.int32()))


def table(lake: str, name: str, schema: pa.Schema | None = None) -> ds.Dataset:
    """One lake table as a dataset with its Hive partitions as typed columns (``schema``: all columns)."""
    return ds.dataset(f"{lake.rstrip('/')}/{name}", format="parquet", partitioning=PARTITIONING, schema=schema)


def days(first: dt.date, last: dt.date) -> ds.Expression:
    """The filter for a range of partition days."""
    return (ds.field("dt") >= first) & (ds.field("dt") <= last)


def files_scanned(lake: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """(files a scan of those days opens, files in the entities table)."""
    entities = table(lake, "entities")
    return len(list(entities.get_fragments(filter=days(first, last)))), len(entities.files)


def keyed(mentions: pa.Table) -> pa.Table:
    """``mentions`` with ``key`` filled in where older files have none."""
    if mentions["key"].null_count == 0:
        return mentions
    pairs = zip(mentions["key"].to_pylist(), mentions["canonical"].to_pylist(), strict=True)
    keys = [key if key is not None else entity_key(name) for key, name in pairs]
    return mentions.set_column(mentions.schema.get_field_index("key"), "key", pa.array(keys, pa.string()))


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, entity, label, articles, mentions): the ``top`` named entities of each day."""
    named = days(first, last) & ~ds.field("label").isin(list(NOT_NAMED))
    columns = ["dt", "key", "canonical", "label", "article_id"]
    mentions = keyed(table(lake, "entities", ENTITIES_SCHEMA).to_table(filter=named, columns=columns))
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
