"""The expectation suite: loading and checking it, the DataFrame it validates, and running it (no Beam).

Owns the suite file's contract (``name``, ``expectations`` with a unique ``meta.name`` and a
``meta.level`` of ``row``, ``batch`` or ``monitor``), :class:`QualityConfig`, the derived columns
the suite checks (:func:`records_frame`) and :class:`SuiteValidator`, the Great Expectations
context that runs it and returns plain JSON-ready dicts. Great Expectations and pandas are imported
only when used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemas
from schemas.records import Article
from schemas.rows import article_row
from transforms.errors import UserError

__all__ = [
    "INDEX_COLUMNS",
    "LEVELS",
    "POLICIES",
    "STAGE",
    "SUITE_PATH",
    "UNDETERMINED",
    "QualityConfig",
    "SuiteValidator",
    "articles_frame",
    "checked_validator",
    "expectation_meta",
    "expectation_raised",
    "load_suite",
    "records_frame",
    "suite_version",
]

STAGE = "quality"
POLICIES = ("warn", "fail")
SUITE_PATH = Path(schemas.__file__).resolve().parent / "expectations" / "articles.json"
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


def expectation_meta(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``meta`` of a result's expectation (its ``name`` and ``level``), or ``{}``."""
    return result.get("expectation_config", {}).get("meta") or {}


def expectation_raised(result: Mapping[str, Any]) -> bool:
    """Whether the expectation raised instead of evaluating."""
    return bool((result.get("exception_info") or {}).get("raised_exception"))


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
            if not plain["success"] and not expectation_raised(plain):
                row_level = expectation_meta(plain).get("level") == "row"
                detailed = batch.validate(
                    by_name[expectation_meta(plain)["name"]],
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": INDEX_COLUMNS}
                    if row_level
                    else "BASIC",
                )
                plain = _plain_result(detailed)
            results.append(plain)
        results.sort(key=lambda r: order.index(expectation_meta(r).get("name")))
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
