"""HTML → main-text extraction benchmark on real news pages (quality and single-core throughput).

Run ``python -m benchmarks.cleaning [--corpus DIR] [--json OUT] [--passes N] [--only TEXT ...]``. The
corpus is ``--corpus``, else the ``WIRESTREAM_CORPUS`` setting, else ``<repo root>/../shared/corpus``;
without it the run exits with status 2.
Nothing here imports Beam except :func:`clean_article_extractor`, which measures the project's own
``transforms.clean.clean_article`` (that module's stage wrapper imports Beam).

Corpora
-------
``fundus``
    ``fundus-fixtures-en/{us,uk}``: ``<Publisher>.json`` maps parser versions (``V1``, ``V1_1``, ``V2`` …) to
    one expected output each. fundus' tests pair each version with the page crawled while that version was
    current, so the pairing rule is: versions in version order ↔ that publisher's ``<Publisher>_<date>.html.gz``
    files in date order, used only when the counts agree *and* every expected title occurs in its page;
    anything else is skipped and counted in the load notes (on fundus @ 18da6e5 all 53 pairs verify).
    Expected body = summary + section headlines + paragraphs. URLs come from ``meta.info``.
``trafilatura-eval``
    ``trafilatura-eval-en-news``: 17 pages, each with short ``with`` segments (must be kept) and ``without``
    segments (boilerplate, must be dropped), some only one word long, so shingles do not fit; see below.

Metrics
-------
Body, fundus (Zyte article-extraction-benchmark style): lower-cased ``\\w+`` tokens, multisets of 4-token
shingles; per page tp/fp/fn over shingle counts; precision averaged over the pages with any predicted
shingle, recall over the pages with any expected shingle, F1 = harmonic mean of the two averages. (Zyte's
script does not lower-case; the project asked for lower-casing.)

Body, trafilatura-eval (segment containment, as trafilatura's own evaluation): output and segments are
reduced to their lower-cased tokens joined by single spaces; a ``with`` segment found in the output is a
true positive, one missing a false negative; a ``without`` segment found is a false positive. Per page
precision tp/(tp+fp) and recall tp/(tp+fn), averaged with the same conventions as above.

Title accuracy: NFKC, case-folded, whitespace-collapsed exact match with the expected title. Date accuracy:
the extracted date's calendar day equals the expected date's day as written (the publisher's own offset).
Each is over the pages that have an expected value; fundus and trafilatura-eval are reported apart.

Authors accuracy (fundus only; its fixtures list the expected authors): the extracted set of names equals
the expected set after the same normalisation as titles, over pages with expected authors, for the
configurations that return authors.

Throughput: every page decompressed and decoded in memory first; only the extraction call is timed, over
all pages of both corpora, with the process pinned to one CPU. All configurations run in ``--passes`` (3)
interleaved passes (each pass runs every configuration over all pages, the order rotated between passes),
so that load from other processes on a shared machine falls on all of them alike. ``pages/s cpu`` = pages
/ the sum of each page's least CPU time (``time.process_time``) across passes (``per_page[].ms``): CPU
time leaves out the time spent waiting for a shared core; ``wall p/s`` is the best pass by the wall clock.
``× ref`` compares with the bare reference, ``trafilatura.extract(html, url=...)`` with its defaults, which
always runs; compare configurations only within one run.

Configurations (:func:`configurations`): the reference; the project's ``clean_article`` end to end,
and again with ``favor_recall`` (trafilatura then runs its fallback extractors only when its own
text is short);
trafilatura 2.3.1 ``bare_extraction`` (default, ``fast``,
``favor_precision``, ``favor_recall``, …, with and without its metadata pass); "lean" = trafilatura text
without the metadata pass + :func:`page_title` + ``htmldate.find_date(extensive_search=False)``;
resiliparse ``extract_plain_text(main_content=True)`` + :func:`page_title` when installed; htmldate alone
(date only). Reuse :func:`evaluate` / :func:`evaluate_many` for anything else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import gzip
import html as html_lib
import json
import os
import platform
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
FUNDUS = "fundus"
TRAFILATURA_EVAL = "trafilatura-eval"
SHINGLE_SIZE = 4
POOR_F1 = 0.8
REFERENCE = "trafilatura extract() (bare)"

_TOKEN = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_VERSION = re.compile(r"V(\d+)(?:_(\d+))?")
_FIXTURE_DATE = re.compile(r"_(\d{4})_(\d{2})_(\d{2})\.html\.gz$")
_OG_TITLE = re.compile(r"""<meta\s[^>]*?(?:property|name)\s*=\s*["']og:title["'][^>]*>""", re.I)
_CONTENT = re.compile(r"""\scontent\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.I | re.S)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")

Counts = tuple[float, float, float]


@dataclass(frozen=True)
class Page:
    """One news page with what a good extractor should produce from it."""

    page_id: str
    corpus: str
    url: str
    html: str
    expected_text: str | None = None
    expected_title: str | None = None
    expected_date: str | None = None
    expected_authors: tuple[str, ...] | None = None
    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Extraction:
    """What an extractor found: main text and, where it has them, title, ``YYYY-MM-DD`` date, authors."""

    text: str
    title: str | None = None
    date: str | None = None
    authors: tuple[str, ...] | None = None


@dataclass
class Corpus:
    """The loaded pages and notes on anything skipped."""

    pages: list[Page] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- loading


def corpus_dir(explicit: str | Path | None = None) -> Path:
    """The corpus folder: the argument, else ``WIRESTREAM_CORPUS``, else ``<repo>/../shared/corpus``."""
    return Path(explicit or os.environ.get("WIRESTREAM_CORPUS") or DEFAULT_CORPUS)


def _read_gz(path: Path) -> str:
    data = gzip.decompress(path.read_bytes())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from trafilatura.utils import decode_file

        return str(decode_file(data))


def _squash(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _day(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return value.strip()[:10] or None


def _version_key(name: str) -> tuple[int, int]:
    match = _VERSION.fullmatch(name)
    if not match:
        raise ValueError(name)
    return int(match.group(1)), int(match.group(2) or 0)


def _expected_body(body: dict[str, Any]) -> str:
    parts: list[str] = list(body.get("summary") or [])
    for section in body.get("sections") or []:
        parts.extend(section.get("headline") or [])
        parts.extend(section.get("paragraphs") or [])
    return "\n\n".join(part for part in parts if part)


def load_fundus(root: Path, corpus: Corpus) -> None:
    """Add the fundus fixture pages (pairing rule in the module docstring)."""
    for region_dir in sorted((root / "fundus-fixtures-en").glob("*/")):
        meta = json.loads((region_dir / "meta.info").read_text("utf-8"))
        for spec_path in sorted(region_dir.glob("*.json")):
            publisher = spec_path.stem
            try:
                versions = sorted(json.loads(spec_path.read_text("utf-8")).items(), key=lambda kv: _version_key(kv[0]))
            except ValueError as error:
                corpus.notes.append(f"fundus {region_dir.name}/{publisher}: unknown version key {error}; skipped")
                continue
            files = sorted(
                (p for p in region_dir.glob(f"{publisher}_*.html.gz") if _FIXTURE_DATE.search(p.name)),
                key=lambda p: _FIXTURE_DATE.search(p.name).groups(),  # type: ignore[union-attr]
            )
            if len(files) != len(versions):
                corpus.notes.append(
                    f"fundus {region_dir.name}/{publisher}: {len(versions)} versions but {len(files)} pages; skipped"
                )
                continue
            for (version, expected), path in zip(versions, files, strict=True):
                page_html = _read_gz(path)
                title = expected.get("title") or ""
                if not title or _squash(title) not in _squash(html_lib.unescape(page_html)):
                    corpus.notes.append(f"fundus {path.name}: title of {version} not in the page; pair skipped")
                    continue
                corpus.pages.append(
                    Page(
                        page_id=f"{region_dir.name}/{path.name.removesuffix('.html.gz')}",
                        corpus=FUNDUS,
                        url=meta.get(path.name, {}).get("url", ""),
                        html=page_html,
                        expected_text=_expected_body(expected.get("body") or {}),
                        expected_title=title,
                        expected_date=_day(expected.get("publishing_date")),
                        expected_authors=tuple(expected.get("authors") or ()),
                    )
                )


def load_trafilatura_eval(root: Path, corpus: Corpus) -> None:
    """Add the trafilatura evaluation pages with their kept/dropped segments."""
    folder = root / "trafilatura-eval-en-news"
    entries = json.loads((folder / "evaldata_en_news.json").read_text("utf-8"))
    for url, entry in entries.items():
        path = folder / "html" / f"{entry['file']}.gz"
        if not path.exists():
            corpus.notes.append(f"trafilatura-eval {entry['file']}: page missing; skipped")
            continue
        corpus.pages.append(
            Page(
                page_id=entry["file"].removesuffix(".html"),
                corpus=TRAFILATURA_EVAL,
                url=url,
                html=_read_gz(path),
                expected_title=entry.get("title") or None,
                expected_date=_day(entry.get("date")),
                keep=tuple(entry.get("with") or ()),
                drop=tuple(entry.get("without") or ()),
            )
        )


def load_corpus(root: Path) -> Corpus:
    """All benchmark pages under ``root``."""
    corpus = Corpus()
    load_fundus(root, corpus)
    load_trafilatura_eval(root, corpus)
    return corpus


# --------------------------------------------------------------------------------------------- metrics


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _TOKEN.findall(text.lower())


def shingles(text: str, size: int = SHINGLE_SIZE) -> Counter[tuple[str, ...]]:
    """Multiset of ``size``-token shingles (one shorter shingle for a text under ``size`` tokens)."""
    words = tokens(text)
    return Counter(tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1)) if words[i : i + size])


def shingle_counts(expected: str, predicted: str) -> Counts:
    """(tp, fp, fn) over 4-token shingle counts."""
    truth, guess = shingles(expected), shingles(predicted)
    tp = sum((truth & guess).values())
    return float(tp), float(sum(guess.values()) - tp), float(sum(truth.values()) - tp)


def segment_counts(text: str, keep: Iterable[str], drop: Iterable[str]) -> Counts:
    """(tp, fp, fn): ``keep`` segments found / ``drop`` segments found / ``keep`` segments missing."""
    haystack = " ".join(tokens(text))
    kept = [" ".join(tokens(s)) for s in keep]
    dropped = [" ".join(tokens(s)) for s in drop]
    tp = sum(1 for s in kept if s and s in haystack)
    fn = sum(1 for s in kept if s and s not in haystack)
    fp = sum(1 for s in dropped if s and s in haystack)
    return float(tp), float(fp), float(fn)


def precision_score(tp: float, fp: float, fn: float) -> float:
    """Zyte's per-page precision."""
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fp) if tp + fp else 0.0


def recall_score(tp: float, fp: float, fn: float) -> float:
    """Zyte's per-page recall."""
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fn) if tp + fn else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def aggregate(counts: Sequence[Counts]) -> dict[str, float]:
    """Page-averaged precision and recall, and their harmonic mean."""
    precisions = [precision_score(*c) for c in counts if c[0] + c[1] > 0]
    recalls = [recall_score(*c) for c in counts if c[0] + c[2] > 0]
    precision = sum(precisions) / len(precisions) if precisions else 0.0
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def title_matches(expected: str, found: str | None) -> bool:
    """Exact match after NFKC, case-folding and whitespace collapsing."""
    return bool(found) and _squash(expected) == _squash(found or "")


def date_matches(expected_day: str, found: str | None) -> bool:
    """The same calendar day."""
    return _day(found) == expected_day


def authors_match(expected: Sequence[str], found: Sequence[str] | None) -> bool:
    """The same set of names after NFKC, case-folding and whitespace collapsing."""
    return {_squash(name) for name in expected} == {_squash(name) for name in found or ()}


# ------------------------------------------------------------------------------------------ evaluation


def _score_page(page: Page, out: Extraction) -> dict[str, Any]:
    if page.corpus == FUNDUS:
        counts = shingle_counts(page.expected_text or "", out.text)
    else:
        counts = segment_counts(out.text, page.keep, page.drop)
    precision, recall = precision_score(*counts), recall_score(*counts)
    return {
        "page": page.page_id,
        "corpus": page.corpus,
        "counts": counts,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "words": len(tokens(out.text)),
        "title_ok": title_matches(page.expected_title, out.title) if page.expected_title else None,
        "date_ok": date_matches(page.expected_date, out.date) if page.expected_date else None,
        "authors_ok": (
            authors_match(page.expected_authors, out.authors)
            if page.expected_authors and out.authors is not None
            else None
        ),
        "found_title": out.title,
        "found_date": out.date,
    }


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # an extractor that never returns a title (or date) has no accuracy for it, rather than 0
    any_title = any(r["found_title"] for r in rows)
    any_date = any(r["found_date"] for r in rows)
    titles = [r["title_ok"] for r in rows if r["title_ok"] is not None and any_title]
    dates = [r["date_ok"] for r in rows if r["date_ok"] is not None and any_date]
    authors = [r["authors_ok"] for r in rows if r["authors_ok"] is not None]
    return {
        "pages": len(rows),
        **aggregate([r["counts"] for r in rows]),
        "empty": sum(1 for r in rows if r["words"] == 0),
        "errors": sum(1 for r in rows if r.get("error")),
        "title_accuracy": sum(titles) / len(titles) if titles else None,
        "date_accuracy": sum(dates) / len(dates) if dates else None,
        "authors_accuracy": sum(authors) / len(authors) if authors else None,
    }


@dataclass
class _Run:
    """One configuration's inputs, first outputs and best per-page times, filled pass by pass."""

    extract_fn: Callable[[Any], Extraction]
    inputs: list[Any]
    outputs: list[tuple[Extraction, str | None]] = field(default_factory=list)
    page_cpu: list[float] = field(default_factory=list)
    best_wall: float = float("inf")

    def timed_pass(self) -> None:
        gc.collect()
        wall = 0.0
        results: list[tuple[Extraction, str | None]] = []
        cpu_times: list[float] = []
        for item in self.inputs:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            try:
                result, error = self.extract_fn(item), None
            except Exception as exc:  # a crash is a failed extraction, not a failed benchmark
                result, error = Extraction(""), f"{type(exc).__name__}: {exc}"[:200]
            cpu_times.append(time.process_time() - cpu_start)
            wall += time.perf_counter() - wall_start
            results.append((result, error))
        previous = self.page_cpu or cpu_times
        self.page_cpu = [min(pair) for pair in zip(previous, cpu_times, strict=True)]
        self.best_wall = min(self.best_wall, wall)
        self.outputs = self.outputs or results


def _report(run: _Run, pages: Sequence[Page]) -> dict[str, Any]:
    rows = []
    for page, (result, error), took in zip(pages, run.outputs, run.page_cpu, strict=True):
        rows.append({**_score_page(page, result), "ms": round(took * 1000, 2), "error": error})
    cpu = sum(run.page_cpu)
    report: dict[str, Any] = {
        "pages_per_s": len(pages) / cpu if cpu > 0 else float("inf"),
        "pages_per_s_wall": len(pages) / run.best_wall if run.best_wall > 0 else float("inf"),
        "cpu_seconds": cpu,
        "wall_seconds": run.best_wall,
    }
    for name in (FUNDUS, TRAFILATURA_EVAL):
        selected = [r for r in rows if r["corpus"] == name]
        if selected:
            report[name] = _summarise(selected)
    report["per_page"] = rows
    return report


def evaluate_many(
    extractors: dict[str, tuple[Callable[[Any], Extraction], Callable[[Page], Any] | None]],
    pages: Sequence[Page],
    passes: int = 3,
) -> dict[str, dict[str, Any]]:
    """Quality per corpus and single-core pages/s for several extractors, timed in interleaved passes.

    ``extractors`` maps a name to ``(extract_fn, prepare)``: ``extract_fn`` gets ``prepare(page)`` (the
    page itself when ``prepare`` is None) and only that call is timed. Each pass runs every extractor
    over all pages, in an order rotated from pass to pass, so that a burst of load from other processes
    falls on all of them alike. ``pages_per_s`` = pages / the sum over pages of each page's least CPU
    time (``time.process_time``) across passes: CPU time leaves out the time the process waited for a
    shared core, and the per-page minimum leaves out garbage-collection and cache noise.
    ``pages_per_s_wall`` is the best pass by the wall clock. Quality comes from the first pass; an
    exception counts as an empty extraction.
    """
    runs = {
        name: _Run(extract_fn, [prepare(page) if prepare else page for page in pages])
        for name, (extract_fn, prepare) in extractors.items()
    }
    names = list(runs)
    for index in range(max(1, passes)):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].timed_pass()
    return {name: _report(run, pages) for name, run in runs.items()}


def evaluate(
    extract_fn: Callable[[Any], Extraction],
    pages: Sequence[Page],
    prepare: Callable[[Page], Any] | None = None,
    passes: int = 3,
) -> dict[str, Any]:
    """:func:`evaluate_many` for one extractor: ``{"pages_per_s", ..., "<corpus>": summary, "per_page"}``."""
    return evaluate_many({"extractor": (extract_fn, prepare)}, pages, passes)["extractor"]


# ---------------------------------------------------------------------------------------------- extractors


def trafilatura_extractor(**options: Any) -> Callable[[Page], Extraction]:
    """``trafilatura.bare_extraction(html, url=..., with_metadata=True, include_comments=False, **options)``."""
    import trafilatura

    settings = {"with_metadata": True, "include_comments": False, **options}

    def extract(page: Page) -> Extraction:
        document: Any = trafilatura.bare_extraction(page.html, url=page.url or None, **settings)
        if document is None:
            return Extraction("")
        authors = None
        if settings["with_metadata"]:
            authors = tuple(name.strip() for name in (document.author or "").split(";") if name.strip())
        return Extraction(document.text or "", document.title, document.date, authors)

    return extract


def trafilatura_extract_extractor(**options: Any) -> Callable[[Page], Extraction]:
    """Bare ``trafilatura.extract(html, url=..., **options)`` (text output; no metadata by default)."""
    import trafilatura

    def extract(page: Page) -> Extraction:
        return Extraction(trafilatura.extract(page.html, url=page.url or None, **options) or "")

    return extract


def page_title(html: str) -> str | None:
    """A cheap title: ``og:title``, else the first ``<h1>``, else ``<title>`` (regular expressions, no parse)."""
    candidates: list[str] = []
    og = _OG_TITLE.search(html)
    if og:
        content = _CONTENT.search(og.group(0))
        if content:
            candidates.append(content.group(1) or content.group(2) or "")
    for pattern in (_H1, _TITLE):
        match = pattern.search(html)
        if match:
            candidates.append(_TAG.sub(" ", match.group(1)))
    for candidate in candidates:
        title = _SPACE.sub(" ", html_lib.unescape(candidate)).strip()
        if title:
            return title
    return None


def trafilatura_lean_extractor(**options: Any) -> Callable[[Page], Extraction]:
    """trafilatura text without its metadata pass, :func:`page_title`, and htmldate's quick date search."""
    import trafilatura
    from htmldate import find_date

    settings = {"with_metadata": False, "include_comments": False, **options}

    def extract(page: Page) -> Extraction:
        document: Any = trafilatura.bare_extraction(page.html, url=page.url or None, **settings)
        text = (document.text or "") if document is not None else ""
        date = find_date(page.html, url=page.url or None, original_date=True, extensive_search=False)
        return Extraction(text, page_title(page.html), date)

    return extract


def resiliparse_extractor(**options: Any) -> Callable[[Page], Extraction] | None:
    """Resiliparse main-content plain text and :func:`page_title`; None if resiliparse is not installed."""
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree
    except ImportError:
        return None
    settings = {"main_content": True, **options}

    def extract(page: Page) -> Extraction:
        return Extraction(extract_plain_text(HTMLTree.parse(page.html), **settings), page_title(page.html))

    return extract


def htmldate_extractor(**options: Any) -> Callable[[Page], Extraction]:
    """Date only: ``htmldate.find_date(html, url=..., **options)``."""
    from htmldate import find_date

    def extract(page: Page) -> Extraction:
        return Extraction("", None, find_date(page.html, url=page.url or None, **options))

    return extract


def clean_article_extractor() -> tuple[Callable[[Page], Any], Callable[[Any], Extraction]]:
    """``(prepare, extract)`` measuring ``transforms.clean.clean_article`` end to end.

    ``prepare`` builds the ``Article`` the parse stage makes from a record ``{"url", "html"}`` (untimed);
    ``extract`` runs ``clean_article`` on it. Imports the project (and so Beam).
    """
    from schemas.records import Article, KafkaRecord, SourceBatch
    from transforms.clean import clean_article
    from transforms.parse import parse_record

    def prepare(page: Page) -> Any:
        value = json.dumps({"url": page.url, "html": page.html}).encode("utf-8")
        record = KafkaRecord(
            topic="bench",
            partition=0,
            offset=0,
            key=None,
            value=value,
            headers=(),
            timestamp_ms=0,
            ingested_at=dt.datetime.now(dt.UTC),
            batch=SourceBatch("bench", 0, 0, 1, 1),
        )
        article = parse_record(record)
        if not isinstance(article, Article):
            raise ValueError(f"{page.page_id}: parse gave {article}")
        return article

    def extract(article: Any) -> Extraction:
        result = clean_article(article)
        if not isinstance(result, Article):
            return Extraction("")
        day = result.published_at.date().isoformat() if result.published_at else None
        return Extraction(result.text, result.title, day, result.authors)

    return prepare, extract


ExtractFn = Callable[[Any], Extraction]
PrepareFn = Callable[[Page], Any]


@dataclass(frozen=True)
class Config:
    """A named configuration; ``build()`` gives ``(extract, prepare)``, or None when it cannot run here."""

    name: str
    build: Callable[[], tuple[ExtractFn, PrepareFn | None] | None]


def _plain(factory: Callable[..., ExtractFn | None], **options: Any) -> Callable[[], tuple[ExtractFn, None] | None]:
    def build() -> tuple[ExtractFn, None] | None:
        extract = factory(**options)
        return (extract, None) if extract is not None else None

    return build


def _clean_article(**trafilatura_options: Any) -> Callable[[], tuple[ExtractFn, PrepareFn]]:
    """The project's ``clean_article``, with its trafilatura options overridden by these ones."""

    def build() -> tuple[ExtractFn, PrepareFn]:
        from unittest import mock

        import transforms.clean as clean

        prepare, extract = clean_article_extractor()
        if not trafilatura_options:
            return extract, prepare

        def extract_with(article: Any) -> Extraction:
            with mock.patch.dict(clean.TRAFILATURA_OPTIONS, trafilatura_options):
                return extract(article)

        return extract_with, prepare

    return build


def configurations() -> list[Config]:
    """The configurations the benchmark compares (built lazily, so ``--only`` imports only what it runs)."""
    traf, lean = trafilatura_extractor, trafilatura_lean_extractor
    return [
        Config(REFERENCE, _plain(trafilatura_extract_extractor)),
        Config("clean_article (project)", _clean_article()),
        Config("clean_article, favor_recall", _clean_article(favor_recall=True)),
        Config("trafilatura default", _plain(traf)),
        Config("trafilatura fast", _plain(traf, fast=True)),
        Config("trafilatura favor_precision", _plain(traf, favor_precision=True)),
        Config("trafilatura favor_recall", _plain(traf, favor_recall=True)),
        Config("trafilatura fast+favor_precision", _plain(traf, fast=True, favor_precision=True)),
        Config("trafilatura default, no metadata", _plain(traf, with_metadata=False)),
        Config("trafilatura fast, no metadata", _plain(traf, fast=True, with_metadata=False)),
        Config("trafilatura favor_recall, no metadata", _plain(traf, favor_recall=True, with_metadata=False)),
        Config("trafilatura lean default", _plain(lean)),
        Config("trafilatura lean favor_recall", _plain(lean, favor_recall=True)),
        Config("resiliparse main_content", _plain(resiliparse_extractor)),
        Config(
            "resiliparse main_content lean",
            _plain(resiliparse_extractor, alt_texts=False, list_bullets=False, comments=False, post_meta=False),
        ),
        Config("htmldate original extensive", _plain(htmldate_extractor, original_date=True)),
        Config("htmldate original fast", _plain(htmldate_extractor, original_date=True, extensive_search=False)),
    ]


def reaching_articles(pages: Sequence[Page]) -> dict[str, Any]:
    """Body quality of what reaches ``articles``: ``clean_article``, then the expectation suite.

    A page that cleaning dead-letters or the suite quarantines (its row-level expectations, as the
    pipeline runs them, before deduplication) counts as an empty extraction: the score is what a
    reader of ``articles`` gets, not what the extractor managed. All pages are validated as one
    batch. Untimed. Imports the project (and so Beam and Great Expectations).
    """
    from schemas.records import Article, OutcomeBatch, Quarantined, SourceBatch
    from transforms.clean import clean_article
    from transforms.quality_core import QualityConfig, SuiteValidator, load_suite, validate_articles

    prepare, _ = clean_article_extractor()
    cleaned = []
    for offset, page in enumerate(pages):
        article = prepare(page).evolve(kafka_offset=offset)
        cleaned.append(clean_article(article))
    suite = load_suite()
    batch = SourceBatch("bench", 0, 0, len(pages), len(pages))
    config = QualityConfig(lake_uri="unused", suite=suite, run_name="bench")
    verdict = validate_articles(SuiteValidator(suite), OutcomeBatch(batch, tuple(cleaned)), config, _now())
    rows, turned_away = [], Counter()
    for page, outcome in zip(pages, verdict.outcomes, strict=True):
        if isinstance(outcome, Article):
            rows.append(_score_page(page, Extraction(outcome.text, outcome.title)))
            continue
        why = outcome.failed_expectations if isinstance(outcome, Quarantined) else (outcome.reason,)
        turned_away.update(why)
        rows.append(_score_page(page, Extraction("")))
    report: dict[str, Any] = {"reached": sum(isinstance(o, Article) for o in verdict.outcomes), "of": len(pages)}
    report["turned_away"] = dict(turned_away)
    for name in (FUNDUS, TRAFILATURA_EVAL):
        selected = [r for r in rows if r["corpus"] == name]
        if selected:
            report[name] = _summarise(selected)
    return report


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------- report


def _cell(value: float | None, width: int = 6) -> str:
    return f"{value:>{width}.3f}" if value is not None else " " * (width - 1) + "-"


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table: body P/R/F1 per corpus, title/date/authors accuracy, pages/s and × reference."""
    name_width = max(len(n) for n in results) + 1
    first = next(iter(results.values()))
    reference = results.get(REFERENCE, {}).get("pages_per_s")
    fundus_head = f"fundus ({first.get(FUNDUS, {}).get('pages', 0)} pages)"
    teval_head = f"traf-eval ({first.get(TRAFILATURA_EVAL, {}).get('pages', 0)})"
    header = (
        f"{'config':<{name_width}}| {fundus_head:^20} | {teval_head:^20} | "
        f"{'title':>6} {'date':>6} {'auth':>6} | {'t-eval':>13} | {'pages/s':>7} {'× ref':>5} {'wall':>6}\n"
        f"{'':<{name_width}}| {'F1':>6} {'P':>6} {'R':>6} | {'F1':>6} {'P':>6} {'R':>6} | "
        f"{'fundus':>6} {'fundus':>6} {'fundus':>6} | {'title':>6} {'date':>6} | {'cpu':>7} {'':>5} {'p/s':>6}"
    )
    lines = [header, "-" * len(header.splitlines()[0])]
    for name, report in results.items():
        fundus, teval = report.get(FUNDUS, {}), report.get(TRAFILATURA_EVAL, {})
        date_only = name.startswith("htmldate")
        body = [None] * 3 if date_only else [fundus.get("f1"), fundus.get("precision"), fundus.get("recall")]
        body2 = [None] * 3 if date_only else [teval.get("f1"), teval.get("precision"), teval.get("recall")]
        ratio = f"{report['pages_per_s'] / reference:>5.2f}" if reference else " " * 5
        lines.append(
            f"{name:<{name_width}}| {' '.join(_cell(v) for v in body)} | {' '.join(_cell(v) for v in body2)} | "
            f"{_cell(None if date_only else fundus.get('title_accuracy'))} {_cell(fundus.get('date_accuracy'))} "
            f"{_cell(fundus.get('authors_accuracy'))} | "
            f"{_cell(None if date_only else teval.get('title_accuracy'))} {_cell(teval.get('date_accuracy'))} | "
            f"{report['pages_per_s']:>7.1f} {ratio} {report['pages_per_s_wall']:>6.1f}"
        )
    return "\n".join(lines)


def format_poor_pages(results: dict[str, dict[str, Any]], threshold: float = POOR_F1) -> str:
    """Pages whose body F1 is under ``threshold`` in any text configuration, with each configuration's F1."""
    text_configs = [n for n in results if not n.startswith("htmldate")]
    by_page: dict[str, dict[str, dict[str, Any]]] = {}
    for name in text_configs:
        for row in results[name]["per_page"]:
            by_page.setdefault(row["page"], {})[name] = row
    poor = sorted(p for p, rows in by_page.items() if any(r["f1"] < threshold for r in rows.values()))
    if not poor:
        return f"no page under body F1 {threshold}"
    short = [f"c{i}" for i in range(len(text_configs))]
    legend = ", ".join(f"{s}={n}" for s, n in zip(short, text_configs, strict=True))
    lines = [f"pages under body F1 {threshold} in some configuration (F1/words out, in order {legend}):"]
    for page in poor:
        cells = " ".join(f"{by_page[page][n]['f1']:.2f}/{by_page[page][n]['words']:<5}" for n in text_configs)
        lines.append(f"  {page:<42} {cells}")
    return "\n".join(lines)


def _pin_one_cpu() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", help="corpus folder (default: $WIRESTREAM_CORPUS or ../shared/corpus)")
    parser.add_argument("--json", type=Path, help="write the full results, per page included, to this file")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (interleaved; best per page is kept)")
    parser.add_argument(
        "--only",
        action="append",
        help="run only configurations whose name contains this text (repeatable); the reference always runs",
    )
    args = parser.parse_args(argv)

    root = corpus_dir(args.corpus)
    if not (root / "fundus-fixtures-en").is_dir() or not (root / "trafilatura-eval-en-news").is_dir():
        print(
            f"corpus not found at {root}: expected fundus-fixtures-en/ and trafilatura-eval-en-news/ there; "
            "set WIRESTREAM_CORPUS or pass --corpus",
            file=sys.stderr,
        )
        return 2
    corpus = load_corpus(root)
    pinned = _pin_one_cpu()
    counts = Counter(p.corpus for p in corpus.pages)
    print(f"corpus {root}: {counts[FUNDUS]} fundus pages, {counts[TRAFILATURA_EVAL]} trafilatura-eval pages")
    for note in corpus.notes:
        print(f"  note: {note}")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, {pinned}\n")

    extractors: dict[str, tuple[ExtractFn, PrepareFn | None]] = {}
    for config in configurations():
        if args.only and config.name != REFERENCE and not any(text in config.name for text in args.only):
            continue
        built = config.build()
        if built is None:
            print(f"  skipped {config.name}: not installed", file=sys.stderr)
            continue
        extractors[config.name] = built
    results = evaluate_many(extractors, corpus.pages, passes=args.passes) if extractors else {}
    if not results:
        print("no configuration ran", file=sys.stderr)
        return 2
    print(format_table(results))
    print()
    print(format_poor_pages(results))
    reached = None
    if "clean_article (project)" in extractors:
        reached = reaching_articles(corpus.pages)
        scores = ", ".join(
            f"{name} body F1 {reached[name]['f1']:.3f}" for name in (FUNDUS, TRAFILATURA_EVAL) if name in reached
        )
        print(f"\nreaching articles (clean_article + the suite): {reached['reached']}/{reached['of']} pages")
        print(f"  {scores}; turned away: {reached['turned_away'] or 'none'}")
    if args.json:
        payload = {
            "corpus": str(root),
            "notes": corpus.notes,
            "python": platform.python_version(),
            "pinning": pinned,
            "results": results,
            "reaching_articles": reached,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), "utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
