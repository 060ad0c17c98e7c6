"""Entity quality on re3d: the pipeline's entities against bare spaCy's, both against gold.

``python -m benchmarks.entity_quality``: for every re3d document, (1) bare spaCy (same model, same
components) on the raw text and (2) the pipeline's parse → clean → ExtractEntities rules on the
same document as an input message. Gold and predicted types are mapped to PERSON / ORG / LOC
(re3d Person, Organisation, Location; spaCy PERSON, ORG, and GPE/LOC/FAC as LOC; everything else
is left out). A prediction counts when its type and its exact character span on the raw text
match a gold entity; the pipeline's offsets, which refer to the cleaned text, are mapped back to
the raw text through the alignment of the two strings. Micro-averaged precision, recall and F1.
re3d labels nominal mentions ("the Army") too, so both scores sit well below spaCy's OntoNotes
figures; what matters here is that the pipeline loses nothing against bare spaCy.

Canonical forms are scored on the hand-judged cases in ``tests/component/canonical_cases.json`` (real
mentions from every corpus page; see its ``about``): *precision* is the share of the mentions the
rule lengthens that get a right longer name, *recall* the share of the mentions that have one
that get it. The rule only sees each case's own mentions, as ``canonicalise`` would in the article.
"""

from __future__ import annotations

import difflib
import glob
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CANONICAL_CASES = ROOT / "tests" / "component" / "canonical_cases.json"
GOLD_TYPES = {"Person": "PERSON", "Organisation": "ORG", "Location": "LOC"}
SPACY_TYPES = {"PERSON": "PERSON", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC"}

Span = tuple[str, int, int, str]


def load(corpus: Path) -> tuple[dict[str, str], set[Span]]:
    """Documents by id, and the gold spans ``(document, start, end, type)``."""
    documents: dict[str, str] = {}
    gold: set[Span] = set()
    for folder in sorted(glob.glob(str(corpus / "re3d" / "*"))):
        docs, ents = Path(folder, "documents.json"), Path(folder, "entities.json")
        if not docs.exists():
            continue
        for line in docs.read_text("utf-8-sig").splitlines():
            if line.strip():
                record = json.loads(line)
                documents[record["_id"]] = record["text"]
        for line in ents.read_text("utf-8-sig").splitlines():
            if line.strip():
                entity = json.loads(line)
                if entity["type"] in GOLD_TYPES and entity["documentId"] in documents:
                    gold.add((entity["documentId"], entity["begin"], entity["end"], GOLD_TYPES[entity["type"]]))
    return documents, gold


def offset_map(clean: str, raw: str) -> list[int]:
    """For each index of ``clean`` (and its end), the matching index in ``raw``."""
    mapping = [0] * (len(clean) + 1)
    matcher = difflib.SequenceMatcher(None, clean, raw, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(i1, i2 + 1):
            mapping[k] = j1 + min(k - i1, j2 - j1) if tag != "equal" else j1 + (k - i1)
    return mapping


def score(predicted: set[Span], gold: set[Span]) -> tuple[float, float, float]:
    """Micro precision, recall, F1."""
    hits = len(predicted & gold)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if hits else 0.0)


def compare(corpus: Path, nlp: Any) -> tuple[int, dict[str, set[Span]]]:
    """How many documents, and their gold and predicted spans: ``gold``, ``bare`` (on the raw text),
    ``bare_on_clean`` (on the cleaned text) and ``pipeline`` (the stage's rules on the cleaned text)."""
    from schemas.records import Article, KafkaRecord, SourceBatch, utc_now
    from transforms.clean import clean_article
    from transforms.entities import EntityConfig, annotate
    from transforms.parse import parse_record

    documents, gold = load(corpus)
    bare: set[Span] = set()
    for doc_id, doc in zip(documents, nlp.pipe(documents.values(), batch_size=32), strict=True):
        bare.update(
            (doc_id, e.start_char, e.end_char, SPACY_TYPES[e.label_]) for e in doc.ents if e.label_ in SPACY_TYPES
        )

    now = utc_now()
    articles = []
    for index, (doc_id, text) in enumerate(documents.items()):
        value = json.dumps({"id": doc_id, "url": f"https://re3d.example/{doc_id}", "body": text}).encode()
        record = KafkaRecord("re3d", 0, index, None, value, (), 0, now, SourceBatch("re3d", 0, index, index + 1, 1))
        article = clean_article(parse_record(record))
        assert isinstance(article, Article), article
        articles.append(article)
    pipeline: set[Span] = set()
    bare_on_clean: set[Span] = set()
    mappings = {a.article_id: offset_map(a.text, documents[a.article_id]) for a in articles}
    for article in annotate(nlp, articles, EntityConfig()):
        assert isinstance(article, Article)
        mapping = mappings[article.article_id]
        pipeline.update(
            (article.article_id, mapping[e.start], mapping[e.end], SPACY_TYPES[e.label])
            for e in article.entities
            if e.label in SPACY_TYPES
        )
    for article, doc in zip(articles, nlp.pipe([a.text for a in articles], batch_size=32), strict=True):
        mapping = mappings[article.article_id]
        bare_on_clean.update(
            (article.article_id, mapping[e.start_char], mapping[e.end_char], SPACY_TYPES[e.label_])
            for e in doc.ents
            if e.label_ in SPACY_TYPES
        )
    return len(documents), {"gold": gold, "bare": bare, "bare_on_clean": bare_on_clean, "pipeline": pipeline}


def canonical_scores(canonicalise: Callable[[Sequence[tuple[str, str, int, int]]], Any], cases: list[dict]) -> dict:
    """Counts over judged cases: ``cases``, ``lengthened``, ``right_lengthened``, ``should_lengthen``."""
    from schemas.entity_keys import strip_possessive

    def fold(text: str) -> str:
        return " ".join(strip_possessive(text).casefold().split())

    counts = {"cases": len(cases), "lengthened": 0, "right_lengthened": 0, "should_lengthen": 0}
    for case in cases:
        texts = [case["mention"], *case["same"], *case["other"]]
        got = fold(
            canonicalise([(text, case["label"], 10 * i, 10 * i + 1) for i, text in enumerate(texts)])[0].canonical
        )
        lengthened = got != fold(case["mention"])
        counts["lengthened"] += lengthened
        counts["right_lengthened"] += lengthened and got in {fold(form) for form in case["same"]}
        counts["should_lengthen"] += bool(case["same"])
    return counts


def main() -> int:
    corpus = Path(os.environ.get("WIRESTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (corpus / "re3d").is_dir():
        print(f"the shared corpus is missing at {corpus} (set WIRESTREAM_CORPUS)", file=sys.stderr)
        return 2
    from transforms.entities import EntityConfig, load_model

    count, spans = compare(corpus, load_model(EntityConfig().model))
    gold, bare, bare_on_clean, pipeline = spans["gold"], spans["bare"], spans["bare_on_clean"], spans["pipeline"]
    print(f"re3d: {count} documents, {len(gold)} gold PERSON/ORG/LOC entities")
    runs = (("bare spaCy, raw text", bare), ("bare spaCy, cleaned text", bare_on_clean), ("pipeline", pipeline))
    for name, predicted in runs:
        precision, recall, f1 = score(predicted, gold)
        print(f"{name:26} precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}  ({len(predicted)} predicted)")
    print(f"spans where the pipeline differs from bare spaCy on the text it annotates: {len(bare_on_clean ^ pipeline)}")
    print(f"spans where cleaning changed bare spaCy's answer: {len(bare ^ bare_on_clean)}")

    from transforms.entities import canonicalise

    cases = json.loads(CANONICAL_CASES.read_text("utf-8"))["cases"]
    counts = canonical_scores(canonicalise, cases)
    lengthened, right, should = counts["lengthened"], counts["right_lengthened"], counts["should_lengthen"]
    print(
        f"canonical forms on {counts['cases']} judged corpus cases: precision {right / lengthened:.3f} "
        f"({right}/{lengthened} lengthened), recall {right / should:.3f} ({right}/{should} that have a longer name)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
