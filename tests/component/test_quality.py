"""The quality stage's pure parts, and the real suite on crafted articles (GX, no Beam)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from schemas.records import Article, DeadLetter, Entity, OutcomeBatch, Quarantined, SourceBatch
from tests.kit import INGESTED_AT, NEWS_BATCH, ROW_LEVEL_BREAKS
from tests.kit import dead_letter as kit_dead_letter
from tests.kit import news_article as article
from transforms.errors import UserError
from transforms.io.lake import Lake
from transforms.io.quality_store import report_states, write_index, write_report
from transforms.quality_core import (
    QualityConfig,
    SuiteValidator,
    apply_verdict,
    articles_frame,
    batch_failures,
    load_suite,
    records_frame,
    render_index,
    row_failures,
    validate_articles,
)

BATCH = NEWS_BATCH
TEXT = "The mayor of Lisbon opened a new tram line on Friday, the city council said."


def dead_letter(offset: int) -> DeadLetter:
    return kit_dead_letter(offset, BATCH, error="x", raw=b"x")


def gx_result(*entries: tuple[str, str, bool, list[int]]) -> dict:
    """A GX-shaped result: (name, level, success, failing rows) per expectation."""
    return {
        "results": [
            {
                "success": success,
                "expectation_config": {"type": "t", "kwargs": {}, "meta": {"name": name, "level": level}},
                "result": {"unexpected_index_list": [{"row": row, "article_id": f"a{row}"} for row in rows]},
                "exception_info": {"raised_exception": False},
            }
            for name, level, success, rows in entries
        ]
    }


def test_frame_has_one_row_per_article_and_the_derived_columns() -> None:
    future = INGESTED_AT + dt.timedelta(minutes=30)
    articles = [
        article(100),
        article(
            101,
            url="",
            published_at=None,
            entities=(Entity("x", "ORG", 70, 90, "x", "x"), Entity("y", "ORG", 5, 5, "y", "y")),
        ),
        article(102, published_at=future, text=""),
    ]
    frame = articles_frame(articles)
    assert list(frame["row"]) == [0, 1, 2]
    assert frame["url"].isna().tolist() == [False, True, False]
    assert frame["text"].isna().tolist() == [False, False, True]
    assert frame["text_length"].tolist()[:2] == [len(TEXT), len(TEXT)]
    assert frame["seconds_after_ingestion"].tolist()[0] == -3600.0
    assert frame["seconds_after_ingestion"].isna().tolist() == [False, True, False]
    assert frame["seconds_after_ingestion"].tolist()[2] == 1800.0
    assert frame["bad_entity_offsets"].tolist() == [0, 2, 1]  # past the end, empty span; empty text


def test_records_frame_reads_lake_rows_and_counts_missing_offsets_as_bad() -> None:
    row = {
        "article_id": "a",
        "url": "https://n.example/a",
        "text": TEXT,
        "word_count": 14,
        "ingested_at": INGESTED_AT,
        "published_at": None,
        "entities": [{"start": 0, "end": 3}, {"start": None, "end": 4}, {"start": -1, "end": 2}],
    }
    frame = records_frame([row])
    assert frame["bad_entity_offsets"].tolist() == [2]
    assert frame["language"].tolist() == ["und"]  # so that language_allowed names a missing language


def test_row_failures_name_each_row_once_in_suite_order_and_skip_batch_level() -> None:
    result = gx_result(
        ("text_length_in_bounds", "row", False, [2, 0]),
        ("language_allowed", "row", False, [2]),
        ("article_id_unique", "batch", False, [1, 3]),
        ("url_not_null", "row", True, []),
    )
    assert row_failures(result, rows=4) == {
        0: ("text_length_in_bounds",),
        2: ("text_length_in_bounds", "language_allowed"),
    }
    assert batch_failures(result) == ("article_id_unique",)


def test_an_expectation_that_raised_is_a_batch_failure_and_names_no_row() -> None:
    result = gx_result(("language_allowed", "row", False, [0]))
    result["results"][0]["exception_info"] = {"raised_exception": True, "exception_message": "no column"}
    assert row_failures(result, rows=1) == {}
    assert batch_failures(result) == ("language_allowed:error",)


def test_apply_verdict_keeps_one_outcome_per_record_in_order() -> None:
    outcomes = (article(100), dead_letter(101), article(102), article(103))
    new = apply_verdict(outcomes, {1: ("language_allowed",)}, (), "warn")
    assert [o.kafka_offset for o in new] == [100, 101, 102, 103]
    assert isinstance(new[1], DeadLetter) and isinstance(new[0], Article) and isinstance(new[3], Article)
    assert isinstance(new[2], Quarantined) and new[2].failed_expectations == ("language_allowed",)
    # a failed batch expectation under warn changes nothing; under fail it quarantines every article
    assert apply_verdict(outcomes, {}, ("article_id_unique",), "warn") == outcomes
    failed = apply_verdict(outcomes, {1: ("language_allowed",)}, ("article_id_unique",), "fail")
    assert [type(o).__name__ for o in failed] == ["Quarantined", "DeadLetter", "Quarantined", "Quarantined"]
    assert failed[2].failed_expectations == ("language_allowed", "article_id_unique")
    assert failed[0].failed_expectations == ("article_id_unique",)


def test_load_suite_refuses_unnamed_or_unlevelled_expectations(tmp_path: Path) -> None:
    suite = load_suite()
    assert {e["meta"]["level"] for e in suite["expectations"]} == {"row", "batch", "monitor"}
    broken = {"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "x"}}]}
    (tmp_path / "s.json").write_text(json.dumps(broken))
    with pytest.raises(UserError, match="expectation 1 needs a unique meta.name"):
        load_suite(tmp_path / "s.json")


@pytest.fixture(scope="module")
def validator() -> SuiteValidator:
    return SuiteValidator(load_suite())


def test_the_suite_names_every_row_level_expectation_a_crafted_article_breaks(
    validator: SuiteValidator, tmp_path
) -> None:
    suite = load_suite()
    row_level = [e["meta"]["name"] for e in suite["expectations"] if e["meta"]["level"] == "row"]
    assert sorted(row_level) == sorted(ROW_LEVEL_BREAKS)
    crafted = [article(100 + i, **changes) for i, changes in enumerate(ROW_LEVEL_BREAKS.values())]
    good = [article(100 + len(crafted) + i) for i in range(2)]
    element = OutcomeBatch(BATCH, tuple(crafted + good))
    config = QualityConfig(lake_uri=str(tmp_path), suite=suite, run_name="unit-run")
    verdict = validate_articles(validator, element, config, INGESTED_AT)
    names = [o.failed_expectations if isinstance(o, Quarantined) else None for o in verdict.outcomes]
    # one expectation each: a missing text has a missing length, which the length bound leaves to text_not_null
    assert names[:6] == [
        ("article_id_not_null",),
        ("url_not_null",),
        ("text_not_null",),
        ("text_length_in_bounds",),
        ("word_count_positive",),
        ("published_at_not_in_future",),
    ]
    assert names[6:] == [None, None]
    report = verdict.report
    assert report is not None and report["status"] == "rows_quarantined" and report["counts"]["quarantined"] == 6
    by_name = {entry["name"]: entry for entry in report["expectations"]}
    assert by_name["url_not_null"]["failing_rows"] == [{"row": 1, "article_id": "a101", "kafka_offset": 101}]
    json.dumps(report)  # JSON-ready as it is


def test_every_language_passes_and_the_language_mix_is_monitored(validator: SuiteValidator, tmp_path) -> None:
    languages = ["en", "pt", "ja", "en", "ar"]
    element = OutcomeBatch(BATCH, tuple(article(100 + i, language=code) for i, code in enumerate(languages)))
    config = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="fail", run_name="r")
    verdict = validate_articles(validator, element, config, INGESTED_AT)
    assert verdict.outcomes == element.outcomes  # nothing quarantined, even under the fail policy
    report = verdict.report
    assert report is not None and report["status"] == "passed"
    assert report["languages"] == {"en": 2, "pt": 1, "ja": 1, "ar": 1}
    assert report["failed_monitors"] == ["language_mix_mostly_expected"]


def test_monitors_report_but_never_quarantine(validator: SuiteValidator, tmp_path) -> None:
    outside = (Entity("Lisbon", "GPE", 70, 200, "Lisbon", "lisbon"),)
    twins = (article(100), article(101, article_id="a100", content_hash="hash100"), article(102, entities=outside))
    config = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="fail", run_name="r")
    verdict = validate_articles(validator, OutcomeBatch(BATCH, twins), config, INGESTED_AT)
    assert verdict.outcomes == twins and verdict.report is not None
    assert verdict.report["failed_monitors"] == [
        "entity_offsets_inside_text",
        "article_id_unique",
        "content_duplicate_rate_at_most_10_percent",
    ]


def test_a_batch_level_failure_is_reported_and_the_policy_decides(validator: SuiteValidator, tmp_path) -> None:
    sourceless = (article(100, source=None), article(101), article(102, source=None))
    element = OutcomeBatch(BATCH, sourceless)
    warn = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="warn", run_name="r")
    verdict = validate_articles(validator, element, warn, INGESTED_AT)
    assert verdict.report is not None
    assert verdict.report["status"] == "batch_failed"
    assert verdict.report["failed_batch_expectations"] == ["source_null_rate_at_most_1_percent"]
    assert verdict.outcomes == sourceless
    fail = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="fail", run_name="r")
    outcomes = validate_articles(validator, element, fail, INGESTED_AT).outcomes
    assert all(
        isinstance(o, Quarantined) and o.failed_expectations == ("source_null_rate_at_most_1_percent",)
        for o in outcomes
    )


def test_a_validation_error_passes_the_batch_under_warn_and_quarantines_it_under_fail(tmp_path) -> None:
    element = OutcomeBatch(BATCH, (article(100), dead_letter(101)))
    warn = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="warn")
    verdict = validate_articles(None, element, warn, INGESTED_AT)
    assert verdict.outcomes == element.outcomes and verdict.report is not None
    assert verdict.report["status"] == "error" and "no validator" in verdict.report["error"]
    fail = QualityConfig(lake_uri=str(tmp_path), suite=load_suite(), policy="fail")
    outcomes = validate_articles(None, element, fail, INGESTED_AT).outcomes
    assert isinstance(outcomes[0], Quarantined) and outcomes[0].failed_expectations == ("validation_error",)
    assert isinstance(outcomes[1], DeadLetter)


def test_a_batch_without_articles_is_not_validated(tmp_path) -> None:
    element = OutcomeBatch(BATCH, (dead_letter(100),))
    verdict = validate_articles(None, element, QualityConfig(lake_uri=str(tmp_path), suite=load_suite()), INGESTED_AT)
    assert verdict.report is None and verdict.outcomes == element.outcomes


def _report(key_first: int, end: int, validated_at: str, run: str = "run-a", status: str = "passed") -> dict:
    batch = SourceBatch("news", 0, key_first, end, end - key_first)
    return {
        "batch": {"key": batch.key, "topic": "news", "partition": 0, "first_offset": key_first, "end_offset": end},
        "run": run,
        "validated_at": validated_at,
        "status": status,
        "counts": {"articles_validated": end - key_first, "quarantined": 0},
        "failed_batch_expectations": [],
    }


def test_report_states_tell_committed_superseded_and_uncommitted_apart() -> None:
    old = _report(0, 10, "2026-11-25T10:00:00")  # written, then a crash; the replay cut 0..25
    new = _report(0, 25, "2026-11-25T10:05:00")
    pending = _report(25, 30, "2026-11-25T10:06:00")
    states = report_states([old, new, pending], {("news", 0): [(0, 20), (20, 25)]})
    assert states == {
        old["batch"]["key"]: "superseded",
        new["batch"]["key"]: "committed",
        pending["batch"]["key"]: "uncommitted",
    }


def test_index_lists_runs_newest_first_and_links_every_batch() -> None:
    reports = [
        _report(0, 10, "2026-11-25T10:00:00", run="run-early"),
        _report(10, 20, "2026-11-25T11:00:00", run="run-late", status="batch_failed"),
    ]
    page = render_index(reports, {})
    assert page.index("run-late") < page.index("run-early")
    assert 'href="batches/news+0+0000000000000000000+0000000000000000010.html"' in page
    assert "batch_failed: 1" in page and "passed: 1" in page


def test_reports_are_written_atomically_under_the_batch_key_and_a_replay_overwrites(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    report = {**_report(0, 10, "2026-11-25T10:00:00"), "quarantined": [], "expectations": []}
    write_report(lake, report)
    write_report(lake, {**report, "run": "run-replay"})
    results = sorted(p.name for p in (tmp_path / "_quality" / "results").iterdir())
    assert results == ["news+0+0000000000000000000+0000000000000000010.json"]
    assert json.loads((tmp_path / "_quality" / "results" / results[0]).read_text())["run"] == "run-replay"
    assert (tmp_path / "_quality" / "docs" / "batches" / results[0].replace(".json", ".html")).exists()
    index = Path(write_index(lake)).read_text()
    assert "run-replay" in index and "uncommitted" in index
