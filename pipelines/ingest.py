"""The ingest pipeline: Kafka → parse → clean → quality → deduplicate → entities → lake.

Run it with ``wirestream run --lake DIR [--until-caught-up] [Beam options]``. ``build()`` only
wires the stages; ``run()`` hands ``build`` to the launcher (:func:`pipelines.launcher.launch`),
which checks everything first, takes the lake's lease, recovers the lake, plans the partitions
from what the lake already holds, finds the partitions whose articles seed deduplication (those
within its TTL), runs the pipeline and reports what this run wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

import apache_beam as beam

from pipelines.launcher import RunResult, launch
from pipelines.launcher import check_models as check_models  # re-exported: launcher helpers moved there
from pipelines.launcher import new_origins as new_origins
from pipelines.launcher import seed_folders as seed_folders
from pipelines.lifecycle import StopSignals
from pipelines.options import IngestOptions, consumer_config, dedup_config, entity_models
from pipelines.options import ModelUnavailableError as ModelUnavailableError
from pipelines.runners import prism_settings as prism_settings
from pipelines.runners import separate_worker_processes as separate_worker_processes
from schemas.records import utc_now
from transforms.clean import CleanArticle
from transforms.dedup import Deduplicate
from transforms.entities import EntityConfig, ExtractEntities
from transforms.io.kafka import OffsetCommitter, PartitionPlan
from transforms.io.kafka.source import ReadArticles
from transforms.io.lake.iceberg.sink import CatalogConfig, WriteIcebergLake
from transforms.io.lake.seeds import LakeSeeds
from transforms.io.lake.sink import MarkComplete, OpenCommitter, WriteLake
from transforms.io.quality_store import LakeQualityStore
from transforms.parse import ParseArticle, ParseConfig
from transforms.quality import QualityConfig, ValidateBatch, load_suite

__all__ = ["RunResult", "build", "consumer_config", "dedup_config", "quality_config", "run"]


def quality_config(options: IngestOptions) -> QualityConfig:
    """The expectation suite and where its results go; the run is named after its start if unnamed."""
    return QualityConfig(
        lake_uri=options.lake,
        suite=load_suite(options.quality_suite or None),
        policy=options.quality_policy,
        run_name=options.quality_run_name or f"run-{utc_now():%Y%m%dT%H%M%SZ}",
    )


def build(
    pipeline: beam.Pipeline,
    options: IngestOptions,
    plans: Sequence[PartitionPlan],
    seeds_from: Sequence[str] = (),
    now: dt.datetime | None = None,
    stop_uri: str | None = None,
) -> beam.PCollection:
    """Wire the stages; returns the PCollection of committed-batch reports.

    ``seeds_from``: lake folders of ``articles`` whose articles deduplication must remember;
    ``stop_uri``: the file whose appearance stops the sources (the launcher's drain).
    """
    consumer = consumer_config(options)
    dedup = dedup_config(options)
    seeds = None
    if seeds_from:
        now_us = int((now or utc_now()).timestamp() * 1_000_000)
        seeds = pipeline | "LakeSeeds" >> LakeSeeds(options.lake, seeds_from, dedup, now_us)
    reports = (
        pipeline
        | "ReadArticles" >> ReadArticles(plans, consumer, stop_uri)
        | "ParseArticles" >> ParseArticle(ParseConfig(options.max_record_bytes))
        | "CleanArticles" >> CleanArticle()
        | "ValidateBatch" >> ValidateBatch(quality_config(options), LakeQualityStore(options.lake))
        | "Deduplicate" >> Deduplicate(dedup, seeds)
        | "ExtractEntities"
        >> ExtractEntities(
            EntityConfig(
                models=entity_models(options),
                batch_size=options.ner_batch_size,
                use_gpu=options.use_gpu,
                workers=options.ner_workers,
            )
        )
        | "WriteLake" >> _lake_sink(options, partial(OffsetCommitter, consumer))
    )
    if options.partition_by == "ingestion_time" and options.table_format != "iceberg":
        _ = reports | "MarkCompletePartitions" >> MarkComplete(options.lake)
    return reports


def _lake_sink(options: IngestOptions, open_committer: OpenCommitter) -> beam.PTransform:
    """The Hive lake's sink, or the Iceberg lake's (its writers and one committer) for ``--table-format iceberg``."""
    if options.table_format == "iceberg":
        catalog = CatalogConfig(options.lake, options.iceberg_catalog_uri or None)
        return WriteIcebergLake(catalog, open_committer, options.lake_retry_seconds)
    return WriteLake(options.lake, open_committer, options.partition_by, options.lake_retry_seconds)


def run(argv: Sequence[str], signals: StopSignals | None = None) -> RunResult:
    """Run the ingest pipeline with ``argv`` (see :func:`pipelines.launcher.launch`; ``signals`` drain or abort it)."""
    return launch(argv, build, signals)
