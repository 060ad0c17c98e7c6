"""Canonical forms of entity mentions: the article's fullest name of each entity (pure, no spaCy, no Beam).

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
and its known misses are measured on hand-judged corpus cases (``tests/component/canonical_cases.json``,
``python -m benchmarks.entity_quality``).

:func:`canonicalise` applies the rule to one article's mentions; :mod:`transforms.entities` (the
stage) calls it and re-exports it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.entity_keys import entity_key, strip_possessive
from schemas.records import Entity

__all__ = ["CANONICAL_LABELS", "NOT_EXTENDED", "canonicalise"]

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
