"""The launcher's helpers that had no test of their own: lease taking, lag, progress, runners, summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launcher import lagging_partitions, progress_monitor, take_lease
from pipelines.lifecycle import LakeBusyError, LakeLease
from pipelines.options import IngestOptions
from pipelines.runners import check_runner_used, detached, requested_runner, runner_used
from pipelines.summary import files_by_table, relations, row_counts
from transforms.errors import REFUSED, UserError
from transforms.io.kafka import PartitionPlan
from transforms.io.lake import Lake, LakeUnwritableError, lake_files


def test_lag_is_the_first_offset_of_a_bounded_plan_the_lake_does_not_hold() -> None:
    plans = [
        PartitionPlan("t", 0, 0, 10),  # all written
        PartitionPlan("t", 1, 5, 10, skip=((7, 9),)),  # a gap at 5..7 before the skipped range
        PartitionPlan("t", 2, 0, None),  # unbounded: never lagging
        PartitionPlan("t", 3, 4, 4),  # nothing planned
    ]
    covered = {("t", 0): [(0, 10)], ("t", 1): [(9, 10)], ("t", 2): []}
    assert lagging_partitions(covered, plans) == (("t", 1, 5),)


class _RefusingLease:
    path = "/lake/_lease.json"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries = 0

    def acquire(self, heartbeat: bool = True) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise PermissionError("read-only file system")


def test_a_lease_the_lake_refuses_to_write_fails_as_refused_once_the_retry_time_is_spent(tmp_path: Path) -> None:
    lease = _RefusingLease(failures=100)
    with pytest.raises(LakeUnwritableError, match="cannot write the lake's lease at /lake/_lease.json") as raised:
        take_lease(lease, Lake(str(tmp_path)), heartbeat=False, retry_seconds=0)  # type: ignore[arg-type]
    assert (lease.tries, raised.value.exit_code) == (1, REFUSED)


def test_a_lease_is_retried_while_the_lake_refuses_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("pipelines.launcher.time.sleep", lambda seconds: None)
    lease = _RefusingLease(failures=2)
    take_lease(lease, Lake(str(tmp_path)), heartbeat=False, retry_seconds=60)  # type: ignore[arg-type]
    assert lease.tries == 3


def test_a_lake_held_by_another_run_is_refused_at_once(tmp_path: Path) -> None:
    holder = LakeLease(pafs.LocalFileSystem(), str(tmp_path))
    holder.acquire(heartbeat=False)
    try:
        with pytest.raises(LakeBusyError):
            take_lease(LakeLease(pafs.LocalFileSystem(), str(tmp_path)), Lake(str(tmp_path)), False, retry_seconds=60)
    finally:
        holder.release()


def _ingest(*args: str) -> IngestOptions:
    return PipelineOptions(["--lake=/tmp/lake", *args]).view_as(IngestOptions)


def test_no_progress_and_no_metrics_start_no_monitor_and_a_zero_interval_is_refused(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    assert progress_monitor(_ingest("--progress=off"), lake, frozenset(), []) is None
    with pytest.raises(UserError, match="--progress-interval must be more than 0 seconds, not 0.0"):
        progress_monitor(_ingest("--progress=log", "--progress-interval=0"), lake, frozenset(), [])


def _result_of(module: str) -> Any:
    return type("Result", (), {"__module__": module})()


def test_the_runner_used_is_named_and_a_local_run_off_prism_is_refused() -> None:
    portable = runner_used(_result_of("apache_beam.runners.portability.portable_runner"))
    direct = runner_used(_result_of("apache_beam.runners.direct.direct_runner"))
    assert (portable, direct) == ("Prism (portable)", "BundleBasedDirectRunner")
    assert runner_used(_result_of("somewhere.else")) == "Result"
    in_process = runner_used(_result_of("apache_beam.runners.portability.fn_api_runner.fn_runner"))
    assert in_process == "FnApiRunner"
    with pytest.raises(RuntimeError, match="fell back to FnApiRunner instead of Prism"):
        check_runner_used("DirectRunner", in_process)
    check_runner_used("DirectRunner", portable)
    check_runner_used("FlinkRunner", "PipelineResult")
    with pytest.raises(RuntimeError, match="fell back to BundleBasedDirectRunner instead of Prism"):
        check_runner_used("PrismRunner", direct)


def test_only_a_streaming_dataflow_job_is_left_running_and_no_runner_means_prism() -> None:
    assert requested_runner(PipelineOptions([])) == "DirectRunner"
    assert requested_runner(PipelineOptions(["--runner=FlinkRunner"])) == "FlinkRunner"
    assert detached("DataflowRunner", until_caught_up=False)
    assert not detached("DataflowRunner", until_caught_up=True)
    assert not detached("FlinkRunner", until_caught_up=False)


def test_the_summary_counts_only_the_files_the_run_added(lake_from_before_keys: Path) -> None:
    from pipelines.query import connect

    lake = Lake(str(lake_from_before_keys))
    before = frozenset(relative for relative in lake_files(lake) if "+0000000000000000000+" in relative)
    added = sorted(lake_files(lake) - before)  # the second batch: offsets 2 and 3
    by_table = files_by_table(lake, added)
    assert sorted(by_table) == ["_records", "articles", "entities"]
    assert by_table["articles"] == [lake.path(relative) for relative in added if relative.startswith("articles/")]
    connection = connect(str(lake_from_before_keys))
    try:
        assert {
            table: count
            for table, count in row_counts(connection, relations(connection, lake, by_table)).items()
            if table != "entities"
        } == {
            "_records": 2,
            "articles": 2,
        }
    finally:
        connection.close()
