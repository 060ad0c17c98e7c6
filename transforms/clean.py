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

The HTML half (page → main text and metadata) is :mod:`transforms.clean_html`; this module keeps
the text rules, the stage's rule :func:`clean_article` and the composite, and re-exports the HTML
names.

Libraries, and why: trafilatura for HTML → main text (best-measured open extractor on news pages,
pure Python; see ``benchmarks/cleaning.py``), ftfy for mojibake, courlan (trafilatura's own URL
library) for canonical URLs and registered domains, py3langid for language (ships its model in
the wheel, no run-time download, ~400 docs/s).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import urllib.parse
from typing import Any

import courlan
import ftfy
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from schemas.records import Article, DeadLetter
from transforms.clean_html import (
    TRAFILATURA_OPTIONS,
    Extracted,
    PageMetadata,
    drop_inert_elements,
    drop_repeated_title,
    extract_html,
    html_metadata,
    join_split_body,
    shown_standfirst,
    split_site_name,
)
from transforms.matching import matching_text
from transforms.stage import OutcomeStage

__all__ = [
    "FTFY_CONFIG",
    "TRAFILATURA_OPTIONS",
    "CleanArticle",
    "Extracted",
    "PageMetadata",
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
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\u00ad\u180e\u200b\u2060-\u2064\ufeff]")
_VISIBLE = re.compile(r"[^\s\u200c\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TRACKING_PARAMETER = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid)$", re.I)


FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False, normalization="NFC")
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
        return ftfy.fix_text(text, FTFY_CONFIG)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line if _NOTHING_TO_FIX.fullmatch(line) else ftfy.fix_text(line, FTFY_CONFIG) for line in lines)


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
