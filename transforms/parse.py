"""ParseArticle: Kafka record bytes → :class:`Article`, or a dead letter with a reason.

Enforces the input contract (``schemas/article.schema.json``). Reasons it gives:

``tombstone``          the record has no value (a Kafka delete marker)
``oversized``          the value is larger than the configured limit
``invalid_utf8``       the value is not valid UTF-8
``not_json``           the value is not JSON
``not_object``         the JSON is not an object (array, string, number, null)
``schema_violation``   the object breaks the schema (missing url/id or body/html, wrong types, ...)
``invalid_date``       ``published_at`` is not an RFC 3339 / ISO 8601 date
``date_out_of_range``  ``published_at`` is before 1900 or more than a day in the future
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

from schemas.records import Article, DeadLetter, KafkaRecord
from transforms.stage import RoutingStage

__all__ = ["ParseArticle", "ParseConfig", "parse_record"]

STAGE = "parse"
EARLIEST_DATE = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
FUTURE_TOLERANCE = dt.timedelta(days=1)


@dataclass(frozen=True)
class ParseConfig:
    """How strict ParseArticle is."""

    max_record_bytes: int = 10 * 1024 * 1024


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    text = resources.files("schemas").joinpath("article.schema.json").read_text("utf-8")
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


class _Rejected(Exception):
    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason


def parse_published_at(value: str | None, now: dt.datetime) -> dt.datetime | None:
    """An ISO 8601 / RFC 3339 date as timezone-aware UTC (naive dates are taken as UTC)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise _Rejected("invalid_date", f"published_at {value!r}: {error}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    parsed = parsed.astimezone(dt.UTC)
    if parsed < EARLIEST_DATE or parsed > now + FUTURE_TOLERANCE:
        raise _Rejected("date_out_of_range", f"published_at {value!r} is before 1900 or in the future")
    return parsed


def _decode(record: KafkaRecord, config: ParseConfig) -> dict[str, Any]:
    if record.value is None:
        raise _Rejected("tombstone", "record has no value")
    if len(record.value) > config.max_record_bytes:
        raise _Rejected("oversized", f"value is {len(record.value)} bytes; limit {config.max_record_bytes}")
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Rejected("invalid_utf8", str(error)) from None
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise _Rejected("not_json", str(error)[:500]) from None
    if not isinstance(message, dict):
        raise _Rejected("not_object", f"JSON value is {type(message).__name__}, not an object")
    violation = jsonschema.exceptions.best_match(_validator().iter_errors(message))
    if violation is not None:
        where = "/".join(str(part) for part in violation.absolute_path) or "(root)"
        raise _Rejected("schema_violation", f"{where}: {violation.message}"[:500])
    return message


def parse_record(record: KafkaRecord, config: ParseConfig = ParseConfig()) -> Article | DeadLetter:
    """The article a record carries, or a dead letter saying why there is none."""
    try:
        message = _decode(record, config)
        published_at = parse_published_at(message.get("published_at"), record.ingested_at)
    except _Rejected as rejected:
        return DeadLetter.for_record(record, STAGE, rejected.reason, str(rejected))
    assert record.value is not None  # _decode rejected tombstones
    return Article(
        article_id=message.get("id") or "",
        url=message.get("url") or "",
        title=message.get("title"),
        body=message.get("body"),
        html=message.get("html"),
        published_at=published_at,
        source=message.get("source"),
        language=message.get("language"),
        ingested_at=record.ingested_at,
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        batch=record.batch,
        raw_value=record.value,
        raw_key=record.key,
    )


class ParseArticle(RoutingStage):
    """``PCollection[KafkaRecord]`` → ``articles`` (``Article``) and ``dead_letters``."""

    def __init__(self, config: ParseConfig = ParseConfig()) -> None:
        super().__init__(STAGE, functools.partial(parse_record, config=config))
