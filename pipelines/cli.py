"""The ``wirestream`` command: run, produce, query, validate, compact, report.

``wirestream --help`` lists the commands with the first line of each one's docstring;
``wirestream COMMAND --help`` lists every option of a command with its default.

A known failure anywhere below raises :class:`~transforms.errors.UserError`; :func:`main` alone
catches it, prints ``wirestream COMMAND: MESSAGE`` on stderr and returns its exit code (2, or 1
for a run that failed), with the traceback only under ``--debug`` or ``WIRESTREAM_LOG_LEVEL=DEBUG``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import expand_config
from pipelines.lake_check import require_lake
from pipelines.logs import configure as configure_logging
from transforms.errors import UserError

if TYPE_CHECKING:
    from pipelines.lifecycle import StopSignals

# Modules that import Apache Beam (pipelines.options, pipelines.ingest, ...) are imported inside
# the commands that need them: query, validate, report, compact and --help never load Beam.


def _bootstrap_default() -> str:
    from pipelines.options import DEFAULT_BOOTSTRAP_SERVERS

    return os.environ.get("WIRESTREAM_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP_SERVERS)


class _HelpFormatter(argparse.HelpFormatter):
    """Adds each option's default to its help unless the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text or "required" in text:
            return text
        if action.nargs == 0:
            default = "on" if action.default else "off"
        elif action.default is None or action.default == "":
            default = "none"
        else:
            default = str(action.default)
        return f"{text} (default: {default})".strip()


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=_HelpFormatter, allow_abbrev=False
    )


def _add_config_arg(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file of settings ([kafka], [{command}]{', [run.beam]' if command == 'run' else ''}; see "
        "infra/wirestream.example.toml); flags on the command line override it (default: none)",
    )


def run_parser() -> argparse.ArgumentParser:
    """The options of ``wirestream run`` (Beam's own options are not listed but pass through)."""
    from pipelines.options import IngestOptions

    parser = _parser(
        "wirestream run",
        "Run the ingest pipeline: Kafka -> parse -> clean -> quality -> deduplicate -> entities -> lake. "
        "Every Apache Beam pipeline option (--runner, --flink_master, ...) passes through.",
    )
    _add_config_arg(parser, "run")
    IngestOptions._add_argparse_args(parser)
    return parser


def produce_parser() -> argparse.ArgumentParser:
    """The options of ``wirestream produce``."""
    from pipelines.options import DEFAULT_BOOTSTRAP_SERVERS, DEFAULT_TOPIC, add_kafka_security_args

    parser = _parser("wirestream produce", "Load a JSON-lines file into Kafka, one record per non-empty line.")
    parser.add_argument("file", type=Path, help="JSON lines; each non-empty line becomes one record, byte for byte")
    _add_config_arg(parser, "produce")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="topic to write to")
    parser.add_argument("--partitions", type=int, default=3, help="partitions if the topic is created")
    parser.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help=f"Kafka bootstrap servers host:port[,...] (default {DEFAULT_BOOTSTRAP_SERVERS}, "
        "or $WIRESTREAM_BOOTSTRAP_SERVERS)",
    )

    def add(name: str, **kwargs: Any) -> None:
        parser.add_argument(
            *dict.fromkeys([f"--{name}", f"--{name.replace('-', '_')}"]), dest=name.replace("-", "_"), **kwargs
        )

    add_kafka_security_args(add)
    return parser


def _config_parsers() -> dict[str, argparse.ArgumentParser]:
    return {"run": run_parser(), "produce": produce_parser()}


def _run(argv: Sequence[str]) -> int:
    """Run the pipeline: stream until stopped, or with --until-caught-up stop and print a summary.

    SIGINT and SIGTERM are requests from the first moment (before Beam is even imported, which
    takes seconds): one that arrives while the run starts asks it to drain as soon as it reads,
    instead of killing it half-started; the summary is printed with them still handled.
    """
    from pipelines.lifecycle import StopSignals

    signals = StopSignals().install()
    try:
        return _run_with(argv, signals)
    finally:
        signals.restore()


def _run_with(argv: Sequence[str], signals: StopSignals) -> int:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.ingest import run
    from pipelines.options import (
        IngestOptions,
        out_of_range,
        refuse_secret_options,
        unknown_options,
        with_local_defaults,
    )
    from pipelines.summary import run_summary

    if any(arg in ("-h", "--help") for arg in argv):
        run_parser().print_help()
        return 0
    args = with_local_defaults(expand_config(argv, "run", _config_parsers()))
    refuse_secret_options(args)  # before the unknown-option check: its message says what to use instead
    unknown = unknown_options(args)
    if unknown:
        raise UserError(f"{'; '.join(unknown)}; see wirestream run --help")
    ingest = PipelineOptions(args).view_as(IngestOptions)
    bad = out_of_range(ingest)
    if bad:
        raise UserError("; ".join(bad))
    lake = ingest.lake
    result = run(args, signals)
    if result.aborted:
        print("wirestream run: aborted by a second interrupt; batches in flight are read again by the next run")
        return 130
    if result.stopped_by:
        print(
            f"wirestream run: stopped by {result.stopped_by}: the sources stopped reading, what they read is committed"
        )
    if not result.finished:
        print(f"wirestream run: submitted to {result.runner} ({result.state}); a streaming job is not waited for")
        return 0
    if lake:
        print(run_summary(lake, result.runner, result.state, result.files_before))
    if result.lagging:
        missing = ", ".join(f"{topic}-{partition} from offset {offset}" for topic, partition, offset in result.lagging)
        print(f"NOT CAUGHT UP: the lake lacks {missing}; run again to finish (nothing is lost)", file=sys.stderr)
        return 3
    return 0


def _produce(argv: Sequence[str]) -> int:
    """Load a JSON-lines file into Kafka (demo, tests, backfill)."""
    from pipelines.options import kafka_security, refuse_secret_options
    from pipelines.produce import produce_file

    refuse_secret_options(argv)  # as run does: a password never on the command line, nor an "ambiguous option"
    args = produce_parser().parse_args(expand_config(argv, "produce", _config_parsers()))
    security = kafka_security(args)
    placed = produce_file(args.file, args.bootstrap_servers, args.topic, args.partitions, security)
    per_partition: dict[int, int] = {}
    for partition, _ in placed:
        per_partition[partition] = per_partition.get(partition, 0) + 1
    spread = ", ".join(f"p{p}: {n}" for p, n in sorted(per_partition.items()))
    print(f"produced {len(placed)} records to {args.topic} ({spread})")
    return 0


def _query(argv: Sequence[str]) -> int:
    """Query the lake with SQL (DuckDB; a view per table)."""
    from pipelines.query import FORMATS, query, render

    parser = _parser(
        "wirestream query",
        "Query the lake with DuckDB. Views: articles, entities, duplicates, quarantine, dead_letters; "
        "Hive partitions appear as dt and hour columns.",
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("sql", help="one SQL statement")
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="table",
        help="table (for a terminal), csv (header row first) or json (JSON Lines: one object per row); "
        "csv and json write timestamps as ISO 8601, lists and structs as JSON, BLOBs as base64 "
        "(default: table)",
    )
    args = parser.parse_args(argv)
    require_lake(args.lake)
    columns, rows = query(args.lake, args.sql)
    sys.stdout.write(render(columns, rows, args.format))
    return 0


def _validate(argv: Sequence[str]) -> int:
    """Re-run the expectation suite over articles partitions of the lake."""
    from pipelines.validate import validate_lake

    parser = _parser(
        prog="wirestream validate",
        description="Re-run the expectation suite over articles partitions of the lake. Exit code: 0 when every "
        "partition meets every expectation, 1 when one fails, 2 when no partition matches.",
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("--dt", nargs="*", default=[], help="only these days (YYYY-MM-DD); default: every day")
    parser.add_argument("--suite", default=None, help="expectation suite JSON (default: the versioned one)")
    args = parser.parse_args(argv)
    require_lake(args.lake)
    lines, code = validate_lake(args.lake, args.dt, args.suite)
    print("\n".join(lines))
    return code


def _compact(argv: Sequence[str]) -> int:
    """Merge each lake partition's small files into one, atomically and idempotently."""
    from transforms.io.lake import compact

    parser = _parser(
        prog="wirestream compact",
        description="Merge each lake partition's small "
        "files into one, atomically; safe to run again, and beside a running pipeline.",
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument(
        "--retain",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Iceberg lake only: keep the snapshots that were current this recently (readers may still "
        "be on them); older ones are expired and the files only they read deleted, among them the "
        "files an earlier compaction replaced (default: 300)",
    )
    args = parser.parse_args(argv)
    merged = compact(require_lake(args.lake), args.retain)
    for relative, count in merged:
        print(f"merged {count} files into {relative}")
    print(f"compacted {len(merged)} file groups ({sum(count for _, count in merged)} files)")
    return 0


def _report(argv: Sequence[str]) -> int:
    """Write one self-contained HTML report with charts about the lake."""
    from pipelines.report import write_report

    parser = _parser(
        prog="wirestream report",
        description="Write one self-contained HTML page of charts about the lake (articles per hour, top "
        "entities, duplicates, quarantine and dead-letter reasons, languages, quality over time).",
    )
    parser.add_argument("lake")
    parser.add_argument("--out", default=None, help="the HTML file to write (default: LAKE/_report/index.html)")
    args = parser.parse_args(argv)
    require_lake(args.lake)
    path = write_report(args.lake, args.out)
    print(f"report: {path}")
    return 0


COMMANDS = {
    "run": _run,
    "produce": _produce,
    "query": _query,
    "validate": _validate,
    "compact": _compact,
    "report": _report,
}


def usage() -> str:
    """The top-level help: every command with the first line of its docstring."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: wirestream COMMAND [options]   (wirestream COMMAND --help lists a command's options)", ""]
    lines.append("commands:")
    for name, command in COMMANDS.items():
        summary = (command.__doc__ or "").strip().splitlines()[0] if command.__doc__ else ""
        lines.append(f"  {name:<{width}}  {summary}")
    lines += [
        "",
        "--debug (anywhere): show the traceback behind an error message",
        "environment: WIRESTREAM_BOOTSTRAP_SERVERS, WIRESTREAM_LOG_LEVEL (default WARNING), see docs/options.md",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wirestream`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        level = configure_logging(os.environ.get("WIRESTREAM_LOG_LEVEL"))
    except ValueError as error:
        print(f"wirestream: {error}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"wirestream: unknown command {argv[0]!r}", file=sys.stderr)
        print(usage())
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except UserError as error:
        if debug or level <= logging.DEBUG:
            traceback.print_exc()
        print(f"wirestream {argv[0]}: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
