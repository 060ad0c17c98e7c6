"""The batch commit protocol, its retry while the lake refuses writes, and recovery after a crash.

Commit protocol (:func:`commit_batch`, one :class:`SourceBatch` at a time; a batch is a contiguous
offset range ``[first, end)`` of one partition, cut by the source and carried through every stage
as one :class:`OutcomeBatch` element, so no runner state is needed to gather it):

1. It checks that it holds exactly one outcome per record of the batch (``batch.size`` distinct
   offsets, all inside the range) and refuses the batch otherwise.
2. Each table's rows are written with the table's explicit Arrow schema, zstd-compressed, into
   ``_staging/<batch>/`` and fsynced.
3. A manifest naming every staged file and its final path is written under a temporary name and
   renamed to ``_MANIFEST.json``: this rename is the commit point.
4. Staged files are renamed to their final paths, then the staging folder is removed.
5. Only now does the sink commit an offset to the Kafka consumer group (see
   :mod:`transforms.io.lake.sink`).

Recovery (:func:`recover`, run by the launcher before reading): a staging folder with a manifest
is rolled forward (its remaining renames done); one without is deleted, and its batch is read
again (:mod:`transforms.io.lake.staging`). Writing a batch again (a runner retry) writes the same
names with the same rows: the protocol is idempotent.

A lake that refuses writes (full, read-only, unreachable) makes :func:`commit_with_retry` block
and retry and then fail loudly; no offset is committed for an unwritten batch. No Beam here.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from schemas import arrow
from schemas.records import Outcome, SourceBatch
from transforms.errors import FAILED, UserError
from transforms.io.lake.layout import STAGING
from transforms.io.lake.rows import arrow_table, rows_by_file
from transforms.io.lake.staging import commit_manifest, maintenance_lock, recover_staging, roll_forward
from transforms.io.lake.store import Lake

__all__ = ["LakeUnwritableError", "Written", "check_complete", "commit_batch", "commit_with_retry", "recover"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """What a committed batch wrote: ``(table, dt=/hour= partition, rows)`` per file."""

    files: tuple[tuple[str, str, int], ...]

    @property
    def rows(self) -> dict[str, int]:
        """Rows written per table."""
        totals: dict[str, int] = defaultdict(int)
        for table, _, rows in self.files:
            if table in arrow.TABLES:
                totals[table] += rows
        return dict(totals)

    @property
    def folders(self) -> tuple[str, ...]:
        """The table partition folders written, relative to the lake (``table/dt=.../hour=...``)."""
        return tuple(sorted({f"{table}/{partition}" for table, partition, _ in self.files if table in arrow.TABLES}))


def check_complete(batch: SourceBatch, outcomes: Sequence[Outcome]) -> None:
    """Refuse a batch unless it holds exactly one outcome per record, each inside its offset range."""
    offsets = [outcome.kafka_offset for outcome in outcomes]
    if len(offsets) != batch.size or len(set(offsets)) != batch.size:
        raise ValueError(
            f"batch {batch.key}: {len(offsets)} outcomes ({len(set(offsets))} distinct) for {batch.size} records"
        )
    if min(offsets) < batch.first_offset or max(offsets) >= batch.end_offset:
        raise ValueError(f"batch {batch.key}: an outcome lies outside its offset range")


def commit_batch(
    lake: Lake, batch: SourceBatch, outcomes: Sequence[Outcome], partition_by: str = "ingestion_time"
) -> Written:
    """Write every outcome of ``batch`` by the commit protocol."""
    check_complete(batch, outcomes)
    staging = lake.path(STAGING, batch.key)
    name = f"{batch.key}.parquet"
    planned = []
    written = []
    for (table, partition), rows in rows_by_file(outcomes, partition_by).items():
        relative = f"{table}/{partition}/{name}"
        lake.create_folder(f"{staging}/{table}/{partition}")
        lake.write_table(f"{staging}/{relative}", arrow_table(rows, arrow.STORED_TABLES[table]))
        planned.append({"file": relative, "rows": len(rows)})
        written.append((table, partition, len(rows)))
    manifest = {
        "batch": {
            "topic": batch.topic,
            "partition": batch.partition,
            "first_offset": batch.first_offset,
            "end_offset": batch.end_offset,
            "size": batch.size,
        },
        "files": planned,
    }
    commit_manifest(lake, staging, manifest)
    roll_forward(lake, staging, manifest)
    return Written(tuple(written))


def recover(lake: Lake) -> tuple[int, int]:
    """Finish committed staging folders, delete uncommitted ones: ``(rolled forward, discarded)``.

    Run before the pipeline reads; waits for a compaction in progress (they share a lock).
    """
    with maintenance_lock(lake):
        return recover_staging(lake)


class LakeUnwritableError(UserError, RuntimeError):
    """The lake refused a write for longer than the configured retry time (a failed run: exit 1)."""

    exit_code = FAILED
    # Reported (and pickled) under its public name, as users see it in a failed job's message.
    __module__ = "transforms.io.lake"


def commit_with_retry(
    lake: Lake, batch: SourceBatch, outcomes: Sequence[Outcome], partition_by: str, retry_seconds: float
) -> Written:
    """:func:`commit_batch`, retried with backoff while the lake refuses it (full, read-only, gone).

    The pipeline blocks meanwhile (nothing later in this partition is committed either); after
    ``retry_seconds`` it fails loudly. Offsets are never committed for a batch that was not written.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.5
    while True:
        try:
            return commit_batch(lake, batch, outcomes, partition_by)
        except OSError as error:
            if time.monotonic() + delay > deadline:
                raise LakeUnwritableError(
                    f"cannot write batch {batch.key} to the lake at {lake.uri} after {retry_seconds:.0f} s: {error}"
                ) from error
            _LOG.error(
                "cannot write batch %s to the lake at %s (%s); retrying in %.1f s", batch.key, lake.uri, error, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
