"""Data quality through the real broker and Prism: quarantine by name, reports, Data Docs, validate."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import assert_each_once, chromium, dump_dom, run_until_caught_up
from tests.kit import ROOT

pytestmark = pytest.mark.integration

BODIES = [  # distinct stories, so that deduplication keeps every one of them
    "The mayor of Lisbon opened a new tram line on Friday, and the city council said more would follow.",
    "Too short.",
    "Farmers near Valencia began the orange harvest two weeks early after an unusually warm autumn.",
    "A ferry linking Helsinki and Tallinn was cancelled on Sunday as storms crossed the Gulf of Finland.",
    "The central bank in Warsaw held interest rates steady and said inflation would ease next spring.",
    "Engineers in Bergen finished testing a floating wind turbine that will power two offshore oil platforms.",
    "A museum in Krakow reopened its medieval wing after a restoration that took almost four years.",
    "Dock workers in Antwerp voted to accept a new wage offer, ending a strike that had lasted nine days.",
]


def _message(index: int, **fields: object) -> bytes:
    return json.dumps({"url": f"https://quality.example/{index}", "body": BODIES[index], **fields}).encode()


def _cases() -> list[tuple[bytes, str | None]]:
    """(value, the row-level expectation it breaks or None). No message has a title, so every
    batch breaks the batch-level title_null_rate_at_most_50_percent (reported, not enforced: warn)."""
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    return [
        (_message(0), None),
        (_message(1, language="en"), "text_length_in_bounds"),
        (_message(2), None),
        (_message(3, language="fr"), None),  # every language is kept; the language mix is a monitor
        (_message(4), None),
        (_message(5, published_at=future), "published_at_not_in_future"),
        (json.dumps({"id": "no-url-6", "body": BODIES[6]}).encode(), "url_not_null"),
        (_message(7), None),
    ]


@pytest.fixture(scope="module")
def quality_run(bootstrap_servers: str, prism: Path, tmp_path_factory: pytest.TempPathFactory):
    topic = f"quality-{uuid.uuid4().hex[:10]}"
    lake = tmp_path_factory.mktemp("lake")
    cases = _cases()
    placed = produce([value for value, _ in cases], bootstrap_servers, topic, partitions=1)
    run_name = f"it-{topic}"
    result = run_until_caught_up(lake, topic, bootstrap_servers, f"--quality-run-name={run_name}")
    return {"topic": topic, "lake": lake, "cases": cases, "placed": placed, "run": run_name, "result": result}


def test_each_crafted_article_is_quarantined_with_the_expectation_it_breaks(quality_run) -> None:
    lake, topic = quality_run["lake"], quality_run["topic"]
    assert_each_once(lake, {(topic, p, o) for p, o in quality_run["placed"]})
    _, rows = query(str(lake), "SELECT kafka_offset, failed_expectations FROM quarantine")
    quarantined = {offset: list(names) for offset, names in rows}
    expected = {
        offset: [name]
        for (_, offset), (_, name) in zip(quality_run["placed"], quality_run["cases"], strict=True)
        if name
    }
    assert quarantined == expected
    _, articles = query(str(lake), "SELECT count(*) FROM articles")
    assert articles[0][0] == 5
    assert "quarantined:        3" in quality_run["result"].stdout
    _, languages = query(str(lake), "SELECT language, ner_status, count(*) FROM articles GROUP BY ALL ORDER BY 1")
    assert languages == [("en", "annotated", 4), ("fr", "no_model", 1)]


def test_batch_level_failure_is_in_the_results_json(quality_run) -> None:
    results = sorted((quality_run["lake"] / "_quality" / "results").glob("*.json"))
    assert results
    reports = [json.loads(path.read_text()) for path in results]
    for path, report in zip(results, reports, strict=True):
        assert path.stem == report["batch"]["key"]
        assert report["run"] == quality_run["run"] and report["policy"] == "warn"
        assert report["status"] == "batch_failed"
        assert "title_null_rate_at_most_50_percent" in report["failed_batch_expectations"]
    assert sum(report["counts"]["quarantined"] for report in reports) == 3
    assert sum(report["languages"].get("fr", 0) for report in reports) == 1
    assert any("language_mix_mostly_expected" in report["failed_monitors"] for report in reports)


def test_data_docs_index_names_the_run_in_headless_chromium(quality_run, tmp_path: Path) -> None:
    docs = quality_run["lake"] / "_quality" / "docs"
    index = docs / "index.html"
    assert index.exists()
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH (make chromium installs Debian's); the index was checked as a file only")
    dom = dump_dom(browser, index, tmp_path / "profile")
    assert f'<span class="run-name">{quality_run["run"]}</span>' in dom
    keys = [path.stem for path in (quality_run["lake"] / "_quality" / "results").glob("*.json")]
    for key in keys:
        assert f'href="batches/{key}.html"' in dom
    page = dump_dom(browser, docs / "batches" / f"{keys[0]}.html", tmp_path / "profile")
    assert quality_run["run"] in page and "title_null_rate_at_most_50_percent" in page and "committed" in dom


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_validate_command_gives_a_verdict_per_partition_and_an_exit_code(quality_run) -> None:
    lake = str(quality_run["lake"])
    result = _validate(lake)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  articles/dt=" in result.stdout and "title_null_rate_at_most_50_percent" in result.stdout
    assert "rows break row-level" not in result.stdout  # the pipeline quarantined those rows
    assert "overall: FAIL" in result.stdout
    missing = _validate(lake, "--dt", "1999-01-01")
    assert missing.returncode == 2 and "no articles partitions for 1999-01-01" in missing.stdout
