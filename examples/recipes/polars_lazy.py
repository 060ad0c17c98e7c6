"""polars over the lake: a lazy scan, top entities per day, with the partition filter pushed down.

    python -m examples.recipes.polars_lazy LAKE --first 2026-11-22 --last 2026-11-24

``scan_parquet(..., hive_partitioning=True)`` reads ``dt`` as a date and ``hour`` as an integer;
a filter on them is applied to the folder names before any file is opened, which the optimised
plan (``LazyFrame.explain()``) shows as the list of files the scan will read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any

import polars as pl

NOT_NAMED = ["DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"]


def entities(lake: str, first: dt.date, last: dt.date) -> pl.LazyFrame:
    """The entity mentions of the chosen days, lazily."""
    scan = pl.scan_parquet(f"{lake.rstrip('/')}/entities/*/*/*.parquet", hive_partitioning=True)
    return scan.filter(pl.col("dt").is_between(first, last))


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, canonical, label, articles, mentions): the ``top`` named entities of each day."""
    counts = (
        entities(lake, first, last)
        .filter(~pl.col("label").is_in(NOT_NAMED))
        .group_by("dt", "canonical", "label")
        .agg(articles=pl.col("article_id").n_unique(), mentions=pl.len())
        .sort(["dt", "articles", "mentions", "canonical", "label"], descending=[False, True, True, False, False])
        .group_by("dt", maintain_order=True)
        .head(top)
        .select("dt", "canonical", "label", "articles", "mentions")
    )
    return list(counts.collect().iter_rows())


def plan(lake: str, first: dt.date, last: dt.date) -> str:
    """The optimised plan of the scan: it names the files that will be read."""
    return entities(lake, first, last).explain()


def files_scanned(lake: str, first: dt.date, last: dt.date) -> int:
    """How many files the scan reads, from the plan: ``Parquet SCAN [a, b]`` or ``[a, ... N other sources]``."""
    scan = next(line for line in plan(lake, first, last).splitlines() if "SCAN [" in line)
    listed = scan[scan.index("[") + 1 : scan.rindex("]")]
    more = re.search(r"\.\.\. (\d+) other sources?$", listed)
    return 1 + int(more.group(1)) if more else len(listed.split(", "))


def main() -> None:
    """Print the top entities per day and the scan's plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    print(plan(args.lake, args.first, args.last))
    for day, canonical, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {canonical} ({label}): {articles} articles, {mentions} mentions")


if __name__ == "__main__":
    main()
