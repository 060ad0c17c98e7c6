"""Steps 4 and 5 of :class:`~transforms.dedup.Deduplicate`: decide each article's link, then settle it on a root.

``DecideArticlesFn`` (keyed by batch) sends each article's link once the watermark has passed
the batch's latest article (:func:`release_time`), or earlier on request; ``LinkClustersFn`` (one
key) settles every link on the kept article heading its cluster.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any  # noqa: UP035 - Beam's type hints need typing.Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Timestamp

from transforms.dedup.messages import CLUSTERS, STAGE
from transforms.dedup_core import (
    ClusterRoots,
    DedupConfig,
    Link,
    Match,
    best_match,
    decode_links,
    encode_links,
    id_conflict,
)
from transforms.stage import next_millisecond

__all__ = [
    "ClusterCache",
    "DecideArticlesFn",
    "LinkClustersFn",
    "batch_links",
    "release_time",
]


def release_time(links: Iterable[Link], timestamp: Timestamp) -> Timestamp:
    """When a batch's articles are all decided: once the watermark passes its latest article's event time.

    Every message that can decide one of its articles is stamped no later than that article's
    event time (see the module docstring), so the release is the next whole millisecond after
    the latest of those times and the batch's own.
    """
    return Timestamp(micros=next_millisecond(max([timestamp.micros, *(link.time_us for link in links)])))


class DecideArticlesFn(beam.DoFn):
    """Keyed by batch: gather the batch's matches; send each article's link once it is decided.

    Its articles (their kept links) and their matches wait in ``ITEMS``; ``RELEASE`` fires when
    the watermark passes the batch's latest article and sends every link not sent yet. A match
    whose *earlier* article is here (the later one is in another batch) is a request: that
    batch needs this article's link no later than its own release, so ``EARLY`` fires at the
    later of the article's time and the request's stamp and sends the links of the articles
    before it (decided: the watermark has passed them). ``EARLY_AT`` is when ``EARLY`` stands,
    ``REQUESTS`` the times still asked for, ``SENT`` the records sent early.
    """

    ITEMS = userstate.BagStateSpec("items", coders.PickleCoder())
    SENT = userstate.BagStateSpec("sent", coders.VarIntCoder())
    REQUESTS = userstate.BagStateSpec("requests", coders.VarIntCoder())
    EARLY_AT = userstate.ReadModifyWriteStateSpec("early_at", coders.VarIntCoder())
    RELEASE = userstate.TimerSpec("release", TimeDomain.WATERMARK)
    EARLY = userstate.TimerSpec("early", TimeDomain.WATERMARK)

    def __init__(self) -> None:
        self._early = beam.metrics.Metrics.counter(STAGE, "links_sent_early")

    def process(
        self,
        element: tuple[bytes, bytes | Match],
        timestamp: Any = beam.DoFn.TimestampParam,
        items: Any = beam.DoFn.StateParam(ITEMS),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        release: Any = beam.DoFn.TimerParam(RELEASE),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> None:
        batch, item = element
        if isinstance(item, bytes):  # the batch's articles
            items.add(item)
            release.set(release_time(decode_links(item), timestamp))
        elif item.later.batch_key.encode() == batch:
            items.add(item)
        else:  # a request for the link of item.earlier, one of ours
            due = max(next_millisecond(item.earlier.time_us), next_millisecond(timestamp.micros - 1))
            requests.add(due)
            standing = early_at.read()
            if standing is None or due < standing:
                early.set(Timestamp(micros=due))
                early_at.write(due)

    @userstate.on_timer(EARLY)
    def send_early(
        self,
        timestamp: Any = beam.DoFn.TimestampParam,
        items: Any = beam.DoFn.StateParam(ITEMS),
        sent: Any = beam.DoFn.StateParam(SENT),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> Iterator[tuple[bytes, bytes]]:
        now = timestamp.micros
        later = [due for due in requests.read() if due > now]
        requests.clear()
        early_at.clear()
        if later:
            for due in later:
                requests.add(due)
            early.set(Timestamp(micros=min(later)))
            early_at.write(min(later))
        stored = list(items.read())
        if not any(isinstance(item, bytes) for item in stored):
            return  # released already (the articles always come before a request is due)
        done = set(sent.read())
        links = [link for link in batch_links(stored) if link.time_us < now and link.record_id not in done]
        for link in links:
            sent.add(link.record_id)
        if links:
            self._early.inc(len(links))
            yield CLUSTERS, encode_links(links)

    @userstate.on_timer(RELEASE)
    def release(
        self,
        items: Any = beam.DoFn.StateParam(ITEMS),
        sent: Any = beam.DoFn.StateParam(SENT),
        requests: Any = beam.DoFn.StateParam(REQUESTS),
        early_at: Any = beam.DoFn.StateParam(EARLY_AT),
        early: Any = beam.DoFn.TimerParam(EARLY),
    ) -> Iterator[tuple[bytes, bytes]]:
        stored = list(items.read())
        done = set(sent.read())
        for state in (items, sent, requests, early_at):
            state.clear()
        early.clear()
        links = [link for link in batch_links(stored) if link.record_id not in done]
        if links:
            yield CLUSTERS, encode_links(links)


def batch_links(stored: Iterable[bytes | Match]) -> list[Link]:
    """A batch's links from its stored articles and matches: each article kept unless it has a match."""
    matches: dict[int, list[Match]] = {}
    articles: list[Link] = []
    for item in stored:
        if isinstance(item, bytes):
            articles += decode_links(item)
        else:
            matches.setdefault(item.later.record_id, []).append(item)
    return [
        article.to(best_match(found := matches.get(article.record_id, ())), id_conflict(found)) for article in articles
    ]


class ClusterCache:
    """The worker's copy of the clusters' roots (one key), with the token of the state it mirrors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.roots: ClusterRoots | None = None
        self.token: bytes | None = None
        self.stored = self.kept_at_pruning = 0


class LinkClustersFn(beam.DoFn):
    """One key: settle every live article's link on the root of its cluster, send it to its batch.

    ``ENTRIES`` holds the links taken in (one blob per message; after pruning, a snapshot), and
    the worker a :class:`ClusterRoots` built from them, trusted only while it carries the token
    last written to ``TOKEN`` (as :class:`MatchShardsFn` does with its shards). Once the entries
    have doubled since the last pruning, roots older than two TTLs before the message's earliest
    article are dropped (``FORGOTTEN`` remembers how far) and the bag rewritten. A stream that
    goes quiet keeps its last TTL of roots: no timer clears them, since a link may still come
    for them (a batch's articles can be far older than its release).
    """

    TOKEN = userstate.ReadModifyWriteStateSpec("token", coders.BytesCoder())
    FORGOTTEN = userstate.ReadModifyWriteStateSpec("forgotten", coders.VarIntCoder())
    ENTRIES = userstate.BagStateSpec("entries", coders.BytesCoder())
    PRUNE_FROM = 4096

    def __init__(self, config: DedupConfig, cache: shared.Shared, tag: str) -> None:
        self._config = config
        self._cache_handle = cache
        self._tag = tag
        self._waiting = beam.metrics.Metrics.distribution(STAGE, "links_waiting")

    def setup(self) -> None:
        self._cache: ClusterCache = self._cache_handle.acquire(ClusterCache, tag=self._tag)

    def process(
        self,
        element: tuple[bytes, bytes],
        token: Any = beam.DoFn.StateParam(TOKEN),
        forgotten: Any = beam.DoFn.StateParam(FORGOTTEN),
        entries: Any = beam.DoFn.StateParam(ENTRIES),
    ) -> Iterator[tuple[bytes, list[tuple[Link, str]]]]:
        _, message = element
        links = decode_links(message)
        cache = self._cache
        with cache.lock:  # released before anything is yielded
            stored_token = token.read()
            if cache.roots is None or stored_token is None or cache.token != stored_token:
                cache.roots = ClusterRoots(forgotten.read())
                count = 0
                for blob in entries.read():
                    replayed = decode_links(blob)
                    cache.roots.add(replayed)
                    count += len(replayed)
                cache.stored = cache.kept_at_pruning = count
            roots = cache.roots
            settled = roots.add(links)
            entries.add(message)
            cache.stored += len(links)
            if cache.stored >= max(self.PRUNE_FROM, 2 * cache.kept_at_pruning):
                if roots.prune(min(link.time_us for link in links) - 2 * self._config.ttl_micros):
                    entries.clear()
                    entries.add(encode_links(roots.snapshot()))
                    forgotten.write(roots.forgotten_before)
                cache.stored = cache.kept_at_pruning = len(roots)
            cache.token = uuid.uuid4().bytes
            token.write(cache.token)
            self._waiting.update(roots.waiting)
        by_batch: dict[str, list[tuple[Link, str]]] = {}
        for link, root in settled:
            by_batch.setdefault(link.batch_key, []).append((link, root))
        for batch, pairs in by_batch.items():
            yield batch.encode(), pairs
