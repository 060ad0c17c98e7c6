"""Near-duplicate detection on real text: wirestream's dedup core against datasketch's MinHashLSH.

Run: ``python -m benchmarks.dedup [--corpus DIR] [--repeat N]`` (``make bench`` runs it).

The data, built from ``../shared/corpus`` (nothing in it is written by us):

* one *story* per real article: the 53 fundus fixture pages (gold body), the 17 trafilatura
  evaluation pages and the 98 re3d documents;
* copies of each story as a wire republication would make them: the page's main text as our
  cleaning stage extracts it (a different extraction method), the page's whole visible text
  (boilerplate: navigation, footers, related links), the first 40–70 % of the text (truncated),
  a lightly edited copy (about 3 % of words replaced, one sentence dropped; the title is not
  part of the text, so a new headline changes nothing), and, for stories of 150 words or more,
  an *excerpt*: a contiguous run of 15–60 % of the story's words taken after its first 30 words
  (so it does not start like the story), wrapped in a lead-in and a tail taken from texts kept
  out of the stream, so that 72–100 % of the excerpt's words lie in the story;
* hard negatives come free: several stories per outlet (fundus publishers, re3d sources) on
  the same topics, which must not be merged; and *briefs*: 40–120 words of a re3d document kept
  out of the stream (every sixth), ending with one 10–25-word sentence lifted from a story of the
  stream. A brief is a story of its own: naming the story it shares a sentence with is wrong.

All copies are shuffled into one stream (seeded), each stamped with its place in it as its event
time, so "earlier" means earlier in the stream. An article is truly a duplicate when an earlier
article of the stream belongs to the same story; a predicted duplicate is right when the article
it names belongs to the same story. Precision, recall and F1 are over those predictions; docs/s
covers the whole job per document (tokens, shingles, MinHash, index, verification, roots), best of
``--repeat`` runs taken in turns, both libraries on the same stream in the same process. Also printed: bytes
per article the Beam stages remember, in keyed state (index shard entries, plus the ticket) and in worker
memory (the shards' in-memory copies).
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cleaning import FUNDUS, corpus_dir, load_corpus
from transforms.dedup_core import (
    SHARD_ENTRY,
    ArticleRef,
    ClusterRoots,
    DedupConfig,
    DedupIndex,
    Link,
    ShardIndex,
    encode_links,
    encode_ticket,
    fingerprint,
    key_number,
    words,
)


@dataclass(frozen=True)
class Doc:
    """One article of the stream: which story it copies and how."""

    story: str
    outlet: str
    variant: str
    text: str


def _visible_text(html: str) -> str:
    import lxml.html

    tree = lxml.html.fromstring(html)
    for element in tree.xpath("//script|//style|//noscript|//template"):
        element.drop_tree()
    body = tree.find("body")
    return " ".join((body if body is not None else tree).text_content().split())


def _truncate(text: str, rng: random.Random) -> str:
    tokens = text.split()
    return " ".join(tokens[: max(1, int(len(tokens) * rng.uniform(0.4, 0.7)))])


def _excerpt(text: str, filler: str, rng: random.Random) -> str:
    """15–60 % of ``text``'s words, contiguous, from after its first 30, 72–100 % of the result."""
    tokens, other = text.split(), filler.split()
    length = max(40, int(len(tokens) * rng.uniform(0.15, 0.6)))
    start = rng.randrange(30, max(31, len(tokens) - length))
    core = tokens[start : start + length]
    extra = int(len(core) * (1 - rng.uniform(0.72, 1.0)))
    lead = rng.randrange(0, max(1, len(other) - extra))
    wrap = other[lead : lead + extra]
    return " ".join(wrap[: extra // 2] + core + wrap[extra // 2 :])


def _brief(text: str, lifted: str, rng: random.Random) -> str:
    """40–120 words of ``text`` ending with a 10–25-word run of ``lifted``."""
    tokens, other = text.split(), lifted.split()
    length, sentence = rng.randrange(40, 121), rng.randrange(10, 26)
    start = rng.randrange(0, max(1, len(tokens) - length))
    at = rng.randrange(0, max(1, len(other) - sentence))
    return " ".join(tokens[start : start + length] + other[at : at + sentence])


def _edit(text: str, rng: random.Random) -> str:
    sentences = [s for s in text.replace("\n", " ").split(". ") if s]
    if len(sentences) > 3:
        del sentences[rng.randrange(1, len(sentences))]
    tokens = ". ".join(sentences).split()
    return " ".join("update" if rng.random() < 0.03 else token for token in tokens)


def build_stream(root: Path, seed: int = 1) -> list[Doc]:
    """The shuffled stream of stories and copies (see the module docstring)."""
    from transforms.clean import extract_html, normalise_text

    rng = random.Random(seed)
    stories: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    for page in load_corpus(root).pages:
        extracted = normalise_text(extract_html(page.html, page.url).text)
        outlet = page.page_id.split("/")[-1].split("_")[0] if page.corpus == FUNDUS else page.url.split("/")[2]
        base = page.expected_text if page.expected_text else extracted
        others = [("extracted", extracted)] if page.expected_text else []
        stories.append((page.page_id, outlet, base, [*others, ("boilerplate", _visible_text(page.html))]))
    held_out: list[tuple[str, str, str]] = []
    documents = 0
    for path in sorted(glob.glob(str(root / "re3d" / "*" / "documents.json"))):
        outlet = Path(path).parent.name
        for line in Path(path).read_text("utf-8").splitlines():
            if line.strip():
                document = json.loads(line)
                documents += 1
                entry = (f"re3d/{document['_id']}", outlet, document["text"])
                if documents % 6 == 0:
                    held_out.append(entry)
                else:
                    stories.append((*entry, []))
    stories = [story for story in stories if len(story[2].split()) >= 40]
    docs = []
    for story, outlet, base, copies in stories:
        docs.append(Doc(story, outlet, "original", base))
        docs.extend(Doc(story, outlet, name, text) for name, text in copies if text.strip())
        docs.append(Doc(story, outlet, "truncated", _truncate(base, rng)))
        docs.append(Doc(story, outlet, "edited", _edit(base, rng)))
        if len(base.split()) >= 150:
            docs.append(Doc(story, outlet, "excerpt", _excerpt(base, rng.choice(held_out)[2], rng)))
    for story, outlet, text in held_out:
        if len(text.split()) >= 40:
            docs.append(Doc(f"brief/{story}", outlet, "brief", _brief(text, rng.choice(stories)[2], rng)))
    rng.shuffle(docs)
    return docs


def _score(docs: Sequence[Doc], predicted: Sequence[int | None]) -> dict[str, float]:
    seen: set[str] = set()
    true_dups = correct = claimed = 0
    for doc, earlier in zip(docs, predicted, strict=True):
        is_dup = doc.story in seen
        seen.add(doc.story)
        true_dups += is_dup
        if earlier is not None:
            claimed += 1
            correct += docs[earlier].story == doc.story
    precision = correct / claimed if claimed else 1.0
    recall = correct / true_dups if true_dups else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "duplicates": true_dups, "claimed": claimed}


def run_ours(docs: Sequence[Doc], config: DedupConfig) -> list[int | None]:
    """Our rule: fingerprint in batches of 100 (as the stage does), index, decide; the article named is the root."""
    index = DedupIndex(config)
    tickets = []
    for start in range(0, len(docs), 100):
        chunk = docs[start : start + 100]
        refs = [
            ArticleRef(str(start + i), d.text, "", "", "bench", 0, start + i, start + i) for i, d in enumerate(chunk)
        ]
        batch = fingerprint(refs, time_us=start, batch_key=str(start), config=config)
        for ticket in batch:
            index.add(ticket)
        tickets.extend(batch)
    named = [index.duplicate_of(ticket) for ticket in tickets]
    return [None if article_id is None else int(article_id) for article_id in named]


def run_datasketch(docs: Sequence[Doc], config: DedupConfig) -> list[int | None]:
    """datasketch as its docs suggest: MinHash.update_batch of the same shingles, MinHashLSH query,
    then the candidate's Jaccard estimate checked against the same threshold; first seen wins."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=config.jaccard_threshold, num_perm=config.num_perm)
    sketches: dict[int, MinHash] = {}
    predicted: list[int | None] = []
    size = config.shingle_size
    for position, doc in enumerate(docs):
        tokens = words(doc.text)
        shingles = [b" ".join(tokens[i : i + size]) for i in range(max(1, len(tokens) - size + 1))]
        sketch = MinHash(num_perm=config.num_perm, seed=config.seed)
        sketch.update_batch(shingles)
        matches = [
            int(key) for key in lsh.query(sketch) if sketch.jaccard(sketches[int(key)]) >= config.jaccard_threshold
        ]
        predicted.append(min(matches) if matches else None)
        lsh.insert(str(position), sketch)
        sketches[position] = sketch
    return predicted


def state_bytes_per_article(docs: Sequence[Doc], config: DedupConfig) -> tuple[float, float]:
    """Mean bytes an article leaves behind in the Beam stages: ``(keyed state, worker memory)``.

    Keyed state: a 25-byte shard entry per index key, plus the ticket under its 8-byte record id
    (URL and content-hash keys included), plus its link in the clusters' bag. Worker memory: the
    shard copies' entries, measured on a :class:`ShardIndex` holding all of them (the entry plus
    its key in the search array), plus its root in the clusters' copy (:class:`ClusterRoots`,
    measured with ``tracemalloc``). Article ids are 24 characters, as the pipeline makes them.
    """
    refs = [
        ArticleRef(f"{i:024x}", d.text, f"https://{d.outlet}/{i}", f"{i:032x}", "bench", 0, i)
        for i, d in enumerate(docs)
    ]
    tickets = fingerprint(refs, time_us=0, batch_key="news+0+0000000000000000000+0000000000000000100", config=config)
    links = [Link.kept(ticket) for ticket in tickets]
    state = sum(len(ticket.keys) * SHARD_ENTRY.itemsize + 8 + 1 + len(encode_ticket(ticket)) for ticket in tickets)
    state += len(encode_links(links))
    index = ShardIndex()
    for ticket in tickets:
        for key in ticket.keys:
            index.add(key_number(key), (ticket.record_id, ticket.time_us, ticket.seed))
    memory = index.entries().nbytes + len(index) * 8
    tracemalloc.start()
    roots = ClusterRoots()
    roots.add(links)
    memory += tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return state / len(tickets), memory / len(tickets)


def _timed_pair(
    jobs: Sequence[Callable[[], list[int | None]]], repeat: int
) -> tuple[list[tuple[list[int | None], float]], list[float]]:
    """Each job's result and best time, and the second job's time over the first's in each turn.

    The jobs take turns, so both see the same machine load; the per-turn ratios show how much the
    load (and this VM's drifting CPU speed) moved the ratio of the best times.
    """
    best = [float("inf")] * len(jobs)
    results: list[list[int | None]] = [[] for _ in jobs]
    ratios = []
    for _ in range(repeat):
        seconds = []
        for index, job in enumerate(jobs):
            started = time.perf_counter()
            results[index] = job()
            seconds.append(time.perf_counter() - started)
            best[index] = min(best[index], seconds[-1])
        ratios.append(seconds[-1] / seconds[0])
    return list(zip(results, best, strict=True)), ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default ../shared/corpus or $WIRESTREAM_CORPUS)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per library, in turns; the best counts")
    args = parser.parse_args(argv)
    root = corpus_dir(args.corpus)
    if not (root / "re3d").is_dir() or not (root / "fundus-fixtures-en").is_dir():
        print(f"the shared corpus is missing at {root} (set WIRESTREAM_CORPUS or --corpus)", file=sys.stderr)
        return 2
    config = DedupConfig()
    docs = build_stream(root)
    variants: dict[str, int] = {}
    for doc in docs:
        variants[doc.variant] = variants.get(doc.variant, 0) + 1
    stories = len({d.story for d in docs})
    print(f"stream: {len(docs)} articles from {stories} stories ({', '.join(f'{k} {v}' for k, v in variants.items())})")
    print(
        f"config: {config.shingle_size}-word shingles, {config.num_perm} permutations, {config.bands} bands × "
        f"{config.rows} rows, Jaccard ≥ {config.jaccard_threshold} or containment ≥ {config.containment_threshold}"
    )
    ((ours, ours_s), (theirs, theirs_s)), ratios = _timed_pair(
        [lambda: run_ours(docs, config), lambda: run_datasketch(docs, config)], args.repeat
    )
    rows = [("wirestream (rensa + LSH + verify)", ours, ours_s), ("datasketch MinHashLSH", theirs, theirs_s)]
    print(f"{'':36} {'precision':>9} {'recall':>7} {'F1':>6} {'docs/s':>9}")
    for name, predicted, seconds in rows:
        score = _score(docs, predicted)
        print(
            f"{name:36} {score['precision']:9.3f} {score['recall']:7.3f} {score['f1']:6.3f} {len(docs) / seconds:9.0f}"
        )
    print(
        f"throughput ratio wirestream / datasketch: {theirs_s / ours_s:.1f}× (best times; "
        f"per turn {min(ratios):.1f}–{max(ratios):.1f}×, median {statistics.median(ratios):.1f}×)"
    )
    by_variant: dict[str, list[int]] = {}
    seen: set[str] = set()
    for doc, earlier in zip(docs, ours, strict=True):
        if doc.story in seen:
            hit = earlier is not None and docs[earlier].story == doc.story
            by_variant.setdefault(doc.variant, [0, 0])[0] += hit
            by_variant.setdefault(doc.variant, [0, 0])[1] += 1
        seen.add(doc.story)
    print("wirestream recall by kind of copy: " + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(by_variant.items())))
    briefs = [earlier for doc, earlier in zip(docs, ours, strict=True) if doc.variant == "brief"]
    chained = sum(earlier is not None and ours[earlier] is not None for earlier in ours)
    print(
        f"wirestream briefs taken for duplicates: {sum(e is not None for e in briefs)}/{len(briefs)}; "
        f"duplicates naming an article that is itself a duplicate: {chained}"
    )
    state, memory = state_bytes_per_article(docs, config)
    print(f"per article remembered: {state:.0f} bytes of keyed state, {memory:.0f} bytes of worker memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
