"""Step 6 of :class:`~transforms.dedup.Deduplicate`: hold a batch until its links are settled, then apply them.

:func:`apply_links` is the pure rewrite (kept, ``Duplicate`` of its root, or the dead letter
``id_conflict``); ``LinkDuplicatesFn`` (keyed by batch) waits for every live article's link and
emits the batch with exactly the records it received.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.transforms import userstate

from schemas.records import Article, DeadLetter, Duplicate, Outcome, OutcomeBatch
from transforms.dedup.messages import STAGE
from transforms.dedup_core import CONFLICT, VOID, Link, remember_root
from transforms.outcomes import rewrite_live

__all__ = [
    "LinkDuplicatesFn",
    "apply_links",
]


def apply_links(element: OutcomeBatch, settled: Iterable[tuple[Link, str]]) -> OutcomeBatch:
    """The batch with each live article kept, turned into a ``Duplicate`` of its root or turned away, as its link says.

    Every live article must have its settled ``(link, root)``; its memory learns its root. An
    article whose root is :data:`VOID` becomes the dead letter ``id_conflict`` (it keeps its
    memory: a later run must know it was turned away).
    """
    by_offset = {link.offset: (link, root) for link, root in settled}

    def linked(article: Article) -> Outcome:
        link, root = by_offset[article.kafka_offset]
        if article.dedup_memory:
            article = article.evolve(dedup_memory=remember_root(article.dedup_memory, root))
        if root == VOID:
            error = (
                f"article id {article.article_id!r} is already taken by an earlier record with other content"
                f" ({link.conflict_with})"
            )
            letter = DeadLetter.for_article(article, STAGE, CONFLICT, error)
            return letter.evolve(dedup_memory=article.dedup_memory)
        if link.matched is None:
            return article.evolve(cluster_id=article.article_id)
        return Duplicate(article, root, link.similarity, link.method)

    return OutcomeBatch(element.batch, rewrite_live(element.outcomes, linked))


class LinkDuplicatesFn(beam.DoFn):
    """Keyed by batch: hold the batch until all its live articles' links are settled, then apply them.

    ``EXPECTED`` is how many live articles the batch has (known once the batch is here),
    ``SETTLED`` how many settled links have come; the bag is read once, when they agree.
    """

    ITEMS = userstate.BagStateSpec("items", coders.PickleCoder())
    EXPECTED = userstate.ReadModifyWriteStateSpec("expected", coders.VarIntCoder())
    SETTLED = userstate.ReadModifyWriteStateSpec("settled", coders.VarIntCoder())

    def __init__(self) -> None:
        self._kept = beam.metrics.Metrics.counter(STAGE, "kept")
        self._exact = beam.metrics.Metrics.counter(STAGE, "exact_duplicates")
        self._near = beam.metrics.Metrics.counter(STAGE, "near_duplicates")
        self._conflicts = beam.metrics.Metrics.counter(STAGE, "id_conflicts")

    def process(
        self,
        element: tuple[bytes, OutcomeBatch | list[tuple[Link, str]]],
        items: Any = beam.DoFn.StateParam(ITEMS),
        expected: Any = beam.DoFn.StateParam(EXPECTED),
        settled: Any = beam.DoFn.StateParam(SETTLED),
    ) -> Iterator[OutcomeBatch]:
        _, item = element
        items.add(item)
        if isinstance(item, OutcomeBatch):
            total = len(item.articles())
            expected.write(total)
            count = settled.read() or 0
        else:
            total = expected.read()
            count = (settled.read() or 0) + len(item)
            settled.write(count)
        if total is not None and count >= total:
            yield from self._release(items, expected, settled)

    def _release(self, items: Any, expected: Any, settled: Any) -> Iterator[OutcomeBatch]:
        """The batch with its links applied, once every article of it has one.

        Apart from ``process`` so that it has no bare ``return``: Beam warns about a generator
        that also returns (apache/beam#22969).
        """
        stored = list(items.read())
        batch = next(item for item in stored if isinstance(item, OutcomeBatch))
        pairs = [pair for item in stored if isinstance(item, list) for pair in item]
        if {link.offset for link, _ in pairs} != {article.kafka_offset for article in batch.articles()}:
            return  # a link came twice (it cannot, but a count alone would not tell): wait for the rest
        for state in (items, expected, settled):
            state.clear()
        result = apply_links(batch, pairs)
        for outcome in result.outcomes:
            if isinstance(outcome, Duplicate):
                (self._exact if outcome.method == "exact" else self._near).inc()
            elif isinstance(outcome, Article):
                self._kept.inc()
            elif isinstance(outcome, DeadLetter) and outcome.reason == CONFLICT:
                self._conflicts.inc()
        yield result
