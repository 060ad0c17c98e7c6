"""polars over the lake: a lazy scan, top entities per day, with the partition filter pushed down.

    python -m examples.recipes.polars_lazy LAKE --first 2026-11-22 --last 2026-11-24

polars is not a dependency of wirestream itself (about 190 MB): install the ``recipes`` extra
(``pip install -e '.[recipes]'``; ``make test`` does).

``scan_parquet(..., hive_partitioning=True)`` reads ``dt`` as a date and ``hour`` as an integer;
a filter on them is applied to the folder names before any file is opened, which the optimised
plan (``LazyFrame.explain()``) shows as the list of files the scan will read.

Entities are counted by ``key`` and label, so "US", "U.S." and "the United States" are one
entity, shown by its most frequent canonical form that day; numbers and times are left out. The
scan is given the table's schema with ``missing_columns="insert"``, so files written before the
``key`` column existed read with a NULL key, filled in by the pipeline's own rule.

On an Iceberg lake (it has ``LAKE/_catalog/``) the scan is polars' own ``scan_iceberg`` of the
table (the catalog opened with pyiceberg): it reads the current snapshot's files only (never a
listing of ``LAKE/<table>/data/``, which also holds files of batches not committed yet), matching
columns by the Iceberg field ids every wirestream file carries. A filter on ``ingested_at`` is
pushed into pyiceberg's scan plan, so only the chosen days' ``hour(ingested_at)`` partitions are
read (``explain()`` lists them), and ``dt`` is the UTC day of ``ingested_at``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl

from schemas import arrow
from schemas.entity_keys import NOT_NAMED, entity_key

ENTITIES_SCHEMA = pl.DataFrame(arrow.ENTITIES.empty_table()).schema


def is_iceberg(lake: str) -> bool:
    """Whether the lake keeps Apache Iceberg tables: it has a ``_catalog/`` folder."""
    return (Path(lake) / "_catalog").is_dir()


def iceberg_table(lake: str, name: str) -> Any:
    """The pyiceberg table ``wirestream.<name>`` of an Iceberg lake."""
    from pyiceberg.catalog.sql import SqlCatalog

    lake = lake.rstrip("/")
    catalog = SqlCatalog("wirestream", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake)
    return catalog.load_table(f"wirestream.{name}")


def entities(lake: str, first: dt.date, last: dt.date) -> pl.LazyFrame:
    """The entity mentions of the chosen days, lazily."""
    if is_iceberg(lake):
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
        ingested = pl.col("ingested_at")
        return (
            pl.scan_iceberg(iceberg_table(lake, "entities"))
            .filter((ingested >= start) & (ingested < end))
            .with_columns(dt=ingested.dt.date())
        )
    scan = pl.scan_parquet(
        f"{lake.rstrip('/')}/entities/*/*/*.parquet",
        hive_partitioning=True,
        schema=ENTITIES_SCHEMA,
        missing_columns="insert",
    )
    return scan.filter(pl.col("dt").is_between(first, last))


def keyed(mentions: pl.DataFrame) -> pl.DataFrame:
    """``mentions`` with ``key`` filled in where older files have none (once per distinct name)."""
    missing = mentions.filter(pl.col("key").is_null())["canonical"].unique().to_list()
    if not missing:
        return mentions
    keys = {name: entity_key(name) for name in missing}
    return mentions.with_columns(pl.coalesce("key", pl.col("canonical").replace_strict(keys, default=None)))


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, entity, label, articles, mentions): the ``top`` named entities of each day."""
    mentions = keyed(
        entities(lake, first, last)
        .filter(~pl.col("label").is_in(list(NOT_NAMED)))
        .select("dt", "key", "canonical", "label", "article_id")
        .collect()
    )
    shown = (
        mentions.group_by("dt", "key", "label", "canonical")
        .agg(forms=pl.len())
        .sort(["forms", "canonical"], descending=[True, False])
        .group_by("dt", "key", "label", maintain_order=True)
        .first()
        .select("dt", "key", "label", entity="canonical")
    )
    counts = (
        mentions.group_by("dt", "key", "label")
        .agg(articles=pl.col("article_id").n_unique(), mentions=pl.len())
        .join(shown, on=["dt", "key", "label"])
        .sort(["dt", "articles", "mentions", "entity", "label"], descending=[False, True, True, False, False])
        .group_by("dt", maintain_order=True)
        .head(top)
        .select("dt", "entity", "label", "articles", "mentions")
    )
    return list(counts.iter_rows())


def plan(lake: str, first: dt.date, last: dt.date) -> str:
    """The optimised plan of the scan: it names the files that will be read."""
    return entities(lake, first, last).explain()


def files_scanned(lake: str, first: dt.date, last: dt.date) -> int:
    """How many files the scan reads, from the plan: ``Parquet SCAN [a, b]``, ``[a, ... N other sources]`` or ``[]``."""
    scan = next(line for line in plan(lake, first, last).splitlines() if "SCAN [" in line)
    listed = scan[scan.index("[") + 1 : scan.rindex("]")]
    more = re.search(r"\.\.\. (\d+) other sources?$", listed)
    if more:
        return 1 + int(more.group(1))
    return len(listed.split(", ")) if listed else 0


def main() -> None:
    """Print the top entities per day and the scan's plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    print(plan(args.lake, args.first, args.last))
    for day, entity, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {entity} ({label}): {articles} articles, {mentions} mentions")


if __name__ == "__main__":
    main()
