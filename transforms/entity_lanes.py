"""The entity stage's lanes: one batch cut into ``workers`` parts and joined again (pure, no Beam).

:func:`split_batch` spreads a batch's articles over the lanes by characters (longest first, each
to the lane with the fewest so far), every other outcome to lane 0, so each position is filled in
exactly one part; :func:`join_parts` puts the batch back and fails loudly on a position filled
twice or never. The Beam side (the lanes' DoFns and the watermark-timed join) is
:mod:`transforms.entities`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.records import Article, Outcome, OutcomeBatch, SourceBatch

__all__ = ["LanePart", "join_parts", "split_batch"]


@dataclass(frozen=True)
class LanePart:
    """One lane's share of a batch: ``outcomes[i]`` is set where position ``i`` is this lane's."""

    batch: SourceBatch
    lane: int
    outcomes: tuple[Outcome | None, ...]


def split_batch(element: OutcomeBatch, workers: int) -> list[LanePart]:
    """``workers`` parts of a batch, one per lane.

    Articles are spread by characters (longest first, each to the lane with the fewest so far);
    every other outcome goes to part 0.
    """
    load = [0] * workers
    lane_of = [0] * len(element.outcomes)
    articles = [(len(o.text), i) for i, o in enumerate(element.outcomes) if isinstance(o, Article)]
    for size, position in sorted(articles, key=lambda item: (-item[0], item[1])):
        lane = min(range(workers), key=lambda w: (load[w], w))
        lane_of[position] = lane
        load[lane] += size
    return [
        LanePart(
            element.batch,
            lane,
            tuple(outcome if lane_of[i] == lane else None for i, outcome in enumerate(element.outcomes)),
        )
        for lane in range(workers)
    ]


def join_parts(parts: Sequence[LanePart], workers: int) -> OutcomeBatch:
    """The batch again, from all its lanes' parts; raises if a position is filled twice or never."""
    lanes = sorted(part.lane for part in parts)
    if lanes != list(range(workers)):
        raise RuntimeError(f"batch {parts[0].batch.key}: parts of lanes {lanes}, expected 0..{workers - 1}")
    outcomes: list[Outcome | None] = [None] * len(parts[0].outcomes)
    for part in parts:
        for position, outcome in enumerate(part.outcomes):
            if outcome is not None:
                if outcomes[position] is not None:
                    raise RuntimeError(f"batch {part.batch.key}: position {position} filled twice")
                outcomes[position] = outcome
    missing = [position for position, outcome in enumerate(outcomes) if outcome is None]
    if missing:
        raise RuntimeError(f"batch {parts[0].batch.key}: positions {missing[:5]} filled by no lane")
    return OutcomeBatch(parts[0].batch, tuple(o for o in outcomes if o is not None))
