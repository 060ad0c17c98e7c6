"""Soak: a streaming run for many minutes at a set produce rate, with kill -9s and a broker restart.

Run: ``make soak`` or ``python -m benchmarks.soak [--minutes 20] [--rate 2] [--kills 3]``.

A producer thread sends real article texts (``../shared/corpus``, the dedup benchmark's stream
of originals and copies, each record with its own URL) at ``--rate`` records per second for
``--minutes``. ``wirestream run`` streams them into a fresh lake. In the first half of the soak
the pipeline is killed with ``kill -9`` ``--kills`` times (and restarted at once) and the broker
is restarted once; the second half runs undisturbed, so the worker's memory can be judged over
a long stretch. At the end production stops, the run catches up, and SIGTERM drains it.

Printed: records produced, lost (produced but in no lake table) and doubled (in more than one
row), end-to-end latency percentiles (Kafka timestamp to lake commit, from the lake's record
log) overall and for the undisturbed half, and the launcher's resident memory (it hosts the SDK
worker) per minute, with its growth over the undisturbed half.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from benchmarks.cleaning import corpus_dir
from pipelines.produce import produce
from pipelines.query import query

ROOT = Path(__file__).resolve().parent.parent
KAFKA = ROOT / "infra" / "kafka" / "kafka.sh"
BOOTSTRAP = os.environ.get("WIRESTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def _texts(corpus: Path) -> list[str]:
    from benchmarks.dedup import build_stream

    return [doc.text for doc in build_stream(corpus)]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Producer(threading.Thread):
    """Sends one record every ``1 / rate`` seconds until stopped; remembers where each landed."""

    def __init__(self, topic: str, texts: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.topic, self.texts, self.rate = topic, texts, rate
        self.placed: list[tuple[int, int]] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        sent = 0
        started = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate) + 1
            chunk = [
                json.dumps(
                    {"url": f"https://soak.example.com/{self.topic}/{i}", "body": self.texts[i % len(self.texts)]}
                ).encode()
                for i in range(sent, due)
            ]
            if chunk:
                try:
                    self.placed += produce(chunk, BOOTSTRAP, self.topic, partitions=3)
                    sent = due
                except Exception:  # noqa: BLE001 - the broker is restarting: send these again
                    self.failed += 1
                    time.sleep(1)
            time.sleep(0.25)


def _start(lake: Path, topic: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            f"--lake={lake}",
            f"--topic={topic}",
            f"--bootstrap-servers={BOOTSTRAP}",
            f"--group-id=soak-{topic}",
            "--progress=log",
            "--progress-interval=60",
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _accounted(lake: Path) -> Counter[tuple[int, int]]:
    _, rows = query(
        str(lake),
        "SELECT kafka_partition, kafka_offset FROM articles UNION ALL SELECT kafka_partition, kafka_offset FROM"
        " duplicates UNION ALL SELECT kafka_partition, kafka_offset FROM quarantine UNION ALL"
        " SELECT kafka_partition, kafka_offset FROM dead_letters",
    )
    return Counter((int(p), int(o)) for p, o in rows)


def _latency(lake: Path, since: float = 0.0) -> tuple[float, float, float, int]:
    _, rows = query(
        str(lake),
        "SELECT quantile_cont(ms, 0.5) / 1000, quantile_cont(ms, 0.95) / 1000, max(ms) / 1000, count(*) FROM ("
        " SELECT epoch_ms(committed_at) - epoch_ms(event_time) AS ms FROM"
        f" read_parquet('{lake}/_records/*/*/*.parquet', hive_partitioning = false)"
        f" WHERE event_time IS NOT NULL AND epoch(committed_at) >= {since})",
    )
    return rows[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=2.0, help="records produced per second")
    parser.add_argument("--kills", type=int, default=3, help="kill -9s in the first half")
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--lake", default=None, help="default: a new temporary folder")
    args = parser.parse_args(argv)
    texts = _texts(corpus_dir(args.corpus))
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    lake = Path(args.lake or tempfile.mkdtemp(prefix="wirestream-soak-")) / "lake"
    log = lake.parent / "soak.log"
    print(f"soak: {args.minutes:g} min at {args.rate:g} records/s into {lake} (log: {log})", flush=True)
    total_s = args.minutes * 60
    half = total_s / 2
    disturbances = {half * (i + 1) / (args.kills + 2): "kill" for i in range(args.kills + 1)}
    broker_at = sorted(disturbances)[len(disturbances) // 2]
    disturbances[broker_at] = "broker"
    producer = _Producer(topic, texts, args.rate)
    warm_up = json.dumps({"url": f"https://soak.example.com/{topic}/warm-up", "body": texts[0]}).encode()
    producer.placed += produce([warm_up], BOOTSTRAP, topic, partitions=3)  # creates the topic before the run
    process = _start(lake, topic, log)
    producer.start()
    started = time.monotonic()
    memory: list[tuple[float, float]] = []
    pending = sorted(disturbances.items())
    undisturbed_from = time.time()
    expected: set[tuple[int, int]] = set()
    code = -1
    try:
        while (elapsed := time.monotonic() - started) < total_s:
            if pending and elapsed >= pending[0][0]:
                _, what = pending.pop(0)
                if what == "kill":
                    _kill(process)
                    process = _start(lake, topic, log)
                    print(f"  {elapsed / 60:5.1f} min: kill -9, restarted", flush=True)
                else:
                    subprocess.run([str(KAFKA), "down"], check=True, capture_output=True)
                    time.sleep(5)
                    subprocess.run([str(KAFKA), "up"], check=True, capture_output=True)
                    print(f"  {elapsed / 60:5.1f} min: broker restarted", flush=True)
                undisturbed_from = time.time()
            rss = _rss_mb(process.pid)
            if rss is not None:
                memory.append((elapsed, rss))
            time.sleep(5)
        producer.stop.set()
        producer.join()
        expected = set(producer.placed)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = _accounted(lake)
            if not expected - set(counts):
                break
            time.sleep(5)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=300)
    finally:
        producer.stop.set()
        _kill(process)
    counts = _accounted(lake)
    lost = expected - set(counts)
    doubled = [key for key, count in counts.items() if count > 1]
    p50, p95, most, records = _latency(lake)
    q50, q95, qmost, quiet = _latency(lake, since=undisturbed_from)
    print(f"produced {len(expected)} records ({producer.failed} produce calls retried); drain exit code {code}")
    print(f"lost: {len(lost)}   doubled: {len(doubled)}   in the lake: {sum(counts.values())}")
    print(f"latency, whole soak ({records} records): p50 {p50:.1f} s, p95 {p95:.1f} s, max {most:.1f} s")
    print(f"latency, undisturbed second half ({quiet} records): p50 {q50:.1f} s, p95 {q95:.1f} s, max {qmost:.1f} s")
    print("launcher (SDK worker) resident memory, MB, by minute:")
    by_minute: dict[int, float] = {}
    for elapsed, rss in memory:
        by_minute[int(elapsed // 60)] = rss
    print("  " + "  ".join(f"{minute}:{rss:.0f}" for minute, rss in sorted(by_minute.items())))
    tail = [rss for elapsed, rss in memory if elapsed >= half + (total_s - half) / 2]
    head = [rss for elapsed, rss in memory if half <= elapsed < half + (total_s - half) / 2]
    if head and tail:
        growth = sum(tail) / len(tail) - sum(head) / len(head)
        print(f"memory over the undisturbed half: {sum(head) / len(head):.0f} MB, then {sum(tail) / len(tail):.0f} MB")
        print(f"  ({growth:+.0f} MB between its two quarters)")
    return 0 if not lost and not doubled and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
