import datetime as dt
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from schemas import arrow
from schemas.records import Article, DeadLetter, Duplicate, Entity, Quarantined, SourceBatch
from tests.kit import article, dead_letter, read_while
from transforms.io.lake import (
    MANIFEST,
    STAGING,
    Lake,
    LakeUnwritableError,
    commit_batch,
    commit_with_retry,
    compact,
    covered_ranges,
    mark_complete,
    recover,
    superseded,
)

T0 = dt.datetime(2026, 11, 24, 9, 59, 59, tzinfo=dt.UTC)


def _article(offset: int, batch: SourceBatch, ingested_at: dt.datetime = T0) -> Article:
    return article(
        offset,
        batch,
        ingested_at=ingested_at,
        word_count=3,
        content_hash="h",
        entities=(Entity("Lloyd Austin", "PERSON", 0, 12, "Lloyd Austin", "lloyd austin"),),
    )


def _dead(offset: int, batch: SourceBatch) -> DeadLetter:
    return dead_letter(offset, batch, at=T0)


def test_commit_writes_every_table_with_its_schema(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 2, 10, 13, 3)
    rows = commit_batch(lake, batch, [_article(10, batch), _dead(11, batch), _article(12, batch)]).rows
    assert rows == {"articles": 2, "entities": 2, "dead_letters": 1}
    name = "news+2+0000000000000000010+0000000000000000013.parquet"
    for table in ("articles", "entities", "dead_letters"):
        path = tmp_path / table / "dt=2026-11-24" / "hour=09" / name
        assert pq.read_schema(path).equals(arrow.TABLES[table], check_metadata=False), table
    folder = tmp_path / "entities" / "dt=2026-11-24" / "hour=09"
    assert pq.read_table(folder / name, columns=["canonical", "key"]).to_pylist() == 2 * [
        {"canonical": "Lloyd Austin", "key": "lloyd austin"}
    ]
    entities = pq.read_table(tmp_path / "articles" / "dt=2026-11-24" / "hour=09" / name)["entities"].to_pylist()
    assert [e["key"] for article in entities for e in article] == ["lloyd austin", "lloyd austin"]
    assert not (tmp_path / STAGING).exists() or not any((tmp_path / STAGING).iterdir())
    assert covered_ranges(lake) == {("news", 2): [(10, 13)]}
    count = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/articles/*/*/*.parquet')")
        .fetchone()[0]
    )
    assert count == 2


def test_entities_carry_their_articles_ingested_at_and_dead_letters_their_records(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 3, 3)
    earlier = T0 - dt.timedelta(minutes=20)  # two articles read at different times (not one batch's in practice)
    failed = T0 + dt.timedelta(seconds=3)  # rejected after the hour turned: partitioned, and stamped, by reading
    letter = _dead(2, batch).evolve(ingested_at=earlier, failed_at=failed)
    commit_batch(lake, batch, [_article(0, batch, earlier), _article(1, batch), letter])
    folder = tmp_path / "entities" / "dt=2026-11-24" / "hour=09" / f"{batch.key}.parquet"
    assert pq.read_table(folder, columns=["article_id", "ingested_at"]).to_pylist() == [
        {"article_id": "a0", "ingested_at": earlier},
        {"article_id": "a1", "ingested_at": T0},
    ]
    dead = tmp_path / "dead_letters" / "dt=2026-11-24" / "hour=09" / f"{batch.key}.parquet"
    assert pq.read_table(dead, columns=["kafka_offset", "ingested_at", "failed_at"]).to_pylist() == [
        {"kafka_offset": 2, "ingested_at": earlier, "failed_at": failed}
    ]


def test_duplicates_and_quarantined_articles_go_to_their_own_tables(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 3, 3)
    outcomes = [
        _article(0, batch),
        Duplicate(_article(1, batch), duplicate_of="a0", similarity=0.93, method="near"),
        Quarantined(_article(2, batch), failed_expectations=("text_length_between",)),
    ]
    assert commit_batch(lake, batch, outcomes).rows == {"articles": 1, "entities": 1, "duplicates": 1, "quarantine": 1}
    duplicates = pq.read_table(lake.path("duplicates"), schema=arrow.DUPLICATES).to_pylist()
    assert [
        (d["article_id"], d["duplicate_of"], d["similarity"], d["method"], d["kafka_offset"]) for d in duplicates
    ] == [("a1", "a0", 0.93, "near", 1)]
    quarantine = pq.read_table(lake.path("quarantine"), schema=arrow.QUARANTINE).to_pylist()
    assert [(q["article_id"], q["failed_expectations"], q["kafka_offset"]) for q in quarantine] == [
        ("a2", ["text_length_between"], 2)
    ]
    assert covered_ranges(lake) == {("news", 0): [(0, 3)]}


def test_all_null_columns_still_have_their_types(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 1, 1)
    commit_batch(lake, batch, [_article(0, batch)])
    table = pq.read_table(next((tmp_path / "articles").rglob("*.parquet")))
    assert table.schema.field("published_at").type == arrow.TIMESTAMP
    assert table.schema.field("title").type.equals("string")


def test_incomplete_batch_is_refused(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 3, 3)
    with pytest.raises(ValueError, match="outcomes"):
        commit_batch(lake, batch, [_article(0, batch), _article(1, batch)])
    with pytest.raises(ValueError, match="distinct"):
        commit_batch(lake, batch, [_article(0, batch), _article(1, batch), _article(1, batch)])
    assert covered_ranges(lake) == {}


def test_batch_spanning_an_hour_writes_one_file_per_partition(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 2, 2)
    commit_batch(lake, batch, [_article(0, batch), _article(1, batch, T0 + dt.timedelta(seconds=2))])
    files = sorted(p.relative_to(tmp_path).parts[1:3] for p in (tmp_path / "articles").rglob("*.parquet"))
    assert files == [("dt=2026-11-24", "hour=09"), ("dt=2026-11-24", "hour=10")]
    assert covered_ranges(lake) == {("news", 0): [(0, 2)]}


def test_recovery_rolls_committed_batches_forward_and_drops_the_rest(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    committed = SourceBatch("news", 0, 0, 1, 1)
    commit_batch(lake, committed, [_article(0, committed)])
    final = next((tmp_path / "articles").rglob("*.parquet"))
    # Simulate a crash after the manifest (the commit point) but before the renames.
    staged_dir = tmp_path / STAGING / committed.key
    staged = staged_dir / final.relative_to(tmp_path)
    staged.parent.mkdir(parents=True)
    final.rename(staged)
    entry = {"file": final.relative_to(tmp_path).as_posix(), "rows": 1}
    (staged_dir / MANIFEST).write_text(json.dumps({"batch": {}, "files": [entry]}))
    # ... and a crash before the manifest of another batch.
    orphan = tmp_path / STAGING / "news+0+0000000000000000001+0000000000000000002" / "articles"
    orphan.mkdir(parents=True)
    (orphan / "half-written.parquet").write_bytes(b"PAR1")
    assert recover(lake) == (1, 1)
    assert final.exists() and not any((tmp_path / STAGING).iterdir())
    assert covered_ranges(lake) == {("news", 0): [(0, 1)]}


def test_recommitting_a_batch_is_idempotent(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 2, 2)
    outcomes = [_article(0, batch), _dead(1, batch)]
    commit_batch(lake, batch, outcomes)
    commit_batch(lake, batch, outcomes)
    files = [f"{tmp_path}/{table}/*/*/*.parquet" for table in ("articles", "dead_letters")]
    total = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?, union_by_name=true)", [files]).fetchone()[0]
    assert total == 2


class _FlakyLake(Lake):
    """A local lake whose first ``failures`` file writes fail as a full disk would."""

    def __init__(self, root: str, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def write_table(self, path, table) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        super().write_table(path, table)


def test_commit_retries_while_the_lake_refuses_then_gives_up(tmp_path) -> None:
    batch = SourceBatch("news", 0, 0, 1, 1)
    flaky = _FlakyLake(str(tmp_path / "a"), failures=2)
    assert commit_with_retry(flaky, batch, [_article(0, batch)], "ingestion_time", retry_seconds=10).rows == {
        "articles": 1,
        "entities": 1,
    }
    broken = _FlakyLake(str(tmp_path / "b"), failures=100)
    with pytest.raises(LakeUnwritableError, match="No space left"):
        commit_with_retry(broken, batch, [_article(0, batch)], "ingestion_time", retry_seconds=1)
    assert covered_ranges(broken) == {}


def test_partitions_whose_hour_ended_are_marked_complete(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    early, late = SourceBatch("news", 0, 0, 1, 1), SourceBatch("news", 0, 1, 2, 1)
    commit_batch(lake, early, [_article(0, early)])  # 09:59:59
    commit_batch(lake, late, [_article(1, late, T0 + dt.timedelta(seconds=2))])  # 10:00:01
    marked = mark_complete(lake, dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.UTC))
    assert sorted(marked) == ["articles/dt=2026-11-24/hour=09", "entities/dt=2026-11-24/hour=09"]
    assert (tmp_path / "articles" / "dt=2026-11-24" / "hour=09" / "_SUCCESS").exists()
    assert not (tmp_path / "articles" / "dt=2026-11-24" / "hour=10" / "_SUCCESS").exists()
    assert mark_complete(lake, dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.UTC)) == []
    assert len(mark_complete(lake, dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC))) == 2


def _offsets(tmp_path) -> list[tuple[str, int, int]]:
    files = [f"{tmp_path}/{t}/*/*/*.parquet" for t in ("articles", "dead_letters") if (tmp_path / t).exists()]
    return sorted(
        duckdb.connect()
        .execute("SELECT kafka_topic, kafka_partition, kafka_offset FROM read_parquet(?, union_by_name=true)", [files])
        .fetchall()
    )


def test_compaction_merges_contiguous_files_and_keeps_the_accounting(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    for partition in (0, 1):
        for first in range(0, 12, 3):
            batch = SourceBatch("news", partition, first, first + 3, 3)
            outcomes = [_article(first, batch), _dead(first + 1, batch), _article(first + 2, batch)]
            if first == 6:  # a batch of dead letters only: the articles files on either side still join
                outcomes = [_dead(first, batch), _dead(first + 1, batch), _dead(first + 2, batch)]
            commit_batch(lake, batch, outcomes)
    lone = SourceBatch("news", 0, 20, 21, 1)  # after a gap nobody covers: stays apart
    commit_batch(lake, lone, [_article(20, lone)])
    before = (_offsets(tmp_path), covered_ranges(lake))
    merged = compact(lake)
    assert sorted(merged) == [
        ("_records/dt=2026-11-24/hour=09/news+0+0000000000000000000+0000000000000000012.parquet", 4),
        ("_records/dt=2026-11-24/hour=09/news+1+0000000000000000000+0000000000000000012.parquet", 4),
        ("articles/dt=2026-11-24/hour=09/news+0+0000000000000000000+0000000000000000012.parquet", 3),
        ("articles/dt=2026-11-24/hour=09/news+1+0000000000000000000+0000000000000000012.parquet", 3),
        ("dead_letters/dt=2026-11-24/hour=09/news+0+0000000000000000000+0000000000000000012.parquet", 4),
        ("dead_letters/dt=2026-11-24/hour=09/news+1+0000000000000000000+0000000000000000012.parquet", 4),
        ("entities/dt=2026-11-24/hour=09/news+0+0000000000000000000+0000000000000000012.parquet", 3),
        ("entities/dt=2026-11-24/hour=09/news+1+0000000000000000000+0000000000000000012.parquet", 3),
    ]
    assert _offsets(tmp_path) == before[0]
    from transforms.io.kafka import merge_ranges

    assert {k: merge_ranges(v) for k, v in covered_ranges(lake).items()} == {
        k: merge_ranges(v) for k, v in before[1].items()
    }
    assert len(list((tmp_path / "articles").rglob("*.parquet"))) == 3
    assert compact(lake) == []  # idempotent


def test_an_interrupted_compaction_is_finished_by_recovery(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    for first in (0, 1):
        batch = SourceBatch("news", 0, first, first + 1, 1)
        commit_batch(lake, batch, [_article(first, batch)])
    originals = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "articles").rglob("*.parquet"))
    compact(lake)
    merged = next((tmp_path / "articles").rglob("*.parquet"))
    # Put the lake back as a crash after the manifest would leave it: merged file staged, originals present.
    staging = tmp_path / STAGING / "compact+articles+x"
    (staging / merged.parent.relative_to(tmp_path)).mkdir(parents=True)
    merged.rename(staging / merged.relative_to(tmp_path))
    for relative in originals:
        batch_first = int(relative.rsplit("+", 2)[1])
        batch = SourceBatch("news", 0, batch_first, batch_first + 1, 1)
        commit_batch(lake, batch, [_article(batch_first, batch)])
    manifest = {"files": [{"file": merged.relative_to(tmp_path).as_posix(), "rows": 2}], "remove": originals}
    (staging / MANIFEST).write_text(json.dumps(manifest))
    assert recover(lake) == (1, 0)
    assert sorted(p.name for p in (tmp_path / "articles").rglob("*.parquet")) == [merged.name]
    assert [o for _, _, o in _offsets(tmp_path)] == [0, 1]


def _many_small_files(lake: Lake, hours: int = 6, batches: int = 8) -> int:
    rows = 0
    for hour in range(hours):
        ingested = T0 - dt.timedelta(hours=hour)
        for first in range(0, batches * 2, 2):
            batch = SourceBatch("news", hour % 2, hour * 1000 + first, hour * 1000 + first + 2, 2)
            commit_batch(
                lake, batch, [_article(batch.first_offset, batch, ingested), _dead(batch.first_offset + 1, batch)]
            )
            rows += 1
    return rows


def test_readers_never_see_a_folder_half_compacted(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    articles = _many_small_files(lake)
    connection = duckdb.connect()  # used by the reading thread alone
    pattern = f"{tmp_path}/articles/*/*/*.parquet"
    sql = "SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM read_parquet(?)"

    def read() -> tuple[int, int]:
        return connection.execute(sql, [pattern]).fetchone()  # type: ignore[return-value]

    # A duckdb.Error is a file listed before a swap and opened after it (checked below).
    merged, results, errors = read_while(read, lambda: compact(lake), duckdb.Error)
    tables = [relative for relative, _ in merged if not relative.startswith("_records/")]
    assert len(tables) == 6 * 3  # articles, entities, dead letters in each of 6 folders
    assert results, "the reader never got an answer"
    assert set(results) == {(articles, articles)}, "a reader saw rows twice or missed some"
    assert all("No such file" in e or "not found" in e.lower() for e in errors), errors
    assert len(list((tmp_path / "articles").rglob("*.parquet"))) == 6


def test_a_batch_committed_during_compaction_is_kept(tmp_path, monkeypatch) -> None:
    import transforms.io.lake.staging as lake_module

    lake = Lake(str(tmp_path))
    for first in (0, 1):
        batch = SourceBatch("news", 0, first, first + 1, 1)
        commit_batch(lake, batch, [_article(first, batch)])
    real_exchange = lake_module._exchange
    late = SourceBatch("news", 0, 5, 6, 1)

    def exchange_after_a_late_commit(first: str, second: str) -> None:
        commit_batch(lake, late, [_article(5, late)])  # lands in the live folder's old content
        real_exchange(first, second)

    monkeypatch.setattr(lake_module, "_exchange", exchange_after_a_late_commit)
    compact(lake)
    assert [o for _, _, o in _offsets(tmp_path)] == [0, 1, 5]
    assert sorted(p.name for p in (tmp_path / "articles").rglob("*.parquet")) == [
        "news+0+0000000000000000000+0000000000000000002.parquet",
        "news+0+0000000000000000005+0000000000000000006.parquet",
    ]


@pytest.mark.parametrize("swapped", [False, True], ids=["before-the-swap", "after-the-swap"])
def test_an_interrupted_folder_swap_is_finished_by_recovery(tmp_path, monkeypatch, swapped: bool) -> None:
    import transforms.io.lake.staging as lake_module

    lake = Lake(str(tmp_path))
    for first in (0, 1, 2):
        batch = SourceBatch("news", 0, first, first + 1, 1)
        commit_batch(lake, batch, [_article(first, batch)])
    real_exchange = lake_module._exchange

    def crash(first: str, second: str) -> None:
        if swapped:
            real_exchange(first, second)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(lake_module, "_exchange", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(lake)
    monkeypatch.setattr(lake_module, "_exchange", real_exchange)
    assert [o for _, _, o in _offsets(tmp_path)] == [0, 1, 2]  # before or after, never half
    assert recover(lake) == (1, 0)
    assert [p.name for p in (tmp_path / "articles").rglob("*.parquet")] == [
        "news+0+0000000000000000000+0000000000000000003.parquet"
    ]
    assert [o for _, _, o in _offsets(tmp_path)] == [0, 1, 2]
    assert not any((tmp_path / STAGING).iterdir())


def test_origins_are_recorded_once_and_read_back(tmp_path) -> None:
    from pipelines.ingest import new_origins
    from transforms.io.kafka import PartitionPlan
    from transforms.io.lake import Lake, read_origins, record_origins

    lake = Lake(str(tmp_path))
    assert read_origins(lake) == {}
    plans = [PartitionPlan("t", 0, 7, None), PartitionPlan("t", 1, 90, None), PartitionPlan("u", 0, 3, None)]
    covered = {("t", 1): [(40, 60), (60, 90)]}
    found = new_origins(plans, covered, {("u", 0): 0})
    assert found == {("t", 0): 7, ("t", 1): 40}  # a lake from before origins: its first covered offset
    record_origins(lake, found)
    record_origins(lake, {("t", 0): 99})  # never moved once recorded
    assert read_origins(lake) == {("t", 0): 7, ("t", 1): 40}
    assert not [p for p in (tmp_path / "_origins").iterdir() if p.name.endswith(".tmp")]


def test_every_record_leaves_its_event_time_commit_time_and_dedup_memory_in_the_record_log(tmp_path) -> None:
    lake = Lake(str(tmp_path))
    batch = SourceBatch("news", 0, 0, 3, 3)
    article = _article(0, batch).evolve(event_us=1_764_000_000_000_000, dedup_memory=b"ticket")
    copy = Duplicate(
        _article(1, batch).evolve(event_us=1_764_000_001_000_000, dedup_memory=b"copy"), "a0", 1.0, "exact"
    )
    commit_batch(lake, batch, [article, copy, _dead(2, batch)])
    rows = pq.read_table(next((tmp_path / "_records").rglob("*.parquet"))).to_pylist()
    assert [(r["kafka_offset"], r["article_id"], r["dedup_memory"]) for r in rows] == [
        (0, article.article_id, b"ticket"),
        (1, copy.article.article_id, b"copy"),
        (2, None, None),
    ]
    assert rows[0]["event_time"] == dt.datetime(2025, 11, 24, 16, 0, tzinfo=dt.UTC)
    assert rows[2]["event_time"] is None  # the dead letter's record time was not known here
    assert len({r["committed_at"] for r in rows}) == 1
    assert covered_ranges(lake) == {("news", 0): [(0, 3)]}  # the log is not part of the accounting


def test_files_written_before_a_column_was_added_still_read_and_compact(tmp_path) -> None:
    """Tables gain columns (``site_name``, ``ner_status``): older files read with them null."""
    from pipelines.query import query

    lake = Lake(str(tmp_path))
    first, second = SourceBatch("news", 0, 0, 1, 1), SourceBatch("news", 0, 1, 2, 1)
    commit_batch(lake, first, [_article(0, first)])
    commit_batch(lake, second, [_article(1, second).evolve(site_name="X News", ner_status="annotated")])
    older = next((tmp_path / "articles").rglob(f"{first.key}.parquet"))
    table = pq.read_table(older)
    pq.write_table(table.drop_columns(["site_name", "ner_status", "ner_model"]), older)  # as an older run wrote it
    expected = [(0, None, None), (1, "X News", "annotated")]
    sql = "SELECT kafka_offset, site_name, ner_status FROM articles ORDER BY 1"
    assert query(str(tmp_path), sql)[1] == expected
    assert len(compact(lake)) == 3  # articles, entities, _records
    assert query(str(tmp_path), sql)[1] == expected


def test_a_file_inside_another_files_range_in_the_same_folder_is_superseded() -> None:
    def path(hour: str, partition: int, first: int, end: int) -> str:
        return f"bucket/lake/articles/dt=2026-11-24/hour={hour}/news+{partition}+{first:019d}+{end:019d}.parquet"

    merged, inside, at_start, after = (
        path("09", 0, 0, 9),
        path("09", 0, 3, 6),
        path("09", 0, 0, 3),
        path("09", 0, 9, 12),
    )
    elsewhere = [path("09", 1, 3, 6), path("10", 0, 3, 6), "bucket/lake/articles/dt=2026-11-24/hour=09/_SUCCESS"]
    assert superseded([after, inside, merged, at_start, *elsewhere]) == {inside, at_start}
    assert superseded([inside, at_start, after]) == set()  # adjoining ranges: nothing merged yet
