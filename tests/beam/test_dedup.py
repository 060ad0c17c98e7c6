"""Deduplicate on real runners: the same decisions whatever the batches' order and timing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from schemas.records import Article, Duplicate, RecordBatch, SourceBatch
from tests.kit import INGESTED_AT, make_record
from transforms.clean import CleanArticle
from transforms.dedup import DedupConfig, Deduplicate
from transforms.io.lake.seeds import LakeSeeds
from transforms.parse import ParseArticle

pytestmark = pytest.mark.beam

STORY = (
    "The regional council voted on Tuesday to close the old harbour bridge for eighteen months of repairs, "
    "after engineers found corrosion in three of its steel supports. Ferry services will run every twenty "
    "minutes during the closure, and the council said it would cover the extra cost of season tickets for "
    "commuters who live on the northern shore. Local businesses asked for a delay until after the summer."
)
OTHER = (
    "A small museum in the hill town reopened its doors this weekend after a two year restoration of the "
    "painted ceiling, which volunteers cleaned by hand. Visitors queued from early morning, and the curator "
    "said that tickets for the next three weekends had already sold out, mostly to families from nearby."
)


def _value(url: str, body: str) -> bytes:
    return json.dumps({"url": url, "body": body}).encode()


def _batch(values: list[bytes], partition: int, first: int = 0, seconds: list[int] | None = None) -> RecordBatch:
    """Records of one partition; ``seconds``: their event times (default: none, the batch's time)."""
    batch = SourceBatch("news", partition, first, first + len(values), len(values))
    records = tuple(
        make_record(value, offset=first + i, partition=partition, topic="news", batch=batch)
        for i, value in enumerate(values)
    )
    if seconds is not None:
        records = tuple(dataclasses.replace(r, event_us=t * 1_000_000) for r, t in zip(records, seconds, strict=True))
    return RecordBatch(batch, records)


def _verdicts(element) -> list[tuple[int, int, str]]:
    rows = []
    for outcome in element.outcomes:
        if isinstance(outcome, Duplicate):
            rows.append(
                (outcome.article.kafka_partition, outcome.kafka_offset, f"{outcome.method}:{outcome.duplicate_of}")
            )
        elif isinstance(outcome, Article):
            assert outcome.cluster_id == outcome.article_id
            rows.append((outcome.kafka_partition, outcome.kafka_offset, "kept"))
        else:
            rows.append((outcome.kafka_partition, outcome.kafka_offset, f"dead:{outcome.reason}"))
    return rows


def _runner_args(runner) -> dict:
    if isinstance(runner, FnApiRunner):
        return {"runner": runner, "blocking": True}
    return {"runner": "PrismRunner", "options": PipelineOptions([f"--prism_location={runner}"]), "blocking": True}


def _run(runner, timed_batches, expected) -> None:
    with BeamTestPipeline(**_runner_args(runner)) as p:
        verdicts = (
            p
            | beam.Create(timed_batches)
            | beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(DedupConfig())
            | beam.FlatMap(_verdicts)
        )
        assert_that(verdicts, equal_to(expected))


EDITED = STORY.replace("Tuesday", "Wednesday").replace("three", "four") + " Wire services contributed."
TRUNCATED = STORY[: len(STORY) * 2 // 3]


def _scenario() -> list[RecordBatch]:
    """Three partitions: a story, an edited copy, a retitled copy at the same URL, a truncated one."""
    return [
        _batch([_value("https://a.example/bridge", STORY), _value("https://a.example/museum", OTHER)], 0),
        _batch(
            [
                _value("https://b.example/news/harbour", EDITED),
                _value("https://a.example/bridge?utm_source=x", "Updated: " + STORY),
                b"{broken",
            ],
            1,
        ),
        _batch([_value("https://c.example/1", TRUNCATED), _value("https://c.example/2", OTHER)], 2),
    ]


def _ids(batches: list[RecordBatch]) -> dict[tuple[int, int], str]:
    from transforms.clean import clean_article
    from transforms.parse import parse_record

    ids = {}
    for batch in batches:
        for record in batch.records:
            article = parse_record(record)
            if isinstance(article, Article):
                ids[(record.partition, record.offset)] = clean_article(article).article_id
    return ids


def _timed(batches: list[RecordBatch], times: tuple[int, int, int]) -> list[tuple[int, RecordBatch]]:
    return sorted(zip(times, batches, strict=True), key=lambda pair: -pair[0])  # the latest first, to be unkind


@pytest.mark.parametrize("runner", ["fn_api", "prism"])
def test_the_earliest_copy_is_kept_and_the_others_name_it(runner, prism) -> None:
    batches = _scenario()
    ids = _ids(batches)
    story, museum = ids[(0, 0)], ids[(0, 1)]
    expected = [
        (0, 0, "kept"),
        (0, 1, "kept"),
        (1, 0, f"near:{story}"),
        (1, 1, f"exact:{story}"),  # same canonical URL (and near): exact wins for the same article
        (1, 2, "dead:not_json"),
        (2, 0, f"near:{story}"),  # truncated: most of it lies in the story
        (2, 1, f"exact:{museum}"),  # same text
    ]
    _run(FnApiRunner() if runner == "fn_api" else prism, _timed(batches, (10, 20, 30)), expected)


def test_event_time_not_arrival_decides_which_copy_is_first() -> None:
    batches = _scenario()
    ids = _ids(batches)
    truncated, museum = ids[(2, 0)], ids[(2, 1)]
    expected = [
        (0, 0, f"near:{truncated}"),
        (0, 1, f"exact:{museum}"),
        (1, 0, f"near:{truncated}"),  # most of the truncated text lies in the edited copy too
        (1, 1, f"near:{truncated}"),
        (1, 2, "dead:not_json"),
        (2, 0, "kept"),
        (2, 1, "kept"),
    ]
    _run(FnApiRunner(), _timed(batches, (30, 20, 10)), expected)


@pytest.mark.parametrize("runner", ["fn_api", "prism"])
def test_copies_read_at_the_same_moment_keep_exactly_one(runner, prism) -> None:
    batches = _scenario()
    with BeamTestPipeline(**_runner_args(FnApiRunner() if runner == "fn_api" else prism)) as p:
        verdicts = (
            p
            | beam.Create(_timed(batches, (10, 10, 10)))
            | beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(DedupConfig())
            | beam.FlatMap(_verdicts)
        )
        story_copies = {(0, 0), (1, 0), (1, 1), (2, 0)}
        museum_copies = {(0, 1), (2, 1)}

        def check(rows) -> None:
            kept = {(p, o) for p, o, verdict in rows if verdict == "kept"}
            assert len(kept & story_copies) == 1, rows
            assert len(kept & museum_copies) == 1, rows
            assert len(rows) == 7, rows

        assert_that(verdicts, check)


def _claimed(article_id: str, url: str, body: str) -> bytes:
    return json.dumps({"id": article_id, "url": url, "body": body}).encode()


@pytest.mark.parametrize("runner", ["fn_api", "prism"])
def test_a_second_story_under_a_taken_id_is_a_dead_letter_and_never_an_original(runner, prism) -> None:
    """X is claimed by the story first; another story under X is turned away, and so is a near copy
    of it that claims X too; a copy of that other story under its own id is kept (what it copied is
    not in the lake); the story again under X is the story's duplicate (content comes first)."""
    museum_again = OTHER.replace("small", "little").replace("weekend", "Saturday")
    batches = [
        _batch([_claimed("X", "https://a.example/bridge", STORY)], 0, seconds=[10]),
        _batch(
            [_claimed("X", "https://b.example/museum", OTHER), _claimed("Y", "https://c.example/m", museum_again)],
            1,
            seconds=[20, 25],
        ),
        _batch(
            [
                _claimed("X", "https://d.example/b", STORY),
                _claimed("X", "https://d.example/m", museum_again + " More."),
            ],
            2,
            seconds=[30, 35],
        ),
    ]
    expected = [
        (0, 0, "kept"),
        (1, 0, "dead:id_conflict"),
        (1, 1, "kept"),
        (2, 0, "exact:X"),
        (2, 1, "dead:id_conflict"),
    ]
    _run(FnApiRunner() if runner == "fn_api" else prism, _timed(batches, (30, 20, 10)), expected)


def test_an_article_is_forgotten_after_the_ttl() -> None:
    early = _batch([_value("https://a.example/bridge", STORY)], 0)
    within = _batch([_value("https://b.example/bridge", STORY)], 1)
    after = _batch([_value("https://c.example/bridge", STORY)], 2)
    ids = _ids([early])
    config = DedupConfig(ttl_seconds=60)
    with BeamTestPipeline(**_runner_args(FnApiRunner())) as p:
        verdicts = (
            p
            | beam.Create([(10, early), (50, within), (200, after)])
            | beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(config)
            | beam.FlatMap(_verdicts)
        )
        # 40 s later it is a duplicate; 190 s later the first is forgotten, and 150 s after the
        # second (also beyond the TTL) the copy is new again.
        assert_that(verdicts, equal_to([(0, 0, "kept"), (1, 0, f"exact:{ids[(0, 0)]}"), (2, 0, "kept")]))


class _Bag:
    """A bag state as the DoFn sees it; ``readable`` False makes any read fail the test."""

    def __init__(self, items: list[bytes], readable: bool = True) -> None:
        self.items, self.readable = list(items), readable

    def read(self) -> list[bytes]:
        assert self.readable, "the bag must not be read here"
        return list(self.items)

    def add(self, item: bytes) -> None:
        self.items.append(item)

    def clear(self) -> None:
        self.items = []


class _Value:
    def __init__(self) -> None:
        self.value = None

    def read(self):
        return self.value

    def write(self, value) -> None:
        self.value = value

    def clear(self) -> None:
        self.value = None


class _Timer:
    def __init__(self) -> None:
        self.at = None

    def set(self, timestamp) -> None:
        self.at = timestamp


SHARD, KEY = b"\0\1", 5 << 32  # a band key's number


def _shard_fn(ttl: float):
    import uuid

    from apache_beam.utils import shared

    from transforms.dedup.match import MatchShardsFn

    fn = MatchShardsFn(DedupConfig(ttl_seconds=ttl), shared.Shared(), uuid.uuid4().hex)
    fn.setup()
    return fn


def _probe(record: int, seconds: float) -> bytes:
    """One batch's message to the shard: article ``record`` at ``seconds``, under ``KEY``."""
    from transforms.dedup_core import Ticket, encode_probes, encode_ticket

    ticket = Ticket(record, int(seconds * 1e6), False, 0, f"a{record}", "t/0/0", record, b"\0" * 4, 10, ())
    return encode_probes([(encode_ticket(ticket), [KEY])])


def _met(fn, record: int, seconds: float, token, bag, timer=None) -> list[int]:
    """The records the probe was paired with (the messages' targets)."""
    out = fn.process((SHARD, _probe(record, seconds)), token, bag, timer or _Timer())
    return sorted(int.from_bytes(target, "little") for target, _ in out)


def _stored(bag: _Bag) -> list[tuple[int, float]]:
    import numpy as np

    from transforms.dedup_core import SHARD_ENTRY

    rows = np.frombuffer(b"".join(bag.items), dtype=SHARD_ENTRY)
    return sorted((int(row["record"]), row["time_us"] / 1e6) for row in rows)


def test_a_shard_expires_at_its_newest_entry_without_reading_and_a_busy_shard_is_pruned(monkeypatch) -> None:
    from transforms.dedup.match import MatchShardsFn

    ttl = 60.0
    fn, token, bag, timer = _shard_fn(ttl), _Value(), _Bag([]), _Timer()
    assert _met(fn, 1, 100, token, bag, timer) == []
    assert timer.at.micros == int((100 + ttl) * 1e6) + 1000
    assert _met(fn, 2, 130, token, bag, timer) == [1]  # a newer entry moves the timer on
    assert timer.at.micros == int((130 + ttl) * 1e6) + 1000
    assert _met(fn, 3, 110, token, bag, timer) == [1, 2]  # an older one (out of order) does not
    assert timer.at.micros == int((130 + ttl) * 1e6) + 1000
    assert _stored(bag) == [(1, 100.0), (2, 130.0), (3, 110.0)]
    cleared = _Bag(bag.items, readable=False)
    fn.expire(SHARD, token, cleared)
    assert cleared.items == [] and token.value is None

    # A shard that is never quiet: a probe every second for 300 s, TTL 10 s. Its bag stays
    # bounded, never loses an entry within two TTLs of the newest, and pairs stay within one TTL.
    monkeypatch.setattr(MatchShardsFn, "PRUNE_FROM", 8)
    ttl = 10.0
    fn, token, bag = _shard_fn(ttl), _Value(), _Bag([])
    largest = 0
    for second in range(300):
        met = _met(fn, 1000 + second, second, token, bag)
        assert met == [1000 + s for s in range(max(0, second - 10), second)]
        stored = _stored(bag)
        largest = max(largest, len(stored))
        assert {s for _, s in stored} >= set(range(max(0, second - 20), second + 1))
    assert largest <= 2 * 22


def test_a_stale_copy_of_a_shard_is_never_used() -> None:
    """Two workers' copies of one shard, a failed bundle: the state decides, not a copy."""
    token, bag = _Value(), _Bag([])
    first, second = _shard_fn(60), _shard_fn(60)  # two processes' caches, one shard's state
    assert _met(first, 1, 10, token, bag) == []
    bag.readable = False
    assert _met(first, 2, 11, token, bag) == [1]  # its own copy, no read
    bag.readable = True
    assert _met(second, 3, 12, token, bag) == [1, 2]  # no copy yet: read from the bag
    assert _met(first, 4, 13, token, bag) == [1, 2, 3]  # its copy lacks 3: the token tells, it reads again

    # A bundle fails after the copy took in article 5; the runner drops the bundle's writes.
    items, value = list(bag.items), token.value
    assert _met(first, 5, 14, token, bag) == [1, 2, 3, 4]
    bag.items, token.value = items, value
    assert _met(first, 6, 15, token, bag) == [1, 2, 3, 4]  # 5 was never stored: not met


def test_a_moved_expiry_timer_does_not_fire_at_its_old_time(prism) -> None:
    """A key's entries outlive the time its first timer was set for once a newer entry moved it.

    On Prism, in streaming (the FnApiRunner has no TestStream). TTL 60 s: A at 0 s, B (a copy)
    at 50 s moves the key's timer from 60 s to 110 s; the watermark then passes 60 s; C (a copy)
    at 100 s must still meet B (50 s apart), not be taken for new. A runner that fired the timer
    at its first time would clear the key and C would be kept. C meets only B (A is 100 s older)
    and names A, the kept article heading B's cluster: links resolve to kept articles.
    """
    from apache_beam.testing.test_stream import TestStream

    first, second, third = (
        _batch([_value(f"https://{host}.example/bridge", STORY)], partition)
        for host, partition in (("a", 0), ("b", 1), ("c", 2))
    )
    ids = _ids([first, second])
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([TimestampedValue(first, 0)])
        .add_elements([TimestampedValue(second, 50)])
        .advance_watermark_to(70)
        .add_elements([TimestampedValue(third, 100)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions(["--streaming", f"--prism_location={prism}"])
    with BeamTestPipeline(runner="PrismRunner", options=options, blocking=True) as p:
        verdicts = (
            p
            | stream
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(DedupConfig(ttl_seconds=60))
            | beam.FlatMap(_verdicts)
        )
        assert_that(
            verdicts,
            equal_to([(0, 0, "kept"), (1, 0, f"exact:{ids[(0, 0)]}"), (2, 0, f"exact:{ids[(0, 0)]}")]),
        )


def _chain(corpus: Path) -> tuple[str, str, str]:
    """A < B < C from a real article: windows of 120 words sliding by 40. B holds two thirds of A
    (a near duplicate), C two thirds of B and one third of A (it matches B only)."""
    texts = []
    for path in sorted((corpus / "re3d").glob("*/documents.json")):
        texts += [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    words = max(texts, key=len).split()
    a, b, c = (" ".join(words[start : start + 120]) for start in (0, 40, 80))
    return a, b, c


def _chain_batches(corpus: Path) -> list[RecordBatch]:
    """A at 10 s; B at 20 s with an unrelated article at 40 s (so B's batch is released last); C at 30 s."""
    a, b, c = _chain(corpus)
    return [
        _batch([_value("https://a.example/1", a)], 0, seconds=[10]),
        _batch([_value("https://b.example/1", b), _value("https://b.example/2", OTHER)], 1, seconds=[20, 40]),
        _batch([_value("https://c.example/1", c)], 2, seconds=[30]),
    ]


def _links_resolve(rows, ids) -> None:
    kept = {ids[(p, o)] for p, o, verdict in rows if verdict == "kept"}
    named = {verdict.split(":", 1)[1] for _, _, verdict in rows if verdict.startswith(("near:", "exact:"))}
    assert named <= kept, (named - kept, rows)


@pytest.mark.parametrize("runner", ["fn_api", "prism"])
def test_a_copy_of_a_duplicate_names_the_kept_article_of_its_cluster(runner, prism, corpus) -> None:
    batches = _chain_batches(corpus)
    ids = _ids(batches)
    first = ids[(0, 0)]
    expected = [(0, 0, "kept"), (1, 0, f"near:{first}"), (1, 1, "kept"), (2, 0, f"near:{first}")]
    _links_resolve(expected, ids)
    timed = sorted(((b.records[0].event_us // 1_000_000, b) for b in batches), key=lambda pair: -pair[0])
    _run(FnApiRunner() if runner == "fn_api" else prism, timed, expected)


def test_a_batch_leaves_no_later_than_its_latest_article_even_when_its_root_is_in_a_later_batch(prism, corpus) -> None:
    """C's batch (30 s) needs the link of B, whose batch holds an article of 40 s. B's batch sends
    B's link early, so C's batch leaves stamped by 30.001 s and holds the watermark no later
    (what MarkComplete relies on), not at 40.001 s when B's batch is released."""
    from apache_beam.testing.test_stream import TestStream

    batches = _chain_batches(corpus)
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([TimestampedValue(b, b.records[0].event_us / 1e6) for b in batches])
        .advance_watermark_to(31)
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions(["--streaming", f"--prism_location={prism}"])
    with BeamTestPipeline(runner="PrismRunner", options=options, blocking=True) as p:
        stamps = (
            p
            | stream
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(DedupConfig())
            | beam.Map(lambda batch, at=beam.DoFn.TimestampParam: (batch.batch.partition, at.micros))
        )

        def check(rows) -> None:
            latest = {0: 10_001_000, 1: 40_001_000, 2: 30_001_000}
            assert sorted(p for p, _ in rows) == [0, 1, 2], rows
            assert all(at <= latest[p] for p, at in rows), rows

        assert_that(stamps, check)


_FIRST_RUN: list = []


def _keep(batch) -> None:
    """Keeps a batch's outcomes in this process (a module function: Beam pickles it by name)."""
    _FIRST_RUN.extend(batch.outcomes)


def _write_records(lake: Path, outcomes, strip_roots: bool = False) -> str:
    """A ``_records/`` hour folder of a lake, as the sink writes it, from a run's outcomes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas import arrow

    folder = "_records/dt=2026-11-24/hour=09"
    rows = []
    for outcome in outcomes:
        article = outcome.article if isinstance(outcome, Duplicate) else outcome
        memory = article.dedup_memory
        if strip_roots:  # as written before roots were kept: the ticket ends with its batch key
            from transforms.dedup_core import decode_memory, encode_memory

            encoded = encode_memory(dataclasses.replace(decode_memory(memory, seed=False), root=""))
            length = int.from_bytes(encoded[:4], "little")
            memory = (length - 2).to_bytes(4, "little") + encoded[4 : 6 + length - 2] + encoded[6 + length :]
        rows.append(
            {
                "kafka_topic": article.kafka_topic,
                "kafka_partition": article.kafka_partition,
                "kafka_offset": article.kafka_offset,
                "event_time": None,
                "ingested_at": INGESTED_AT,
                "committed_at": INGESTED_AT,
                "article_id": article.article_id,
                "dedup_memory": memory,
            }
        )
    (lake / folder).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow.RECORD_LOG), lake / folder / "batch.parquet")
    return folder


@pytest.mark.parametrize("memory", ["with_roots", "before_roots"])
def test_after_a_restart_a_copy_of_a_remembered_duplicate_names_the_kept_article(memory, corpus, tmp_path) -> None:
    """A and B were decided by a first run (B a duplicate of A); a second run reads C, which
    matches only B, with A and B as seeds from the lake: C names A. From a memory written before
    roots were kept, the seed's root is read from its ``duplicates`` row."""
    a_batch, b_batch, c_batch = _chain_batches(corpus)
    ids = _ids([a_batch, b_batch, c_batch])
    config = DedupConfig()
    with BeamTestPipeline(**_runner_args(FnApiRunner())) as p:
        _ = (
            p
            | "First" >> beam.Create([(10, a_batch), (20, b_batch)])
            | beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(config)
            | beam.Map(_keep)
        )
    first_run = _FIRST_RUN[:]
    _FIRST_RUN.clear()
    duplicate = next(o for o in first_run if isinstance(o, Duplicate))
    assert duplicate.duplicate_of == ids[(0, 0)]
    folders = [_write_records(tmp_path, first_run, strip_roots=memory == "before_roots")]
    if memory == "before_roots":
        import pyarrow as pa
        import pyarrow.parquet as pq

        from schemas import arrow
        from transforms.io.lake.rows import duplicate_row

        (tmp_path / "duplicates/dt=2026-11-24/hour=09").mkdir(parents=True)
        table = pa.Table.from_pylist([duplicate_row(duplicate)], schema=arrow.DUPLICATES)
        pq.write_table(table, tmp_path / "duplicates/dt=2026-11-24/hour=09/batch.parquet")
    now_us = int((INGESTED_AT + dt.timedelta(hours=1)).timestamp() * 1_000_000)
    with BeamTestPipeline(**_runner_args(FnApiRunner())) as p:
        seeds = p | "Seeds" >> LakeSeeds(str(tmp_path), folders, config, now_us)
        verdicts = (
            p
            | "Second" >> beam.Create([(30, c_batch)])
            | beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | "Dedup" >> Deduplicate(config, seeds)
            | beam.FlatMap(_verdicts)
        )
        assert_that(verdicts, equal_to([(2, 0, f"near:{ids[(0, 0)]}")]))
