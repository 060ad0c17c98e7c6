"""The composites on a real (in-process) Beam runner, with ``beam.Create`` and ``assert_that``."""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import SourceBatch
from tests.conftest import make_record
from transforms.clean import CleanArticle
from transforms.entities import EntityConfig, ExtractEntities
from transforms.io.lake import WriteLake
from transforms.parse import ParseArticle

pytestmark = pytest.mark.beam


def _pipeline() -> BeamTestPipeline:
    return BeamTestPipeline(runner=FnApiRunner(), blocking=True)


def _records(values: list[bytes]) -> list:
    batch = SourceBatch("news", 0, 100, 100 + len(values), len(values))
    return [make_record(value, offset=100 + i, topic="news", batch=batch) for i, value in enumerate(values)]


GOOD = json.dumps({"url": "https://n.example/a", "body": "Angela Merkel visited Paris on Monday."}).encode()
EMPTY = json.dumps({"url": "https://n.example/b", "body": "   "}).encode()


def test_parse_and_clean_route_good_and_bad_records() -> None:
    with _pipeline() as p:
        records = p | beam.Create(_records([GOOD, b"{oops", EMPTY]))
        parsed = records | "Parse" >> ParseArticle()
        cleaned = parsed.articles | "Clean" >> CleanArticle()
        assert_that(
            parsed.dead_letters | "ParseReasons" >> beam.Map(lambda d: (d.kafka_offset, d.stage, d.reason)),
            equal_to([(101, "parse", "not_json")]),
            label="ParseDeadLetters",
        )
        assert_that(
            cleaned.dead_letters | "CleanReasons" >> beam.Map(lambda d: (d.kafka_offset, d.stage, d.reason)),
            equal_to([(102, "clean", "empty_body")]),
            label="CleanDeadLetters",
        )
        assert_that(
            cleaned.articles | "Texts" >> beam.Map(lambda a: (a.kafka_offset, a.text, a.source)),
            equal_to([(100, "Angela Merkel visited Paris on Monday.", "n.example")]),
            label="Articles",
        )


def test_extract_entities_annotates_in_batches() -> None:
    texts = [f"Angela Merkel met Emmanuel Macron in Paris on day {i}." for i in range(5)]
    values = [json.dumps({"url": f"https://n.example/{i}", "body": t}).encode() for i, t in enumerate(texts)]
    with _pipeline() as p:
        articles = (p | beam.Create(_records(values)) | "Parse" >> ParseArticle()).articles | "Clean" >> CleanArticle()
        annotated = articles.articles | "Entities" >> ExtractEntities(EntityConfig(batch_size=2))
        people = annotated.articles | beam.Map(
            lambda a: (a.kafka_offset, tuple(sorted(e.text for e in a.entities if e.label == "PERSON")))
        )
        assert_that(people, equal_to([(100 + i, ("Angela Merkel", "Emmanuel Macron")) for i in range(5)]))


def test_write_lake_commits_each_batch_once_it_is_complete(tmp_path) -> None:
    values = [GOOD, b"{oops", json.dumps({"url": "https://n.example/c", "body": "Berlin is big."}).encode()]
    with _pipeline() as p:
        parsed = p | beam.Create(_records(values)) | "Parse" >> ParseArticle()
        cleaned = parsed.articles | "Clean" >> CleanArticle()
        outcomes = (cleaned.articles, parsed.dead_letters, cleaned.dead_letters) | beam.Flatten()
        reports = outcomes | WriteLake(str(tmp_path))
        assert_that(
            reports | beam.Map(lambda r: (r.batch.key, dict(r.rows))),
            equal_to(
                [
                    ("news+0+0000000000000000100+0000000000000000103", {"articles": 2, "dead_letters": 1}),
                ]
            ),
        )
    articles = pq.read_table(next((tmp_path / "articles").rglob("*.parquet"))).to_pylist()
    assert sorted(row["kafka_offset"] for row in articles) == [100, 102]
    dead = pq.read_table(next((tmp_path / "dead_letters").rglob("*.parquet"))).to_pylist()
    assert [(row["kafka_offset"], row["reason"], row["raw_value"]) for row in dead] == [(101, "not_json", b"{oops")]


def test_write_lake_waits_for_missing_outcomes(tmp_path) -> None:
    batch = SourceBatch("news", 0, 0, 2, 2)
    records = [make_record(GOOD, offset=0, topic="news", batch=batch)]
    with _pipeline() as p:
        parsed = p | beam.Create(records) | "Parse" >> ParseArticle()
        reports = parsed.articles | "Clean" >> CleanArticle()
        written = reports.articles | WriteLake(str(tmp_path))
        assert_that(written, equal_to([]))
    assert not (tmp_path / "articles").exists()
