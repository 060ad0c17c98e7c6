"""``wirestream validate``: the expectation suite over partitions already in the lake.

Each ``articles/dt=YYYY-MM-DD/hour=HH`` folder is read with its explicit Arrow schema and validated
as one DataFrame, so batch-level expectations judge the whole hour here (in the pipeline they judge
one Kafka batch). Rows of ``articles`` failing a row-level expectation mean the data was written
before the suite had that expectation, or by something else than the pipeline: the pipeline
quarantines such rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.dataset as ds

from schemas import arrow
from transforms.io.lake import Lake, data_files, partition_folders
from transforms.quality_core import (
    SuiteValidator,
    batch_failures,
    checked_validator,
    load_suite,
    records_frame,
    row_failures,
    suite_version,
)

READ_COLUMNS = [
    "article_id",
    "url",
    "text",
    "word_count",
    "language",
    "title",
    "source",
    "content_hash",
    "published_at",
    "ingested_at",
    "entities",
    "kafka_offset",
]


@dataclass(frozen=True)
class PartitionVerdict:
    """What the suite says of one ``articles`` partition folder."""

    folder: str
    rows: int
    failing_rows: int
    row_failures: tuple[tuple[str, int], ...]
    failed_batch_expectations: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """No row and no batch expectation failed."""
        return not self.failing_rows and not self.failed_batch_expectations


def article_partitions(lake: Lake, days: Sequence[str] = ()) -> list[str]:
    """``articles/dt=.../hour=...`` folders (relative to the lake), optionally only those days."""
    folders = [folder for folder, _ in partition_folders(lake, "articles")]
    return sorted(folder for folder in folders if not days or folder.split("/")[1].removeprefix("dt=") in days)


def validate_partition(lake: Lake, folder: str, validator: SuiteValidator) -> PartitionVerdict:
    """Validate one partition folder's articles as one DataFrame."""
    # Files the lake keeps for itself start with "_"; a folder above the lake may too.
    files = [path for path in data_files(lake, folder, recursive=False) if not path.rsplit("/", 1)[-1].startswith("_")]
    table = ds.dataset(files, schema=arrow.ARTICLES, format="parquet", filesystem=lake.fs).to_table(
        columns=READ_COLUMNS
    )
    records = table.to_pylist()
    if not records:
        return PartitionVerdict(folder, 0, 0, (), ())
    result = validator.validate(records_frame(records))
    failed_rows = row_failures(result, len(records))
    counts = Counter(name for names in failed_rows.values() for name in names)
    by_name = tuple(sorted(counts.items()))
    return PartitionVerdict(folder, len(records), len(failed_rows), by_name, batch_failures(result))


def format_verdict(verdict: PartitionVerdict) -> str:
    """One readable line (two when something failed) for a partition."""
    line = f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.folder}: {verdict.rows} articles"
    if verdict.passed:
        return line + ", every expectation met"
    details = []
    if verdict.failing_rows:
        named = ", ".join(f"{name} ×{count}" for name, count in verdict.row_failures)
        details.append(f"{verdict.failing_rows} rows break row-level expectations ({named})")
    if verdict.failed_batch_expectations:
        details.append("batch-level expectations failed: " + ", ".join(verdict.failed_batch_expectations))
    return line + "\n      " + "; ".join(details)


def validate_lake(lake_uri: str, days: Sequence[str] = (), suite_path: str | None = None) -> tuple[list[str], int]:
    """Validate the chosen partitions: the report's lines and the exit code (0 pass, 1 fail, 2 none)."""
    suite = load_suite(suite_path)  # a broken suite file is refused first, whatever the lake holds
    lake = Lake(lake_uri)
    folders = article_partitions(lake, days)
    if not folders:
        wanted = f" for {', '.join(days)}" if days else ""
        return [f"no articles partitions{wanted} in {lake_uri}"], 2
    validator = checked_validator(suite, suite_path)  # imports GX: only when there is something to validate
    verdicts = [validate_partition(lake, folder, validator) for folder in folders]
    lines = [f"suite {suite_version(suite)} over {len(verdicts)} partitions of {lake_uri}"]
    lines += [format_verdict(verdict) for verdict in verdicts]
    failed = [verdict for verdict in verdicts if not verdict.passed]
    rows = sum(verdict.rows for verdict in verdicts)
    if failed:
        lines.append(f"overall: FAIL ({len(failed)} of {len(verdicts)} partitions, {rows} articles)")
    else:
        lines.append(f"overall: PASS ({len(verdicts)} partitions, {rows} articles)")
    return lines, 1 if failed else 0
