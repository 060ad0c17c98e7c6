"""The shared shell of a one-record-in, one-outcome-out stage.

A stage's rule is a pure function ``record -> Article | DeadLetter``; :class:`RoutingStage` wraps it
in a labelled ``ParDo`` whose main output holds the articles and whose ``dead_letters`` output holds
the rest, and counts both. An exception the rule did not expect becomes a dead letter with reason
``internal_error`` rather than a crash, so one bad record never stops the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from schemas.records import Article, DeadLetter

__all__ = ["ARTICLES", "DEAD_LETTERS", "RoutingStage"]

ARTICLES = "articles"
DEAD_LETTERS = "dead_letters"

_LOG = logging.getLogger(__name__)


class _RouteFn(beam.DoFn):
    def __init__(self, stage: str, rule: Callable[[Any], Article | DeadLetter]) -> None:
        self._stage = stage
        self._rule = rule
        self._passed = beam.metrics.Metrics.counter(stage, "passed")
        self._rejected = beam.metrics.Metrics.counter(stage, "dead_letters")

    def process(self, element: Any) -> Iterator[Any]:
        try:
            outcome = self._rule(element)
        except Exception as error:  # noqa: BLE001 - a bug in a rule must not stop the stream
            _LOG.exception("stage %s failed on a record", self._stage)
            outcome = _dead_letter_for(element, self._stage, error)
        if isinstance(outcome, DeadLetter):
            self._rejected.inc()
            yield pvalue.TaggedOutput(DEAD_LETTERS, outcome)
        else:
            self._passed.inc()
            yield outcome


def _dead_letter_for(element: Any, stage: str, error: Exception) -> DeadLetter:
    message = f"{type(error).__name__}: {error}"[:2000]
    if isinstance(element, Article):
        return DeadLetter.for_article(element, stage, "internal_error", message)
    return DeadLetter.for_record(element, stage, "internal_error", message)


class RoutingStage(beam.PTransform):
    """``PCollection[In]`` → outputs ``articles`` (``Article``) and ``dead_letters`` (``DeadLetter``)."""

    def __init__(self, stage: str, rule: Callable[[Any], Article | DeadLetter]) -> None:
        super().__init__()
        self._stage = stage
        self._rule = rule

    def expand(self, records: beam.PCollection) -> pvalue.DoOutputsTuple:
        return records | f"Route{self._stage.title()}" >> beam.ParDo(_RouteFn(self._stage, self._rule)).with_outputs(
            DEAD_LETTERS, main=ARTICLES
        )
