"""The downstream recipes (examples/recipes/) against a lake the real pipeline wrote.

Each library's answer is compared with the others and with a plain computation over the Parquet
files (pyarrow.parquet and Counter, no query engine), and each shows that a filter on the Hive
partition column ``dt`` made it read only the chosen days' files.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from examples.recipes import duckdb_sql, polars_lazy, pyarrow_dataset
from pipelines.report import resolve_clusters
from schemas.entity_keys import NOT_NAMED, entity_key
from tests.kit import ROOT

pytestmark = pytest.mark.integration

FIRST, LAST = dt.date(2026, 11, 22), dt.date(2026, 11, 23)  # two of the demo articles' publication days


def _files(lake: Path, table: str, first: dt.date | None = None, last: dt.date | None = None) -> list[Path]:
    files = sorted((lake / table).glob("dt=*/hour=*/*.parquet"))
    if first is None or last is None:
        return files
    return [f for f in files if first <= dt.date.fromisoformat(f.parent.parent.name.removeprefix("dt=")) <= last]


def _rows(lake: Path, table: str, first: dt.date | None = None, last: dt.date | None = None) -> list[dict[str, Any]]:
    return [row for path in _files(lake, table, first, last) for row in pq.read_table(path).to_pylist()]


def _expected_top_entities(
    lake: Path, top: int = 5, first: dt.date = FIRST, last: dt.date = LAST
) -> list[tuple[Any, ...]]:
    """The same figure from the files themselves: the day is the folder's name, an entity is its key
    and label (the pipeline's rule where a file has no key), shown by its most frequent canonical form."""
    mentions: Counter[tuple[dt.date, str, str]] = Counter()
    forms: Counter[tuple[dt.date, str, str, str]] = Counter()
    articles: dict[tuple[dt.date, str, str], set[str]] = {}
    for path in _files(lake, "entities", first, last):
        day = dt.date.fromisoformat(path.parent.parent.name.removeprefix("dt="))
        for row in pq.ParquetFile(path).read().to_pylist():
            if row["label"] in NOT_NAMED:
                continue
            key = (day, row.get("key") or entity_key(row["canonical"]), row["label"])
            mentions[key] += 1
            forms[(*key, row["canonical"])] += 1
            articles.setdefault(key, set()).add(row["article_id"])
    shown: dict[tuple[dt.date, str, str], str] = {}
    for (day, key, label, form), _ in sorted(forms.items(), key=lambda item: (-item[1], item[0][3])):
        shown.setdefault((day, key, label), form)
    ranked = sorted(mentions, key=lambda k: (k[0], -len(articles[k]), -mentions[k], shown[k], k[2]))
    rows, taken = [], Counter[dt.date]()
    for key in ranked:
        if taken[key[0]] < top:
            taken[key[0]] += 1
            rows.append((key[0], shown[key], key[2], len(articles[key]), mentions[key]))
    return rows


def test_three_libraries_and_the_files_agree_on_top_entities_per_day(event_time_lake) -> None:
    lake = event_time_lake["lake"]
    expected = _expected_top_entities(lake)
    assert {row[0] for row in expected} == {FIRST, LAST}  # both days have entities
    assert duckdb_sql.top_entities_per_day(str(lake), FIRST, LAST) == expected
    assert pyarrow_dataset.top_entities_per_day(str(lake), FIRST, LAST) == expected
    assert polars_lazy.top_entities_per_day(str(lake), FIRST, LAST) == expected


@pytest.mark.parametrize("keys", ["some files without", "no file with"])
def test_the_recipes_count_every_spelling_once_also_in_a_lake_from_before_keys(
    lake_from_before_keys: Path, keys: str
) -> None:
    lake, day = lake_from_before_keys, dt.date(2026, 11, 24)
    if keys == "no file with":
        for path in lake.glob("*/dt=*/hour=*/news+0+0000000000000000002+*.parquet"):
            path.unlink()
    expected = _expected_top_entities(lake, 5, day, day)
    assert expected == (
        [(day, "U.S.", "GPE", 3, 8), (day, "Lloyd Austin", "PERSON", 2, 3), (day, "Britain", "GPE", 1, 2)]
        if keys == "some files without"
        else [(day, "U.S.", "GPE", 2, 4), (day, "Lloyd Austin", "PERSON", 1, 1)]
    )
    for recipe in (duckdb_sql, pyarrow_dataset, polars_lazy):
        assert recipe.top_entities_per_day(str(lake), day, day) == expected, recipe.__name__


def test_a_filter_on_dt_reads_only_that_days_files(event_time_lake) -> None:
    lake = event_time_lake["lake"]
    wanted, total = len(_files(lake, "entities", FIRST, LAST)), len(_files(lake, "entities"))
    assert 0 < wanted < total  # the other days' files exist and must be skipped
    assert duckdb_sql.files_scanned(str(lake), FIRST, LAST) == (wanted, total)
    assert pyarrow_dataset.files_scanned(str(lake), FIRST, LAST) == (wanted, total)
    assert polars_lazy.files_scanned(str(lake), FIRST, LAST) == wanted
    assert pyarrow_dataset.articles_of(str(lake), FIRST, LAST) == len(_rows(lake, "articles", FIRST, LAST))


def test_story_spread_counts_each_kept_articles_copies_and_outlets(event_time_lake) -> None:
    lake = event_time_lake["lake"]
    kept = {row["article_id"]: row for row in _rows(lake, "articles", FIRST, LAST)}
    copies = _rows(lake, "duplicates")
    roots = resolve_clusters([(c["article_id"], c["duplicate_of"]) for c in copies], set(kept))
    expected = []
    for article_id, article in kept.items():
        mine = [c for c in copies if roots[c["article_id"]] == article_id]
        if not mine:
            continue
        seen = [article["ingested_at"], *(c["ingested_at"] for c in mine)]
        outlets = {c["source"] for c in mine} - {article["source"]}
        expected.append(
            (article_id, article["title"], article["source"], len(mine), len(outlets), min(seen), max(seen))
        )
    expected.sort(key=lambda row: (-row[4], -row[3], row[0]))
    spread = duckdb_sql.story_spread(str(lake), FIRST, LAST)
    assert spread == expected
    # the demo's harbour story: one outlet's article and a near copy by another outlet
    assert [(row[0].startswith("demo-harbour-"), row[3], row[4]) for row in spread] == [(True, 1, 1)]


@pytest.mark.parametrize("recipe", ["duckdb_sql", "pyarrow_dataset", "polars_lazy"])
def test_each_recipe_runs_as_a_script(event_time_lake, recipe: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            f"examples.recipes.{recipe}",
            str(event_time_lake["lake"]),
            "--first",
            str(FIRST),
            "--last",
            str(LAST),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    top = _expected_top_entities(event_time_lake["lake"])[0]
    assert f"{top[0]}  {top[1]} ({top[2]}): {top[3]} articles, {top[4]} mentions" in result.stdout
