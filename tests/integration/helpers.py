"""Run the real CLI against the real broker and read the lake back with DuckDB."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from pipelines.query import query
from tests.kit import ROOT


def wirestream(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``wirestream ARGS`` in a subprocess, as a user would run it (``env`` added to its environment)."""
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**subprocess_env(), **(env or {})},
    )
    if result.returncode != 0:
        raise AssertionError(
            f"wirestream {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def reports(start: int, count: int, site: str) -> list[bytes]:
    """``count`` short articles numbered from ``start`` at ``https://SITE/N``, the second a broken
    record (a dead letter) and the third an exact copy of the first (a duplicate)."""
    values = []
    for i in range(start, start + count):
        body = f"Report {i}: the council of Ghent approved {i} new bicycle lanes on Tuesday."
        values.append(json.dumps({"url": f"https://{site}/{i}", "body": body}).encode())
    values[1] = b"{not json"
    values[2] = values[0]
    return values


def run_until_caught_up(
    lake: Path | str, topic: str, bootstrap: str, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``wirestream run --until-caught-up`` for ``topic`` with the test's own consumer group."""
    return wirestream("run", *run_args(lake, topic, bootstrap), "--until-caught-up", *extra, timeout=timeout)


def run_args(lake: Path | str, topic: str, bootstrap: str) -> list[str]:
    """The ``run`` arguments for ``topic`` with the test's own consumer group."""
    return [f"--lake={lake}", f"--topic={topic}", f"--bootstrap-servers={bootstrap}", f"--group-id=g-{topic}"]


def committed_offsets(bootstrap: str, topic: str, partitions: int = 3) -> dict[int, int | None]:
    """The test group's committed offset of each partition (None where it committed nothing)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def reset_group_to_earliest(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Commit offset 0 for every partition, as an operator replaying the topic would."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in range(partitions)})
    consumer.close()


def assert_each_once(lake: Path | str, expected: set[tuple[str, int, int]]) -> Counter[tuple[str, int, int]]:
    """The accounting invariant: every expected record in the lake exactly once, nothing else."""
    counts = accounted(lake)
    missing, extra = expected - set(counts), set(counts) - expected
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    doubled = [key for key, count in counts.items() if count > 1]
    assert not doubled, doubled[:5]
    assert_links_resolve(lake)
    return counts


def assert_links_resolve(lake: Path | str) -> None:
    """Every ``duplicate_of`` names an article in ``articles``, and no ``article_id`` is there twice."""
    from pipelines.query import query

    _, dangling = query(
        str(lake),
        "SELECT d.article_id, d.duplicate_of, d.method FROM duplicates d"
        " ANTI JOIN articles a ON a.article_id = d.duplicate_of ORDER BY ALL",
    )
    assert not dangling, f"{len(dangling)} duplicate_of name no article: {dangling[:5]}"
    _, twice = query(str(lake), "SELECT article_id, count(*) FROM articles GROUP BY 1 HAVING count(*) > 1")
    assert not twice, f"article_id more than once in articles: {twice[:5]}"


def start_streaming(lake: Path | str, topic: str, bootstrap: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``wirestream run`` without ``--until-caught-up``, in its own process group."""
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", *run_args(lake, topic, bootstrap), *extra],
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Kill the pipeline and everything it started (Prism, workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=60)


def wait_until_accounted(lake: Path, expected: set[tuple[str, int, int]], timeout: float = 180) -> None:
    """Wait until every expected (topic, partition, offset) is in the lake."""
    deadline = time.monotonic() + timeout
    missing = expected
    while time.monotonic() < deadline:
        if (lake / "articles").exists() or (lake / "dead_letters").exists():
            missing = expected - set(accounted(lake))
            if not missing:
                return
        time.sleep(0.5)
    raise AssertionError(f"{len(missing)} records not in the lake after {timeout}s, e.g. {sorted(missing)[:5]}")


def accounted(lake: Path | str) -> Counter[tuple[str, int, int]]:
    """How often each (topic, partition, offset) appears across the four accounting tables."""
    _, rows = query(
        str(lake),
        """
        SELECT kafka_topic, kafka_partition, kafka_offset FROM articles
        UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM duplicates
        UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM quarantine
        UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM dead_letters""",
    )
    return Counter((topic, int(partition), int(offset)) for topic, partition, offset in rows)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("WIRESTREAM_LOG_LEVEL", "INFO")
    return env


def chromium() -> str | None:
    """A headless-capable Chromium on the PATH (``make chromium`` installs Debian's), or None."""
    return next(
        (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
    )


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM after Chromium loaded it headless (``--dump-dom``)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
    ]
    result = subprocess.run([browser, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
