"""The quality stage's reports on the lake: writing each batch's files and rebuilding the Data Docs index.

The lake's implementation of :class:`transforms.quality_core.QualityStore` (what the stage writes
through, so the stage never imports IO), and the read side of the same files: the summaries the
index reads and which reports the lake's data accounts for (:func:`report_states`). Every file is
written under a temporary name and then renamed, under the batch's key: a replay overwrites rather
than adds. What the files hold and how the pages look is :mod:`transforms.quality_core.reports`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from transforms.io.lake import Lake, covered_ranges
from transforms.io.offsets import merge_ranges
from transforms.quality_core.reports import QUALITY, render_batch_page, render_index, report_summary

__all__ = ["LakeQualityStore", "read_reports", "report_states", "results_path", "write_index", "write_report"]

_LOG = logging.getLogger(__name__)


def _write_atomically(lake: Lake, path: str, data: bytes) -> None:
    lake.create_folder(path.rsplit("/", 1)[0])
    lake.write_atomically(path, data)


def results_path(lake: Lake, batch_key: str) -> str:
    """Where a batch's results JSON lives."""
    return lake.path(QUALITY, "results", f"{batch_key}.json")


def write_report(lake: Lake, report: Mapping[str, Any]) -> None:
    """The batch's results JSON, its summary and its HTML page, each written atomically under its key.

    The summary (``_quality/summaries/<key>.json``, a few hundred bytes) is what the index reads,
    so rebuilding the index does not read every full report again.
    """
    key = report["batch"]["key"]
    _write_atomically(lake, results_path(lake, key), json.dumps(report, default=str, indent=1).encode())
    summary = report_summary(report)
    _write_atomically(lake, lake.path(QUALITY, "summaries", f"{key}.json"), json.dumps(summary).encode())
    page = render_batch_page(report)
    _write_atomically(lake, lake.path(QUALITY, "docs", "batches", f"{key}.html"), page.encode())


def read_reports(lake: Lake) -> list[dict[str, Any]]:
    """Every stored batch report's summary (batch, run, time, status, counts, failed expectations)."""
    reports = []
    for info in lake.list(lake.path(QUALITY, "summaries")):
        if not info.base_name.endswith(".json"):
            continue
        try:
            with lake.fs.open_input_stream(info.path) as stream:
                report = json.loads(stream.read())
        except (OSError, ValueError):
            _LOG.warning("unreadable quality report %s", info.path)
            continue
        reports.append(report)
    return reports


def report_states(
    reports: Sequence[Mapping[str, Any]], covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]]
) -> dict[str, str]:
    """Batch key → ``committed``, ``superseded`` or ``uncommitted``.

    A report is written before its batch's data is committed. ``committed``: the lake accounts for
    its whole range. ``superseded``: a later report covers an overlapping range (a replay cut the
    batch differently after a crash). ``uncommitted``: neither (crashed before the commit; the
    next run reads the range again and writes a report for it).
    """
    merged = {key: merge_ranges(list(ranges)) for key, ranges in covered.items()}
    states = {}
    for report in reports:
        batch = report["batch"]
        first, end = batch["first_offset"], batch["end_offset"]
        later = [
            other
            for other in reports
            if other is not report
            and other["batch"]["topic"] == batch["topic"]
            and other["batch"]["partition"] == batch["partition"]
            and other["batch"]["first_offset"] < end
            and first < other["batch"]["end_offset"]
            and other["validated_at"] > report["validated_at"]
        ]
        in_lake = any(a <= first and end <= b for a, b in merged.get((batch["topic"], batch["partition"]), []))
        states[batch["key"]] = "superseded" if later else "committed" if in_lake else "uncommitted"
    return states


def write_index(lake: Lake, title: str = "wirestream data quality") -> str:
    """Rebuild ``_quality/docs/index.html`` from the stored reports; returns its path."""
    reports = read_reports(lake)
    page = render_index(reports, report_states(reports, covered_ranges(lake)), title)
    path = lake.path(QUALITY, "docs", "index.html")
    _write_atomically(lake, path, page.encode())
    return path


class LakeQualityStore:
    """The lake's :class:`~transforms.quality_core.QualityStore`: picklable (the URI); opens the lake on first use."""

    def __init__(self, lake_uri: str) -> None:
        self.lake_uri = lake_uri
        self._lake: Lake | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"lake_uri": self.lake_uri, "_lake": None}

    @property
    def lake(self) -> Lake:
        """The lake, opened on first use."""
        if self._lake is None:
            self._lake = Lake(self.lake_uri)
        return self._lake

    def write_report(self, report: Mapping[str, Any]) -> None:
        """See :func:`write_report`."""
        write_report(self.lake, report)

    def write_index(self) -> str:
        """See :func:`write_index`."""
        return write_index(self.lake)
