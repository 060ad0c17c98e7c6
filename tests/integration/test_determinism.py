"""Determinism: the lake's decisions are a function of the topic's content alone.

One topic holds real article texts from ``../shared/corpus`` with the copies a wire republication
makes (the dedup benchmark's stream: originals, other extractions of the same page, whole-page
boilerplate, truncations, edited copies, excerpts, and briefs sharing a sentence with a story),
plus exact re-sends, broken records, hostile values in contract fields (lone surrogates, NULs,
invisible-only bodies) and stories claiming one id. The same topic is read into five lakes:

(a) a bounded run; (b) a bounded run with another ``--max-batch-records``; (c) a streaming run
while the records are produced in trickles; (d) a streaming run killed with ``kill -9`` and
restarted; (e) an Iceberg lake (``--table-format iceberg``), streaming, killed once, restarted and
drained with SIGTERM. (c) runs alone while the records arrive; then (a), (b), (d) and (e) run all at
once: four pipelines on this two-core machine, each under the others' CPU load (the runs beside a
CPU hog of the streaming issue, without a process that only burns a core).

Every record's decision (article; duplicate of which article, and how; quarantined, and for which
expectations; dead letter, and why) must be the same in all five lakes, no lake may hold an
``article_id`` twice in ``articles``, and every ``duplicate_of`` names an article in
``articles``. Named-entity recognition plays no part in these decisions, so the runs use a blank
spaCy pipeline to keep the test short; everything else is the real pipeline.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import accounted, assert_links_resolve, kill_group, run_args

pytestmark = pytest.mark.integration

RESEND_EVERY = 23
TRICKLES = 6


def _messages(corpus: Path) -> list[bytes]:
    from benchmarks.dedup import build_stream

    values = []
    for doc in build_stream(corpus):
        if zlib.crc32(doc.story.encode()) % 2:
            continue  # half the stories, each with all its copies: the suite's time budget
        slug = re.sub(r"[^a-z0-9]+", "-", f"{doc.story}-{doc.variant}".lower()).strip("-")
        outlet = re.sub(r"[^a-z0-9]+", "-", doc.outlet.lower()).strip("-") or "outlet"
        message = {"url": f"https://{outlet}.example.com/{slug}", "title": doc.story, "body": doc.text}
        values.append(json.dumps(message).encode())
    resends = values[::RESEND_EVERY]  # exact re-sends, later in the topic
    broken = [b"{not json", b"\xff\xfe not utf-8", json.dumps({"url": "https://x.example.com/a"}).encode()]
    # Written for this test: an article the expectation suite quarantines (no URL) and one in French,
    # kept (every language reaches articles).
    quarantined = [
        json.dumps({"id": "no-url-1", "body": "The harbour council of Bergen met on Monday to vote on fees. " * 5}),
        json.dumps(
            {
                "url": "https://fr.example.com/port",
                "body": "Le conseil du port de Marseille a voté lundi une hausse des redevances. " * 5,
            }
        ),
    ]
    values = values + resends + broken + [value.encode() for value in quarantined] + _HOSTILE
    # Written for this test: three stories claiming one id (the first keeps it, the others are
    # id_conflict dead letters) and a copy of the second under its own id (kept: what it copies
    # is not in the lake). Spread over the topic, so that they fall in different trickles.
    claimed = [json.dumps(message).encode() for message in _CLAIMED]
    for position, value in zip((1, len(values) // 2, 3 * len(values) // 4, len(values)), claimed, strict=True):
        values.insert(position, value)
    return values


_HOSTILE = [
    # Hostile values in contract fields (valid JSON; a lone surrogate is an escape, not a character):
    # an id with a lone surrogate and a javascript: URL are dead letters, a body of invisible
    # characters is empty; NULs, control characters and lone surrogates in free text are repaired.
    b'{"id": "id-\\udfff", "url": "https://h.example.com/1", "body": "The ferry to Hirtshals left late on Monday."}',
    b'{"url": "javascript:alert(1)", "body": "The ferry to Hirtshals left late on Tuesday evening."}',
    json.dumps({"url": "https://h.example.com/3", "body": "\u200b\ufeff\u00ad \u2060"}).encode(),
    b'{"url": "https://h.example.com/4", "title": "Ferry\\u0000 \\ud800 late", "authors": ["K\\udfffari"],'
    b' "body": "The ferry to Hirtshals was late again on Wednesday, \\u0007 the operator said in a statement."}',
]


_MUSEUM = (
    "A small museum in the hill town reopened its doors this weekend after a two year restoration of the painted "
    "ceiling, which volunteers cleaned by hand. Visitors queued from early morning, and the curator said that "
    "tickets for the next three weekends had already sold out, mostly to families from the valley below."
)
_CLAIMED = [
    {
        "id": "claimed-id",
        "url": "https://ids.example.com/harbour",
        "body": "The harbour council of Stavanger voted on Thursday to double the fees paid by cruise ships, "
        "saying the money would go to shore power so that ships no longer burn diesel at the quay. Ship "
        "owners warned that some lines could skip the port next summer, and the council promised a review.",
    },
    {"id": "claimed-id", "url": "https://ids.example.com/museum", "body": _MUSEUM},
    {"id": "museum-copy", "url": "https://copies.example.org/museum", "body": _MUSEUM.replace("small", "little")},
    {
        "id": "claimed-id",
        "url": "https://ids.example.com/tram",
        "body": "Trams returned to the old bridge on Sunday for the first time in forty years, after the city "
        "laid new rails across the river and rebuilt the stops on both banks. The first tram left at six in "
        "the morning with the mayor on board, and riders said the trip into the centre was ten minutes shorter.",
    },
]


def _decisions(lake: Path) -> dict[tuple[int, int], tuple[Any, ...]]:
    """Each record's decision, by (partition, offset)."""
    tables = {
        "articles": "'article', article_id, NULL",
        "duplicates": "'duplicate', duplicate_of, method",
        "quarantine": "'quarantine', article_id, array_to_string(list_sort(failed_expectations), ',')",
        "dead_letters": "'dead_letter', stage, reason",
    }
    decisions: dict[tuple[int, int], tuple[Any, ...]] = {}
    for table, columns in tables.items():
        _, rows = query(str(lake), f"SELECT kafka_partition, kafka_offset, {columns} FROM {table}")
        for partition, offset, *decision in rows:
            assert (partition, offset) not in decisions, (table, partition, offset)
            decisions[(int(partition), int(offset))] = tuple(decision)
    return decisions


def _start(lake: Path, topic: str, bootstrap: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, bootstrap), *extra],
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for(lake: Path, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (lake / "articles").exists() and sum(accounted(lake).values()) >= count:
            return
        time.sleep(1.5)  # each look reads the whole lake: fewer leave the cores to the four runs
    raise AssertionError(f"fewer than {count} records in {lake} after {timeout} s")


def _holds_lease(lake: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until ``process`` holds the lake's lease: it has started (a restarted run may find its
    lake complete at once, and a SIGTERM before the interpreter has run any of our code kills it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads((lake / "_lease.json").read_text())["pid"] == process.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the run on {lake} did not take its lease (exit {process.poll()})")


def _drain(process: subprocess.Popen[bytes], lake: Path, log: Path) -> None:
    import signal

    _holds_lease(lake, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, log.read_text()[-3000:]


def _killed_then_drained(
    lake: Path, topic: str, bootstrap: str, log: Path, extra: tuple[str, ...], kills: list[int], total: int
) -> None:
    """Streaming into ``lake``: killed with ``kill -9`` once it holds each count of ``kills`` records,
    restarted each time, and drained with SIGTERM once it holds all ``total``."""
    for count in kills:
        process = _start(lake, topic, bootstrap, log, *extra)
        try:
            _wait_for(lake, count)
        finally:
            kill_group(process)
    process = _start(lake, topic, bootstrap, log, *extra)
    try:
        _wait_for(lake, total)
        _drain(process, lake, log)
    finally:
        kill_group(process)


def test_five_ways_of_running_decide_alike(bootstrap_servers: str, prism: Path, corpus: Path, tmp_path: Path) -> None:
    import spacy

    blank = tmp_path / "blank-en"
    spacy.blank("en").to_disk(blank)
    values = _messages(corpus)
    assert len(values) >= 300
    topic = f"determinism-{uuid.uuid4().hex[:8]}"
    model = f"--spacy-model={blank}"
    lakes = {name: tmp_path / name for name in "abcde"}

    def group(name: str) -> str:  # each lake its own consumer group: the lake is the resume point
        return f"--group-id=g-{topic}-{name}"

    # (c) streaming while the records arrive in trickles
    log = tmp_path / "streaming.log"
    produce(values[:1], bootstrap_servers, topic, partitions=3)
    streaming = _start(lakes["c"], topic, bootstrap_servers, log, model, group("c"), "--progress=off")
    try:
        step = -(-(len(values) - 1) // TRICKLES)
        for first in range(1, len(values), step):
            produce(values[first : first + step], bootstrap_servers, topic, partitions=3)
            time.sleep(1.5)
        _wait_for(lakes["c"], len(values))
        _drain(streaming, lakes["c"], log)
    finally:
        kill_group(streaming)

    # (a), (b), (d) and (e) at once, each beside the other three
    def bounded(name: str, *extra: str) -> None:
        log = tmp_path / f"{name}.log"
        process = _start(lakes[name], topic, bootstrap_servers, log, model, group(name), "--until-caught-up", *extra)
        try:
            assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
        finally:
            kill_group(process)  # what a failed or timed-out run left running

    # (d) streaming, killed once half the records are in, restarted and drained
    restarts_log = tmp_path / "restarts.log"
    restarts = (model, group("d"), "--max-batch-records=50", "--progress=off")
    n, half = len(values), len(values) // 2
    # (e) Iceberg tables: streaming, killed at its first commit (the committer takes what is
    # waiting) and restarted, so deduplication recalls the killed run's articles from the _records
    # table's snapshot; then drained with SIGTERM
    iceberg_log = tmp_path / "iceberg.log"
    iceberg = (model, group("e"), "--table-format=iceberg", "--max-batch-records=10", "--progress=off")
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = [
            pool.submit(bounded, "a"),
            pool.submit(bounded, "b", "--max-batch-records=41"),
            pool.submit(_killed_then_drained, lakes["d"], topic, bootstrap_servers, restarts_log, restarts, [half], n),
            pool.submit(_killed_then_drained, lakes["e"], topic, bootstrap_servers, iceberg_log, iceberg, [1], n),
        ]
        for run in runs:
            run.result()
    read = re.findall(r"read \(records accounted for this run\): (\d+)", iceberg_log.read_text())
    assert len(read) == 1 and 0 < int(read[0]) < len(values), read  # the restart read the rest

    decisions = {name: _decisions(lake) for name, lake in lakes.items()}
    assert len(decisions["a"]) == len(values)
    kinds = [decision[0] for decision in decisions["a"].values()]
    assert kinds.count("duplicate") > 100 and kinds.count("article") > 50
    assert kinds.count("dead_letter") == 8 and kinds.count("quarantine") == 1
    reasons = sorted(d[2] for d in decisions["a"].values() if d[0] == "dead_letter")
    assert {"invalid_id", "invalid_url", "empty_body"} <= set(reasons), reasons
    by_id = {decision[1]: key for key, decision in decisions["a"].items() if decision[0] == "article"}
    assert "claimed-id" in by_id and "museum-copy" in by_id
    assert (
        sorted(d for d in decisions["a"].values() if d[0] == "dead_letter" and d[1] == "dedup")
        == [("dead_letter", "dedup", "id_conflict")] * 2
    )
    for name, found in decisions.items():
        differing = sorted(key for key in decisions["a"] if found.get(key) != decisions["a"][key])
        examples = [(key, decisions["a"][key], found.get(key)) for key in differing[:5]]
        assert not differing, f"({name}) decides {len(differing)} records unlike (a), e.g. {examples}"
    for lake in lakes.values():
        assert_links_resolve(lake)
