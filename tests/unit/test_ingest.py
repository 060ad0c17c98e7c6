"""Launcher helpers (``pipelines/launcher.py``, ``runners.py``) that decide what a run reads and how it runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions

from pipelines.launcher import seed_folders
from pipelines.runners import prism_settings
from transforms.io.lake import Lake

NOW = dt.datetime(2026, 12, 2, 12, 30, tzinfo=dt.UTC)


def _folder(root: Path, table: str, hour: int, day: int = 2) -> None:
    (root / table / f"dt=2026-12-{day:02d}" / f"hour={hour:02d}").mkdir(parents=True)


def test_seeds_come_from_the_record_log_and_from_articles_only_for_hours_without_one(tmp_path: Path) -> None:
    _folder(tmp_path, "_records", 11)
    _folder(tmp_path, "articles", 11)  # the record log covers this hour: not read twice
    _folder(tmp_path, "articles", 10)  # written before the lake kept a record log
    _folder(tmp_path, "articles", 9, day=1)  # ended more than the TTL before now
    _folder(tmp_path, "_records", 8, day=1)
    found = seed_folders(Lake(str(tmp_path)), NOW, ttl_seconds=24 * 3600)
    assert found == ["_records/dt=2026-12-02/hour=11", "articles/dt=2026-12-02/hour=10"]


def test_prism_runs_without_dynamic_sdf_splits_and_other_runners_are_left_alone() -> None:
    for runner in ("DirectRunner", "PrismRunner"):
        options = PipelineOptions([f"--runner={runner}"])
        prism_settings(options)
        prism_settings(options)  # once is enough
        assert options.view_as(DebugOptions).experiments == ["prism_disable_sdf_split"]
    flink = PipelineOptions(["--runner=FlinkRunner"])
    prism_settings(flink)
    assert not flink.view_as(DebugOptions).experiments
