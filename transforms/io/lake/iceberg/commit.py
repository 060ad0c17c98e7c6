"""The Iceberg lake's one committer, its resume point, recovery after a crash, and snapshot expiry.

Commit protocol (after :func:`transforms.io.lake.iceberg.files.write_batch` wrote a batch's files
and its manifest, the commit point): :func:`commit_manifests` takes any number of manifests and,
for each table in :data:`COMMIT_ORDER` (``_records`` **last**), makes at most one snapshot:

1. load the table's head and read its cumulative property ``wirestream.covered`` (merged offset
   ranges per ``topic+partition``);
2. leave out the manifests whose range it already contains (an earlier attempt committed them);
3. in one transaction, ``add_files`` the remaining manifests' files (referenced in place, no copy;
   the snapshot summary carries ``wirestream.ranges`` and ``wirestream.batches``) and set
   ``wirestream.covered`` to the old ranges merged with theirs;
4. if another committer moved the head meanwhile (``CommitFailedException``), reload and redo 1–3.

Then the manifests' staging folders are removed, and only then may the caller commit Kafka offsets.
Roll-forward is therefore idempotent: recovery (:func:`recover`) commits every manifest again,
and each table takes only what it lacks. ``_records`` is committed last, so its ``covered`` is the
resume point (:func:`covered_ranges`).

Invariants (the spike's I1–I5):

- I1: no snapshot holds a batch's file before the batch's manifest is durable.
- I2: a batch's range is added to a table in at most one snapshot (its rows appear once).
- I3: ``covered(_records)`` contains ``covered(t)`` for the batches table ``t`` has rows for once
  every manifest is committed; while one is committing, ``_records`` lags behind, never ahead.
- I4: expiry changes no ``covered`` and no row count.
- I5: no file a retained snapshot references, and none a pending manifest lists, is ever deleted.

A batch range that overlaps a covered range without lying inside it is refused: the batches of
one partition never overlap, so it means two runs disagree about the lake. No Beam here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from schemas import arrow
from transforms.io.lake.iceberg.catalog import table_name
from transforms.io.lake.iceberg.files import BatchManifest, read_manifest
from transforms.io.lake.layout import STAGING
from transforms.io.lake.staging import maintenance_lock
from transforms.io.lake.store import Lake
from transforms.io.offsets import merge_ranges

__all__ = [
    "COMMIT_ORDER",
    "COVERED",
    "Recovered",
    "commit_manifests",
    "commit_table",
    "covered_ranges",
    "expire",
    "pending_manifests",
    "recover",
]

_LOG = logging.getLogger(__name__)

COVERED = "wirestream.covered"
RANGES = "wirestream.ranges"
BATCHES = "wirestream.batches"
COMMIT_ORDER: tuple[str, ...] = (
    *(table for table in arrow.STORED_TABLES if table != arrow.RECORD_LOG_TABLE),
    arrow.RECORD_LOG_TABLE,
)
"""The order tables are committed in: ``_records``, the resume point, last."""

_ATTEMPTS = 50

Ranges = dict[tuple[str, int], list[tuple[int, int]]]


def _parse_ranges(text: str | None) -> Ranges:
    ranges: Ranges = {}
    for key, spans in json.loads(text or "{}").items():
        topic, _, partition = key.rpartition("+")
        ranges[(topic, int(partition))] = [(int(first), int(end)) for first, end in spans]
    return ranges


def _format_ranges(ranges: Ranges) -> str:
    merged = {f"{topic}+{partition}": merge_ranges(spans) for (topic, partition), spans in sorted(ranges.items())}
    return json.dumps({key: [list(span) for span in spans] for key, spans in merged.items()}, separators=(",", ":"))


def _holds(covered: Ranges, manifest: BatchManifest) -> bool:
    """Whether ``covered`` already holds the manifest's range; refuses a partial overlap."""
    first, end = manifest.first_offset, manifest.end_offset
    for start, stop in covered.get((manifest.topic, manifest.partition), []):
        if start <= first and end <= stop:
            return True
        if start < end and first < stop:
            raise ValueError(f"batch {manifest.key} overlaps the committed range [{start}, {stop}) without lying in it")
    return False


def _with(covered: Ranges, manifests: Iterable[BatchManifest]) -> Ranges:
    grown: Ranges = defaultdict(list, {key: list(spans) for key, spans in covered.items()})
    for manifest in manifests:
        grown[(manifest.topic, manifest.partition)].append((manifest.first_offset, manifest.end_offset))
    return {key: merge_ranges(spans) for key, spans in grown.items()}


def commit_table(catalog: Catalog, table: str, manifests: Sequence[BatchManifest]) -> int:
    """Step 1–4 of the protocol for one table: one snapshot adding what it lacks; rows added (0: none)."""
    for attempt in range(_ATTEMPTS):
        loaded = catalog.load_table(table_name(table))
        covered = _parse_ranges(loaded.properties.get(COVERED))
        taken: list[BatchManifest] = []
        grown = covered
        for manifest in manifests:  # a batch given twice (a retried write's manifest too) is taken once
            if manifest.paths(table) and not _holds(grown, manifest):
                taken.append(manifest)
                grown = _with(grown, [manifest])
        if not taken:
            return 0
        paths = [path for manifest in taken for path in manifest.paths(table)]
        try:
            with loaded.transaction() as transaction:
                transaction.add_files(
                    paths,
                    check_duplicate_files=False,
                    snapshot_properties={
                        RANGES: _format_ranges(_with({}, taken)),
                        BATCHES: ",".join(manifest.key for manifest in taken),
                    },
                )
                transaction.set_properties({COVERED: _format_ranges(grown)})
        except CommitFailedException:
            _LOG.info("the table %s moved under commit attempt %d; reloading it", table, attempt + 1)
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
            continue
        return sum(file.rows for manifest in taken for file in manifest.files if file.table == table)
    raise CommitFailedException(f"the table {table} kept changing under {_ATTEMPTS} commit attempts")


def commit_manifests(catalog: Catalog, lake: Lake, manifests: Sequence[BatchManifest]) -> dict[str, int]:
    """Commit written batches: one snapshot per table, ``_records`` last, then drop their staging folders.

    Returns the rows added per table (a table that already held every batch adds 0).
    """
    added = {table: commit_table(catalog, table, manifests) for table in COMMIT_ORDER}
    for manifest in manifests:
        lake.delete_folder(lake.path(STAGING, manifest.key))
    return {table: rows for table, rows in added.items() if rows}


def covered_ranges(catalog: Catalog) -> Ranges:
    """Offset ranges ``[first, end)`` per topic-partition the lake accounts for: ``_records``' ``covered``.

    The same shape as :func:`transforms.io.lake.coverage.covered_ranges` (the resume point).
    """
    loaded = catalog.load_table(table_name(arrow.RECORD_LOG_TABLE))
    return _parse_ranges(loaded.properties.get(COVERED))


def pending_manifests(lake: Lake) -> list[BatchManifest]:
    """Every written batch in ``_staging/`` whose manifest is durable, in key order."""
    found = []
    for info in sorted(lake.list(lake.path(STAGING)), key=lambda info: info.base_name):
        if info.type == pafs.FileType.Directory:
            manifest = read_manifest(lake, info.path)
            if manifest is not None:
                found.append(manifest)
    return found


def _local(path: str) -> str:
    return path.removeprefix("file://")


def _referenced(table: Table) -> tuple[set[str], set[str]]:
    """``(data files, metadata files)`` that some snapshot of ``table`` (or its metadata log) references.

    A data file counts only where a snapshot reads it: an entry marking it deleted (a compaction's
    overwrite) does not keep it, or files a rewrite replaced could never be deleted.
    """
    metadata = {_local(table.metadata_location)}
    metadata.update(_local(entry.metadata_file) for entry in table.metadata.metadata_log)
    manifests = {}  # snapshots share most manifests: read each one once
    for snapshot in table.snapshots():
        metadata.add(_local(snapshot.manifest_list))
        for manifest in snapshot.manifests(table.io):
            manifests[_local(manifest.manifest_path)] = manifest
    metadata.update(manifests)
    data = {
        _local(entry.data_file.file_path)
        for manifest in manifests.values()
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }
    return data, metadata


def _files_under(lake: Lake, folder: str) -> Iterator[str]:
    for info in lake.list(folder, recursive=True):
        if info.type == pafs.FileType.File:
            yield lake.url(info.path)


def _unreferenced_metadata(lake: Lake, catalog: Catalog, table: str, min_age_s: float) -> list[str]:
    """Metadata files of ``table`` at least ``min_age_s`` old that nothing references.

    Listed before the head is loaded, so a commit that lands in between counts as referencing its
    files. Such files come from commits that crashed or lost a race, and from pyiceberg's manifest
    merge, which writes the new files' manifest and then merges it into another, leaving it unused.
    """
    cutoff_ns = time.time_ns() - int(min_age_s * 1e9)
    old = [
        lake.url(info.path)
        for info in lake.list(lake.path(table, "metadata"), recursive=True)
        if info.type == pafs.FileType.File
        and info.base_name.endswith((".avro", ".metadata.json"))
        and (info.mtime_ns or 0) <= cutoff_ns
    ]
    _, referenced = _referenced(catalog.load_table(table_name(table)))
    return [url for url in old if _local(url) not in referenced]


def _delete(lake: Lake, urls: Iterable[str]) -> int:
    deleted = 0
    for url in urls:
        with contextlib.suppress(FileNotFoundError):
            lake.fs.delete_file(url.split("://", 1)[1] if "://" in url else url)
            deleted += 1
    return deleted


@dataclass(frozen=True)
class Recovered:
    """What :func:`recover` did: batches rolled forward, staging folders discarded, orphan files deleted."""

    rolled_forward: int
    discarded: int
    orphans: int


def recover(lake: Lake, catalog: Catalog) -> Recovered:
    """Finish every committed batch, discard uncommitted ones, delete the files nothing references.

    Run before the pipeline reads (nothing is being written then), under the maintenance lock.
    An orphan is a data file no snapshot references and no pending manifest lists (written before
    a crash that came before its manifest), or a metadata file no snapshot, metadata log or head
    references (left by a commit that crashed or lost the race).
    """
    with maintenance_lock(lake):
        discarded = 0
        for info in lake.list(lake.path(STAGING)):
            if info.type == pafs.FileType.Directory and read_manifest(lake, info.path) is None:
                lake.delete_folder(info.path)
                discarded += 1
        manifests = pending_manifests(lake)
        if manifests:
            commit_manifests(catalog, lake, manifests)
        listed = {_local(file.path) for manifest in pending_manifests(lake) for file in manifest.files}
        orphans = []
        for table in arrow.STORED_TABLES:
            data, _ = _referenced(catalog.load_table(table_name(table)))
            for url in _files_under(lake, lake.path(table, "data")):
                if _local(url) not in data and _local(url) not in listed:
                    orphans.append(url)
            orphans.extend(_unreferenced_metadata(lake, catalog, table, 0.0))
        deleted = _delete(lake, orphans)
    if manifests or discarded or deleted:
        _LOG.info(
            "Iceberg lake recovery: %d batches rolled forward, %d uncommitted discarded, %d orphan files deleted",
            len(manifests), discarded, deleted,
        )  # fmt: skip
    return Recovered(len(manifests), discarded, deleted)


def _expire_table(catalog: Catalog, table: str, keep: int, retain_s: float) -> tuple[set[str], set[str]]:
    """Expire one table's snapshots but the newest ``keep`` and those current within ``retain_s``.

    Returns the files referenced before and after.
    """
    for attempt in range(_ATTEMPTS):
        loaded = catalog.load_table(table_name(table))
        before = set().union(*_referenced(loaded))
        snapshots = sorted(loaded.snapshots(), key=lambda snapshot: (snapshot.timestamp_ms, snapshot.sequence_number))
        head = loaded.current_snapshot()
        cutoff_ms = time.time() * 1000 - retain_s * 1000
        # a snapshot stopped being current when the next one was committed: readers may still read it until then
        superseded = {
            s.snapshot_id
            for s, following in zip(snapshots, snapshots[1:], strict=False)
            if retain_s <= 0 or following.timestamp_ms < cutoff_ms
        }
        old = [
            s.snapshot_id
            for s in snapshots[: max(len(snapshots) - keep, 0)]
            if (head is None or s != head) and s.snapshot_id in superseded
        ]
        if not old:
            return before, before
        try:
            loaded.maintenance.expire_snapshots().by_ids(old).commit()
        except CommitFailedException:
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
            continue
        return before, set().union(*_referenced(catalog.load_table(table_name(table))))
    raise CommitFailedException(f"the table {table} kept changing under {_ATTEMPTS} expiry attempts")


def expire(catalog: Catalog, lake: Lake, keep: int, orphan_age_s: float = 3600.0, retain_s: float = 0.0) -> int:
    """Keep each table's newest ``keep`` snapshots; delete the files only the expired ones referenced.

    ``retain_s`` keeps, beyond those, every snapshot that was current less than ``retain_s`` ago
    (its successor was committed since), so a reader that began on it can still read its files.

    pyiceberg's expiry deletes no file. This deletes exactly the data, manifest and manifest-list
    files that the expired snapshots referenced and no retained one does (none a pending manifest
    lists), so a file being written right now, referenced by nothing yet, is never touched: safe
    while the pipeline runs. Then the metadata files nothing references that are at least
    ``orphan_age_s`` old (a commit in flight writes its own seconds before it lands). Data files
    nothing references are left to :func:`recover`. Rows and ``covered`` are unchanged (I4).
    Returns the files deleted.
    """
    if keep < 1:
        raise ValueError("expiry must keep at least the current snapshot")
    deleted = 0
    with maintenance_lock(lake):
        for table in COMMIT_ORDER:
            before, after = _expire_table(catalog, table, keep, retain_s)
            listed = {_local(file.path) for manifest in pending_manifests(lake) for file in manifest.files}
            # metadata.json files dropped from the log are pyiceberg's to delete (delete-after-commit)
            expired = {path for path in before - after - listed if not path.endswith(".metadata.json")}
            deleted += _delete(lake, sorted(expired))
            deleted += _delete(lake, _unreferenced_metadata(lake, catalog, table, orphan_age_s))
    return deleted
