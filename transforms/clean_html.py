"""HTML → main text and metadata: the extraction half of the clean stage (pure, no Beam).

:func:`extract_html` parses a page once: :func:`html_metadata` reads title, date, authors and
site name from the tree (meta tags, JSON-LD, htmldate), :func:`drop_inert_elements` and
:func:`join_split_body` prepare it, trafilatura extracts the main text from it, a first line that
repeats the title is dropped (:func:`drop_repeated_title`) and a standfirst the page shows but the
extractor missed is put back (:func:`shown_standfirst`). :func:`split_site_name` takes a site's
name off a title. The text rules that follow (mojibake, normalisation, ids, hashes) and the stage
itself are :mod:`transforms.clean`, which re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trafilatura
from htmldate import find_date
from lxml import etree
from trafilatura.json_metadata import extract_json
from trafilatura.metadata import examine_meta, extract_title
from trafilatura.xpaths import _ARTICLE_CONTENT_CLASS_TOKENS, _ARTICLE_CONTENT_ID_TOKENS

from transforms.matching import matching_text

__all__ = [
    "TRAFILATURA_OPTIONS",
    "Extracted",
    "PageMetadata",
    "drop_inert_elements",
    "drop_repeated_title",
    "extract_html",
    "html_metadata",
    "join_split_body",
    "shown_standfirst",
    "split_site_name",
]

_WORD = re.compile(r"\w+")


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
TRAFILATURA_OPTIONS: dict[str, Any] = {"with_metadata": False, "include_comments": False}
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
    document: Any = trafilatura.bare_extraction(tree, url=url or None, **TRAFILATURA_OPTIONS)
    text = drop_repeated_title((document.text or "") if document is not None else "", title, headline)
    standfirst = shown_standfirst(tree, text) if text.strip() else None
    text = f"{standfirst}\n{text}" if standfirst else text
    return Extracted(text, title, page.published_at, page.authors, page.site_name)
