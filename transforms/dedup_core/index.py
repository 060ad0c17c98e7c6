"""The rule in one process: :class:`DedupIndex`, the reference the Beam stages must agree with.

Used by tests and benchmarks; adding tickets in any order gives the same decisions. Pure.
"""

from __future__ import annotations

from collections import defaultdict

from transforms.dedup_core.rule import Link, Match, best_match, id_conflict, seed_root, settle, verify
from transforms.dedup_core.tickets import CONFLICT, EXACT_KEYS, VOID, DedupConfig, Ticket

__all__ = [
    "DedupIndex",
]


class DedupIndex:
    """The rule in one process: add tickets in any order, then ask which are duplicates and of what.

    Used by tests and benchmarks; it also shows the decision does not depend on arrival order.
    """

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self._by_key: dict[bytes, list[Ticket]] = {}
        self._matches: dict[int, list[Match]] = defaultdict(list)

    def add(self, ticket: Ticket) -> None:
        """Index a ticket, recording every verified pair it forms with tickets already indexed.

        A pair met under several keys is verified once, as met under an exact key if any.
        """
        met: dict[int, tuple[Ticket, bytes]] = {}
        bucket_of = self._by_key.setdefault
        for key in ticket.keys:
            bucket = bucket_of(key, [])
            if bucket:
                via = key[:1]
                if via in EXACT_KEYS:
                    for other in bucket:
                        earlier = met.get(other.record_id)
                        if earlier is None or earlier[1] not in EXACT_KEYS:
                            met[other.record_id] = (other, via)
                else:
                    for other in bucket:
                        if other.record_id not in met:
                            met[other.record_id] = (other, via)
            bucket.append(ticket)
        for other, via in met.values():
            match = verify(ticket, other, via, self.config)
            if match is not None:
                self._matches[match.later.record_id].append(match)

    def decision(self, ticket: Ticket) -> Match | None:
        """``ticket``'s best content match (None: it matched no earlier article's content)."""
        return best_match(self._matches.get(ticket.record_id, ()))

    def conflict(self, ticket: Ticket) -> Match | None:
        """``ticket``'s earliest id conflict (:func:`id_conflict`), or None."""
        return id_conflict(self._matches.get(ticket.record_id, ()))

    def root(self, ticket: Ticket) -> str:
        """The root of ``ticket``: its own id when kept, :data:`VOID` when turned away, else its cluster's kept article.

        Follows best matches back to an article with none (or to a seed, whose root its run
        recorded), then settles each step on the way back (:func:`settle`); each step goes to an
        earlier article, so the walk ends.
        """
        path: list[tuple[Ticket, Match]] = []
        current = ticket
        while not current.seed and (match := self.decision(current)) is not None:
            path.append((current, match))
            current = match.earlier
        if current.seed:
            root = seed_root(current)
        else:
            root = settle(Link.kept(current).to(None, self.conflict(current)), None)[1]
        for article, match in reversed(path):
            root = settle(Link.kept(article).to(match, self.conflict(article)), root)[1]
        return root

    def outcome(self, ticket: Ticket) -> tuple[str, str | None]:
        """``("kept", None)``, ``("duplicate", root)`` or ``(CONFLICT, None)``: what becomes of ``ticket``."""
        match = self.decision(ticket)
        matched_root = None
        if match is not None:
            matched_root = seed_root(match.earlier) if match.earlier.seed else self.root(match.earlier)
        link, root = settle(Link.kept(ticket).to(match, self.conflict(ticket)), matched_root)
        if root == VOID:
            return CONFLICT, None
        return ("kept", None) if link.matched is None else ("duplicate", root)

    def duplicate_of(self, ticket: Ticket) -> str | None:
        """The ``article_id`` of the kept article heading ``ticket``'s cluster, or None when it is not a duplicate."""
        kind, root = self.outcome(ticket)
        return root if kind == "duplicate" else None
