"""The launcher of ``wirestream run``: check, take the lake, plan, start the job, wait, settle.

:func:`launch` does, in this order, and stops at the first refusal before anything is created:

1. **Pre-flight** (nothing touched yet): ``--lake`` given, the spaCy models here
   (:func:`check_models`), the quality suite, the metrics port, the lake's location, Kafka and
   its topics.
2. **Lease**: creates the lake if missing and takes its lease (:func:`take_lease`); one run per lake.
3. **Plan**: recovers the lake, plans every partition from what the lake holds
   (:func:`~transforms.io.kafka.plan.plan_partitions`), records the origins of new partitions
   (:func:`new_origins`), finds the folders whose articles seed deduplication (:func:`seed_folders`).
4. **Start**: applies the runner's settings (:mod:`pipelines.runners`), lets ``build`` wire the
   job (:func:`pipelines.ingest.build`), starts the progress display (:func:`progress_monitor`).
5. **Wait** for the job (:func:`pipelines.runners.wait_for_job`); a signal drains it.
6. **Settle**: commits the group to the lake's reach (:func:`commit_lake_progress`), writes the
   quality index, marks complete hours, names lagging partitions (:func:`lagging_partitions`).

The job itself is :func:`pipelines.ingest.build`, handed in (``build``) so that ``ingest``, whose
``run`` calls :func:`launch`, and this module do not import each other.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.lake_check import catalog_uri_for, create_lake, lake_for_run, table_format_for
from pipelines.lifecycle import LakeLease, StopSignals, request_stop, stop_path
from pipelines.options import (
    IngestOptions,
    ModelUnavailableError,
    consumer_config,
    entity_models,
    refuse_secret_options,
)
from pipelines.progress import LOG_INTERVAL_S, TERMINAL_INTERVAL_S, ProgressMonitor, resolve_mode
from pipelines.runners import (
    LOCAL_RUNNERS,
    check_runner_used,
    detached,
    prism_settings,
    requested_runner,
    runner_used,
    separate_worker_processes,
    wait_for_job,
)
from schemas import arrow
from schemas.records import utc_now
from transforms.entities import EntityConfig, unavailable_models
from transforms.errors import REFUSED, UserError
from transforms.io.kafka import (
    ConsumerConfig,
    OffsetCommitter,
    PartitionPlan,
    check_reachable,
    gapless_reach,
    merge_ranges,
    plan_partitions,
)
from transforms.io.lake import (
    Lake,
    LakeUnwritableError,
    covered_ranges,
    lake_files,
    mark_complete,
    partition_folders,
    read_origins,
    record_origins,
    recover,
)
from transforms.io.quality_store import write_index
from transforms.quality import checked_validator, load_suite

__all__ = [
    "Build",
    "RunResult",
    "check_models",
    "commit_lake_progress",
    "lagging_partitions",
    "launch",
    "new_origins",
    "progress_monitor",
    "seed_folders",
    "take_lease",
]

_LOG = logging.getLogger(__name__)


class Build(Protocol):
    """Wires the job on ``pipeline`` (see :func:`pipelines.ingest.build`)."""

    def __call__(
        self,
        pipeline: beam.Pipeline,
        options: IngestOptions,
        plans: Sequence[PartitionPlan],
        seeds_from: Sequence[str] = (),
        now: dt.datetime | None = None,
        stop_uri: str | None = None,
    ) -> beam.PCollection: ...


@dataclass(frozen=True)
class RunResult:
    """What ``run()`` did: the runner that ran, the files that existed before, and lagging partitions.

    ``finished`` is false when a streaming job was submitted to a remote service (Dataflow) and
    ``run()`` returned without waiting for it, as a Flex Template launcher must.

    ``stopped_by`` names the signal that drained the run (empty if it ended by itself);
    ``aborted`` is true when a second SIGINT cancelled the job instead.

    ``lagging`` names, for ``--until-caught-up`` runs, each partition whose planned range the lake
    does not yet account for in full, with the first offset missing (empty when all is written).
    """

    runner: str
    state: str
    files_before: frozenset[str]
    lagging: tuple[tuple[str, int, int], ...] = ()
    finished: bool = True
    stopped_by: str = ""
    aborted: bool = False


def check_models(models: tuple[tuple[str, str], ...], local: bool) -> None:
    """Refuse to start (``local``) or warn (a cluster) when a configured spaCy model is not here.

    On Prism and the DirectRunner the workers run in this machine's environment, so a missing
    model would fail inside every worker after the run started. On Flink or Dataflow the workers
    may have it in their own image (a custom container) while the launcher does not: a warning.
    """
    missing = unavailable_models(EntityConfig(models=models))
    if not missing:
        return
    named = ", ".join(f"{model!r} (for {language})" for language, model in missing)
    message = f"spaCy model {named} is not installed here: install its package or give a saved pipeline's folder"
    if local:
        raise ModelUnavailableError(message)
    _LOG.warning("%s (the workers must have it)", message)


def seed_folders(lake: Lake, now: dt.datetime, ttl_seconds: float) -> list[str]:
    """The lake folders whose articles deduplication must remember: ingested within the TTL before ``now``.

    ``_records/`` folders (every article a run decided, with its ticket), and ``articles/``
    folders of hours that have none (written before the lake kept ``_records/``).
    """
    since = now - dt.timedelta(seconds=ttl_seconds)
    remembered = {folder: end for folder, end in partition_folders(lake, arrow.RECORD_LOG_TABLE) if end > since}
    hours = {folder.split("/", 1)[1] for folder in remembered}
    legacy = [
        folder
        for folder, end in partition_folders(lake, "articles")
        if end > since and folder.split("/", 1)[1] not in hours
    ]
    return sorted([*remembered, *legacy])


def lagging_partitions(
    covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]], plans: Sequence[PartitionPlan]
) -> tuple[tuple[str, int, int], ...]:
    """Bounded plans whose ``[start, stop)`` the lake's ``covered`` ranges miss: ``(topic, partition, first missing)``.

    A topic written by transactional producers has offsets that hold no record (commit markers);
    such gaps show here too, as lag that the next run clears at once.
    """
    lagging = []
    for plan in plans:
        if plan.stop_offset is None or plan.start_offset >= plan.stop_offset:
            continue
        ranges = [*covered.get((plan.topic, plan.partition), []), *plan.skip, (0, plan.start_offset)]
        reached = merge_ranges(ranges)[0][1]
        if reached < plan.stop_offset:
            lagging.append((plan.topic, plan.partition, reached))
    return tuple(lagging)


def new_origins(
    plans: Sequence[PartitionPlan],
    covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]],
    origins: Mapping[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """Origins to record for partitions that have none.

    That is the planned start of a partition the lake holds nothing of, else (a lake from before
    origins were recorded) its first covered offset.
    """
    found = {}
    for plan in plans:
        key = (plan.topic, plan.partition)
        if key not in origins:
            ranges = covered.get(key)
            found[key] = min(first for first, _ in ranges) if ranges else plan.start_offset
    return found


def commit_lake_progress(
    lake: Lake,
    consumer: ConsumerConfig,
    plans: Sequence[PartitionPlan],
    covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]],
) -> None:
    """Commit to the group, per planned partition, where the lake's gapless run from its origin ends.

    The sink commits that too, batch by batch, but each worker knows only the batches it wrote and
    lists the lake only when it sees a gap, so the last batches of a bounded run can leave the group
    behind the lake (never ahead). One listing at the end brings it level. Never moves backwards.
    """
    origins = read_origins(lake)
    committer = OffsetCommitter(consumer)
    try:
        for plan in plans:
            key = (plan.topic, plan.partition)
            reach = gapless_reach(covered.get(key, []), origins.get(key))
            if reach is not None:
                committer.commit(plan.topic, plan.partition, reach)
    finally:
        committer.close()


def progress_monitor(
    options: IngestOptions, lake: Lake, files_before: frozenset[str], plans: Sequence[PartitionPlan]
) -> ProgressMonitor | None:
    """The live progress display (and metrics server) the options ask for, started; ``None`` if neither."""
    if options.progress_interval is not None and options.progress_interval <= 0:
        raise UserError(f"--progress-interval must be more than 0 seconds, not {options.progress_interval}")
    mode = resolve_mode(options.progress, sys.stderr.isatty())
    if mode == "off" and not options.metrics_port:
        return None
    interval = options.progress_interval or (TERMINAL_INTERVAL_S if mode == "tty" else LOG_INTERVAL_S)
    metrics = None
    if options.metrics_port:
        from pipelines.metrics import MetricsExporter

        metrics = MetricsExporter(options.metrics_port).start()
        _LOG.info("serving Prometheus metrics on port %d (/metrics)", metrics.port)
    monitor = ProgressMonitor(lake, files_before, consumer_config(options), plans, mode, interval, metrics=metrics)
    return monitor.start()


def take_lease(lease: LakeLease, lake: Lake, heartbeat: bool, retry_seconds: float) -> None:
    """Take the lake's lease; while the lake refuses the write, retry as the sink does, then fail.

    Raises :class:`~pipelines.lifecycle.LakeBusyError` at once when another run holds the lake,
    and :class:`~transforms.io.lake.LakeUnwritableError` after ``retry_seconds`` of refused writes.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.5
    while True:
        try:
            lease.acquire(heartbeat=heartbeat)
            return
        except OSError as error:
            if time.monotonic() + delay > deadline:
                raise LakeUnwritableError(
                    f"cannot write the lake's lease at {lease.path} after {retry_seconds:.0f} s: {error}; "
                    "make the lake folder writable (permissions, a read-only mount, free space) or give another --lake",
                    exit_code=REFUSED,  # nothing was read yet
                ) from error
            _LOG.error("cannot write the lake's lease at %s (%s); retrying in %.1f s", lease.path, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def launch(argv: Sequence[str], build: Build, signals: StopSignals | None = None) -> RunResult:
    """Check, take the lake's lease, recover the lake, plan partitions, ``build`` the job, run until done or stopped.

    ``signals``: SIGINT/SIGTERM requests (see :mod:`pipelines.lifecycle`); a drain request stops
    the sources and lets the job finish; an abort cancels it.
    """
    refuse_secret_options(argv)
    options = PipelineOptions(list(argv))
    ingest = options.view_as(IngestOptions)
    if not ingest.lake:
        raise UserError("--lake is required: the lake's folder (created if missing) or a gs:// or s3:// URI")
    requested = requested_runner(options)
    check_models(entity_models(ingest), local=requested in LOCAL_RUNNERS)
    suite = load_suite(ingest.quality_suite or None)  # a broken suite file is refused before Kafka and the lake
    if ingest.quality_suite:
        checked_validator(suite, ingest.quality_suite)  # else the stage would pass every batch unvalidated
    if ingest.metrics_port:
        from pipelines.metrics import check_port

        check_port(ingest.metrics_port)  # a port in use is refused before Kafka and the lake
    lake = lake_for_run(ingest.lake)
    ingest.iceberg_catalog_uri = catalog_uri_for(lake, ingest.iceberg_catalog_uri)
    ingest.table_format = table_format_for(lake, ingest.table_format, ingest.partition_by, ingest.iceberg_catalog_uri)
    topics = [topic.strip() for topic in ingest.topic.split(",") if topic.strip()]
    check_reachable(consumer_config(ingest), topics=topics)  # before the lake is created or touched
    create_lake(lake)
    lease = LakeLease(lake.fs, lake.root)
    take_lease(
        lease, lake, heartbeat=not detached(requested, ingest.until_caught_up), retry_seconds=ingest.lake_retry_seconds
    )
    try:
        result = _run_holding_lease(options, build, lake, lease, signals)
    except BaseException:
        lease.release()
        raise
    if result.finished:
        lease.release()
    else:
        _LOG.warning(
            "the lake's lease stays with the streaming job %s: remove %s once it is drained", lease.run_id, lease.path
        )
    return result


def create_tables(lake: Lake, catalog_uri: str = "") -> None:
    """Create the Iceberg lake's catalog and tables unless they exist (imports pyiceberg, 3–4 s).

    A REST ``catalog_uri`` is recorded in the lake first, so every reader opens the same catalog.
    """
    from transforms.io.lake.iceberg.catalog import ensure_tables, open_catalog
    from transforms.io.lake.iceberg.read import catalog_for

    if catalog_uri:
        open_catalog(lake, catalog_uri)
    ensure_tables(catalog_for(lake), lake)


def _run_holding_lease(
    options: PipelineOptions, build: Build, lake: Lake, lease: LakeLease, signals: StopSignals | None
) -> RunResult:
    ingest = options.view_as(IngestOptions)
    if ingest.table_format == "iceberg":
        create_tables(lake, ingest.iceberg_catalog_uri)
    recover(lake)
    if ingest.partition_by == "ingestion_time":
        mark_complete(lake, utc_now())
    files_before = lake_files(lake)
    topics = [topic.strip() for topic in ingest.topic.split(",") if topic.strip()]
    covered = covered_ranges(lake)
    origins = read_origins(lake)
    plans = plan_partitions(consumer_config(ingest), topics, covered, ingest.until_caught_up, origins)
    try:
        record_origins(lake, new_origins(plans, covered, origins))
    except OSError as error:  # a lake refusing writes: the sink retries its batches, then fails loudly
        _LOG.warning("cannot record where the lake begins each partition (%s); the next run will", error)
    for plan in plans:
        _LOG.info(
            "plan %s-%d: from %d to %s, skipping %d ranges",
            plan.topic,
            plan.partition,
            plan.start_offset,
            plan.stop_offset if plan.stop_offset is not None else "∞",
            len(plan.skip),
        )
    if not ingest.until_caught_up:
        options.view_as(StandardOptions).streaming = True
    if ingest.ner_workers > 1:
        separate_worker_processes(options)
    prism_settings(options)
    now = utc_now()
    seeds_from = seed_folders(lake, now, ingest.dedup_ttl_hours * 3600.0)
    _LOG.info("deduplication remembers the articles of %d lake partitions", len(seeds_from))
    pipeline = beam.Pipeline(options=options)
    build(
        pipeline,
        ingest,
        plans,
        seeds_from,
        now,
        stop_uri=stop_path(lake.uri if "://" in lake.uri else lake.root, lease.run_id),
    )
    monitor = progress_monitor(ingest, lake, files_before, plans)
    covered_at_end: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def drain() -> None:
        _LOG.warning(
            "%s: stopping the sources; finishing and committing what is in flight", signals and signals.signal_name
        )
        request_stop(lake.fs, lake.root, lease.run_id)

    try:
        result = pipeline.run()
        runner = runner_used(result)
        check_runner_used(requested_runner(options), runner)
        if detached(requested_runner(options), ingest.until_caught_up):
            # A streaming Dataflow job runs on the service until drained; the launcher's work is done.
            return RunResult(runner=runner, state=str(result.state), files_before=files_before, finished=False)
        state = wait_for_job(result, signals, on_drain=drain)
        if state == "CANCELLED" and signals is not None and signals.abort.is_set():
            return RunResult(runner=runner, state=state, files_before=files_before, aborted=True)
        covered_at_end = covered_ranges(lake)  # the job is done: one listing for the commit and the lag check
        commit_lake_progress(lake, consumer_config(ingest), plans, covered_at_end)
    finally:
        if monitor is not None:
            monitor.stop()  # shows the final counts, before the summary
    try:
        write_index(lake)  # the stage rebuilds it now and then; this makes it complete
    except OSError:
        _LOG.exception("cannot write the quality Data Docs index")
    lagging = lagging_partitions(covered_at_end, plans) if ingest.until_caught_up else ()
    if not lagging and ingest.partition_by == "ingestion_time":
        mark_complete(lake, utc_now())  # no run holds the lake now: every hour that has ended is complete
    for topic, partition, first_missing in lagging:
        _LOG.error(
            "%s-%d: offsets from %d on were read but are not in the lake; the next run reads them again",
            topic,
            partition,
            first_missing,
        )
    stopped_by = signals.signal_name if signals is not None and signals.drain.is_set() else ""
    return RunResult(runner=runner, state=str(state), files_before=files_before, lagging=lagging, stopped_by=stopped_by)
