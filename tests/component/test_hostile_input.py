"""Fuzz: hostile values in every contract field never stop a run.

Every record goes through the pure rules of every stage (parse, clean, dedup fingerprint and
memory, NER) and is committed to a real lake, read back by DuckDB: each gets exactly one outcome,
an article or a dead letter with a known reason, and nothing raises. The values are those that
stopped real runs (a lone surrogate in ``id``, ``source`` or an author made a batch uncommittable
at every restart) and a seeded random mix of the same ingredients.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import spacy

from pipelines.query import query
from schemas.records import Article, DeadLetter, Outcome, SourceBatch
from tests.kit import make_record
from transforms.clean import clean_article
from transforms.dedup_core import ArticleRef, DedupConfig, decode_memory, encode_memory, encode_ticket, fingerprint
from transforms.entities import EntityConfig, annotate
from transforms.io.lake import Lake, commit_batch
from transforms.parse import parse_record

FIELDS = ("url", "id", "title", "body", "html", "published_at", "source", "language", "authors")
KNOWN_REASONS = {
    "invalid_url",
    "invalid_id",
    "invalid_source",
    "invalid_date",
    "date_out_of_range",
    "wrong_type",
    "field_too_long",
    "empty_body",
    "html_no_text",
    "missing_id_and_url",
    "missing_body",
    "schema_violation",
    "oversized",
}
BODY = "The council of Bergen approved the new harbour plan on Tuesday after a long debate. " * 3
HOSTILE_STRINGS = [
    "lone \udfff low",
    "lone \ud800 high",
    "\ud83d",  # half of an emoji's pair
    "nul \x00 inside",
    "\x00",
    "bell \x07 and escape \x1b[31m",
    "\u202eright-to-left override",
    "\ufeff\u200b\u00ad",
    "e\u0301" * 50,  # combining marks
    "",
    " ",
    "x" * 300_000,  # over every length limit but body's and html's
]
WRONG_TYPES: list[Any] = [17, 1.5, True, None, ["a", "b"], {"nested": "object"}, [1, 2], [None], [["deep"]]]


def _base() -> dict[str, Any]:
    return {
        "url": "https://news.example.com/story",
        "id": "story-1",
        "title": "Bergen approves harbour plan",
        "body": BODY,
        "published_at": "2025-03-04T05:06:07Z",
        "source": "news.example.com",
        "language": "en",
        "authors": ["Kari Nordmann"],
    }


def _with(field: str, value: Any) -> dict[str, Any]:
    message = _base()
    if field == "html":
        message.pop("body")
    message[field] = [value] if field == "authors" and isinstance(value, str) else value
    return message


def _cases() -> list[dict[str, Any]]:
    cases = [_with(field, value) for field in FIELDS for value in HOSTILE_STRINGS + WRONG_TYPES]
    rng = random.Random(20261202)
    ingredients = [*HOSTILE_STRINGS[:-1], "plain words", "Ｆｕｌｌ", "7¾", "ﻻ", "\U0001f600", "<p>x</p>"]
    for _ in range(300):
        message = _base()
        for field in rng.sample(FIELDS, rng.randint(1, 4)):
            value = "".join(rng.choice(ingredients) for _ in range(rng.randint(1, 6)))
            message[field] = [value] if field == "authors" else value
        cases.append(message)
    return cases


def _through_every_stage(values: list[bytes]) -> list[Outcome]:
    """The outcome of each value after parse, clean, dedup fingerprinting and NER (blank model)."""
    batch = SourceBatch("t", 0, 0, len(values), len(values))
    outcomes: list[Outcome] = []
    for offset, value in enumerate(values):
        outcome = parse_record(make_record(value, offset=offset, batch=batch))
        outcomes.append(clean_article(outcome) if isinstance(outcome, Article) else outcome)
    articles = [outcome for outcome in outcomes if isinstance(outcome, Article)]
    refs = [ArticleRef(a.article_id, a.text, a.canonical_url, a.content_hash, "t", 0, a.kafka_offset) for a in articles]
    for ticket in fingerprint(refs, 0, batch.key, DedupConfig()):
        encode_ticket(ticket)
        assert decode_memory(encode_memory(ticket)).article_id == ticket.article_id
    annotated = {a.kafka_offset: a for a in annotate(spacy.blank("en"), articles, EntityConfig())}
    return [annotated.get(outcome.kafka_offset, outcome) for outcome in outcomes]


def test_no_value_in_any_field_stops_a_run(tmp_path: Path) -> None:
    cases = _cases()
    values = [json.dumps(message).encode() for message in cases]
    outcomes = _through_every_stage(values)

    assert len(outcomes) == len(values)
    reasons = {outcome.reason for outcome in outcomes if isinstance(outcome, DeadLetter)}
    assert reasons <= KNOWN_REASONS, reasons - KNOWN_REASONS
    batch = SourceBatch("t", 0, 0, len(values), len(values))
    commit_batch(Lake(str(tmp_path)), batch, outcomes)
    _, rows = query(
        str(tmp_path),
        "SELECT count(*) FROM (SELECT kafka_offset FROM articles UNION ALL SELECT kafka_offset FROM dead_letters)",
    )
    assert rows == [(len(values),)]


IDENTIFYING = [("id", "invalid_id"), ("url", "invalid_url"), ("source", "invalid_source")]


@pytest.mark.parametrize(("field", "reason"), IDENTIFYING)
def test_a_lone_surrogate_in_an_identifying_field_is_a_dead_letter(field: str, reason: str) -> None:
    value = "https://news.example.com/a\udfff" if field == "url" else "a\udfff"
    outcome = parse_record(make_record(json.dumps(_with(field, value)).encode()))
    assert isinstance(outcome, DeadLetter) and outcome.reason == reason
    assert "U+DFFF" in outcome.error


@pytest.mark.parametrize("field", ["title", "body", "authors", "html"])
def test_a_lone_surrogate_in_free_text_is_replaced(field: str) -> None:
    html = f"<html><body><article><h1>Harbour</h1><p>{BODY}\udfff</p><p>{BODY}</p></article></body></html>"
    value = html if field == "html" else f"Kari \udfff {BODY}"
    outcome = clean_article(parse_record(make_record(json.dumps(_with(field, value)).encode())))  # type: ignore[arg-type]
    assert isinstance(outcome, Article)
    stored = {"title": outcome.title, "body": outcome.text, "html": outcome.text, "authors": outcome.authors[0]}[field]
    assert "\ufffd" in (stored or "")
    (stored or "").encode("utf-8")


def test_the_lake_repairs_a_lone_surrogate_that_got_past_the_rules(tmp_path: Path) -> None:
    outcome = clean_article(parse_record(make_record(json.dumps(_base()).encode())))
    assert isinstance(outcome, Article)
    slipped = outcome.evolve(source="news\udfff", authors=("Kari \ud800",))
    commit_batch(Lake(str(tmp_path)), SourceBatch("t", 0, 0, 1, 1), [slipped])
    _, rows = query(str(tmp_path), "SELECT source, authors[1] FROM articles")
    assert rows == [("news\ufffd", "Kari \ufffd")]
