"""Every kind of bad input, through the real broker: one dead letter each, the stream keeps flowing."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from pathlib import Path

import pytest

from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import assert_each_once, run_until_caught_up

pytestmark = pytest.mark.integration

URL = "https://bad.example/item"
LIMIT = 10 * 1024 * 1024


_CASE_NUMBERS = itertools.count()


def _message(**fields: object) -> bytes:
    """A message with its own URL (the same canonical URL twice would make the second a duplicate)."""
    return json.dumps({"url": f"{URL}-{next(_CASE_NUMBERS)}", **fields}).encode()


def _long_body(seed_text: str) -> str:
    paragraphs = seed_text.split("\n")
    body = []
    while sum(len(p) + 2 for p in body) < 1_050_000:  # over spaCy's max_length, well under the size limit
        body.extend(paragraphs)
    return "\n\n".join(body)


def _cases(seed_text: str) -> list[tuple[str, bytes | None, str]]:
    """(kind, value, expected reason or 'article')."""
    return [
        ("invalid UTF-8", b'{"url": "https://bad.example/a", "body": "caf\xe9"}', "invalid_utf8"),
        ("not JSON", b"<html>not json</html>", "not_json"),
        ("JSON array", b'[{"url": "https://bad.example/a", "body": "x"}]', "not_object"),
        ("JSON number", b"3.14", "not_object"),
        ("JSON string", b'"just a string"', "not_object"),
        ("JSON null", b"null", "not_object"),
        ("tombstone", None, "tombstone"),
        ("no url and no id", json.dumps({"title": "t", "body": "Some text."}).encode(), "missing_id_and_url"),
        ("no body and no html", _message(title="Only a title"), "missing_body"),
        ("wrong field type", _message(body=["a", "list"]), "wrong_type"),
        ("empty body", _message(body=""), "empty_body"),
        ("whitespace-only body", _message(body=" \n\t \u00a0 "), "empty_body"),
        (
            "HTML without text",
            _message(html="<html><body><script>var x;</script><div></div></body></html>"),
            "html_no_text",
        ),
        ("oversized body", _message(body="word " * (LIMIT // 5 + 1000)), "oversized"),
        ("unparseable date", _message(body="Text.", published_at="the 5th of never"), "invalid_date"),
        ("date far in the future", _message(body="Text.", published_at="2999-12-31T00:00:00Z"), "date_out_of_range"),
        ("date before 1900", _message(body="Text.", published_at="1899-12-31"), "date_out_of_range"),
        ("javascript: URL", json.dumps({"url": "javascript:alert(1)", "body": "Text."}).encode(), "invalid_url"),
        ("relative URL", json.dumps({"url": "../news/item.html", "body": "Text."}).encode(), "invalid_url"),
        (
            "deeply nested JSON",
            b'{"url": "https://bad.example/a", "body": "x", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "too_deeply_nested",
        ),
        ("duplicate keys", b'{"url": "https://bad.example/a", "body": "one", "body": "two"}', "duplicate_keys"),
        ("huge number of fields", _message(body="x", **{f"field_{i}": i for i in range(5000)}), "too_many_fields"),
        ("path traversal source", _message(body="Text.", source="../../etc"), "invalid_source"),
        ("title too long", _message(body="Text.", title="t" * 10_000), "field_too_long"),
        ("id with control characters", json.dumps({"id": "abc\u0007", "body": "Text."}).encode(), "invalid_id"),
        (
            "NUL and control characters (repaired)",
            b'{"url": "https://bad.example/nul", "body": "Oslo\x00 and\x07 Bergen signed the deal."}',
            "article",
        ),
        ("mojibake (repaired)", _message(body="The cafÃ© in MÃ¼nchen reopened on Monday."), "article"),
        (
            "lone surrogate in id",
            json.dumps({"id": "id-\udfff", "url": f"{URL}-s1", "body": "Text."}).encode(),
            "invalid_id",
        ),
        ("lone surrogate in source", _message(body="Text.", source="Wire \udfff"), "invalid_source"),
        (
            "lone surrogate in an author (repaired)",
            _message(body="Oslo and Trondheim signed the rail deal on Monday.", authors=["Kari \ud800"]),
            "article",
        ),
        (
            "lone surrogate in the title (repaired)",
            _message(body="Bergen and Stavanger signed the ferry deal on Monday.", title="Deal \udfff"),
            "article",
        ),
        ("only invisible characters", _message(body="\u200b\ufeff\u00ad \u2060\u200b"), "empty_body"),
        (
            "Portuguese (kept, no model)",
            _message(body="O presidente da câmara de Lisboa inaugurou na sexta-feira a nova linha de elétrico."),
            "article",
        ),
        ("long body under the limit (processed)", _message(body=_long_body(seed_text)), "article"),
        (
            "an id, claimed first",
            _message(id="claimed-id", body="The harbour of Bergen reopened on Monday."),
            "article",
        ),
    ]


CONFLICTING = _message(id="claimed-id", body="A museum in Oslo reopened its painted hall after two years of work.")
"""Another story under the id a case claimed first: sent after every case, so later in event time."""


def _good(index: int) -> bytes:
    return json.dumps(
        {
            "url": f"https://good.example/{index}",
            "body": f"Story {index}: the mayor of Lisbon opened a new tram line on Friday.",
        }
    ).encode()


def test_every_kind_of_bad_input_gets_one_dead_letter(
    bootstrap_servers: str, prism: Path, seed_text: str, tmp_path: Path
) -> None:
    cases = _cases(seed_text)
    assert len(cases) >= 20
    values: list[bytes | None] = []
    expected: list[str] = []
    for index, (_, value, outcome) in enumerate(cases):
        values += [_good(index), value]
        expected += ["article", outcome]
    topic = f"bad-{uuid.uuid4().hex[:10]}"
    keys = [b"key-%d" % index for index in range(len(values))]  # a tombstone needs a key
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=keys)
    time.sleep(0.01)  # a later Kafka timestamp: the conflicting story comes after the one that claimed the id
    (conflicting,) = produce([CONFLICTING], bootstrap_servers, topic, partitions=3)
    lake = tmp_path / "lake"
    run_until_caught_up(lake, topic, bootstrap_servers, timeout=600)

    assert_each_once(lake, {(topic, p, o) for p, o in [*placed, conflicting]})
    _, dead = query(
        str(lake), "SELECT kafka_partition, kafka_offset, reason, octet_length(raw_value) FROM dead_letters"
    )
    reasons = {(p, o): reason for p, o, reason, _ in dead}
    for (kind, _, outcome), position in zip(cases, placed[1::2], strict=True):
        assert reasons.get(position, "article") == outcome, kind
    assert all(reasons.get(position) is None for position in placed[0::2]), "a good record was turned away"
    assert reasons[conflicting] == "id_conflict"
    _, (error,) = query(str(lake), "SELECT stage, error FROM dead_letters WHERE reason = 'id_conflict'")
    claimed = placed[2 * [kind for kind, *_ in cases].index("an id, claimed first") + 1]
    assert error == (
        "dedup",
        f"article id 'claimed-id' is already taken by an earlier record with other content"
        f" (topic {topic}, partition {claimed[0]}, offset {claimed[1]})",
    )
    assert len({outcome for *_, outcome in cases} - {"article"}) >= 19  # kinds of dead letter
    oversized = [length for _, _, reason, length in dead if reason == "oversized"]
    assert oversized == [64 * 1024]

    _, repaired = query(str(lake), "SELECT url, text FROM articles WHERE url LIKE 'https://bad.example/%'")
    texts = {text[:60] for _, text in repaired}
    assert "Oslo and Bergen signed the deal." in texts
    assert "The café in München reopened on Monday." in texts
    _, odd = query(
        str(lake),
        "SELECT language, ner_status, title, authors FROM articles WHERE language = 'pt' OR title LIKE 'Deal%'"
        " OR text LIKE 'Oslo and Trondheim%' ORDER BY 1, 3",
    )
    assert odd == [
        ("en", "annotated", "Deal \ufffd", []),
        ("en", "annotated", None, ["Kari \ufffd"]),
        ("pt", "no_model", None, []),
    ]
    _, long_rows = query(
        str(lake),
        """
        SELECT length(text), max(e.start), count(*) FROM articles, unnest(entities) AS u(e)
        WHERE length(text) > 1000000 GROUP BY 1""",
    )
    ((length, last_start, mentions),) = long_rows
    assert length > 1_000_000 and last_start > 1_000_000 and mentions > 10_000
