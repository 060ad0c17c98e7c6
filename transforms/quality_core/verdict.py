"""Verdicts: which rows and batches broke the suite, what that does to the outcomes, and the batch report.

:func:`validate_articles` is the whole per-batch step: build the frame, run the suite, turn failing
articles into :class:`Quarantined` (:func:`apply_verdict`: one outcome per record in, the same count
and order out) and assemble the report dict that :mod:`transforms.quality_core.reports` stores.
Never raises for a validation failure. No Beam, no IO.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.records import Article, Outcome, OutcomeBatch, Quarantined, SourceBatch
from transforms.outcomes import rewrite_live
from transforms.quality_core.suite import (
    UNDETERMINED,
    QualityConfig,
    SuiteValidator,
    articles_frame,
    expectation_meta,
    expectation_raised,
    suite_version,
)

__all__ = [
    "VALIDATION_ERROR",
    "Verdict",
    "apply_verdict",
    "batch_failures",
    "monitor_failures",
    "row_failures",
    "summarise",
    "validate_articles",
]

VALIDATION_ERROR = "validation_error"
_LOG = logging.getLogger(__name__)


def row_failures(gx_result: Mapping[str, Any], rows: int) -> dict[int, tuple[str, ...]]:
    """Row position → names of the row-level expectations it broke (suite order), failing rows only.

    A row-level expectation that raised instead of evaluating names no rows: it counts as a failed
    batch expectation (see :func:`batch_failures`).
    """
    failed: dict[int, list[str]] = {}
    for result in gx_result.get("results", []):
        meta = expectation_meta(result)
        if meta.get("level") != "row" or result.get("success") or expectation_raised(result):
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
        meta = expectation_meta(result)
        if expectation_raised(result):
            names.append(f"{meta.get('name', '?')}:error")
        elif meta.get("level") == "batch" and not result.get("success"):
            names.append(str(meta.get("name")))
    return tuple(names)


def monitor_failures(gx_result: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of failed monitor-level expectations (reported, never quarantining)."""
    return tuple(
        str(expectation_meta(result).get("name"))
        for result in gx_result.get("results", [])
        if expectation_meta(result).get("level") == "monitor"
        and not result.get("success")
        and not expectation_raised(result)
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
    rows = itertools.count()

    def judged(article: Article) -> Outcome:
        names = failed_rows.get(next(rows), ())
        if quarantine_all:
            names = (*names, *(name for name in failed_batch if name not in names))
        return Quarantined(article, tuple(names)) if names else article

    return rewrite_live(outcomes, judged)


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
                "error": (result.get("exception_info") or {}).get("exception_message")
                if expectation_raised(result)
                else None,
                "failing_rows": failing,
            }
        )
    return entries


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


@dataclass(frozen=True)
class _Judgement:
    """What running the suite over one batch found (or the error that stopped it)."""

    outcomes: tuple[Outcome, ...]
    failed_batch: tuple[str, ...]
    monitors: tuple[str, ...]
    expectations: list[dict[str, Any]]
    gx_result: dict[str, Any] | None
    error: str | None


def _judge(
    validator: SuiteValidator | None, element: OutcomeBatch, articles: Sequence[Article], policy: str
) -> _Judgement:
    """Run the suite over the batch's articles and apply the verdict; an exception becomes ``error``."""
    try:
        if validator is None:
            raise RuntimeError("no validator")
        frame = articles_frame(articles)
        gx_result = validator.validate(frame)
        failed_rows = row_failures(gx_result, len(articles))
        failed_batch = batch_failures(gx_result)
        return _Judgement(
            apply_verdict(element.outcomes, failed_rows, failed_batch, policy),
            failed_batch,
            monitor_failures(gx_result),
            summarise(gx_result, [a.kafka_offset for a in articles]),
            gx_result,
            None,
        )
    except Exception as caught:  # noqa: BLE001 - a validation bug must not stop the stream
        _LOG.exception("validating batch %s failed", element.batch.key)
        error = f"{type(caught).__name__}: {caught}"[:2000]
        failed = (VALIDATION_ERROR,)
        return _Judgement(apply_verdict(element.outcomes, {}, failed, policy), failed, (), [], None, error)


def _status(judgement: _Judgement, quarantined: int) -> str:
    if judgement.error:
        return "error"
    if judgement.failed_batch:
        return "batch_failed"
    return "rows_quarantined" if quarantined else "passed"


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
    judgement = _judge(validator, element, articles, config.policy)
    quarantined = [o for o in judgement.outcomes if isinstance(o, Quarantined)]
    status = _status(judgement, len(quarantined))
    report.update(
        {
            "status": status,
            "success": status == "passed",
            "error": judgement.error,
            "counts": {
                "records": element.batch.size,
                "articles_validated": len(articles),
                "quarantined": len(quarantined),
                "articles_passed": len(articles) - len(quarantined),
            },
            "failed_batch_expectations": list(judgement.failed_batch),
            "failed_monitors": list(judgement.monitors),
            "languages": dict(Counter(article.language or UNDETERMINED for article in articles).most_common()),
            "quarantined": [
                {
                    "article_id": q.article.article_id,
                    "kafka_offset": q.article.kafka_offset,
                    "failed_expectations": list(q.failed_expectations),
                }
                for q in quarantined
            ],
            "expectations": judgement.expectations,
            "validation_seconds": round(time.perf_counter() - started, 4),
            # CPU time of this thread: wall time also counts waiting for the GIL while other
            # bundles of the same worker (NER) run in parallel threads.
            "validation_cpu_seconds": round(time.thread_time() - started_cpu, 4),
            "gx_result": judgement.gx_result,
        }
    )
    return Verdict(judgement.outcomes, report, len(quarantined), judgement.failed_batch, judgement.error)
