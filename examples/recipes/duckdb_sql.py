"""DuckDB SQL over the lake: top entities per day, and how far each story spread across outlets.

    python -m examples.recipes.duckdb_sql LAKE --first 2026-11-22 --last 2026-11-24

The queries read three views, ``articles``, ``entities`` and ``duplicates``, with the partition
columns ``dt`` and ``hour``; only how the views are made depends on the lake's table format:

- Hive-partitioned Parquet (the default): ``read_parquet`` over the table's folders. Both queries
  filter on ``dt``, so DuckDB opens only the matching folders' files: ``EXPLAIN`` shows it as
  ``File Filters`` and ``Scanning Files: k/n``.
- Iceberg (the lake has ``LAKE/_catalog/``): ``read_parquet`` over the files of the table's
  current snapshot that pyiceberg's scan plans for those days (``row_filter`` on ``ingested_at``
  prunes by the ``hour(ingested_at)`` partitions), with ``dt`` and ``hour`` derived from
  ``ingested_at`` in UTC. Never a glob of ``LAKE/<table>/data/``: it also holds files of batches
  not committed yet. DuckDB's own iceberg extension is not used: none is installable for this
  DuckDB from PyPI, and this recipe never lets DuckDB download one (``autoinstall`` is off).

Entities are counted by ``key`` and label, so "US", "U.S." and "the United States" are one
entity, shown by its most frequent canonical form that day; numbers and times are left out.
Files written before the ``key`` column existed are read too: ``union_by_name`` and an empty
branch with a ``key`` column give their rows a NULL key, which ``entity_key`` (the pipeline's own
rule, registered as a Python function) fills in from ``canonical``, for those rows only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb

from schemas.entity_keys import NOT_NAMED, entity_key

TOP_ENTITIES_PER_DAY = """
WITH named AS (
    SELECT dt, coalesce(key, entity_key(canonical)) AS key, canonical, label, article_id
    FROM (
        SELECT * FROM entities
        UNION ALL BY NAME SELECT NULL::VARCHAR AS key WHERE false
    )
    WHERE dt BETWEEN $first AND $last AND label NOT IN (SELECT unnest($not_named))
),
shown AS (
    SELECT dt, key, label, first(canonical ORDER BY forms DESC, canonical) AS entity
    FROM (SELECT dt, key, label, canonical, count(*) AS forms FROM named GROUP BY ALL)
    GROUP BY ALL
)
SELECT dt, entity, label, count(DISTINCT article_id) AS articles, count(*) AS mentions
FROM named JOIN shown USING (dt, key, label)
GROUP BY dt, key, entity, label
QUALIFY row_number() OVER (PARTITION BY dt ORDER BY articles DESC, mentions DESC, entity, label) <= $top
ORDER BY dt, articles DESC, mentions DESC, entity, label
"""

# Kept articles of the chosen days and every copy of them, whatever day the copy arrived (copies
# are partitioned by their own ingestion time, so `duplicates` is not pruned). A copy may name an
# earlier copy rather than the kept article: the recursive part follows `duplicate_of` until it
# reaches an article that was kept.
STORY_SPREAD = """
WITH RECURSIVE
kept AS (
    SELECT article_id, title, source, ingested_at
    FROM articles
    WHERE dt BETWEEN $first AND $last
),
copies AS (
    SELECT article_id, duplicate_of, source, ingested_at, kafka_topic, kafka_partition, kafka_offset
    FROM duplicates
),
chain AS (
    SELECT kafka_topic, kafka_partition, kafka_offset, source, ingested_at, duplicate_of AS points_to, 0 AS steps
    FROM copies
    UNION ALL
    SELECT chain.kafka_topic, chain.kafka_partition, chain.kafka_offset, chain.source, chain.ingested_at,
           copies.duplicate_of, chain.steps + 1
    FROM chain JOIN copies ON copies.article_id = chain.points_to
    WHERE chain.points_to NOT IN (SELECT article_id FROM kept) AND chain.steps < 50
)
SELECT kept.article_id, kept.title, kept.source AS first_source,
       count(*) AS copies,
       count(DISTINCT chain.source) FILTER (WHERE chain.source IS DISTINCT FROM kept.source) AS other_outlets,
       least(kept.ingested_at, min(chain.ingested_at)) AS first_seen,
       greatest(kept.ingested_at, max(chain.ingested_at)) AS last_seen
FROM kept JOIN chain ON chain.points_to = kept.article_id
GROUP BY kept.article_id, kept.title, kept.source, kept.ingested_at
ORDER BY other_outlets DESC, copies DESC, kept.article_id
"""


def is_iceberg(lake: str) -> bool:
    """Whether the lake keeps Apache Iceberg tables: it has a ``_catalog/`` folder."""
    return (Path(lake) / "_catalog").is_dir()


def iceberg_files(lake: str, table: str, first: dt.date | None = None, last: dt.date | None = None) -> list[str]:
    """The current snapshot's data files of an Iceberg table (those of the chosen days, when given).

    From pyiceberg's scan plan, never a listing of the table's ``data/`` folder.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    lake = lake.rstrip("/")
    catalog = SqlCatalog("wirestream", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake)
    row_filter = "True"
    if first is not None and last is not None:
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
        row_filter = f"ingested_at >= '{start.isoformat()}' AND ingested_at < '{end.isoformat()}'"
    scan = catalog.load_table(f"wirestream.{table}").scan(row_filter=row_filter)
    return sorted(task.file.file_path.removeprefix("file://") for task in scan.plan_files())


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _iceberg_view(connection: duckdb.DuckDBPyConnection, lake: str, table: str, files: list[str]) -> None:
    """``table`` as a view over those files, with the Hive lake's ``dt`` and ``hour`` (UTC ingestion hour)."""
    if files:
        source = f"read_parquet([{', '.join(_quoted(path) for path in files)}], union_by_name = true)"
    else:  # no file planned: no rows, the table's columns
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog("wirestream", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake)
        columns = catalog.load_table(f"wirestream.{table}").schema().as_arrow()
        connection.register(f"{table}_empty", columns.empty_table())
        source = f"{table}_empty"
    utc = "timezone('UTC', ingested_at)"
    connection.execute(f"CREATE VIEW {table} AS SELECT *, CAST({utc} AS DATE) AS dt, hour({utc}) AS hour FROM {source}")


def connect(
    lake: str, first: dt.date, last: dt.date, tables: tuple[str, ...] = ("articles", "entities", "duplicates")
) -> duckdb.DuckDBPyConnection:
    """A connection with a view of each of ``tables`` for those days, and ``entity_key``; downloads nothing."""
    lake = lake.rstrip("/")
    connection = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    connection.create_function("entity_key", entity_key, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"))
    for table in tables:
        if is_iceberg(lake):
            # copies are read over every day (a copy may arrive days later), the others only the chosen days'
            days = (None, None) if table == "duplicates" else (first, last)
            _iceberg_view(connection, lake, table, iceberg_files(lake, table, *days))
        else:
            pattern = _quoted(f"{lake}/{table}/*/*/*.parquet")
            connection.execute(
                f"CREATE VIEW {table} AS SELECT * FROM "
                f"read_parquet({pattern}, hive_partitioning = true, union_by_name = true)"
            )
    return connection


def _parameters(first: dt.date, last: dt.date, **more: Any) -> dict[str, Any]:
    return {"first": first, "last": last, **more}


def top_entities_per_day(lake: str, first: dt.date, last: dt.date, top: int = 5) -> list[tuple[Any, ...]]:
    """(dt, entity, label, articles, mentions): the ``top`` named entities of each day."""
    with connect(lake, first, last, ("entities",)) as connection:
        parameters = _parameters(first, last, top=top, not_named=list(NOT_NAMED))
        return connection.execute(TOP_ENTITIES_PER_DAY, parameters).fetchall()


def story_spread(lake: str, first: dt.date, last: dt.date) -> list[tuple[Any, ...]]:
    """(article_id, title, first_source, copies, other_outlets, first_seen, last_seen) per kept article with copies."""
    with connect(lake, first, last, ("articles", "duplicates")) as connection:
        return connection.execute(STORY_SPREAD, _parameters(first, last)).fetchall()


def files_scanned(lake: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """(files read, files in the table) for the entity query.

    From DuckDB's own plan on a Hive lake; from pyiceberg's scan plan on an Iceberg lake (DuckDB
    reads exactly the files planned for those days).
    """
    if is_iceberg(lake):
        return len(iceberg_files(lake, "entities", first, last)), len(iceberg_files(lake, "entities"))
    with connect(lake, first, last, ("entities",)) as connection:
        parameters = _parameters(first, last, top=5, not_named=list(NOT_NAMED))
        plan = "\n".join(row[1] for row in connection.execute("EXPLAIN " + TOP_ENTITIES_PER_DAY, parameters).fetchall())
    match = re.search(r"Scanning Files: (\d+)/(\d+)", plan)
    if match:
        return int(match.group(1)), int(match.group(2))
    if "File Filters:" in plan:
        raise ValueError(f"no file count in the plan:\n{plan}")
    # DuckDB drops a partition filter that every file meets, and then prints no count: all are read
    every = len(list(Path(lake, "entities").glob("*/*/*.parquet")))
    return every, every


def main() -> None:
    """Print both analyses for a range of days."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    read, total = files_scanned(args.lake, args.first, args.last)
    print(f"top entities per day ({read} of {total} entity files read):")
    for day, entity, label, articles, mentions in top_entities_per_day(args.lake, args.first, args.last):
        print(f"  {day}  {entity} ({label}): {articles} articles, {mentions} mentions")
    print("story spread:")
    for article_id, title, source, copies, outlets, first_seen, last_seen in story_spread(
        args.lake, args.first, args.last
    ):
        print(
            f"  {article_id} {title!r} from {source}: {copies} copies, {outlets} other outlets, "
            f"{first_seen:%Y-%m-%d %H:%M} → {last_seen:%Y-%m-%d %H:%M}"
        )


if __name__ == "__main__":
    main()
