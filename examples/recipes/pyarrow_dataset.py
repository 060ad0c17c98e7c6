"""pyarrow.dataset over the lake: top entities per day, reading only the chosen days' files.

    python -m examples.recipes.pyarrow_dataset LAKE --first 2026-11-22 --last 2026-11-24

The partitioning is declared (``dt`` a date, ``hour`` an int) rather than inferred, so filters
compare dates; a filter on ``dt`` prunes whole folders, and ``get_fragments(filter=...)`` lists
the files a scan with that filter will open.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

NOT_NAMED = ["DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"]
PARTITIONING = ds.partitioning(pa.schema([("dt", pa.date32()), ("hour", pa.int32())]), flavor="hive")


def table(lake: str, name: str) -> ds.Dataset:
    """One lake table as a dataset with its Hive partitions as typed columns."""
    return ds.dataset(f"{lake.rstrip('/')}/{name}", format="parquet", partitioning=PARTITIONING)


def days(first: dt.date, last: dt.date) -> ds.Expression:
    """The filter for a range of partition days."""
    return (ds.field("dt") >= first) & (ds.field("dt") <= last)


def files_scanned(lake: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """(files a scan of those days opens, files in the entities table)."""
    entities = table(lake, "entities")
    return len(list(entities.get_fragments(filter=days(first, last)))), len(entities.files)


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, canonical, label, articles, mentions): the ``top`` named entities of each day."""
    named = days(first, last) & ~ds.field("label").isin(NOT_NAMED)
    mentions = table(lake, "entities").to_table(filter=named, columns=["dt", "canonical", "label", "article_id"])
    counts = mentions.group_by(["dt", "canonical", "label"]).aggregate(
        [("article_id", "count_distinct"), ("article_id", "count")]
    )
    ordered = counts.sort_by(
        [
            ("dt", "ascending"),
            ("article_id_count_distinct", "descending"),
            ("article_id_count", "descending"),
            ("canonical", "ascending"),
            ("label", "ascending"),
        ]
    )
    rows: list[tuple[Any, ...]] = []
    taken: dict[dt.date, int] = {}
    for row in ordered.to_pylist():
        if taken.get(row["dt"], 0) < top:
            taken[row["dt"]] = taken.get(row["dt"], 0) + 1
            rows.append(
                (row["dt"], row["canonical"], row["label"], row["article_id_count_distinct"], row["article_id_count"])
            )
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
    for day, canonical, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {canonical} ({label}): {articles} articles, {mentions} mentions")


if __name__ == "__main__":
    main()
