"""The shared shell of a stage: apply a one-record rule to every record of a batch.

A stage's rule is a pure function ``record -> Article | DeadLetter``. :class:`OutcomeStage` wraps
it in a labelled ``ParDo`` over batches (``RecordBatch`` or ``OutcomeBatch`` in, ``OutcomeBatch``
out): final outcomes of earlier stages (dead letters, duplicates) pass through untouched, every
article (or raw record) gets the rule, and the counts of both go to Beam metrics. An exception the
rule did not expect becomes a dead letter with reason ``internal_error`` rather than a crash, so one
bad record never stops the stream.

Why batches and not one element per record: the lake sink must write every outcome of an offset
range at once. Carrying the range as one element makes that a property of the data, not of runner
state (Prism, for one, can run two bundles of the same key at once after a split, which breaks
"count the outcomes in keyed state").

Also the one way a stage waits for the watermark (:func:`hold_until_watermark_passes`, used by
the keyed steps of deduplication and the entity lanes' join): an event-time timer on the next
whole millisecond after a time, because runners keep timers to the millisecond and a timer set
between two milliseconds would fire at the earlier one, before the watermark has passed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.utils.timestamp import Timestamp

from schemas.records import Article, DeadLetter, KafkaRecord, Outcome, OutcomeBatch, RecordBatch
from transforms.outcomes import rewrite_live

__all__ = ["OutcomeStage", "apply_rule", "hold_until_watermark_passes", "next_millisecond"]

_LOG = logging.getLogger(__name__)


def apply_rule(stage: str, rule: Callable[[Any], Outcome], item: KafkaRecord | Article) -> Outcome:
    """``rule(item)``, or a dead letter with reason ``internal_error`` if the rule raises."""
    try:
        return rule(item)
    except Exception as error:  # noqa: BLE001 - a bug in a rule must not stop the stream
        _LOG.exception("stage %s failed on a record", stage)
        message = f"{type(error).__name__}: {error}"[:2000]
        if isinstance(item, Article):
            return DeadLetter.for_article(item, stage, "internal_error", message)
        return DeadLetter.for_record(item, stage, "internal_error", message)


def next_millisecond(micros: int) -> int:
    """The next whole millisecond after ``micros``: the earliest timer that fires only past ``micros``."""
    return (micros // 1000 + 1) * 1000


def hold_until_watermark_passes(timer: Any, micros: int) -> None:
    """Set the event-time ``timer`` to fire once the watermark has passed ``micros`` (not before)."""
    timer.set(Timestamp(micros=next_millisecond(micros)))


class _MapOutcomesFn(beam.DoFn):
    def __init__(self, stage: str, rule: Callable[[Any], Outcome]) -> None:
        self._stage = stage
        self._rule = rule
        self._passed = beam.metrics.Metrics.counter(stage, "passed")
        self._rejected = beam.metrics.Metrics.counter(stage, "dead_letters")

    def process(self, element: RecordBatch | OutcomeBatch) -> Iterator[OutcomeBatch]:
        items = element.records if isinstance(element, RecordBatch) else element.outcomes
        yield OutcomeBatch(element.batch, rewrite_live(items, self._apply, (Article, KafkaRecord)))

    def _apply(self, item: KafkaRecord | Article) -> Outcome:
        outcome = apply_rule(self._stage, self._rule, item)
        (self._rejected if isinstance(outcome, DeadLetter) else self._passed).inc()
        return outcome


class OutcomeStage(beam.PTransform):
    """``PCollection[RecordBatch | OutcomeBatch]`` → ``PCollection[OutcomeBatch]``."""

    def __init__(self, stage: str, rule: Callable[[Any], Outcome]) -> None:
        super().__init__()
        self._stage = stage
        self._rule = rule

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | f"Apply{self._stage.title()}Rule" >> beam.ParDo(_MapOutcomesFn(self._stage, self._rule))
