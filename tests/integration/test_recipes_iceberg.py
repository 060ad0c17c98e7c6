"""Every documented reader on an Iceberg lake gives the answers it gives on a Hive lake of the same records.

``twin_lakes`` runs the real pipeline over the same input into a Hive lake and an Iceberg lake
(ingestion-time partitions, one UTC day); the Iceberg lake also holds an orphan copy of a committed
file in its ``data/`` folders, which a reader that lists that folder instead of planning the scan
would count twice. The recipes (DuckDB, pyarrow.dataset, polars, pyiceberg's scan), ``wirestream
validate`` and ``wirestream report`` are compared across the twins and with a plain count over the
Hive lake's files; pruning is shown from each reader's own plan, and DuckDB never downloads an
extension.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from examples.recipes import duckdb_sql, polars_lazy, pyarrow_dataset, pyiceberg_scan
from pipelines.report import build_sections
from pipelines.validate import validate_lake
from tests.integration.test_recipes import _expected_top_entities, _rows
from tests.kit import ROOT
from transforms.io.lake import Lake, data_files

pytestmark = pytest.mark.integration

RECIPES = (duckdb_sql, pyarrow_dataset, polars_lazy)


def _day(lake: Path) -> dt.date:
    """The one UTC day the lake's articles were ingested on (the Hive lake's only ``dt`` folder)."""
    (folder,) = {path.name for path in (lake / "articles").glob("dt=*")}
    return dt.date.fromisoformat(folder.removeprefix("dt="))


def _committed(lake: Path, table: str) -> list[str]:
    return data_files(Lake(str(lake)), table)


def test_the_orphans_lie_beside_the_committed_files_and_are_no_part_of_the_snapshot(twin_lakes) -> None:
    iceberg = twin_lakes["iceberg"]
    for orphan in twin_lakes["orphans"]:
        table = orphan.parent.parent.parent.name
        listed = sorted(str(path) for path in (iceberg / table / "data").glob("*/*.parquet"))
        assert str(orphan) in listed
        assert sorted(_committed(iceberg, table)) == [path for path in listed if path != str(orphan)]


def test_every_reader_gives_the_same_top_entities_on_both_formats(twin_lakes) -> None:
    hive, iceberg = str(twin_lakes["hive"]), str(twin_lakes["iceberg"])
    day = _day(twin_lakes["hive"])
    expected = _expected_top_entities(twin_lakes["hive"], 5, day, day)
    assert [row[1:] for row in expected[:2]] == [("North Korean", "NORP", 1, 5), ("Russia", "GPE", 1, 4)]
    assert {row[0] for row in expected} == {day}
    for recipe in RECIPES:
        assert recipe.top_entities_per_day(hive, day, day) == expected, recipe.__name__
        assert recipe.top_entities_per_day(iceberg, day, day) == expected, recipe.__name__
    assert pyiceberg_scan.top_entities_per_day(iceberg, day, day) == expected
    other = day - dt.timedelta(days=1)
    for recipe in (*RECIPES, pyiceberg_scan):
        assert recipe.top_entities_per_day(iceberg, other, other) == [], recipe.__name__


def test_story_spread_and_article_counts_agree_on_both_formats(twin_lakes) -> None:
    hive, iceberg = str(twin_lakes["hive"]), str(twin_lakes["iceberg"])
    day = _day(twin_lakes["hive"])
    spread = duckdb_sql.story_spread(hive, day, day)
    # the demo's harbour story: one outlet's article and a near copy by another (which one is kept
    # follows the records' Kafka timestamps: the same in both lakes)
    assert [(row[0].startswith("demo-harbour-"), row[3], row[4]) for row in spread] == [(True, 1, 1)]
    ((kept, *same, first_seen, last_seen),) = duckdb_sql.story_spread(iceberg, day, day)
    assert [kept, *same] == list(spread[0][:5])  # first and last seen are each lake's ingestion times
    seen = (
        "SELECT min(ingested_at), max(ingested_at) FROM (SELECT ingested_at FROM articles WHERE article_id = ? "
        "UNION ALL SELECT ingested_at FROM duplicates WHERE duplicate_of = ?)"
    )
    with duckdb_sql.connect(iceberg, day, day) as connection:
        assert connection.execute(seen, [kept, kept]).fetchall() == [(first_seen, last_seen)]
    articles = len(_rows(twin_lakes["hive"], "articles", day, day))
    assert articles == 6
    assert pyarrow_dataset.articles_of(hive, day, day) == pyarrow_dataset.articles_of(iceberg, day, day) == articles


def test_each_reader_plans_only_the_chosen_days_files_of_the_snapshot(twin_lakes) -> None:
    iceberg = str(twin_lakes["iceberg"])
    day = _day(twin_lakes["hive"])
    other = day + dt.timedelta(days=1)
    committed = _committed(twin_lakes["iceberg"], "entities")
    every = len(committed)
    assert every >= 2  # several batches, so a filter inside the hour can leave some out
    assert duckdb_sql.files_scanned(iceberg, day, day) == (every, every)
    assert duckdb_sql.files_scanned(iceberg, other, other) == (0, every)
    assert pyarrow_dataset.files_scanned(iceberg, day, day) == (every, every)
    assert pyarrow_dataset.files_scanned(iceberg, other, other) == (0, every)
    assert polars_lazy.files_scanned(iceberg, day, day) == every
    assert polars_lazy.files_scanned(iceberg, other, other) == 0
    assert pyiceberg_scan.files_planned(iceberg, "entities", pyiceberg_scan.days(day, day)) == (every, every)
    assert pyiceberg_scan.files_planned(iceberg, "entities", pyiceberg_scan.days(other, other)) == (0, every)
    # inside the hour, the files' ingested_at bounds prune: since the latest batch, only its files
    latest = {path: max(pq.read_table(path, columns=["ingested_at"])["ingested_at"].to_pylist()) for path in committed}
    since = max(latest.values())
    wanted = sum(1 for last in latest.values() if last >= since)
    assert 0 < wanted < every
    end = since + dt.timedelta(hours=1)
    assert pyiceberg_scan.files_planned(iceberg, "entities", pyiceberg_scan.ingested_between(since, end)) == (
        wanted,
        every,
    )


def test_duckdb_reads_an_iceberg_lake_without_any_extension(twin_lakes) -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("duckdb-extension-iceberg")
    day = _day(twin_lakes["hive"])
    with duckdb_sql.connect(str(twin_lakes["iceberg"]), day, day) as connection:
        settings = (
            "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
        )
        assert connection.execute(settings).fetchall() == [(False, False)]
        assert connection.execute("SELECT count(*) FROM entities").fetchall() == [(80,)]
        loaded = "SELECT extension_name FROM duckdb_extensions() WHERE loaded AND install_path != '(BUILT-IN)'"
        assert connection.execute(loaded).fetchall() == []


# the other two scripts' main() only prints what the tests above compare; these two add a check each
@pytest.mark.parametrize("recipe", ["duckdb_sql", "pyiceberg_scan"])
def test_each_recipe_runs_as_a_script_on_an_iceberg_lake(twin_lakes, recipe: str, tmp_path: Path) -> None:
    day = _day(twin_lakes["hive"])
    script = [sys.executable, "-m", f"examples.recipes.{recipe}", "--first", str(day), "--last", str(day)]
    home = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # DuckDB would put a downloaded extension in ~/.duckdb
    result = subprocess.run(
        [*script, str(twin_lakes["iceberg"])], cwd=ROOT, capture_output=True, text=True, timeout=120, env=home
    )
    assert result.returncode == 0, result.stderr
    top = _expected_top_entities(twin_lakes["hive"], 5, day, day)[0]
    assert f"{top[0]}  {top[1]} ({top[2]}): {top[3]} articles, {top[4]} mentions" in result.stdout
    assert not (tmp_path / ".duckdb").exists()
    if recipe == "pyiceberg_scan":
        every = len(_committed(twin_lakes["iceberg"], "entities"))
        assert f"top entities per day ({every} of {every} entity files planned):" in result.stdout
        refused = subprocess.run(
            [*script, str(twin_lakes["hive"])], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode == 1
        assert "is not an Iceberg lake (no _catalog/ in it)" in refused.stderr


def test_validate_gives_the_same_verdicts_on_both_formats(twin_lakes) -> None:
    hive, iceberg = str(twin_lakes["hive"]), str(twin_lakes["iceberg"])
    day = _day(twin_lakes["hive"])
    lines, code = validate_lake(iceberg)
    assert (lines, code) == ([line.replace(hive, iceberg) for line in validate_lake(hive)[0]], 0)
    assert lines[-1] == "overall: PASS (1 partitions, 6 articles)"
    assert validate_lake(iceberg, [str(day)]) == (lines, 0)
    other = str(day - dt.timedelta(days=1))
    assert validate_lake(iceberg, [other]) == ([f"no articles partitions for {other} in {iceberg}"], 2)


def _without_timings(section: Any) -> Any:
    """A report section with what depends on when the run happened left out (latency, run names)."""
    if section.key == "latency":
        return dataclasses.replace(
            section, charts=[], tables=[(t[0], t[1], [row[:2] for row in t[2]]) for t in section.tables]
        )
    if section.key == "quality":
        return dataclasses.replace(
            section, tables=[(t[0], t[1], [row[2:] if t[0] == "Runs" else row for row in t[2]]) for t in section.tables]
        )
    return section


def test_the_report_says_the_same_of_both_formats(twin_lakes) -> None:
    hive = [_without_timings(section) for section in build_sections(str(twin_lakes["hive"]))]
    iceberg = [_without_timings(section) for section in build_sections(str(twin_lakes["iceberg"]))]
    assert [section.key for section in iceberg] == [section.key for section in hive]
    assert all(section.no_data is None for section in iceberg)
    for left, right in zip(hive, iceberg, strict=True):
        assert right == left, left.key
    latency = next(section for section in iceberg if section.key == "latency")
    assert [row[1] for row in latency.tables[0][2]] == [len(twin_lakes["placed"])]  # every record, once
