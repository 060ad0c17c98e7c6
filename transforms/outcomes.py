"""A batch's outcomes, rewritten stage by stage: live items get the stage's rule, final ones pass through.

Every stage sees the whole batch, one outcome per record, and may touch only the *live* items
(articles, or raw Kafka records before parsing); an outcome an earlier stage made final (a dead
letter, a duplicate, a quarantined article) passes through untouched, in its place. That loop was
written once per stage; :func:`rewrite_live` is it, once. Pure: no Beam, so the read side may
import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from schemas.records import Article

__all__ = ["rewrite_live"]


def rewrite_live(
    items: Iterable[Any], rewrite: Callable[[Any], Any], live: type | tuple[type, ...] = Article
) -> tuple[Any, ...]:
    """``items`` with each ``live`` one replaced by ``rewrite(item)``, in order, in the same number.

    ``rewrite`` is called in the items' order, so a rewrite may draw from an iterator (the
    ``n``-th live item gets its ``n``-th result).
    """
    return tuple(rewrite(item) if isinstance(item, live) else item for item in items)
