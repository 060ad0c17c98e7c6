"""The lake: layout, the batch commit protocol, recovery, compaction and reading what it holds.

No Beam here: the read side (``wirestream query``, ``validate``, ``report``, ``compact``) imports
this module, and the Beam sink around it (``WriteLake``, ``MarkComplete``) lives in
:mod:`transforms.io.lake_sink`.

Layout (the downstream contract, see DESIGN.md)::

    LAKE/<table>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<end>.parquet
    LAKE/_staging/<topic>+<partition>+<first>+<end>/...        never read by anyone

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
   :mod:`transforms.io.lake_sink`).

Recovery (:func:`recover`, run by the launcher before reading): a staging folder with a manifest
is rolled forward (its remaining renames done); one without is deleted, and its batch is read
again. The resume point is derived from the lake itself (:func:`covered_ranges`): the file names
say which offset ranges are accounted for, so a lost or stale consumer-group commit causes neither
loss nor duplicates. It is the first offset from the partition's origin (:func:`record_origins`,
written before the partition is first read) that no file covers, so a gap before later committed
batches is read again. Writing a batch again (a runner retry) writes the same names with the same
rows: the protocol is idempotent.

Compaction (:func:`compact`, ``wirestream compact``) merges a partition's small files into one
named after the union of their ranges, staged and committed by a manifest too; on a local lake
the folder's new content is swapped in with one atomic directory exchange, so readers see the
folder before or after, never half-way.

A lake that refuses writes (full, read-only, unreachable) makes :func:`commit_with_retry` block
and retry and then fail loudly; no offset is committed for an unwritten batch.

Completeness markers (ingestion-time partitions): a ``_SUCCESS`` file appears in a partition once
no batch can add to it any more: while streaming, when the watermark passes the end of its hour
(``MarkComplete``); and at the start and the end of every run, for each hour that has ended
(:func:`mark_complete`).

Partition values come only from timestamps the pipeline computed (ingestion time by default,
``published_at`` with ``partition_by="event_time"``), never from input strings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas import arrow
from schemas.records import (
    LONE_SURROGATE,
    Article,
    DeadLetter,
    Duplicate,
    Outcome,
    Quarantined,
    SourceBatch,
    utc_now,
)
from transforms.errors import FAILED, UserError
from transforms.io.offsets import merge_ranges

__all__ = [
    "batch_file_range",
    "Lake",
    "LakeUnwritableError",
    "commit_batch",
    "commit_with_retry",
    "compact",
    "covered_ranges",
    "lake_files",
    "mark_complete",
    "partition_end",
    "partition_folders",
    "read_origins",
    "record_origins",
    "recover",
    "write_marker",
    "Written",
    "article_row",
]

STAGING = "_staging"
MAINTENANCE_LOCK = "_maintenance.lock"
MANIFEST = "_MANIFEST.json"
SUCCESS = "_SUCCESS"
_BATCH_FILE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)\+(?P<end>\d+)\.parquet$")
_LOG = logging.getLogger(__name__)


class Lake:
    """The lake's root on a pyarrow filesystem (a local path, or a ``gs://`` / ``s3://`` URI)."""

    def __init__(self, uri: str) -> None:
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.uri = uri

    def path(self, *parts: str) -> str:
        """An absolute path inside the lake."""
        return "/".join([self.root.rstrip("/"), *parts])

    def exists(self, path: str) -> bool:
        """Whether a file or folder exists."""
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def list(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        """What a folder holds; nothing if it does not exist."""
        return list(self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive)))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a file and make it durable (fsync on local disks)."""
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)
        self._fsync(path)

    def write_table(self, path: str, table: pa.Table) -> None:
        """Write a Parquet file (zstd) and make it durable."""
        with self.fs.open_output_stream(path) as stream:
            pq.write_table(table, stream, compression="zstd")
        self._fsync(path)

    def move(self, source: str, target: str) -> None:
        """Rename (atomic on local disks; copy-then-delete on object stores)."""
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.move(source, target)
        self._fsync(target.rsplit("/", 1)[0])

    def _fsync(self, path: str) -> None:
        if not self.local:
            return
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def partition_path(timestamp: dt.datetime) -> str:
    """``dt=YYYY-MM-DD/hour=HH`` of a UTC timestamp."""
    utc = timestamp.astimezone(dt.UTC)
    return f"dt={utc:%Y-%m-%d}/hour={utc:%H}"


def article_row(article: Article) -> dict[str, Any]:
    """An article as its ``articles`` row (column names as in :data:`schemas.arrow.ARTICLES`)."""
    return {
        "article_id": article.article_id,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "source": article.source,
        "title": article.title,
        "site_name": article.site_name,
        "authors": list(article.authors),
        "text": article.text,
        "language": article.language,
        "published_at": article.published_at,
        "ingested_at": article.ingested_at,
        "word_count": article.word_count,
        "content_hash": article.content_hash,
        "cluster_id": article.cluster_id or article.article_id,
        "entities": [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "canonical": e.canonical, "key": e.key}
            for e in article.entities
        ],
        "ner_status": article.ner_status,
        "ner_model": article.ner_model,
        "kafka_topic": article.kafka_topic,
        "kafka_partition": article.kafka_partition,
        "kafka_offset": article.kafka_offset,
    }


def _entity_rows(article: Article) -> Iterator[dict[str, Any]]:
    for entity in article.entities:
        yield {
            "article_id": article.article_id,
            "text": entity.text,
            "label": entity.label,
            "start": entity.start,
            "end": entity.end,
            "canonical": entity.canonical,
            "key": entity.key,
            "published_at": article.published_at,
            "source": article.source,
        }


def _duplicate_row(duplicate: Duplicate) -> dict[str, Any]:
    article = duplicate.article
    return {
        "article_id": article.article_id,
        "duplicate_of": duplicate.duplicate_of,
        "similarity": duplicate.similarity,
        "method": duplicate.method,
        "url": article.url,
        "source": article.source,
        "title": article.title,
        "ingested_at": article.ingested_at,
        "kafka_topic": article.kafka_topic,
        "kafka_partition": article.kafka_partition,
        "kafka_offset": article.kafka_offset,
    }


def _quarantine_row(quarantined: Quarantined) -> dict[str, Any]:
    return {**article_row(quarantined.article), "failed_expectations": list(quarantined.failed_expectations)}


def _dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "stage": letter.stage,
        "reason": letter.reason,
        "error": letter.error,
        "raw_value": letter.raw_value,
        "raw_key": letter.raw_key,
        "failed_at": letter.failed_at,
        "kafka_topic": letter.kafka_topic,
        "kafka_partition": letter.kafka_partition,
        "kafka_offset": letter.kafka_offset,
    }


def _partition_of(outcome: Outcome, partition_by: str) -> str:
    if isinstance(outcome, Quarantined):
        outcome = outcome.article
    if isinstance(outcome, Article) and partition_by == "event_time" and outcome.published_at:
        return partition_path(outcome.published_at)
    return partition_path(outcome.ingested_at)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _log_row(outcome: Outcome, committed_at: dt.datetime) -> dict[str, Any]:
    seen = outcome.article if isinstance(outcome, Duplicate | Quarantined) else outcome
    return {
        "kafka_topic": seen.kafka_topic,
        "kafka_partition": seen.kafka_partition,
        "kafka_offset": seen.kafka_offset,
        "event_time": _EPOCH + dt.timedelta(microseconds=seen.event_us) if seen.event_us >= 0 else None,
        "ingested_at": outcome.ingested_at,
        "committed_at": committed_at,
        "article_id": seen.article_id if isinstance(seen, Article) else None,
        "dedup_memory": seen.dedup_memory or None if isinstance(seen, Article | DeadLetter) else None,
    }


def rows_by_file(
    outcomes: Iterable[Outcome], partition_by: str = "ingestion_time", committed_at: dt.datetime | None = None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows grouped by ``(table, dt=/hour= partition)``, in offset order.

    Every record also gets its row in the record log ``_records`` (by ingestion time), stamped
    ``committed_at`` (default: now), committed with the batch.
    """
    committed_at = committed_at or utc_now()
    files: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for outcome in sorted(outcomes, key=lambda o: o.kafka_offset):
        partition = _partition_of(outcome, partition_by)
        files[(arrow.RECORD_LOG_TABLE, partition_path(outcome.ingested_at))].append(_log_row(outcome, committed_at))
        if isinstance(outcome, Article):
            files[("articles", partition)].append(article_row(outcome))
            files[("entities", partition)].extend(_entity_rows(outcome))
        elif isinstance(outcome, Duplicate):
            files[("duplicates", partition)].append(_duplicate_row(outcome))
        elif isinstance(outcome, Quarantined):
            files[("quarantine", partition)].append(_quarantine_row(outcome))
        else:
            files[("dead_letters", partition)].append(_dead_letter_row(outcome))
    return {key: rows for key, rows in files.items() if rows}


def _check_complete(batch: SourceBatch, outcomes: Sequence[Outcome]) -> None:
    offsets = [outcome.kafka_offset for outcome in outcomes]
    if len(offsets) != batch.size or len(set(offsets)) != batch.size:
        raise ValueError(
            f"batch {batch.key}: {len(offsets)} outcomes ({len(set(offsets))} distinct) for {batch.size} records"
        )
    if min(offsets) < batch.first_offset or max(offsets) >= batch.end_offset:
        raise ValueError(f"batch {batch.key}: an outcome lies outside its offset range")


def _encodable(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD (no UTF-8 form otherwise)."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {name: _encodable(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value


def _arrow_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The rows as a table of ``schema``; a string with no UTF-8 form is repaired, never a crash.

    ParseArticle already rejects or repairs lone surrogates in every input field; this is the last
    line, so that a rule that lets one through (a bug) costs a replacement character, not a stream
    that stops on the same batch at every restart.
    """
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except UnicodeEncodeError as error:
        _LOG.warning("a %s row held a lone surrogate (%s); replaced with U+FFFD", schema.names[0], error.reason)
        return pa.Table.from_pylist(_encodable(rows), schema=schema)


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


def commit_batch(
    lake: Lake, batch: SourceBatch, outcomes: Sequence[Outcome], partition_by: str = "ingestion_time"
) -> Written:
    """Write every outcome of ``batch`` by the commit protocol."""
    _check_complete(batch, outcomes)
    staging = lake.path(STAGING, batch.key)
    name = f"{batch.key}.parquet"
    planned = []
    written = []
    for (table, partition), rows in rows_by_file(outcomes, partition_by).items():
        relative = f"{table}/{partition}/{name}"
        lake.fs.create_dir(f"{staging}/{table}/{partition}", recursive=True)
        lake.write_table(f"{staging}/{relative}", _arrow_table(rows, arrow.STORED_TABLES[table]))
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
    _commit_manifest(lake, staging, manifest)
    _roll_forward(lake, staging, manifest)
    return Written(tuple(written))


def _commit_manifest(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    """Write a staging folder's manifest under a temporary name, then rename it: the commit point."""
    lake.write_bytes(f"{staging}/{MANIFEST}.tmp", json.dumps(manifest).encode())
    lake.fs.move(f"{staging}/{MANIFEST}.tmp", f"{staging}/{MANIFEST}")


def _roll_forward(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        staged = f"{staging}/{entry['file']}"
        if lake.exists(staged):
            lake.move(staged, lake.path(entry["file"]))
    for relative in manifest.get("remove", []):  # files a compaction replaced
        if lake.exists(lake.path(relative)):
            lake.fs.delete_file(lake.path(relative))
    lake.fs.delete_dir(staging)


def recover(lake: Lake) -> tuple[int, int]:
    """Finish committed staging folders, delete uncommitted ones: ``(rolled forward, discarded)``.

    Run before the pipeline reads; waits for a compaction in progress (they share a lock).
    """
    with _maintenance_lock(lake):
        return _recover(lake)


def _recover(lake: Lake, only_merges: bool = False) -> tuple[int, int]:
    rolled, discarded = 0, 0
    for info in lake.list(lake.path(STAGING)):
        if only_merges and not info.base_name.startswith(("swap+", "compact+")):
            continue  # a batch the running pipeline is writing right now
        if info.type != pafs.FileType.Directory:
            lake.fs.delete_file(info.path)
            continue
        manifest_path = f"{info.path}/{MANIFEST}"
        if lake.exists(manifest_path):
            with lake.fs.open_input_stream(manifest_path) as stream:
                manifest = json.loads(stream.read())
            if "swap" in manifest:
                _finish_exchange(lake, info.path, manifest)
            else:
                _roll_forward(lake, info.path, manifest)
            rolled += 1
        else:
            lake.fs.delete_dir(info.path)
            discarded += 1
    if rolled or discarded:
        _LOG.info("lake recovery: %d batches rolled forward, %d uncommitted batches discarded", rolled, discarded)
    return rolled, discarded


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_PARTITION = re.compile(r"^dt=(?P<day>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})$")


def partition_end(folder: str) -> dt.datetime | None:
    """When the hour of a ``dt=YYYY-MM-DD/hour=HH`` folder (optionally under a table) ends."""
    match = _PARTITION.match(folder.split("/", 1)[1] if folder.count("/") == 2 else folder)
    if not match:
        return None
    return dt.datetime.fromisoformat(f"{match['day']}T{match['hour']}:00:00+00:00") + dt.timedelta(hours=1)


def write_marker(lake: Lake, folder: str) -> bool:
    """Put ``_SUCCESS`` into ``folder`` (relative to the lake) unless it is there; True if written."""
    marker = lake.path(folder, SUCCESS)
    if lake.exists(marker):
        return False
    lake.write_bytes(f"{marker}.tmp", b"")
    lake.fs.move(f"{marker}.tmp", marker)
    return True


def mark_complete(lake: Lake, before: dt.datetime) -> list[str]:
    """Write ``_SUCCESS`` into every table partition whose hour ended at or before ``before``.

    For ingestion-time partitions this is sound at start-up (after :func:`recover`, with no other
    pipeline on the lake): every batch read before now is committed or will be read again with a
    new, later ingestion time, so no older partition can still change. Returns the partitions
    marked (relative paths).
    """
    marked = []
    for table in arrow.TABLES:
        for folder, end in partition_folders(lake, table):
            if end <= before and write_marker(lake, folder):
                marked.append(folder)
    return marked


def partition_folders(lake: Lake, table: str) -> Iterator[tuple[str, dt.datetime]]:
    """Each ``table/dt=.../hour=...`` folder of a table (relative to the lake) and when its hour ends."""
    prefix = lake.path(table) + "/"
    for info in lake.list(lake.path(table), recursive=True):
        if info.type == pafs.FileType.Directory:
            folder = f"{table}/{info.path[len(prefix) :]}"
            end = partition_end(folder)
            if end is not None:
                yield folder, end


def batch_file_range(name: str) -> tuple[str, int, int, int] | None:
    """``(topic, partition, first, end)`` of a batch file's name, ``None`` for any other file."""
    match = _BATCH_FILE.match(name)
    if not match:
        return None
    return match["topic"], int(match["partition"]), int(match["first"]), int(match["end"])


@dataclass(frozen=True)
class _BatchFile:
    topic: str
    partition: int
    first: int
    end: int
    relative: str


def _batch_files(lake: Lake, table: str) -> dict[str, list[_BatchFile]]:
    """A table's batch files by partition folder (``dt=.../hour=...``)."""
    prefix = lake.root.rstrip("/") + "/"
    folders: dict[str, list[_BatchFile]] = defaultdict(list)
    for info in lake.list(lake.path(table), recursive=True):
        match = _BATCH_FILE.match(info.base_name)
        if match and info.type == pafs.FileType.File:
            relative = info.path[len(prefix) :]
            folder = relative.rsplit("/", 1)[0]
            folders[folder].append(
                _BatchFile(match["topic"], int(match["partition"]), int(match["first"]), int(match["end"]), relative)
            )
    return folders


def _runs(files: list[_BatchFile], covered: list[tuple[int, int]]) -> Iterator[list[_BatchFile]]:
    """Runs of one partition's files whose ranges are contiguous, counting what other files cover.

    A merged file's name then still says truthfully which offsets it accounts for.
    """
    run: list[_BatchFile] = []
    for file in sorted(files, key=lambda f: f.first):
        gap_covered = bool(run) and (
            file.first <= run[-1].end or any(a <= run[-1].end and file.first <= b for a, b in covered)
        )
        if run and not gap_covered:
            yield run
            run = []
        run.append(file)
    if run:
        yield run


@contextlib.contextmanager
def _maintenance_lock(lake: Lake) -> Iterator[None]:
    """Only one of recovery and compaction works on a local lake at a time (an exclusive flock)."""
    if not lake.local:
        yield
        return
    import fcntl

    path = lake.path(MAINTENANCE_LOCK)
    handle: IO[bytes]
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - a read-only lake: a shared file still locks
        except OSError as error:
            # A lake that refuses writes: nothing to recover or compact anyway; the writes that
            # follow will say so (and retry) in their own words.
            _LOG.warning("cannot open the lake's maintenance lock %s (%s); going on without it", path, error)
            yield
            return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _exchange(first: str, second: str) -> None:
    """Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, first.encode(), _AT_FDCWD, second.encode(), _RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), first, None, second)


def _can_exchange(lake: Lake) -> bool:
    if not lake.local:
        return False
    import ctypes

    return hasattr(ctypes.CDLL(None), "renameat2")


@dataclass(frozen=True)
class _Merge:
    """A run of contiguous files of one folder and the file they become (named after their union)."""

    folder: str
    run: list[_BatchFile]

    @property
    def key(self) -> str:
        first = self.run[0]
        return SourceBatch(first.topic, first.partition, first.first, max(f.end for f in self.run), 0).key

    @property
    def name(self) -> str:
        return f"{self.key}.parquet"

    @property
    def relative(self) -> str:
        return f"{self.folder}/{self.name}"


def _merge_run(lake: Lake, schema: pa.Schema, run: list[_BatchFile]) -> pa.Table:
    combined = pa.concat_tables([pq.read_table(lake.path(f.relative), schema=schema) for f in run])
    return combined.sort_by("kafka_offset") if "kafka_offset" in schema.names else combined


def _compact_by_exchange(lake: Lake, schema: pa.Schema, folder: str, merges: list[_Merge]) -> None:
    """Build the folder's next content beside it and swap it in at once (see :func:`compact`)."""
    staging = lake.path(STAGING, f"swap+{folder.replace('/', '+')}+{uuid.uuid4().hex[:12]}")
    following = f"{staging}/next"
    lake.fs.create_dir(following, recursive=True)
    replaced: set[str] = set()
    for merge in merges:
        lake.write_table(f"{following}/{merge.name}", _merge_run(lake, schema, merge.run))
        replaced.update(f.relative for f in merge.run)
    kept = []
    for info in lake.list(lake.path(folder)):
        relative = f"{folder}/{info.base_name}"
        if info.type == pafs.FileType.File and relative not in replaced:
            os.link(info.path, f"{following}/{info.base_name}")  # unmerged files and _SUCCESS stay
            kept.append(relative)
    lake._fsync(following)
    files = [{"file": merge.relative} for merge in merges]
    manifest = {"swap": folder, "files": files, "keep": kept, "remove": sorted(replaced)}
    _commit_manifest(lake, staging, manifest)
    _finish_exchange(lake, staging, manifest)


def _finish_exchange(lake: Lake, staging: str, manifest: dict[str, Any]) -> None:
    """Swap the staged folder in (unless done), rescue files written meanwhile, drop the old folder."""
    live = lake.path(manifest["swap"])
    following = f"{staging}/next"
    swapped = all(lake.exists(lake.path(entry["file"])) for entry in manifest["files"])
    if not swapped:
        _exchange(following, live)
        lake._fsync(live.rsplit("/", 1)[0])
    merged = [entry["file"] for entry in manifest["files"]]
    known = {relative.rsplit("/", 1)[1] for relative in [*manifest["keep"], *manifest["remove"], *merged]}
    if lake.exists(following):
        for info in lake.list(following):
            # A batch committed into the folder between the snapshot and the swap landed in the
            # old folder: move it into the live one before the old one goes.
            rescue = info.type == pafs.FileType.File and info.base_name not in known
            if rescue and not lake.exists(f"{live}/{info.base_name}"):
                lake.move(info.path, f"{live}/{info.base_name}")
    lake.fs.delete_dir(staging)


def compact(lake: Lake) -> list[tuple[str, int]]:
    """Merge each partition folder's small files, atomically, idempotently, safely for readers.

    Files of one Kafka partition whose ranges are contiguous (counting what other tables cover in
    between) become one file named after the union of their ranges, so the lake's coverage, and
    with it the resume point and the accounting, are unchanged.

    On a local lake each folder changes in one step: its next content (the merged files, plus
    hard links to the files that stay) is built in ``_staging/``, committed by a manifest, then
    swapped with the live folder by one ``renameat2(RENAME_EXCHANGE)``. A reader lists either
    the old files or the new ones, never both and never neither; a query that listed the old
    files and opens one after the swap gets a "file not found" error (never wrong rows) and can
    be run again. A batch committed into the folder while it is being compacted is moved into the
    new folder right after the swap. Elsewhere (object stores) each merge is committed like a
    batch (staged, manifest, rename, deletes), and a query at that moment may see the rows twice.
    :func:`recover` finishes either kind of merge interrupted after its manifest; recovery and
    compaction take turns on a lock, and compaction leaves the running pipeline's staged batches
    alone. Returns ``(merged file, files replaced)`` for every merge.
    """
    with _maintenance_lock(lake):
        _recover(lake, only_merges=True)
        return _compact(lake)


def _compact(lake: Lake) -> list[tuple[str, int]]:
    covered = {key: merge_ranges(ranges) for key, ranges in covered_ranges(lake).items()}
    exchange = _can_exchange(lake)
    merged: list[tuple[str, int]] = []
    for table, schema in arrow.STORED_TABLES.items():
        for folder, files in _batch_files(lake, table).items():
            by_partition: dict[tuple[str, int], list[_BatchFile]] = defaultdict(list)
            for file in files:
                by_partition[(file.topic, file.partition)].append(file)
            merges = [
                _Merge(folder, run)
                for (topic, partition), group in by_partition.items()
                for run in _runs(group, covered.get((topic, partition), []))
                if len(run) >= 2
            ]
            merged.extend((merge.relative, len(merge.run)) for merge in merges)
            if not merges:
                continue
            if exchange:
                _compact_by_exchange(lake, schema, folder, merges)
                continue
            for merge in merges:
                combined = _merge_run(lake, schema, merge.run)
                staging = lake.path(STAGING, f"compact+{table}+{folder.replace('/', '+')}+{merge.key}")
                lake.fs.create_dir(f"{staging}/{folder}", recursive=True)
                lake.write_table(f"{staging}/{merge.relative}", combined)
                manifest = {
                    "files": [{"file": merge.relative, "rows": combined.num_rows}],
                    "remove": [f.relative for f in merge.run],
                }
                _commit_manifest(lake, staging, manifest)
                _roll_forward(lake, staging, manifest)
    return merged


ORIGINS = "_origins"


def read_origins(lake: Lake) -> dict[tuple[str, int], int]:
    """The offset at which this lake began each topic-partition (see :func:`record_origins`)."""
    origins: dict[tuple[str, int], int] = {}
    if not lake.exists(lake.path(ORIGINS)):
        return origins
    for info in lake.list(lake.path(ORIGINS)):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            with lake.fs.open_input_stream(info.path) as stream:
                record = json.loads(stream.read())
            origins[(record["topic"], int(record["partition"]))] = int(record["origin"])
    return origins


def record_origins(lake: Lake, origins: dict[tuple[str, int], int]) -> None:
    """Write ``_origins/<topic>+<partition>.json`` for partitions that have none yet, each atomically.

    The launcher records a partition's first planned offset before the pipeline first reads it,
    so a later run can tell offsets the lake never meant to read (before the origin) from a gap
    left by batches that committed out of order (after it). An existing origin is never changed.
    """
    if origins:
        lake.fs.create_dir(lake.path(ORIGINS), recursive=True)
    for (topic, partition), origin in sorted(origins.items()):
        target = lake.path(ORIGINS, f"{topic}+{partition}.json")
        if lake.exists(target):
            continue
        record = {"topic": topic, "partition": partition, "origin": origin, "recorded_at": utc_now().isoformat()}
        temporary = f"{target}.{uuid.uuid4().hex}.tmp"
        lake.write_bytes(temporary, json.dumps(record).encode())
        lake.fs.move(temporary, target)


def covered_ranges(lake: Lake) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Offset ranges ``[first, end)`` per topic-partition that the lake accounts for."""
    covered: dict[tuple[str, int], set[tuple[int, int]]] = defaultdict(set)
    for table in arrow.ACCOUNTING_TABLES:
        for info in lake.list(lake.path(table), recursive=True):
            match = _BATCH_FILE.match(info.base_name)
            if match and info.type == pafs.FileType.File:
                key = (match["topic"], int(match["partition"]))
                covered[key].add((int(match["first"]), int(match["end"])))
    return {key: sorted(ranges) for key, ranges in covered.items()}


class LakeUnwritableError(UserError, RuntimeError):
    """The lake refused a write for longer than the configured retry time (a failed run: exit 1)."""

    exit_code = FAILED


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


def lake_files(lake: Lake) -> frozenset[str]:
    """Every committed data file of the lake (tables and record log), as paths relative to its root."""
    prefix = lake.root.rstrip("/") + "/"
    return frozenset(
        info.path[len(prefix) :]
        for table in arrow.STORED_TABLES
        for info in lake.list(lake.path(table), recursive=True)
        if info.path.endswith(".parquet")
    )
