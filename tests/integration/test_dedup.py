"""Deduplication through the real broker: copies on different partitions, and across a restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import assert_each_once, run_until_caught_up

pytestmark = pytest.mark.integration

UNRELATED = (
    "A small museum in the hill town reopened its doors this weekend after a two year restoration of the "
    "painted ceiling, which volunteers cleaned by hand. Visitors queued from early morning, and the curator "
    "said that tickets for the next three weekends had already sold out, mostly to families from nearby."
)


def _message(url: str, body: str, title: str) -> bytes:
    return json.dumps({"url": url, "title": title, "body": body}).encode()


def _copies(story: str) -> list[bytes]:
    """The seed story as four outlets would republish it at once, plus an unrelated article."""
    words = story.split()
    return [
        _message("https://wire.example/kursk", story, "North Korean troops in Kursk"),
        _message("https://daily.example/world/kursk-troops", story.replace("Wednesday", "Tuesday"), "Troops deployed"),
        _message("https://herald.example/k", " ".join(words[: len(words) * 3 // 5]), "Pyongyang sends soldiers"),
        _message("https://wire.example/kursk?utm_source=feed#top", "UPDATED " + story, "Kursk (updated)"),
        _message("https://museum.example/ceiling", UNRELATED, "Museum reopens"),
    ]


def _verdicts(lake: Path, topic: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """``(kept url → cluster_id, duplicate url → (duplicate_of, method))``."""
    _, kept = query(str(lake), f"SELECT url, article_id, cluster_id FROM articles WHERE kafka_topic = '{topic}'")
    for _, article_id, cluster_id in kept:
        assert cluster_id == article_id  # a kept article heads its own cluster
    _, duplicates = query(
        str(lake), f"SELECT url, duplicate_of, method, similarity FROM duplicates WHERE kafka_topic = '{topic}'"
    )
    for *_, similarity in duplicates:
        assert 0.0 <= similarity <= 1.0
    return {url: cluster for url, _, cluster in kept}, {url: (of, method) for url, of, method, _ in duplicates}


def test_copies_on_different_partitions_keep_one_and_name_it(
    bootstrap_servers: str, seed_text: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"dedup-{uuid.uuid4().hex[:10]}"
    values = _copies(seed_text)
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=[b"k0", b"k1", b"k2", b"k3", b"k4"])
    assert len({partition for partition, _ in placed[:4]}) >= 2  # the copies really are on different partitions
    run_until_caught_up(tmp_path, topic, bootstrap_servers)
    assert_each_once(tmp_path, {(topic, p, o) for p, o in placed})
    kept, duplicates = _verdicts(tmp_path, topic)
    story_urls = {json.loads(v)["url"] for v in values[:4]}
    kept_story = [url for url in kept if url in story_urls]
    assert len(kept_story) == 1, (kept, duplicates)
    assert "https://museum.example/ceiling" in kept
    kept_id = kept[kept_story[0]]
    assert set(duplicates) == story_urls - set(kept_story)
    assert {of for of, _ in duplicates.values()} == {kept_id}
    wire_urls = {"https://wire.example/kursk", "https://wire.example/kursk?utm_source=feed#top"}
    if kept_story[0] in wire_urls:  # the other wire URL is the same canonical URL: an exact duplicate
        assert duplicates[(wire_urls - set(kept_story)).pop()][1] == "exact"


def test_a_copy_after_a_restart_is_caught_from_the_lake(
    bootstrap_servers: str, seed_text: str, prism: Path, tmp_path: Path
) -> None:
    topic = f"dedup-restart-{uuid.uuid4().hex[:10]}"
    original, edited, *_ = _copies(seed_text)
    first = produce([original], bootstrap_servers, topic, partitions=3)
    run_until_caught_up(tmp_path, topic, bootstrap_servers)  # this process, and its state, are gone after it
    second = produce([edited, _message("https://museum.example/x", UNRELATED, "Museum")], bootstrap_servers, topic)
    run_until_caught_up(tmp_path, topic, bootstrap_servers)
    assert_each_once(tmp_path, {(topic, p, o) for p, o in first + second})
    kept, duplicates = _verdicts(tmp_path, topic)
    assert set(kept) == {"https://wire.example/kursk", "https://museum.example/x"}
    assert duplicates == {"https://daily.example/world/kursk-troops": (kept["https://wire.example/kursk"], "near")}
