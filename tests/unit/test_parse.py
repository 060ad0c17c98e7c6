import json

import pytest

from schemas.records import Article, DeadLetter
from tests.kit import make_record
from transforms.parse import ParseConfig, parse_record


def _parse(value: bytes | None, **config: int) -> Article | DeadLetter:
    return parse_record(make_record(value, offset=7, partition=2), ParseConfig(**config))


def _reason(value: bytes | None, **config: int) -> str:
    outcome = _parse(value, **config)
    assert isinstance(outcome, DeadLetter), outcome
    assert (outcome.kafka_partition, outcome.kafka_offset, outcome.stage) == (2, 7, "parse")
    assert outcome.raw_value == value
    return outcome.reason


def test_valid_article_keeps_fields_and_coordinates() -> None:
    value = json.dumps(
        {
            "url": "https://a.example/x",
            "title": "T",
            "body": "Hello world.",
            "published_at": "2026-11-20T10:00:00Z",
            "source": "A",
            "language": "en",
        }
    ).encode()
    article = _parse(value)
    assert isinstance(article, Article)
    assert (article.url, article.title, article.body, article.source) == (
        "https://a.example/x",
        "T",
        "Hello world.",
        "A",
    )
    assert article.published_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert (article.kafka_partition, article.kafka_offset) == (2, 7)


BAD_INPUT = [
    (None, "tombstone"),
    (b"\xff\xfe not utf8", "invalid_utf8"),
    (b"{not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (b"42", "not_object"),
    (b'"a string"', "not_object"),
    (b"null", "not_object"),
    (b"[" * 100000 + b"]" * 100000, "too_deeply_nested"),
    (b'{"url": "https://a.example/x", "body": "x", "extra": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deeply_nested"),
    (b'{"url": "https://a.example/x", "body": "x", "body": "y"}', "duplicate_keys"),
    (
        json.dumps({"url": "https://a.example/x", "body": "x", **{f"f{i}": i for i in range(300)}}).encode(),
        "too_many_fields",
    ),
    (b'{"title": "no url or id", "body": "x"}', "missing_id_and_url"),
    (b'{"url": "https://a.example/x"}', "missing_body"),
    (b'{"url": "https://a.example/x", "body": 12}', "wrong_type"),
    (b'{"url": "https://a.example/x", "body": "x", "authors": "Jane"}', "wrong_type"),
    (b'{"url": "javascript:alert(1)", "body": "x"}', "invalid_url"),
    (b'{"url": "/relative/path", "body": "x"}', "invalid_url"),
    (rb'{"url": "https://a.example/\u0000x", "body": "x"}', "invalid_url"),
    (b'{"id": "", "body": "x"}', "invalid_id"),
    (json.dumps({"url": "https://a.example/x", "body": "x", "title": "t" * 5000}).encode(), "field_too_long"),
    (b'{"url": "https://a.example/x", "body": "x", "source": "../../etc"}', "invalid_source"),
    (b'{"url": "https://a.example/x", "body": "x", "source": "/etc/passwd"}', "invalid_source"),
    (b'{"url": "https://a.example/x", "body": "x", "published_at": "yesterday-ish"}', "invalid_date"),
    (b'{"url": "https://a.example/x", "body": "x", "published_at": "1850-01-01"}', "date_out_of_range"),
    (b'{"url": "https://a.example/x", "body": "x", "published_at": "2999-01-01T00:00:00Z"}', "date_out_of_range"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_INPUT)
def test_bad_input_gets_a_reason(value: bytes | None, reason: str) -> None:
    assert _reason(value) == reason


def test_control_characters_inside_strings_are_accepted_for_repair() -> None:
    raw = b'{"url": "https://a.example/x", "body": "one\x00two\x01 three", "language": "EN-gb"}'
    assert b"\x00" in raw
    article = _parse(raw)
    assert isinstance(article, Article) and article.language == "en" and article.body == "one\x00two\x01 three"


def test_a_language_hint_that_is_not_a_code_is_ignored() -> None:
    article = _parse(b'{"url": "https://a.example/x", "body": "x", "language": "English please"}')
    assert isinstance(article, Article) and article.language is None


def test_a_source_with_a_slash_is_fine() -> None:
    assert isinstance(_parse(b'{"url": "https://a.example/x", "body": "x", "source": "AP/Reuters"}'), Article)


def test_oversized_record_is_rejected_before_decoding() -> None:
    value = json.dumps({"url": "https://a.example/x", "body": "x" * 2000}).encode()
    assert _reason(value, max_record_bytes=1000) == "oversized"
    big = json.dumps({"url": "https://a.example/x", "body": "x" * 200_000}).encode()
    letter = parse_record(make_record(big), ParseConfig(max_record_bytes=100_000))
    assert isinstance(letter, DeadLetter) and letter.reason == "oversized" and len(letter.raw_value) == 64 * 1024
    assert isinstance(_parse(value, max_record_bytes=5000), Article)


def test_id_without_url_is_accepted() -> None:
    article = _parse(b'{"id": "abc", "body": "Some text."}')
    assert isinstance(article, Article) and article.article_id == "abc" and article.url == ""
