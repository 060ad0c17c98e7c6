"""The expectation suite over a batch's articles: verdicts, quarantine, reports and Data Docs (no Beam).

The suite (``schemas/expectations/articles.json``, Great Expectations 1.x) runs once per Kafka
batch over one pandas DataFrame of the batch's articles, never row by row. Each expectation's
``meta`` gives it a ``name`` (what ``quarantine.failed_expectations`` holds) and a ``level``:

* ``row``: rows it names through ``unexpected_index_list`` (by the derived ``row`` column, the
  article's position in the batch, since ids could repeat) become :class:`Quarantined` with the
  names of every row-level expectation they broke;
* ``batch``: reported in the batch's results; with ``policy="fail"`` every article of a batch that
  breaks one goes to ``quarantine`` too (its own row failures plus the batch expectations' names),
  so nothing from a failed batch lands in ``articles``. ``warn`` (the default) only reports.
* ``monitor``: reported only (``failed_monitors``), never quarantining, whatever the policy: a
  property of the feed rather than a fault of its rows (the language mix, the share of copies).

The stage (``transforms.quality.ValidateBatch``) runs *before* deduplication (see
``pipelines/ingest.py``): an article is quarantined before it can become another's original, so
every ``duplicates.duplicate_of`` names an article that reached ``articles``. It therefore sees a
batch's copies too, and no entities yet (the entity checks are the NER stage's own, and
``wirestream validate`` runs them on the lake). Each report also counts the batch's articles by
language (``languages``), the language mix the report charts.

Never a crash, never a lost record: each record keeps exactly one outcome. If validation itself
raises (a bug, a broken suite), the error is logged and counted (``batches_not_validated``); with
``warn`` the batch passes through unvalidated, with ``fail`` its articles are quarantined with
``validation_error``.

Results: each validated batch (one holding at least one article) writes
``LAKE/_quality/results/<batch key>.json`` (the full report, GX's result included),
``LAKE/_quality/summaries/<batch key>.json`` (what the index reads) and
``LAKE/_quality/docs/batches/<batch key>.html`` (temporary name, then rename; the same names on a
replay, so a replay overwrites rather than adds). A report that cannot be written is logged and
counted (``reports_not_written``); the batch's data still flows. They are written *before* the batch's data is
committed by ``WriteLake``: after a crash in between, the report exists for a batch that is not in
the lake until the replay rewrites it (see :func:`report_states`, which the index uses to tell
committed, uncommitted and superseded reports apart). ``LAKE/_quality/docs/index.html`` lists the
reports by run; the stage rebuilds it at most every ``index_interval_seconds`` per worker and the
launcher (``pipelines/ingest.py``) rebuilds it when the run ends.

No Beam here: ``wirestream validate`` (and every other read-side command) imports this module;
the Beam stage around it, ``ValidateBatch``, is :mod:`transforms.quality`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemas
from schemas.records import Article, Outcome, OutcomeBatch, Quarantined, SourceBatch
from transforms.errors import UserError
from transforms.io.lake import Lake, article_row, covered_ranges
from transforms.io.offsets import merge_ranges

__all__ = [
    "POLICIES",
    "QualityConfig",
    "SuiteValidator",
    "checked_validator",
    "apply_verdict",
    "articles_frame",
    "batch_failures",
    "load_suite",
    "records_frame",
    "render_batch_page",
    "render_index",
    "report_states",
    "row_failures",
    "suite_version",
    "summarise",
    "validate_articles",
    "write_index",
    "write_report",
]

STAGE = "quality"
POLICIES = ("warn", "fail")
SUITE_PATH = Path(schemas.__file__).resolve().parent / "expectations" / "articles.json"
QUALITY = "_quality"
VALIDATION_ERROR = "validation_error"
UNDETERMINED = "und"
LEVELS = ("row", "batch", "monitor")
INDEX_COLUMNS = ["row", "article_id"]
_LOG = logging.getLogger(__name__)


def load_suite(path: str | Path | None = None) -> dict[str, Any]:
    """The expectation suite as a plain (picklable) dict, from the versioned JSON file.

    A file that cannot be read, is not JSON, or lacks what the pipeline relies on (``name``, a list
    of ``expectations`` each with a unique ``meta.name`` and a ``meta.level``) is a ``UserError``
    naming the file and the problem.
    """
    source = Path(path or SUITE_PATH)
    try:
        suite = json.loads(source.read_text("utf-8"))
    except OSError as error:
        raise UserError(f"cannot read the expectation suite {source}: {error.strerror or error}") from error
    except ValueError as error:  # json.JSONDecodeError names the line and column; UnicodeDecodeError the byte
        raise UserError(f"the expectation suite {source} is not JSON: {error}") from error
    if not isinstance(suite, dict) or not isinstance(suite.get("name"), str):
        raise UserError(f'the expectation suite {source} needs an object with a "name" (see {SUITE_PATH})')
    if not isinstance(suite.get("expectations"), list):
        raise UserError(f'the expectation suite {source} needs an "expectations" list (see {SUITE_PATH})')
    names = set()
    for number, expectation in enumerate(suite["expectations"], 1):
        meta = (expectation.get("meta") if isinstance(expectation, dict) else None) or {}
        if not meta.get("name") or meta.get("level") not in LEVELS or meta["name"] in names:
            raise UserError(
                f"the expectation suite {source}: expectation {number} needs a unique meta.name and "
                f"meta.level {'|'.join(LEVELS)}: {json.dumps(expectation)[:200]}"
            )
        names.add(meta["name"])
    return dict(suite)


def checked_validator(suite: Mapping[str, Any], source: str | Path | None = None) -> SuiteValidator:
    """A :class:`SuiteValidator` holding every expectation of ``suite``, or a ``UserError`` naming ``source``.

    GX drops an expectation it does not accept (an unknown type, wrong arguments) with an ERROR
    log line and builds the suite without it, so a mistyped expectation would silently never be
    checked. Its log lines are held back here (unless the level is DEBUG) and the first becomes
    the message. Building one imports Great Expectations (seconds).
    """
    said: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    gx_log = logging.getLogger("great_expectations")
    keep, propagate = _Keep(logging.ERROR), gx_log.propagate
    gx_log.addHandler(keep)
    gx_log.propagate = logging.getLogger().isEnabledFor(logging.DEBUG)
    where = f"the expectation suite {source or SUITE_PATH}"
    try:
        validator = SuiteValidator(suite)
    except Exception as error:  # noqa: BLE001 - GX's errors for a bad suite have no common base
        raise UserError(f"Great Expectations refuses {where}: {error}") from error
    finally:
        gx_log.removeHandler(keep)
        gx_log.propagate = propagate
    kept = {(expectation.meta or {}).get("name") for expectation in validator.suite.expectations}
    dropped = [e["meta"]["name"] for e in suite["expectations"] if e["meta"]["name"] not in kept]
    if dropped:
        parts = (said[0] if said else "no reason given").split(": ")
        reason = ": ".join(part for i, part in enumerate(parts) if i == 0 or part != parts[i - 1])  # GX repeats
        raise UserError(f"Great Expectations refuses expectation {dropped[0]!r} of {where}: {reason}")
    return validator


def suite_version(suite: Mapping[str, Any]) -> str:
    """``name`` v``wirestream_suite_version``, as reports show it."""
    return f"{suite['name']} v{suite.get('meta', {}).get('wirestream_suite_version', '?')}"


@dataclass(frozen=True)
class QualityConfig:
    """Where results go, what a failed batch expectation does, and which suite to run."""

    lake_uri: str
    suite: Mapping[str, Any]
    policy: str = "warn"
    run_name: str = "unnamed"
    index_interval_seconds: float = 30.0


def _bad_entity_offsets(text: str | None, entities: Iterable[Mapping[str, Any]]) -> int:
    length = len(text or "")
    offsets = [(e.get("start"), e.get("end")) for e in entities]
    return sum(1 for start, end in offsets if start is None or end is None or not 0 <= start < end <= length)


def articles_frame(articles: Sequence[Article]) -> Any:
    """The DataFrame the suite validates, for a batch's articles (see :func:`records_frame`)."""
    return records_frame([article_row(article) for article in articles])


def records_frame(records: Sequence[Mapping[str, Any]]) -> Any:
    """One pandas DataFrame row per article (``articles`` rows, as read from the lake or made by ``article_row``).

    Adds the derived columns the suite checks: ``row`` (the position in ``records``, which names
    failing rows even when ids repeat), ``text_length``, ``seconds_after_ingestion``
    (``published_at`` minus ``ingested_at``; missing without ``published_at``) and
    ``bad_entity_offsets`` (entities with ``start < 0``, ``end > len(text)`` or ``start >= end``).
    Empty strings count as missing: parse stores ``""`` for an absent URL. A missing language
    becomes ``und`` (ISO 639-2 "undetermined"), so that ``language_mix_mostly_expected`` counts it: GX's
    set expectations skip missing values.
    """
    import pandas as pd

    def text_of(record: Mapping[str, Any], name: str) -> Any:
        return record.get(name) or None

    columns: dict[str, list[Any]] = {
        "row": list(range(len(records))),
        **{
            name: [text_of(r, name) for r in records]
            for name in ("article_id", "url", "text", "title", "source", "content_hash")
        },
        "language": [r.get("language") or UNDETERMINED for r in records],
        "text_length": [len(r["text"]) if r.get("text") else None for r in records],
        "word_count": [r.get("word_count") for r in records],
        "seconds_after_ingestion": [
            (r["published_at"] - r["ingested_at"]).total_seconds() if r.get("published_at") else None for r in records
        ],
        "bad_entity_offsets": [_bad_entity_offsets(r.get("text"), r.get("entities") or ()) for r in records],
        "kafka_offset": [r.get("kafka_offset") for r in records],
    }
    frame = pd.DataFrame(columns)
    for numeric in ("text_length", "seconds_after_ingestion", "word_count"):
        frame[numeric] = frame[numeric].astype("float64")
    return frame


def _meta(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return result.get("expectation_config", {}).get("meta") or {}


def _raised(result: Mapping[str, Any]) -> bool:
    return bool((result.get("exception_info") or {}).get("raised_exception"))


def row_failures(gx_result: Mapping[str, Any], rows: int) -> dict[int, tuple[str, ...]]:
    """Row position → names of the row-level expectations it broke (suite order), failing rows only.

    A row-level expectation that raised instead of evaluating names no rows: it counts as a failed
    batch expectation (see :func:`batch_failures`).
    """
    failed: dict[int, list[str]] = {}
    for result in gx_result.get("results", []):
        meta = _meta(result)
        if meta.get("level") != "row" or result.get("success") or _raised(result):
            continue
        for entry in (result.get("result") or {}).get("unexpected_index_list") or []:
            row = int(entry["row"]) if isinstance(entry, Mapping) else int(entry)
            if 0 <= row < rows:
                names = failed.setdefault(row, [])
                if meta["name"] not in names:
                    names.append(meta["name"])
    return {row: tuple(names) for row, names in sorted(failed.items())}


def batch_failures(gx_result: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of failed batch-level expectations, and of any expectation that raised."""
    names = []
    for result in gx_result.get("results", []):
        meta = _meta(result)
        if _raised(result):
            names.append(f"{meta.get('name', '?')}:error")
        elif meta.get("level") == "batch" and not result.get("success"):
            names.append(str(meta.get("name")))
    return tuple(names)


def monitor_failures(gx_result: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of failed monitor-level expectations (reported, never quarantining)."""
    return tuple(
        str(_meta(result).get("name"))
        for result in gx_result.get("results", [])
        if _meta(result).get("level") == "monitor" and not result.get("success") and not _raised(result)
    )


def apply_verdict(
    outcomes: Sequence[Outcome],
    failed_rows: Mapping[int, tuple[str, ...]],
    failed_batch: Sequence[str],
    policy: str,
) -> tuple[Outcome, ...]:
    """The batch's outcomes with failing articles turned into :class:`Quarantined`.

    ``failed_rows`` is keyed by the article's position among the batch's articles (the frame's
    ``row``). With ``policy="fail"`` and a failed batch expectation every article is quarantined.
    One outcome per record in, the same count and order out.
    """
    quarantine_all = policy == "fail" and bool(failed_batch)
    result: list[Outcome] = []
    row = -1
    for outcome in outcomes:
        if not isinstance(outcome, Article):
            result.append(outcome)
            continue
        row += 1
        names = failed_rows.get(row, ())
        if quarantine_all:
            names = (*names, *(name for name in failed_batch if name not in names))
        result.append(Quarantined(outcome, tuple(names)) if names else outcome)
    return tuple(result)


def _observed(result: Mapping[str, Any]) -> Any:
    details = result.get("result") or {}
    if "observed_value" in details:
        return details["observed_value"]
    if "unexpected_count" in details:
        return {
            "unexpected": details.get("unexpected_count"),
            "of": details.get("element_count"),
            "missing": details.get("missing_count"),
        }
    return None


def summarise(gx_result: Mapping[str, Any], offsets: Sequence[int]) -> list[dict[str, Any]]:
    """One readable entry per expectation: name, level, type, arguments, verdict, failing rows."""
    entries = []
    for result in gx_result.get("results", []):
        config = result.get("expectation_config") or {}
        meta = config.get("meta") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        failing = []
        if not result.get("success"):
            for entry in (result.get("result") or {}).get("unexpected_index_list") or []:
                if isinstance(entry, Mapping) and "row" in entry:
                    row = int(entry["row"])
                    offset = offsets[row] if 0 <= row < len(offsets) else None
                    failing.append({"row": row, "article_id": entry.get("article_id"), "kafka_offset": offset})
        entries.append(
            {
                "name": meta.get("name"),
                "level": meta.get("level"),
                "type": config.get("type"),
                "kwargs": kwargs,
                "success": bool(result.get("success")),
                "observed": _observed(result),
                "error": (result.get("exception_info") or {}).get("exception_message") if _raised(result) else None,
                "failing_rows": failing,
            }
        )
    return entries


class SuiteValidator:
    """A Great Expectations ephemeral context holding the suite; validates DataFrames.

    Build one per thread of work (one per DoFn instance): it is neither picklable nor thread-safe.
    Validation runs in two passes, because GX's cost is mostly per expectation and per metric,
    not per row: the whole suite with the ``BOOLEAN_ONLY`` result format (verdicts only; about
    two thirds of the time ``BASIC`` takes), then only the expectations that failed, one by one:
    row-level ones with ``COMPLETE`` and ``unexpected_index_column_names`` to name every failing
    row, batch-level ones with ``BASIC`` (observed values, counts). A clean batch pays one pass.
    Results skip GX's results store (``Batch.validate``, not a validation definition).
    """

    def __init__(self, suite: Mapping[str, Any]) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            analytics_enabled=False,
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        asset = self.context.data_sources.add_pandas("wirestream").add_dataframe_asset("articles")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("batch")
        expectations = [{k: v for k, v in e.items() if k in ("type", "kwargs", "meta")} for e in suite["expectations"]]
        self.suite = self.context.suites.add(
            gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=dict(suite.get("meta") or {}))
        )

    def validate(self, frame: Any) -> dict[str, Any]:
        """The validation result for ``frame`` as a JSON-ready dict shaped like GX's own."""
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
        verdicts = batch.validate(self.suite, result_format="BOOLEAN_ONLY")
        by_name = {(e.meta or {}).get("name"): e for e in self.suite.expectations}
        order = list(by_name)
        results = []
        for result in verdicts.results:  # GX groups results by column: put them back in suite order
            plain = _plain_result(result)
            if not plain["success"] and not _raised(plain):
                row_level = _meta(plain).get("level") == "row"
                detailed = batch.validate(
                    by_name[_meta(plain)["name"]],
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": INDEX_COLUMNS}
                    if row_level
                    else "BASIC",
                )
                plain = _plain_result(detailed)
            results.append(plain)
        results.sort(key=lambda r: order.index(_meta(r).get("name")))
        return {"success": all(r["success"] for r in results), "results": results}


def _plain(value: Any) -> Any:
    """JSON-ready copies of GX result values (numpy scalars, NaN, datetimes)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _plain_result(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    exception = result.exception_info or {}
    if not isinstance(exception, Mapping):
        exception = getattr(exception, "to_json_dict", lambda: {})()
    return {
        "success": bool(result.success),
        "expectation_config": {"type": config.type, "kwargs": _plain(dict(config.kwargs)), "meta": _plain(config.meta)},
        "result": _plain(result.result or {}),
        "exception_info": _plain(exception),
    }


@dataclass(frozen=True)
class Verdict:
    """What validating one batch decided, and the report to store."""

    outcomes: tuple[Outcome, ...]
    report: dict[str, Any] | None
    quarantined: int
    failed_batch: tuple[str, ...]
    error: str | None = None


def _batch_dict(batch: SourceBatch) -> dict[str, Any]:
    return {
        "key": batch.key,
        "topic": batch.topic,
        "partition": batch.partition,
        "first_offset": batch.first_offset,
        "end_offset": batch.end_offset,
        "size": batch.size,
    }


def validate_articles(
    validator: SuiteValidator | None, element: OutcomeBatch, config: QualityConfig, validated_at: dt.datetime
) -> Verdict:
    """Validate one batch: the new outcomes and the report (``None`` when it holds no article).

    Never raises for a validation failure: an exception becomes ``error`` in the verdict, and the
    batch passes through (``warn``) or has its articles quarantined with ``validation_error``
    (``fail``).
    """
    articles = element.articles()
    if not articles:
        return Verdict(element.outcomes, None, 0, ())
    started, started_cpu = time.perf_counter(), time.thread_time()
    report: dict[str, Any] = {
        "format": "wirestream-quality/1",
        "batch": _batch_dict(element.batch),
        "run": config.run_name,
        "validated_at": validated_at.isoformat(),
        "suite": suite_version(config.suite),
        "policy": config.policy,
    }
    try:
        if validator is None:
            raise RuntimeError("no validator")
        frame = articles_frame(articles)
        gx_result = validator.validate(frame)
        failed_rows = row_failures(gx_result, len(articles))
        failed_batch = batch_failures(gx_result)
        monitors = monitor_failures(gx_result)
        outcomes = apply_verdict(element.outcomes, failed_rows, failed_batch, config.policy)
        expectations = summarise(gx_result, [a.kafka_offset for a in articles])
        error = None
    except Exception as caught:  # noqa: BLE001 - a validation bug must not stop the stream
        _LOG.exception("validating batch %s failed", element.batch.key)
        error = f"{type(caught).__name__}: {caught}"[:2000]
        failed_batch = (VALIDATION_ERROR,)
        monitors = ()
        failed_rows = {}
        outcomes = apply_verdict(element.outcomes, {}, failed_batch, config.policy)
        expectations = []
        gx_result = None
    quarantined = [o for o in outcomes if isinstance(o, Quarantined)]
    if error:
        status = "error"
    elif failed_batch:
        status = "batch_failed"
    elif quarantined:
        status = "rows_quarantined"
    else:
        status = "passed"
    report.update(
        {
            "status": status,
            "success": status == "passed",
            "error": error,
            "counts": {
                "records": element.batch.size,
                "articles_validated": len(articles),
                "quarantined": len(quarantined),
                "articles_passed": len(articles) - len(quarantined),
            },
            "failed_batch_expectations": list(failed_batch),
            "failed_monitors": list(monitors),
            "languages": dict(Counter(article.language or UNDETERMINED for article in articles).most_common()),
            "quarantined": [
                {
                    "article_id": q.article.article_id,
                    "kafka_offset": q.article.kafka_offset,
                    "failed_expectations": list(q.failed_expectations),
                }
                for q in quarantined
            ],
            "expectations": expectations,
            "validation_seconds": round(time.perf_counter() - started, 4),
            # CPU time of this thread: wall time also counts waiting for the GIL while other
            # bundles of the same worker (NER) run in parallel threads.
            "validation_cpu_seconds": round(time.thread_time() - started_cpu, 4),
            "gx_result": gx_result,
        }
    )
    return Verdict(outcomes, report, len(quarantined), failed_batch, error)


# --- Results on the lake -------------------------------------------------------------------------


def _write_atomically(lake: Lake, path: str, data: bytes) -> None:
    lake.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    lake.write_atomically(path, data)


def results_path(lake: Lake, batch_key: str) -> str:
    """Where a batch's results JSON lives."""
    return lake.path(QUALITY, "results", f"{batch_key}.json")


SUMMARY_FIELDS = ("batch", "run", "validated_at", "validation_seconds", "status", "counts", "failed_batch_expectations")


def write_report(lake: Lake, report: Mapping[str, Any]) -> None:
    """The batch's results JSON, its summary and its HTML page, each written atomically under its key.

    The summary (``_quality/summaries/<key>.json``, a few hundred bytes) is what the index reads,
    so rebuilding the index does not read every full report again.
    """
    key = report["batch"]["key"]
    _write_atomically(lake, results_path(lake, key), json.dumps(report, default=str, indent=1).encode())
    summary = {field: report.get(field) for field in SUMMARY_FIELDS}
    _write_atomically(lake, lake.path(QUALITY, "summaries", f"{key}.json"), json.dumps(summary).encode())
    page = render_batch_page(report)
    _write_atomically(lake, lake.path(QUALITY, "docs", "batches", f"{key}.html"), page.encode())


def read_reports(lake: Lake) -> list[dict[str, Any]]:
    """Every stored batch report's summary (batch, run, time, status, counts, failed expectations)."""
    reports = []
    for info in lake.list(lake.path(QUALITY, "summaries")):
        if not info.base_name.endswith(".json"):
            continue
        try:
            with lake.fs.open_input_stream(info.path) as stream:
                report = json.loads(stream.read())
        except (OSError, ValueError):
            _LOG.warning("unreadable quality report %s", info.path)
            continue
        reports.append(report)
    return reports


def report_states(
    reports: Sequence[Mapping[str, Any]], covered: Mapping[tuple[str, int], Sequence[tuple[int, int]]]
) -> dict[str, str]:
    """Batch key → ``committed``, ``superseded`` or ``uncommitted``.

    A report is written before its batch's data is committed. ``committed``: the lake accounts for
    its whole range. ``superseded``: a later report covers an overlapping range (a replay cut the
    batch differently after a crash). ``uncommitted``: neither (crashed before the commit; the
    next run reads the range again and writes a report for it).
    """
    merged = {key: merge_ranges(list(ranges)) for key, ranges in covered.items()}
    states = {}
    for report in reports:
        batch = report["batch"]
        first, end = batch["first_offset"], batch["end_offset"]
        later = [
            other
            for other in reports
            if other is not report
            and other["batch"]["topic"] == batch["topic"]
            and other["batch"]["partition"] == batch["partition"]
            and other["batch"]["first_offset"] < end
            and first < other["batch"]["end_offset"]
            and other["validated_at"] > report["validated_at"]
        ]
        in_lake = any(a <= first and end <= b for a, b in merged.get((batch["topic"], batch["partition"]), []))
        states[batch["key"]] = "superseded" if later else "committed" if in_lake else "uncommitted"
    return states


def write_index(lake: Lake, title: str = "wirestream data quality") -> str:
    """Rebuild ``_quality/docs/index.html`` from the stored reports; returns its path."""
    reports = read_reports(lake)
    page = render_index(reports, report_states(reports, covered_ranges(lake)), title)
    path = lake.path(QUALITY, "docs", "index.html")
    _write_atomically(lake, path, page.encode())
    return path


# --- Data Docs (static HTML rendered from the stored JSON) -----------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed,.true{color:#17692b}.batch_failed,.error,.false{color:#a4161a}.rows_quarantined{color:#9a6700}
.superseded,.uncommitted{color:#777}code{font-size:90%}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def render_batch_page(report: Mapping[str, Any]) -> str:
    """A batch's results as a self-contained HTML page (no script, no external assets)."""
    batch = report["batch"]
    counts = report.get("counts", {})
    rows = []
    for entry in report.get("expectations", []):
        failing = ", ".join(
            f"row {f['row']} ({_e(f.get('article_id'))}, offset {_e(f.get('kafka_offset'))})"
            for f in entry.get("failing_rows", [])[:50]
        )
        observed = entry.get("error") or (
            "" if entry.get("observed") is None else json.dumps(entry["observed"], default=str)
        )
        arguments = json.dumps(entry["kwargs"], default=str)
        rows.append(
            f"<tr><td><code>{_e(entry['name'])}</code></td><td>{_e(entry['level'])}</td>"
            f"<td><code>{_e(entry['type'])}</code><br><small>{_e(arguments)}</small></td>"
            f'<td class="{str(entry["success"]).lower()}">{"passed" if entry["success"] else "FAILED"}</td>'
            f"<td>{_e(observed)}</td><td>{failing}</td></tr>"
        )
    quarantined = "".join(
        f"<tr><td>{_e(q['kafka_offset'])}</td><td>{_e(q['article_id'])}</td>"
        f"<td>{_e(', '.join(q['failed_expectations']))}</td></tr>"
        for q in report.get("quarantined", [])
    )
    body = f"""<p><a href="../index.html">← all batches</a></p>
<h1>Batch {_e(batch["key"])}</h1>
<p>Run <strong class="run">{_e(report.get("run"))}</strong>, validated {_e(report.get("validated_at"))}
with suite <code>{_e(report.get("suite"))}</code>, policy <code>{_e(report.get("policy"))}</code>.</p>
<p>Status: <strong class="{_e(report.get("status"))}">{_e(report.get("status"))}</strong>.
{_e(counts.get("articles_validated"))} articles validated of {_e(counts.get("records"))} records;
{_e(counts.get("quarantined"))} quarantined. Failed batch expectations:
{_e(", ".join(report.get("failed_batch_expectations", [])) or "none")}.
{"<br>Error: " + _e(report.get("error")) if report.get("error") else ""}</p>
<h2>Expectations</h2>
<table><tr><th>name</th><th>level</th><th>expectation</th><th>result</th><th>observed</th><th>failing rows</th></tr>
{"".join(rows)}</table>
<h2>Quarantined articles</h2>
<table><tr><th>kafka offset</th><th>article_id</th><th>failed expectations</th></tr>{quarantined}</table>"""
    return _page(f"quality: batch {batch['key']}", body)


def render_index(
    reports: Sequence[Mapping[str, Any]], states: Mapping[str, str], title: str = "wirestream data quality"
) -> str:
    """The Data Docs index: one section per run (newest first), one row per batch report."""
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for report in sorted(reports, key=lambda r: (str(r.get("validated_at")), r["batch"]["key"])):
        runs.setdefault(str(report.get("run")), []).append(report)
    ordered = sorted(runs.items(), key=lambda item: str(item[1][-1].get("validated_at")), reverse=True)
    totals: dict[str, int] = {}
    for report in reports:
        totals[str(report.get("status"))] = totals.get(str(report.get("status")), 0) + 1
    sections = []
    for run, members in ordered:
        rows = []
        for report in members:
            key = report["batch"]["key"]
            counts = report.get("counts", {})
            state = states.get(key, "")
            rows.append(
                f'<tr><td><a href="batches/{_e(key)}.html">{_e(key)}</a></td><td>{_e(report.get("validated_at"))}</td>'
                f'<td class="{_e(report.get("status"))}">{_e(report.get("status"))}</td>'
                f"<td>{_e(counts.get('articles_validated'))}</td><td>{_e(counts.get('quarantined'))}</td>"
                f"<td>{_e(', '.join(report.get('failed_batch_expectations', [])))}</td>"
                f'<td class="{_e(state)}">{_e(state)}</td></tr>'
            )
        failed = sum(1 for r in members if r.get("status") in ("batch_failed", "error"))
        sections.append(
            f'<section class="run"><h2>Run <span class="run-name">{_e(run)}</span></h2>'
            f"<p>{len(members)} batches, {failed} failed a batch expectation or could not be validated, "
            f"{sum(r.get('counts', {}).get('quarantined', 0) for r in members)} articles quarantined.</p>"
            "<table><tr><th>batch</th><th>validated at</th><th>status</th><th>articles</th><th>quarantined</th>"
            f"<th>failed batch expectations</th><th>in lake</th></tr>{''.join(rows)}</table></section>"
        )
    summary = ", ".join(f"{status}: {count}" for status, count in sorted(totals.items())) or "no reports yet"
    body = f"""<h1>{_e(title)}</h1>
<p>{len(reports)} batch reports in {len(runs)} runs ({_e(summary)}). Each batch's results JSON is
<code>_quality/results/&lt;batch&gt;.json</code>. "in lake": <em>committed</em> (the lake holds the batch),
<em>uncommitted</em> (written before a crash; the batch is read again), <em>superseded</em> (a later report
covers it).</p>
{"".join(sections)}"""
    return _page(title, body)
