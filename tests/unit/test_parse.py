import json

import pytest

from schemas.records import Article, DeadLetter
from tests.conftest import make_record
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


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe not utf8", "invalid_utf8"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b"42", "not_object"),
        (b'"a string"', "not_object"),
        (b"null", "not_object"),
        (b'{"title": "no url or id", "body": "x"}', "schema_violation"),
        (b'{"url": "https://a.example/x"}', "schema_violation"),
        (b'{"url": "https://a.example/x", "body": 12}', "schema_violation"),
        (b'{"url": "javascript:alert(1)", "body": "x"}', "schema_violation"),
        (b'{"url": "/relative/path", "body": "x"}', "schema_violation"),
        (b'{"url": "https://a.example/x", "body": "x", "published_at": "yesterday-ish"}', "invalid_date"),
        (b'{"url": "https://a.example/x", "body": "x", "published_at": "1850-01-01"}', "date_out_of_range"),
        (b'{"url": "https://a.example/x", "body": "x", "published_at": "2999-01-01T00:00:00Z"}', "date_out_of_range"),
        (b"[" * 100000 + b"]" * 100000, "not_json"),
    ],
)
def test_bad_input_gets_a_reason(value: bytes | None, reason: str) -> None:
    assert _reason(value) == reason


def test_oversized_record_is_rejected_before_decoding() -> None:
    value = json.dumps({"url": "https://a.example/x", "body": "x" * 2000}).encode()
    assert _reason(value, max_record_bytes=1000) == "oversized"
    assert isinstance(_parse(value, max_record_bytes=5000), Article)


def test_id_without_url_is_accepted() -> None:
    article = _parse(b'{"id": "abc", "body": "Some text."}')
    assert isinstance(article, Article) and article.article_id == "abc" and article.url == ""
