"""ValidateBatch: the expectation suite over each batch's articles; failing rows to quarantine.

``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]``, one outcome per record in, one out.
The rules (suite levels, policies, verdicts, the report files and Data Docs) are plain functions in
:mod:`transforms.quality_core`, which the read side imports without Beam; this module is the DoFn
around them, and re-exports the names the pipeline builds it with. Reports are written through
the :class:`~transforms.quality_core.QualityStore` the pipeline passes in (the lake's is
``transforms.io.quality_store.LakeQualityStore``, small and picklable): a stage never imports IO.

Great Expectations is imported and its ephemeral context built in ``setup()``: one context per
DoFn instance (a shared pandas engine validated the wrong batch across threads, GX #12209; the
context does not pickle). Progress bars and usage statistics are turned off in its config.
Counters (namespace ``quality``): ``batches_passed``, ``batches_with_quarantine``,
``batches_failed``, ``batches_not_validated``, ``articles_quarantined``, ``reports_not_written``;
distribution ``validation_ms``. The index is rebuilt at most every ``index_interval_seconds`` per
worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import apache_beam as beam

from schemas.records import OutcomeBatch, utc_now
from transforms.quality_core import (
    POLICIES,
    STAGE,
    QualityConfig,
    QualityStore,
    SuiteValidator,
    Verdict,
    checked_validator,
    load_suite,
    validate_articles,
)

__all__ = ["QualityConfig", "QualityStore", "ValidateBatch", "checked_validator", "load_suite"]

_LOG = logging.getLogger(__name__)


class _ValidateBatchFn(beam.DoFn):
    def __init__(self, config: QualityConfig, store: QualityStore) -> None:
        self._config = config
        self._store = store
        self._passed = beam.metrics.Metrics.counter(STAGE, "batches_passed")
        self._with_quarantine = beam.metrics.Metrics.counter(STAGE, "batches_with_quarantine")
        self._failed = beam.metrics.Metrics.counter(STAGE, "batches_failed")
        self._not_validated = beam.metrics.Metrics.counter(STAGE, "batches_not_validated")
        self._quarantined = beam.metrics.Metrics.counter(STAGE, "articles_quarantined")
        self._reports_lost = beam.metrics.Metrics.counter(STAGE, "reports_not_written")
        self._milliseconds = beam.metrics.Metrics.distribution(STAGE, "validation_ms")

    def setup(self) -> None:
        self._last_index = 0.0
        try:
            self._validator: SuiteValidator | None = SuiteValidator(self._config.suite)
        except Exception:  # noqa: BLE001 - every batch then reports the error, the stream goes on
            _LOG.exception("cannot build the expectation suite; batches pass through unvalidated")
            self._validator = None

    def process(self, element: OutcomeBatch) -> Iterator[OutcomeBatch]:
        verdict = validate_articles(self._validator, element, self._config, utc_now())
        if verdict.report is not None:
            self._count(verdict)
            try:
                self._store.write_report(verdict.report)
                if time.monotonic() - self._last_index >= self._config.index_interval_seconds:
                    self._store.write_index()
                    self._last_index = time.monotonic()
            except OSError:
                _LOG.exception("cannot write the quality report of batch %s", element.batch.key)
                self._reports_lost.inc()
        yield OutcomeBatch(element.batch, verdict.outcomes)

    def _count(self, verdict: Verdict) -> None:
        assert verdict.report is not None
        self._milliseconds.update(int(verdict.report["validation_seconds"] * 1000))
        self._quarantined.inc(verdict.quarantined)
        if verdict.error:
            self._not_validated.inc()
        elif verdict.failed_batch:
            self._failed.inc()
        elif verdict.quarantined:
            self._with_quarantine.inc()
        else:
            self._passed.inc()


class ValidateBatch(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]``; failing articles quarantined."""

    def __init__(self, config: QualityConfig, store: QualityStore) -> None:
        super().__init__()
        if config.policy not in POLICIES:
            raise ValueError(f"quality policy must be one of {POLICIES}, not {config.policy!r}")
        self._config = config
        self._store = store

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "ValidateArticles" >> beam.ParDo(_ValidateBatchFn(self._config, self._store))
