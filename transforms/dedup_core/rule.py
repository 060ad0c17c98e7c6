"""The decision rule: verifying a pair, the best match, id conflicts, and links resolving to kept roots.

:func:`verify` decides one pair (``exact``, ``near`` or :data:`~transforms.dedup_core.tickets.CONFLICT`),
:func:`best_match` and :func:`id_conflict` choose among an article's matches, :class:`Link` and
:func:`settle` record the decision, and :class:`ClusterRoots` resolves links arriving in any order
to the kept article heading each cluster. Pure; the full statement of the rule is in
:mod:`transforms.dedup_core`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from transforms.dedup_core.tickets import CONFLICT, EXACT_KEYS, KEY_HASH, VOID, DedupConfig, Ticket, order

__all__ = [
    "ClusterRoots",
    "Link",
    "Match",
    "best_match",
    "id_conflict",
    "may_pair",
    "seed_root",
    "settle",
    "similarity",
    "verify",
]


def similarity(a: Ticket, b: Ticket) -> tuple[float, float]:
    """Estimated ``(Jaccard, containment of the shorter in the longer)`` from the one-byte MinHashes.

    With one byte per permutation two different minima still agree with probability 1/256, so
    the match rate ``p`` estimates ``J + (1 - J) / 256``.
    """
    length = min(len(a.signature), len(b.signature))
    if not length:
        return 0.0, 0.0
    # the bytes that agree are the zero bytes of the two signatures XORed (as integers: no numpy call per pair)
    differ = int.from_bytes(a.signature[:length], "little") ^ int.from_bytes(b.signature[:length], "little")
    rate = differ.to_bytes(length, "little").count(0) / length
    jaccard = max(0.0, (rate - 1 / 256) / (1 - 1 / 256))
    smaller = min(a.size, b.size)
    if smaller <= 0:
        return jaccard, 0.0
    intersection = jaccard * (a.size + b.size) / (1 + jaccard)
    return jaccard, min(1.0, intersection / smaller)


@dataclass(frozen=True)
class Match:
    """A verified pair: ``later`` duplicates ``earlier``."""

    later: Ticket
    earlier: Ticket
    similarity: float
    method: str


def may_pair(first: tuple[int, int, bool], second: tuple[int, int, bool], ttl_micros: int) -> bool:
    """Whether two articles, as ``(record_id, time_us, seed)``, can be a pair at all.

    Not an article with itself, not two seeds (both already in the lake), not further apart than
    the TTL. The index-key stage asks it of its compact entries before sending a pair on.
    """
    (first_record, first_time, first_seed), (second_record, second_time, second_seed) = first, second
    if first_record == second_record or (first_seed and second_seed):
        return False
    return abs(first_time - second_time) <= ttl_micros


def verify(first: Ticket, second: Ticket, via: bytes, config: DedupConfig) -> Match | None:
    """The verified match between two tickets that met under an index key of kind ``via``, or None.

    Two articles with the same ``article_id`` whose content does not match form a match of
    method :data:`CONFLICT` (under whichever key they met: the answer is the pair's, not the key's).
    """
    if not may_pair(
        (first.record_id, first.time_us, first.seed), (second.record_id, second.time_us, second.seed), config.ttl_micros
    ):
        return None
    earlier, later = (first, second) if order(first) < order(second) else (second, first)
    if later.seed:
        return None  # a previous run decided it, having seen every article that orders before it
    jaccard, containment = similarity(earlier, later)
    if via in EXACT_KEYS:
        return Match(later, earlier, 1.0 if via == KEY_HASH else round(jaccard, 4), "exact")
    if jaccard >= config.jaccard_threshold or (
        containment >= config.containment_threshold
        and jaccard >= config.containment_min_jaccard
        and min(earlier.size, later.size) >= config.min_words
    ):
        return Match(later, earlier, round(max(jaccard, containment), 4), "near")
    if earlier.article_id == later.article_id:
        return Match(later, earlier, round(jaccard, 4), CONFLICT)
    return None


def best_match(matches: Iterable[Match]) -> Match | None:
    """The content match with the earliest ``earlier`` (exact preferred on a tie): the article's own decision.

    Id conflicts (:data:`CONFLICT`) are not content matches: see :func:`id_conflict`.
    """
    return min(
        (m for m in matches if m.method != CONFLICT),
        key=lambda m: (order(m.earlier), m.method != "exact"),
        default=None,
    )


def id_conflict(matches: Iterable[Match]) -> Match | None:
    """The earliest article that has the same ``article_id`` but other content, or None.

    An article with one is turned away (the dead letter ``id_conflict``) unless its content
    matches an article that stays in the lake: then it is that article's duplicate, like any copy.
    """
    return min((m for m in matches if m.method == CONFLICT), key=lambda m: order(m.earlier), default=None)


def seed_root(ticket: Ticket) -> str:
    """The kept article heading a seed's cluster: as its run recorded it, else (an old memory) itself."""
    return ticket.root or ticket.article_id


@dataclass(frozen=True)
class Link:
    """One live article's own decision, before the kept article heading its cluster is known.

    ``matched`` is the record id of the article it matched best (:func:`best_match`), None when it
    is kept, with that article's time and id; ``matched_root`` is that article's root when already
    known (a seed's, :func:`seed_root`), else empty; ``similarity`` and ``method`` describe the
    pair. ``conflict_with`` names the earliest article with the same ``article_id`` and other
    content (:func:`id_conflict`: its topic, partition and offset), empty when there is none. A kept
    article's link is its bare ticket fields (:meth:`kept`).
    """

    record_id: int
    time_us: int
    article_id: str
    batch_key: str
    offset: int
    matched: int | None = None
    matched_time_us: int = 0
    matched_id: str = ""
    matched_root: str = ""
    similarity: float = 0.0
    method: str = ""
    conflict_with: str = ""

    @classmethod
    def kept(cls, ticket: Ticket) -> Link:
        """The link of ``ticket``'s article as if it were kept."""
        return cls(ticket.record_id, ticket.time_us, ticket.article_id, ticket.batch_key, ticket.offset)

    def unmatched(self) -> Link:
        """The link without its match (its id conflict, if any, stays): the article as if it matched none."""
        return dataclasses.replace(self, matched=None, matched_time_us=0, matched_id="", matched_root="")

    def to(self, best: Match | None, conflict: Match | None = None) -> Link:
        """The article's link once its best match (None: none) and its id conflict (None: none) are known."""
        conflict_with = ""
        if conflict is not None:
            topic, partition, *_ = conflict.earlier.batch_key.split("+")  # topic names hold no "+"
            conflict_with = f"topic {topic}, partition {partition}, offset {conflict.earlier.offset}"
        if best is None:
            return dataclasses.replace(self.unmatched(), conflict_with=conflict_with)
        earlier = best.earlier
        return dataclasses.replace(
            self,
            conflict_with=conflict_with,
            matched=earlier.record_id,
            matched_time_us=earlier.time_us,
            matched_id=earlier.article_id,
            matched_root=seed_root(earlier) if earlier.seed else "",
            similarity=best.similarity,
            method=best.method,
        )


def settle(link: Link, matched_root: str | None) -> tuple[Link, str]:
    """An article's final link and root, given the root of the article it matched (None: it matched none).

    Kept (the link without a match, its own id for root) when it matched none or only an article
    turned away, unless it has an id conflict: then turned away (root :data:`VOID`). Otherwise a
    duplicate of ``matched_root``.
    """
    if matched_root is None or matched_root == VOID:
        return link.unmatched(), VOID if link.conflict_with else link.article_id
    return link, matched_root


class ClusterRoots:
    """The roots of live articles' clusters, found from their links in whatever order they come.

    ``add`` settles each link whose matched article's root is known (kept articles at once; a
    link waits for the link of the live article it matched) and returns every link it settles,
    those that waited included, with its root. The Beam stage keeps one of these for the whole
    stream (:class:`transforms.dedup._LinkClustersFn`); :meth:`DedupIndex.duplicate_of` gives the
    same answers in one process (tested). Roots are kept per record with its time, so that
    :meth:`prune` can drop those no later article can match (beyond the TTL). A link whose
    matched article was forgotten so (it would have to arrive more than a TTL out of event-time
    order) settles on that article's own id rather than wait for ever.

    Id conflicts: an article with no content match (or whose match settles on :data:`VOID`) is
    kept unless its link names an id conflict; then its root is :data:`VOID` (it is turned away,
    :func:`settle`). So a turned-away article is never a root: an article that matched only it is
    kept (or turned away too, when it has an id conflict of its own).
    """

    def __init__(self, forgotten_before: int | None = None) -> None:
        self._roots: dict[int, tuple[str, int]] = {}
        self._waiting: dict[int, list[Link]] = {}
        self.waiting = 0
        self.forgotten_before = forgotten_before

    def __len__(self) -> int:
        return len(self._roots) + self.waiting

    def add(self, links: Iterable[Link]) -> list[tuple[Link, str]]:
        """Take in links; the ``(link, root)`` of each link settled now."""
        settled: list[tuple[Link, str]] = []
        for new in links:
            if new.matched is None:
                matched_root = None
            elif new.matched_root:
                matched_root = new.matched_root
            elif new.matched in self._roots:
                matched_root = self._roots[new.matched][0]
            elif self.forgotten_before is not None and new.matched_time_us < self.forgotten_before:
                matched_root = new.matched_id
            else:
                self._waiting.setdefault(new.matched, []).append(new)
                self.waiting += 1
                continue
            pending = [settle(new, matched_root)]
            while pending:
                done, root = pending.pop()
                self._roots[done.record_id] = (root, done.time_us)
                settled.append((done, root))
                for waiter in self._waiting.pop(done.record_id, ()):
                    self.waiting -= 1
                    pending.append(settle(waiter, root))
        return settled

    def prune(self, older_than_us: int) -> int:
        """Forget the roots of articles before ``older_than_us`` (links still waiting stay); how many went."""
        old = [record for record, (_, time_us) in self._roots.items() if time_us < older_than_us]
        for record in old:
            del self._roots[record]
        self.forgotten_before = max(older_than_us, self.forgotten_before or older_than_us)
        return len(old)

    def snapshot(self) -> list[Link]:
        """Links that rebuild this state in an empty one: each root as a kept link, then those waiting."""
        kept = [Link(record, time_us, root, "", -1) for record, (root, time_us) in self._roots.items()]
        return kept + [waiter for waiters in self._waiting.values() for waiter in waiters]
