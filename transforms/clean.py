"""CleanArticle: raw article → clean text, canonical URL, source, language, id and hashes.

Pure rules (no Beam) plus a thin composite. Reasons it gives:

``empty_body``    the body is empty after normalisation, or holds only whitespace and invisible
                  characters (zero-width spaces, soft hyphens, BOMs, joiners, direction marks)
``html_no_text``  the HTML holds no main text (trafilatura found nothing)

Order of work: HTML → main text, title, date and authors (trafilatura, one parse; the message's own
fields win; a first line repeating the title is dropped; a standfirst the page shows but the
extractor missed is put back); mojibake repair (ftfy, only where there can be something to
repair); NFC (never NFKC: stored text says what the page said), control and invisible characters
removed, whitespace collapsed with paragraphs kept; canonical URL; source from the registered
domain; language; id; word count; content hash of the text's matching form (NFKC).

Libraries, and why: trafilatura for HTML → main text (best-measured open extractor on news pages,
pure Python; see ``benchmarks/cleaning.py``), ftfy for mojibake, courlan (trafilatura's own URL
library) for canonical URLs and registered domains, py3langid for language (ships its model in
the wheel, no run-time download, ~400 docs/s).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import courlan
import ftfy
import trafilatura
from htmldate import find_date
from lxml import etree
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from trafilatura.json_metadata import extract_json
from trafilatura.metadata import examine_meta, extract_title
from trafilatura.xpaths import _ARTICLE_CONTENT_CLASS_TOKENS, _ARTICLE_CONTENT_ID_TOKENS

from schemas.records import Article, DeadLetter
from transforms.matching import matching_text
from transforms.stage import OutcomeStage

__all__ = [
    "CleanArticle",
    "canonical_url",
    "clean_article",
    "content_hash",
    "detect_language",
    "drop_inert_elements",
    "drop_repeated_title",
    "extract_html",
    "html_metadata",
    "join_split_body",
    "matching_text",
    "normalise_text",
    "registered_domain",
    "repair_mojibake",
    "shown_standfirst",
    "split_site_name",
]

STAGE = "clean"
LANGUAGE_SAMPLE_CHARS = 2000
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n+")
_WORD = re.compile(r"\w+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\u00ad\u180e\u200b\u2060-\u2064\ufeff]")
_VISIBLE = re.compile(r"[^\s\u200c\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TRACKING_PARAMETER = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid)$", re.I)


_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False, normalization="NFC")
# Text made only of these characters has nothing for ftfy to fix: printable ASCII but "&" (HTML
# entities), the usual whitespace, and the curly quotes, dashes, ellipsis and no-break space that
# clean English text is full of. Mojibake needs a decoded UTF-8 lead byte, which no single-byte
# codec turns into one of these while also turning the continuation bytes into others of them.
_NOTHING_TO_FIX = re.compile("[\t\n\f\r !-%'-~\u00a0\u2018\u2019\u201c\u201d\u2013\u2014\u2026]*")


def repair_mojibake(text: str) -> str:
    """Text decoded with the wrong codec put right ("cafÃ©" → "café"), quotes left curly.

    ftfy fixes a text line by line; lines with nothing for it to fix are left as they are (its
    mojibake test alone costs about a millisecond on an article). A text with a "<" goes to ftfy
    whole: there, ftfy's choice to leave HTML entities alone carries from line to line.
    """
    if _NOTHING_TO_FIX.fullmatch(text):
        return text
    if "<" in text:
        return ftfy.fix_text(text, _FTFY)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line if _NOTHING_TO_FIX.fullmatch(line) else ftfy.fix_text(line, _FTFY) for line in lines)


def normalise_text(text: str) -> str:
    """NFC, no control or invisible characters, single spaces, paragraphs separated by one blank line.

    NFC, not NFKC: compatibility folding rewrites what the text says ("7¾" → "73⁄4", Arabic
    presentation forms → base letters); it belongs only inside matching keys (:func:`matching_text`).
    Invisible characters that carry no meaning in stored text are removed (soft hyphen, zero-width
    space, word joiner, byte order mark); the zero-width joiner and non-joiner stay, since Persian,
    Indic scripts and emoji sequences need them.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    paragraphs = (_INLINE_SPACE.sub(" ", part).strip() for part in _PARAGRAPH_BREAK.split(text))
    lines = ("\n".join(line.strip() for line in part.split("\n")) for part in paragraphs)
    return "\n\n".join(part for part in lines if part)


def canonical_url(url: str) -> str:
    """Lower-cased scheme and host, tracking parameters and fragment dropped, query sorted."""
    if not url:
        return ""
    normalised = courlan.normalize_url(url)
    parts = urllib.parse.urlsplit(normalised)
    query = [
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMETER.match(name)
    ]
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urllib.parse.urlencode(query), "")
    )


def registered_domain(url: str) -> str | None:
    """The registered domain of a URL (``www.bbc.co.uk`` → ``bbc.co.uk``).

    Hosts under no public suffix (``news.example``, ``localhost``) give the host without ``www.``.
    """
    if not url:
        return None
    domain: Any = courlan.extract_domain(url)
    if domain:
        return str(domain)
    host = urllib.parse.urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


@functools.cache
def _language_identifier() -> Any:
    """py3langid's model, choosing among the languages that have an ISO 639-1 code.

    Its model also knows about 25 languages with only three-letter codes (Nigerian Pidgin,
    Central Bikol, Ligurian, ...); on a short English text it would sometimes pick one, and a
    three-letter code in a column of two-letter ones breaks every join on language. A copy of its
    own, not :func:`py3langid.set_languages`, which would change the module's global identifier.
    """
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages([label for label in identifier.nb_classes if len(label) == 2])
    return identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, from its first characters."""
    language, _score = _language_identifier().classify(text[:LANGUAGE_SAMPLE_CHARS])
    return str(language)


def content_hash(text: str) -> str:
    """A 128-bit hash of the text's matching form (:func:`matching_text`), lower-case hex.

    A matching key, not a checksum of the stored bytes: two copies that differ only in
    compatibility forms (a ligature, a full-width digit) share it. Text stored before wirestream
    kept NFC was NFKC already, so its hashes are what this gives for it.
    """
    return hashlib.blake2b(matching_text(text).encode("utf-8"), digest_size=16).hexdigest()


def _article_id(article: Article, canonical: str) -> str:
    if article.article_id:
        return article.article_id
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Extracted:
    """What an HTML page yields: main text and the metadata found in it."""

    text: str
    title: str | None
    published_at: dt.datetime | None
    authors: tuple[str, ...]
    site_name: str | None = None


# A site name is a short name, not a URL or a handle's leftovers ("https://www.facebook.com/cbs").
_SITE_NAME = re.compile(r"^(?!https?:)[^\n/]{2,60}$")
_TITLE_SEPARATOR = re.compile(r"\s+(?:[|\u2013\u2014\u00b7\u2022\u00bb]|-{1,2}|::)\s+")
_SITE_WORDS = re.compile(r"[^\w]+")
_SITE_SUFFIXES = ("news", "online", "com", "couk", "uk", "us", "international", "digital", "tv")


def _site_key(name: str) -> str:
    """A name as site names are compared: letters and digits, case-folded, without a leading "the"."""
    key = _SITE_WORDS.sub("", name.casefold())
    return key.removeprefix("the") if len(key) > 6 else key


def _names_site(segment: str, sites: Sequence[str]) -> bool:
    """Whether a title segment is one of ``sites`` (a site name, a source, a domain's first label).

    Equal when compared by :func:`_site_key`, or the site followed by a word outlets add ("BBC News"
    for bbc.co.uk, "Salon.com" for salon.com).
    """
    key = _site_key(segment)
    if not key or len(segment.split()) > 6:
        return False
    for site in sites:
        site_key = _site_key(site)
        if len(site_key) >= 2 and (
            key == site_key or (key.startswith(site_key) and key[len(site_key) :] in _SITE_SUFFIXES)
        ):
            return True
    return False


def split_site_name(title: str, sites: Sequence[str]) -> tuple[str, str | None]:
    """``(title without the outlet's name, that name)``: "Headline - 9to5Mac" → ("Headline", "9to5Mac").

    The name must stand after the last separator (``-``, ``|``, ``–``, ``—``, ``·``, ``»``, ``::``;
    a colon is left alone, titles use it for their own sake) or before the first, and be one of
    ``sites``: the page's declared site name, the message's ``source``, the URL's registered
    domain. A segment that merely looks like a name is kept: "Apple unveils iPhone - live" has
    no outlet called "live". A title that would be left empty keeps its text.
    """
    separators = list(_TITLE_SEPARATOR.finditer(title))
    if not separators:
        return title, None
    last, first = separators[-1], separators[0]
    suffix, prefix = title[last.end() :].strip(), title[: first.start()].strip()
    if _names_site(suffix, sites) and title[: last.start()].strip():
        return title[: last.start()].strip(), suffix
    if _names_site(prefix, sites) and title[first.end() :].strip():
        return title[first.end() :].strip(), prefix
    return title, None


def _json_ld_blocks(tree: Any) -> list[Any]:
    """The page's JSON-LD blocks that parse as JSON (broken ones skipped, not repaired)."""
    blocks = []
    for script in tree.iterfind('.//script[@type="application/ld+json"]'):
        if script.text:
            try:
                blocks.append(_own_live_blog_metadata(json.loads(script.text, strict=False)))
            except ValueError:
                continue
    return blocks


def _own_live_blog_metadata(block: Any) -> Any:
    """The block, with the updates of a live blog that names its own author left out.

    trafilatura reads a live blog's metadata from its updates (hundreds on a long one, each with its
    authors: 30 ms on one benchmark page); a live blog with an author of its own is read as an
    article instead.
    """
    if isinstance(block, list):
        return [_own_live_blog_metadata(item) for item in block]
    if (
        isinstance(block, dict)
        and "liveBlogUpdate" in block
        and block.get("author")
        and "liveblogposting" in str(block.get("@type", "")).lower()
    ):
        return {key: value for key, value in block.items() if key != "liveBlogUpdate"}
    return block


@dataclass(frozen=True)
class PageMetadata:
    """What a page's head and JSON-LD say about it."""

    title: str | None
    published_at: dt.datetime | None
    authors: tuple[str, ...]
    site_name: str | None = None


def html_metadata(tree: Any, url: str | None = None) -> PageMetadata:
    """Title, publication date, authors and site name of a parsed page, from its head and JSON-LD.

    The same sources trafilatura's metadata pass reads first (meta tags, OpenGraph, then JSON-LD,
    then the page's headline for a missing title), through its own helpers, but without the parts
    that cost most and found nothing more on the benchmark pages: regular-expression repair of
    JSON-LD that does not parse, author search in the body, categories, tags, licence, and
    htmldate's extensive search (the quick search finds the same dates).
    """
    metadata: Any = examine_meta(tree)
    if metadata.author and " " not in metadata.author:  # trafilatura's rule: one word is no name
        metadata.author = None
    for block in _json_ld_blocks(tree):
        try:
            metadata = extract_json(block, metadata)
        except Exception:  # noqa: BLE001 -- odd JSON-LD shapes; trafilatura guards the same call
            continue
    if not metadata.title:
        metadata.title = extract_title(tree)
    metadata.date = find_date(tree, url=url, original_date=True, extensive_search=False)
    metadata.clean_and_trim()
    published_at = None
    if metadata.date:
        try:
            published_at = dt.datetime.fromisoformat(metadata.date).replace(tzinfo=dt.UTC)
        except ValueError:
            published_at = None
    authors = tuple(name.strip() for name in (metadata.author or "").split(";") if name.strip())
    site_name = (metadata.sitename or "").lstrip("@").strip()
    declared = site_name if _SITE_NAME.match(site_name) else None
    return PageMetadata(metadata.title or None, published_at, authors, declared)


def _words(text: str) -> list[str]:
    return _WORD.findall(matching_text(text).casefold())


def drop_repeated_title(text: str, *titles: str | None) -> str:
    """The text without its first line when that line is one of ``titles`` (word for word, any case).

    Extractors often keep the headline as the body's first line; the title has its own column, and
    a body that repeats it would also count it twice for deduplication. A text that is only the
    title is left as it is.
    """
    first, _, rest = text.lstrip().partition("\n")
    if not rest.strip():
        return text
    first_words = _words(first)
    if first_words and any(title and _words(title) == first_words for title in titles):
        return rest
    return text


def _headline(tree: Any) -> str | None:
    """The text of the page's first ``<h1>``."""
    heading = tree.find(".//h1")
    return heading.text_content() if heading is not None else None


_DESCRIPTION = '//head/meta[@property="og:description"]/@content|//head/meta[@name="description"]/@content'
_STANDFIRST_MIN_WORDS = 5


def shown_standfirst(tree: Any, text: str) -> str | None:
    """The article's summary when the page shows it and ``text`` lacks it, else None.

    The summary is the page's description meta tag; it counts as shown when one element of the
    body (a paragraph, a heading, or a ``div``/``span`` holding only text) reads the same, word for
    word. News pages put their standfirst there, and extractors often drop it with the header.
    """
    descriptions = tree.xpath(_DESCRIPTION)
    body = tree.find(".//body")
    if not descriptions or body is None:
        return None
    wanted = _words(str(descriptions[0]))
    if len(wanted) < _STANDFIRST_MIN_WORDS or " ".join(wanted) in " ".join(_words(text)):
        return None
    length = len(" ".join(wanted))
    for element in body.iter("p", "h2", "h3", "div", "span"):
        if element.tag in ("div", "span") and len(element):
            continue
        shown = " ".join(element.text_content().split())
        if abs(len(shown) - length) <= length // 4 and _words(shown) == wanted:
            return shown
    return None


# trafilatura's defaults: its fallback extractors (readability, jusText) always compared. With
# ``favor_recall`` it skips them when its own text is long (1.2x faster on the benchmark pages) but
# loses a lead paragraph that holds a link; benchmarks/cleaning.py measures both.
_TRAFILATURA_OPTIONS: dict[str, Any] = {"with_metadata": False, "include_comments": False}
_INERT = etree.XPath('//script[not(@type="application/ld+json")]|//style|//svg|//link|//template|//comment()')


def drop_inert_elements(tree: Any) -> None:
    """Remove, in place, elements that hold no readable text (the text after each is kept).

    They are scripts (but JSON-LD), styles, SVG drawings, ``<link>`` and ``<template>`` elements and
    HTML comments. trafilatura discards them too, but only after copying and walking the whole tree
    several times (the original tree also goes to its fallback extractors): removing them first
    saves about a tenth of its time on the benchmark pages, with the same text on every page.
    JSON-LD stays: trafilatura's last-resort extractor reads ``articleBody`` from it.
    """
    for element in _INERT(tree):
        parent = element.getparent()
        if parent is None:
            continue
        if isinstance(element.tag, str):
            element.drop_tree()
        else:  # a comment: drop_tree would keep it, remove() would lose its tail text
            previous, tail = element.getprevious(), element.tail or ""
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
            parent.remove(element)


_SPLIT_BODY_MIN_CHARS = 200
_LIKE_CONTAINERS = etree.XPath("//*[local-name() = $tag and @class = $cls]")
_BODY_ID = re.compile("|".join(_ARTICLE_CONTENT_ID_TOKENS))
_BODY_CLASS = re.compile("|".join(_ARTICLE_CONTENT_CLASS_TOKENS))


def _is_body_container(element: Any) -> bool:
    """Whether trafilatura's first content expression matches the element (its attribute tests)."""
    cls, ident = element.get("class") or "", element.get("id") or ""
    return (
        cls in ("post", "entry")
        or element.get("itemprop") == "articleBody"
        or ident == "articleContent"
        or (bool(ident) and _BODY_ID.search(ident) is not None)
        or (bool(cls) and _BODY_CLASS.search(cls) is not None)
    )


def join_split_body(tree: Any) -> None:
    """Join, in place, an article body the page splits into several like containers.

    trafilatura reads the main text from the *first* element its content expressions find; pages
    that cut one article into chunks (between ads or paywall breaks) give every chunk the same
    container class, and all but the first chunk would be lost. When the first container that
    trafilatura would choose has paragraph text, the later elements that expression finds with
    the same tag and ``class`` (and outside it) have their children moved into it, in page order.
    The containers are those of trafilatura's first content expression (its article-body
    classes and ids), matched here in Python: lxml's EXSLT regular expressions call back into
    Python for every element and cost 8 % of the stage.
    """
    first = None
    for element in tree.iter("article", "div", "main", "section"):
        if _is_body_container(element):
            first = element
            break
    if first is None or len("".join(first.xpath(".//p//text()"))) < _SPLIT_BODY_MIN_CHARS:
        return
    for other in _LIKE_CONTAINERS(tree, tag=first.tag, cls=first.get("class") or ""):
        if other is first or any(ancestor is first for ancestor in other.iterancestors()):
            continue
        for child in list(other):
            first.append(child)


def extract_html(html: str, url: str | None = None) -> Extracted:
    """Main text, title, date and authors of an HTML page (boilerplate dropped).

    The page is parsed once: :func:`html_metadata` reads the metadata from the tree, then
    :func:`drop_inert_elements` lightens it and trafilatura extracts the text (from a copy). A first
    line that repeats the title or the page's headline is dropped from the text; a standfirst the
    page shows but trafilatura left out (:func:`shown_standfirst`) is put back in front.
    """
    tree = trafilatura.load_html(html)
    if tree is None:
        return Extracted("", None, None, ())
    page = html_metadata(tree, url or None)
    title = page.title
    headline = _headline(tree)
    drop_inert_elements(tree)
    join_split_body(tree)
    document: Any = trafilatura.bare_extraction(tree, url=url or None, **_TRAFILATURA_OPTIONS)
    text = drop_repeated_title((document.text or "") if document is not None else "", title, headline)
    standfirst = shown_standfirst(tree, text) if text.strip() else None
    text = f"{standfirst}\n{text}" if standfirst else text
    return Extracted(text, title, page.published_at, page.authors, page.site_name)


def clean_article(article: Article) -> Article | DeadLetter:
    """The article with clean ``text`` and derived fields, or a dead letter if no text remains."""
    title = article.title
    published_at = article.published_at
    authors = article.authors
    declared_site = None
    if article.body is not None and article.body.strip():
        raw_text = article.body
    elif article.html is not None:
        extracted = extract_html(article.html, article.url)
        raw_text = drop_repeated_title(extracted.text, article.title)
        title = title or extracted.title
        published_at = published_at or extracted.published_at
        authors = authors or extracted.authors
        declared_site = extracted.site_name
        if not raw_text.strip():
            return DeadLetter.for_article(article, STAGE, "html_no_text", "no main text in the HTML")
    else:
        raw_text = ""
    text = normalise_text(repair_mojibake(raw_text))
    if not _VISIBLE.search(text):
        return DeadLetter.for_article(article, STAGE, "empty_body", "body is empty after cleaning")
    canonical = canonical_url(article.url)
    domain = registered_domain(canonical)
    title = normalise_text(repair_mojibake(title)) or None if title else None
    site_name = normalise_text(declared_site) or None if declared_site else None
    if title:
        sites = [name for name in (declared_site, article.source, domain, (domain or "").split(".")[0]) if name]
        title, named = split_site_name(title, sites)
        site_name = site_name or named
    return article.evolve(
        article_id=_article_id(article, canonical),
        canonical_url=canonical,
        title=title,
        site_name=site_name,
        published_at=published_at,
        authors=tuple(normalise_text(name) for name in authors),
        source=article.source or domain,
        language=(article.language or detect_language(text)).lower()[:2],
        text=text,
        word_count=len(text.split()),
        content_hash=content_hash(text),
        body=None,
        html=None,
    )


class CleanArticle(OutcomeStage):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]`` with articles cleaned."""

    def __init__(self) -> None:
        super().__init__(STAGE, clean_article)
