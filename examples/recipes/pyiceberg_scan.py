"""pyiceberg's own scan of an Iceberg lake: top entities per day, reading only those days' files.

    python -m examples.recipes.pyiceberg_scan LAKE --first 2026-11-22 --last 2026-11-24

For a lake written with ``wirestream run --table-format iceberg`` (it has ``LAKE/_catalog/``; a
Hive lake is refused: use the other recipes). The catalog is the SQLite file in
``LAKE/_catalog/``, each table is ``wirestream.<table>``, partitioned by ``hour(ingested_at)``.

``scan(row_filter=...)`` on ``ingested_at`` is planned against the current snapshot: the manifests
name every committed file with its partition and column bounds, so files of other hours are left
out before any is opened (``plan_files()`` lists the rest: planned files vs all files). Files in
``LAKE/<table>/data/`` that no snapshot names (a batch not committed yet, an orphan of a crash) are
never read. Iceberg has no ``dt`` column: the day is the UTC day of ``ingested_at``, as the Hive
lake's folders say.

Entities are counted by ``key`` and label, so "US", "U.S." and "the United States" are one
entity, shown by its most frequent canonical form that day; numbers and times are left out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from schemas.entity_keys import NOT_NAMED


def is_iceberg(lake: str) -> bool:
    """Whether the lake keeps Apache Iceberg tables: it has a ``_catalog/`` folder."""
    return (Path(lake) / "_catalog").is_dir()


def table(lake: str, name: str) -> Table:
    """The table ``wirestream.<name>`` from the lake's SQLite catalog."""
    lake = lake.rstrip("/")
    catalog = SqlCatalog("wirestream", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake)
    return catalog.load_table(f"wirestream.{name}")


def ingested_between(start: dt.datetime, end: dt.datetime) -> str:
    """The row filter ``start <= ingested_at < end`` (aware datetimes), in pyiceberg's filter syntax."""
    return f"ingested_at >= '{start.isoformat()}' AND ingested_at < '{end.isoformat()}'"


def days(first: dt.date, last: dt.date) -> str:
    """Rows ingested on the UTC days ``first`` to ``last``."""
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    return ingested_between(start, dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC))


def files_planned(lake: str, name: str, row_filter: str) -> tuple[int, int]:
    """(files a scan with ``row_filter`` reads, files of the current snapshot), from the scan plan."""
    scanned = table(lake, name)
    return len(list(scanned.scan(row_filter=row_filter).plan_files())), len(list(scanned.scan().plan_files()))


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, entity, label, articles, mentions): the ``top`` named entities of each day."""
    not_named = ", ".join(f"'{label}'" for label in NOT_NAMED)
    row_filter = f"{days(first, last)} AND label NOT IN ({not_named})"
    fields = ("ingested_at", "key", "canonical", "label", "article_id")
    rows = table(lake, "entities").scan(row_filter=row_filter, selected_fields=fields).to_arrow().to_pylist()
    mentions: Counter[tuple[dt.date, str, str]] = Counter()
    forms: Counter[tuple[dt.date, str, str, str]] = Counter()
    articles: dict[tuple[dt.date, str, str], set[str]] = {}
    for row in rows:
        entity = (row["ingested_at"].astimezone(dt.UTC).date(), row["key"], row["label"])
        mentions[entity] += 1
        forms[(*entity, row["canonical"])] += 1
        articles.setdefault(entity, set()).add(row["article_id"])
    shown: dict[tuple[dt.date, str, str], str] = {}
    for (day, key, label, form), _ in sorted(forms.items(), key=lambda item: (-item[1], item[0][3])):
        shown.setdefault((day, key, label), form)
    ranked = sorted(mentions, key=lambda e: (e[0], -len(articles[e]), -mentions[e], shown[e], e[2]))
    result: list[tuple[Any, ...]] = []
    taken: Counter[dt.date] = Counter()
    for entity in ranked:
        if taken[entity[0]] < top:
            taken[entity[0]] += 1
            result.append((entity[0], shown[entity], entity[2], len(articles[entity]), mentions[entity]))
    return result


def main() -> None:
    """Print the top entities per day and how many files the scan planned."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    if not is_iceberg(args.lake):
        sys.exit(f"{args.lake} is not an Iceberg lake (no _catalog/ in it): read it with the other recipes")
    planned, total = files_planned(args.lake, "entities", days(args.first, args.last))
    print(f"top entities per day ({planned} of {total} entity files planned):")
    for day, entity, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {entity} ({label}): {articles} articles, {mentions} mentions")


if __name__ == "__main__":
    main()
