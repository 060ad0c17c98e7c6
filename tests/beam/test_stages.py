"""The composites on a real (in-process) Beam runner, with ``beam.Create`` and ``assert_that``."""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Article, RecordBatch, SourceBatch
from tests.kit import make_record
from transforms.clean import CleanArticle
from transforms.entities import EntityConfig, ExtractEntities
from transforms.io.lake.sink import WriteLake
from transforms.parse import ParseArticle

pytestmark = pytest.mark.beam


def _pipeline() -> BeamTestPipeline:
    return BeamTestPipeline(runner=FnApiRunner(), blocking=True)


def _batch(values: list[bytes], first: int = 100, partition: int = 0) -> RecordBatch:
    batch = SourceBatch("news", partition, first, first + len(values), len(values))
    records = tuple(
        make_record(value, offset=first + i, partition=partition, topic="news", batch=batch)
        for i, value in enumerate(values)
    )
    return RecordBatch(batch, records)


def _summary(element) -> list[tuple[int, str]]:
    return [
        (o.kafka_offset, "article" if isinstance(o, Article) else f"{o.stage}/{o.reason}") for o in element.outcomes
    ]


GOOD = json.dumps({"url": "https://n.example/a", "body": "Angela Merkel visited Paris on Monday."}).encode()
EMPTY = json.dumps({"url": "https://n.example/b", "body": "   "}).encode()


def test_parse_and_clean_keep_one_outcome_per_record_in_order() -> None:
    with _pipeline() as p:
        cleaned = (
            p | beam.Create([_batch([GOOD, b"{oops", EMPTY])]) | "Parse" >> ParseArticle() | "Clean" >> CleanArticle()
        )
        assert_that(
            cleaned | beam.Map(_summary),
            equal_to([[(100, "article"), (101, "parse/not_json"), (102, "clean/empty_body")]]),
        )
        texts = cleaned | "Texts" >> beam.FlatMap(lambda b: [(a.text, a.source) for a in b.articles()])
        assert_that(texts, equal_to([("Angela Merkel visited Paris on Monday.", "n.example")]), label="Texts")


def test_extract_entities_annotates_every_article_of_each_batch() -> None:
    texts = [f"Angela Merkel met Emmanuel Macron in Paris on day {i}." for i in range(5)]
    values = [json.dumps({"url": f"https://n.example/{i}", "body": t}).encode() for i, t in enumerate(texts)]
    with _pipeline() as p:
        annotated = (
            p
            | beam.Create([_batch(values[:3]), _batch(values[3:] + [b"[]"], partition=1)])
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Entities" >> ExtractEntities(EntityConfig(batch_size=2))
        )
        people = annotated | beam.FlatMap(
            lambda b: [
                (a.kafka_partition, a.kafka_offset, tuple(sorted(e.text for e in a.entities if e.label == "PERSON")))
                for a in b.articles()
            ]
        )
        pair = ("Angela Merkel", "Emmanuel Macron")
        assert_that(people, equal_to([(0, 100, pair), (0, 101, pair), (0, 102, pair), (1, 100, pair), (1, 101, pair)]))
        assert_that(annotated | "Sizes" >> beam.Map(lambda b: len(b.outcomes)), equal_to([3, 3]), label="Sizes")


def test_write_lake_commits_each_batch_with_all_its_outcomes(tmp_path) -> None:
    values = [GOOD, b"{oops", json.dumps({"url": "https://n.example/c", "body": "Berlin is big."}).encode()]
    with _pipeline() as p:
        reports = (
            p
            | beam.Create([_batch(values), _batch([GOOD], first=7, partition=2)])
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | WriteLake(str(tmp_path))
        )
        assert_that(
            reports | beam.Map(lambda r: (r.batch.key, dict(r.rows))),
            equal_to(
                [
                    ("news+0+0000000000000000100+0000000000000000103", {"articles": 2, "dead_letters": 1}),
                    ("news+2+0000000000000000007+0000000000000000008", {"articles": 1}),
                ]
            ),
        )
    articles = pq.read_table(tmp_path / "articles").to_pylist()
    assert sorted((row["kafka_partition"], row["kafka_offset"]) for row in articles) == [(0, 100), (0, 102), (2, 7)]
    dead = pq.read_table(next((tmp_path / "dead_letters").rglob("*.parquet"))).to_pylist()
    assert [(row["kafka_offset"], row["reason"], row["raw_value"]) for row in dead] == [(101, "not_json", b"{oops")]


def test_markers_follow_the_watermark_but_never_an_hour_still_running(tmp_path) -> None:
    from apache_beam.transforms.window import TimestampedValue

    from schemas.records import utc_now
    from transforms.io.lake import partition_path
    from transforms.io.lake.sink import BatchReport, MarkComplete

    now = utc_now()
    past, current = "articles/dt=2026-11-24/hour=09", f"articles/{partition_path(now)}"
    for folder in (past, current):
        (tmp_path / folder).mkdir(parents=True)
    batch = SourceBatch("news", 0, 0, 1, 1)
    reports = [
        TimestampedValue(BatchReport(batch, (("articles", 1),), True, (past,)), 1764000000),
        TimestampedValue(BatchReport(batch, (("articles", 1),), True, (current,)), now.timestamp()),
    ]
    with _pipeline() as p:
        _ = p | beam.Create(reports) | MarkComplete(str(tmp_path))
    assert (tmp_path / past / "_SUCCESS").exists()
    assert not (tmp_path / current / "_SUCCESS").exists()


def _entity_rows(element) -> list[tuple]:
    return [
        (o.kafka_partition, o.kafka_offset, tuple((e.text, e.label, e.start, e.end, e.canonical) for e in o.entities))
        if isinstance(o, Article)
        else (o.kafka_partition, o.kafka_offset, f"{o.stage}/{o.reason}")
        for o in element.outcomes
    ]


def _cleaned(batch: RecordBatch):
    from schemas.records import KafkaRecord, OutcomeBatch
    from transforms.clean import clean_article
    from transforms.parse import parse_record

    def one(record: KafkaRecord):
        parsed = parse_record(record)
        return clean_article(parsed) if isinstance(parsed, Article) else parsed

    return OutcomeBatch(batch.batch, tuple(one(r) for r in batch.records))


@pytest.mark.parametrize("runner", ["fn_api", "prism"])
def test_ner_lanes_give_the_same_batches_as_one_worker(runner, prism) -> None:
    """Two NER lanes (each its own SDK worker process on Prism) annotate exactly what one does."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.entities import annotate_batch, load_model

    texts = [
        "Angela Merkel met Emmanuel Macron in Paris.",
        "Lloyd Austin said Russia moved troops to Kursk. Austin spoke in Washington on Wednesday.",
        "Kim Yong-hyun travelled to Pyongyang. Kim met Sergei Shoigu there.",
        "The United Nations convened in Geneva.",
    ]
    values = [json.dumps({"url": f"https://n.example/{i}", "body": t}).encode() for i, t in enumerate(texts)]
    batches = [_batch([values[0], b"{oops", values[1], values[2]]), _batch([EMPTY, values[3]], partition=1)]
    config = EntityConfig(batch_size=2, workers=2)
    nlp = load_model(config.model)
    expected = [_entity_rows(annotate_batch(nlp, _cleaned(batch), config)) for batch in batches]
    assert [row[:2] for row in expected[0]] == [(0, 100), (0, 101), (0, 102), (0, 103)]
    assert expected[0][1][2] == "parse/not_json" and expected[1][0][2] == "clean/empty_body"
    assert ("Austin", "PERSON", 48, 54, "Lloyd Austin") in expected[0][2][2]
    if runner == "fn_api":
        pipeline = _pipeline()
    else:
        from pipelines.ingest import separate_worker_processes

        options = PipelineOptions([f"--prism_location={prism}", "--runner=PrismRunner"])
        separate_worker_processes(options)
        pipeline = BeamTestPipeline(runner="PrismRunner", options=options, blocking=True)
    with pipeline as p:
        annotated = (
            p
            | beam.Create(batches)
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Entities" >> ExtractEntities(config)
            | beam.Map(_entity_rows)
        )
        assert_that(annotated, equal_to(expected))


def test_each_ner_lane_gets_an_environment_of_its_own() -> None:
    pipeline = beam.Pipeline(runner=FnApiRunner())
    _ = pipeline | beam.Create([]) | ExtractEntities(EntityConfig(workers=3))
    proto = pipeline.to_runner_api()
    lanes = {
        t.unique_name: t.environment_id
        for t in proto.components.transforms.values()
        if t.unique_name.startswith("ExtractEntities/AnnotateLane")
    }
    assert len(lanes) == 3 and len(set(lanes.values())) == 3, lanes
    (split,) = [
        t for t in proto.components.transforms.values() if t.unique_name.endswith("SplitIntoLanes/FlatMap(split)")
    ]
    assert split.environment_id and split.environment_id not in lanes.values()


def test_split_and_join_lanes_fill_each_position_once() -> None:
    from schemas.records import OutcomeBatch
    from transforms.entities import join_parts, split_batch

    batch = _cleaned(_batch([GOOD, b"{oops", GOOD, EMPTY, GOOD]))
    parts = split_batch(batch, 2)
    assert [sum(o is not None for o in part.outcomes) for part in parts] == [4, 1]  # 2 + the 2 non-articles, 1
    assert join_parts(list(reversed(parts)), 2) == batch
    with pytest.raises(RuntimeError, match="filled twice"):
        join_parts([parts[0], parts[1], parts[0].__class__(parts[0].batch, 2, parts[0].outcomes)], 3)
    with pytest.raises(RuntimeError, match="expected 0..1"):
        join_parts([parts[0]], 2)
    assert isinstance(join_parts(split_batch(batch, 1), 1), OutcomeBatch)


def test_in_a_streaming_run_a_marker_appears_once_the_watermark_passes_the_hour(prism, tmp_path) -> None:
    """On Prism, streaming: the marker is written while the stream still runs, not at its end.

    Probes read the lake from inside the stream: one before the watermark reaches the end of the
    hour (no marker yet), one after (the marker is there), and the stream goes on after both.
    """
    import datetime as dt

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue

    from transforms.io.lake.sink import BatchReport, MarkComplete

    folder = "articles/dt=2026-11-24/hour=09"
    (tmp_path / folder).mkdir(parents=True)
    end = int(dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC).timestamp())
    report = BatchReport(SourceBatch("news", 0, 0, 1, 1), (("articles", 1),), True, (folder,))
    stream = (
        TestStream()
        .advance_watermark_to(end - 1800)
        .add_elements([TimestampedValue(report, end - 1800)])
        .advance_watermark_to(end - 1)
        .add_elements([TimestampedValue("before", end - 1)])
        .advance_watermark_to(end + 5)
        .advance_processing_time(5)
        .add_elements([TimestampedValue("after", end + 5)])
        .advance_watermark_to(end + 1800)
        .add_elements([TimestampedValue("later", end + 1800)])
    )

    def look(probe: str) -> tuple[str, bool]:
        return probe, (tmp_path / folder / "_SUCCESS").exists()

    options = PipelineOptions(["--streaming", f"--prism_location={prism}"])
    with BeamTestPipeline(runner="PrismRunner", options=options, blocking=True) as p:
        events = p | stream
        reports = events | "Reports" >> beam.Filter(lambda e: isinstance(e, BatchReport))
        _ = reports | MarkComplete(str(tmp_path))
        probes = events | "Probes" >> beam.Filter(lambda e: isinstance(e, str)) | beam.Map(look)
        assert_that(probes, equal_to([("before", False), ("after", True), ("later", True)]))
