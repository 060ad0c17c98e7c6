"""Row mappers shared by the lake sink and the quality suite: a record as its table row (pure).

The lake writes these rows (:mod:`transforms.io.lake`) and the quality stage validates the same
rows before they are written (:func:`transforms.quality_core.articles_frame`), so both import the
mapping from here rather than the stage importing IO. Column names are those of
:mod:`schemas.arrow`. Imports nothing of ours outside ``schemas``.
"""

from __future__ import annotations

from typing import Any

from schemas.records import Article

__all__ = ["article_row"]


def article_row(article: Article) -> dict[str, Any]:
    """An article as its ``articles`` row (column names as in :data:`schemas.arrow.ARTICLES`)."""
    return {
        "article_id": article.article_id,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "source": article.source,
        "title": article.title,
        "site_name": article.site_name,
        "authors": list(article.authors),
        "text": article.text,
        "language": article.language,
        "published_at": article.published_at,
        "ingested_at": article.ingested_at,
        "word_count": article.word_count,
        "content_hash": article.content_hash,
        "cluster_id": article.cluster_id or article.article_id,
        "entities": [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "canonical": e.canonical, "key": e.key}
            for e in article.entities
        ],
        "ner_status": article.ner_status,
        "ner_model": article.ner_model,
        "kafka_topic": article.kafka_topic,
        "kafka_partition": article.kafka_partition,
        "kafka_offset": article.kafka_offset,
    }
