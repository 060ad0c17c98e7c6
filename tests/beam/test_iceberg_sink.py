"""WriteIcebergLake on a real (in-process) Beam runner: parallel writers, one committer, offsets after.

The Kafka consumer group is stood in for by a committer that appends each commit to a file (the
real one is exercised against the broker in the integration tests of the Hive lake's sink, which
shares the :class:`~transforms.io.lake.sink.Committer` protocol).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas import arrow
from schemas.records import RecordBatch, SourceBatch
from tests.kit import article, make_record
from transforms.clean import CleanArticle
from transforms.io.lake import Lake, record_origins
from transforms.io.lake.iceberg.catalog import data_schemas, table_name
from transforms.io.lake.iceberg.commit import covered_ranges
from transforms.io.lake.iceberg.files import write_batch
from transforms.io.lake.iceberg.sink import CatalogConfig, WriteIcebergLake
from transforms.parse import ParseArticle

pytestmark = pytest.mark.beam


class FileCommitter:
    """Appends ``topic partition next_offset`` to a file per commit (picklable through its factory)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def commit(self, topic: str, partition: int, next_offset: int) -> bool:
        with open(self._path, "a") as file:
            file.write(f"{topic} {partition} {next_offset}\n")
        return True

    def close(self) -> None:
        pass


def _batch(values: list[bytes], first: int, partition: int = 0) -> RecordBatch:
    batch = SourceBatch("news", partition, first, first + len(values), len(values))
    records = tuple(
        make_record(value, offset=first + i, partition=partition, topic="news", batch=batch)
        for i, value in enumerate(values)
    )
    return RecordBatch(batch, records)


BROKEN = b"{oops"


def _good(n: int) -> bytes:
    return json.dumps({"url": f"https://n.example/{n}", "body": f"Angela Merkel visited Paris on day {n}."}).encode()


def _run(lake: Path, batches: list[RecordBatch], commits: Path) -> list[tuple[str, dict[str, int]]]:
    with BeamTestPipeline(runner=FnApiRunner(), blocking=True) as p:
        reports = (
            p
            | beam.Create(batches)
            | "Parse" >> ParseArticle()
            | "Clean" >> CleanArticle()
            | WriteIcebergLake(CatalogConfig(str(lake)), partial(FileCommitter, str(commits)))
        )
        expected = [(b.batch.key, _rows_of(b)) for b in batches]
        assert_that(reports | beam.Map(lambda r: (r.batch.key, dict(r.rows))), equal_to(expected))
    return expected


def _rows_of(batch: RecordBatch) -> dict[str, int]:
    """What the batch writes: an article per good record, a dead letter per broken one."""
    bad = sum(1 for record in batch.records if record.value == BROKEN)
    rows = {"articles": len(batch.records) - bad}
    return {**rows, "dead_letters": bad} if bad else rows


def _offsets(catalog, table: str) -> list[tuple[int, int]]:
    rows = catalog.load_table(table_name(table)).scan(selected_fields=("kafka_partition", "kafka_offset")).to_arrow()
    return sorted(zip(rows["kafka_partition"].to_pylist(), rows["kafka_offset"].to_pylist(), strict=True))


def _commits(path: Path) -> list[tuple[int, int]]:
    return [(int(line.split()[1]), int(line.split()[2])) for line in path.read_text().splitlines()]


def test_batches_land_once_in_snapshots_and_offsets_follow_the_record_log(tmp_path) -> None:
    lake, commits = tmp_path / "lake", tmp_path / "commits.txt"
    record_origins(Lake(str(lake)), {("news", 0): 0, ("news", 1): 0})
    _run(
        lake,
        [
            _batch([_good(0), BROKEN, _good(2)], first=0),
            _batch([_good(3), _good(4)], first=3),
            _batch([_good(10)], first=0, partition=1),
        ],
        commits,
    )
    _, catalog = CatalogConfig(str(lake)).open()
    assert _offsets(catalog, "articles") == [(0, 0), (0, 2), (0, 3), (0, 4), (1, 0)]
    assert _offsets(catalog, "dead_letters") == [(0, 1)]
    assert _offsets(catalog, arrow.RECORD_LOG_TABLE) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]
    assert covered_ranges(catalog) == {("news", 0): [(0, 5)], ("news", 1): [(0, 1)]}
    assert not list((lake / "_staging").iterdir())
    # The group moves only to where _records runs without a gap from the origin: the end of a
    # batch, never past one not yet committed; in the end, to the end of each partition.
    done = _commits(commits)
    assert set(done) <= {(0, 3), (0, 5), (1, 1)}
    assert {partition: max(o for p, o in done if p == partition) for partition, _ in done} == {0: 5, 1: 1}


def test_no_offset_is_committed_past_a_gap_before_the_origin_is_reached(tmp_path) -> None:
    lake, commits = tmp_path / "lake", tmp_path / "commits.txt"
    record_origins(Lake(str(lake)), {("news", 0): 0})
    _run(lake, [_batch([_good(3), _good(4)], first=3)], commits)  # offsets 0-2 never came
    _, catalog = CatalogConfig(str(lake)).open()
    assert covered_ranges(catalog) == {("news", 0): [(3, 5)]}
    assert not commits.exists() or _commits(commits) == []


def test_a_run_again_over_the_same_batches_adds_no_row(tmp_path) -> None:
    lake, commits = tmp_path / "lake", tmp_path / "commits.txt"
    batches = [_batch([_good(0), _good(1)], first=0), _batch([_good(2)], first=2)]
    _run(lake, batches, commits)
    _run(lake, batches, commits)  # a replay: every manifest is found covered
    _, catalog = CatalogConfig(str(lake)).open()
    assert _offsets(catalog, "articles") == [(0, 0), (0, 1), (0, 2)]
    assert _offsets(catalog, arrow.RECORD_LOG_TABLE) == [(0, 0), (0, 1), (0, 2)]


def test_the_committer_takes_manifests_waiting_in_staging_into_its_snapshot(tmp_path) -> None:
    lake, commits = tmp_path / "lake", tmp_path / "commits.txt"
    _, catalog = CatalogConfig(str(lake)).open()
    waiting = SourceBatch("news", 0, 7, 8, 1)  # written by a worker; its element not yet at the committer
    write_batch(Lake(str(lake)), waiting, [article(7, waiting)], data_schemas(catalog))
    _run(lake, [_batch([_good(0)], first=0)], commits)
    _, catalog = CatalogConfig(str(lake)).open()
    assert _offsets(catalog, "articles") == [(0, 0), (0, 7)]
    snapshots = catalog.load_table(table_name("articles")).snapshots()
    assert [s.summary["wirestream.batches"] for s in snapshots] == [
        "news+0+0000000000000000000+0000000000000000001,news+0+0000000000000000007+0000000000000000008"
    ]
    assert not list((lake / "_staging").iterdir())
