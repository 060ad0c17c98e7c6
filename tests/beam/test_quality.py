"""ValidateBatch on the in-process runner: quarantine, counters, results on the lake, the policy."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Article, DeadLetter, OutcomeBatch, Quarantined, SourceBatch
from tests.kit import ROW_LEVEL_BREAKS, dead_letter
from tests.kit import news_article as article
from transforms.io.quality_store import LakeQualityStore
from transforms.quality import QualityConfig, ValidateBatch, load_suite

pytestmark = pytest.mark.beam

CRAFTED = SourceBatch("news", 0, 100, 110, 10)
TWINS = SourceBatch("news", 1, 0, 3, 3)
LETTERS = SourceBatch("news", 2, 0, 1, 1)
SOURCELESS = "source_null_rate_at_most_1_percent"


def _batches() -> list[OutcomeBatch]:
    crafted = [article(100 + i, batch=CRAFTED, **changes) for i, changes in enumerate(ROW_LEVEL_BREAKS.values())]
    outcomes = (*crafted, dead_letter(108, error="x", raw=b"x"), article(109, batch=CRAFTED))
    twins = tuple(article(i, kafka_partition=1, source=None, batch=TWINS) for i in range(3))
    return [
        OutcomeBatch(CRAFTED, outcomes),
        OutcomeBatch(TWINS, twins),
        OutcomeBatch(LETTERS, (dead_letter(0, error="x", raw=b"x").evolve(kafka_partition=2, batch=LETTERS),)),
    ]


def _summary(element: OutcomeBatch) -> tuple[int, list[tuple[int, str]]]:
    def kind(outcome: object) -> str:
        if isinstance(outcome, Quarantined):
            return "q:" + ",".join(outcome.failed_expectations)
        return "article" if isinstance(outcome, Article) else "dead" if isinstance(outcome, DeadLetter) else "?"

    return element.batch.partition, [(o.kafka_offset, kind(o)) for o in element.outcomes]


def _run(lake: Path, policy: str) -> tuple[list, dict[str, int]]:
    config = QualityConfig(lake_uri=str(lake), suite=load_suite(), policy=policy, run_name=f"beam-{policy}")
    pipeline = beam.Pipeline(runner=FnApiRunner())
    validated = (
        pipeline
        | beam.Create(_batches(), reshuffle=False)
        | "Validate" >> ValidateBatch(config, LakeQualityStore(str(lake)))
    )
    summaries = validated | beam.Map(_summary)
    expected = _expected(policy)
    assert_that(summaries, equal_to(expected))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("quality"))["counters"]
    }
    return expected, counters


def _expected(policy: str) -> list:
    names = list(ROW_LEVEL_BREAKS)
    crafted = [(100 + i, f"q:{name}") for i, name in enumerate(names)] + [(108, "dead"), (109, "article")]
    twins = [(i, "article" if policy == "warn" else f"q:{SOURCELESS}") for i in range(3)]
    return [(0, crafted), (1, twins), (2, [(0, "dead")])]


def test_each_row_level_break_is_quarantined_by_name_and_a_batch_failure_is_reported(tmp_path: Path) -> None:
    _, counters = _run(tmp_path, "warn")
    assert counters == {
        "batches_with_quarantine": 1,
        "batches_failed": 1,
        "articles_quarantined": 6,
    }
    results = tmp_path / "_quality" / "results"
    assert sorted(p.name for p in results.iterdir()) == [f"{CRAFTED.key}.json", f"{TWINS.key}.json"]
    twins = json.loads((results / f"{TWINS.key}.json").read_text())
    assert twins["status"] == "batch_failed" and twins["failed_batch_expectations"] == [SOURCELESS]
    assert twins["run"] == "beam-warn" and twins["policy"] == "warn"
    unique = next(e for e in twins["expectations"] if e["name"] == SOURCELESS)
    assert not unique["success"] and unique["level"] == "batch"
    crafted = json.loads((results / f"{CRAFTED.key}.json").read_text())
    assert crafted["status"] == "rows_quarantined" and crafted["counts"]["quarantined"] == 6
    assert {q["kafka_offset"]: q["failed_expectations"] for q in crafted["quarantined"]}[104] == ["word_count_positive"]
    # the stage writes the index at most every 30 s (the launcher completes it at the end of a run)
    index = (tmp_path / "_quality" / "docs" / "index.html").read_text()
    assert 'Run <span class="run-name">beam-warn</span>' in index


def test_policy_fail_quarantines_every_article_of_a_failed_batch(tmp_path: Path) -> None:
    _, counters = _run(tmp_path, "fail")
    assert counters["batches_failed"] == 1 and counters["articles_quarantined"] == 9
