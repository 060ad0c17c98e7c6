"""Entity keys: one value for the names of one entity ("US", "U.S.", "the United States" → ``us``).

The ``key`` of an entity (in ``articles.entities`` and the ``entities`` table) is
:func:`entity_key` of its ``canonical`` form. Readers group by key and label, so a top-entity
list counts an entity once however the articles spell it. The rule, in order:

1. curly apostrophes become straight, a final possessive goes ("Ford’s" → "Ford", "Chiefs’" →
   "Chiefs"), and so do surrounding quotes and brackets;
2. case-folded; whitespace (line breaks included) collapsed to single spaces;
3. a leading article goes ("the United States" → "united states"; "The Hague" → "hague": an article
   never tells two entities apart, and keeping it for some names would need a list of them);
4. dots go from acronyms and from a word's end ("U.S." → "us", "Jr." → "jr"), not from inside a
   word ("amazon.com" stays);
5. the result is looked up in the alias table ``schemas/entity_aliases.json`` (its format is
   described in the file), so "united states" → "us".

The key is the same for every label; the label stays a separate column ("Washington" the person
and the city share a key and are told apart by label). Pure, with no Beam, so the read side can
compute keys for rows written before the column existed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["NOT_NAMED", "aliases", "entity_key", "strip_possessive"]

NOT_NAMED = ("DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY")
"""spaCy's labels for numbers and times: they name nothing, so no top-entity list shows them."""

ALIASES_PATH = Path(__file__).resolve().parent / "entity_aliases.json"

_ARTICLES = frozenset({"the", "a", "an"})
_POSSESSIVE_END = re.compile(r"(?:(?<=\w)['’‘][sS]|(?<=[sS])['’‘]|\s+['’‘\"“”])\s*$")
_ACRONYM = re.compile(r"(?:\w\.)+\w?")
_SURROUNDING = ' \t\r\n"“”()[]{}<>,;:!?'


def strip_possessive(text: str) -> str:
    """``text`` without surrounding whitespace and a final possessive or stray quote."""
    return _POSSESSIVE_END.sub("", text.strip()).strip()


def _normal(text: str) -> str:
    text = strip_possessive(text.replace("’", "'").replace("‘", "'")).strip(_SURROUNDING)
    words = text.casefold().split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(word.replace(".", "") if _ACRONYM.fullmatch(word) else word.rstrip(".") or word for word in words)


def _load_aliases(path: Path) -> dict[str, str]:
    table = json.loads(path.read_text("utf-8"))["aliases"]
    names: dict[str, str] = {}
    for key, variants in table.items():
        for name in (key, *variants):
            if _normal(name) != name:
                raise ValueError(f"{path.name}: {name!r} is not in normal form ({_normal(name)!r})")
            if names.get(name, key) != key:
                raise ValueError(f"{path.name}: {name!r} is listed under {names[name]!r} and {key!r}")
            names[name] = key
    return names


_ALIASES = _load_aliases(ALIASES_PATH)


def aliases() -> dict[str, str]:
    """The alias table as ``{name: key}`` (each key maps to itself too)."""
    return dict(_ALIASES)


def entity_key(text: str) -> str:
    """The key of an entity named ``text`` (see the module docstring for the rule)."""
    normal = _normal(text)
    return _ALIASES.get(normal, normal)
