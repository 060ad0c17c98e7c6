"""The pure dedup core: fingerprints, verification, the order rule, compact state."""

from __future__ import annotations

import itertools
import random

import pytest

from transforms.dedup_core import (
    ArticleRef,
    DedupConfig,
    DedupIndex,
    Ticket,
    decode_entry,
    decode_ticket,
    encode_entry,
    encode_ticket,
    fingerprint,
    similarity,
    verify,
)

CONFIG = DedupConfig()
_VOCABULARY = [f"w{i}" for i in range(3000)]


def _text(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCABULARY) for _ in range(words))


def _tickets(texts: list[str], time_us: int = 0, urls: list[str] | None = None, hashes: list[str] | None = None):
    refs = [
        ArticleRef(
            f"id{i}",
            text,
            (urls or [""] * len(texts))[i],
            (hashes or [""] * len(texts))[i],
            "news",
            0,
            i,
        )
        for i, text in enumerate(texts)
    ]
    return fingerprint(refs, time_us, "news+0+batch", CONFIG)


def test_identical_texts_share_every_key_and_are_exactly_similar() -> None:
    base = _text(300, 1)
    one, two = _tickets([base, base])
    assert set(one.keys) == set(two.keys) and len(one.keys) == CONFIG.bands + 1  # bands + prefix
    assert similarity(one, two) == (1.0, 1.0)


def test_unrelated_texts_share_no_key_and_do_not_match() -> None:
    one, two = _tickets([_text(300, 1), _text(300, 2)])
    assert not set(one.keys) & set(two.keys)
    jaccard, _ = similarity(one, two)
    assert jaccard < 0.05
    assert verify(one, two, bytes([0]), CONFIG) is None


def test_a_lightly_edited_copy_is_a_near_duplicate_of_the_earlier_one() -> None:
    words = _text(400, 3).split()
    edited = [("edit" if i % 40 == 0 else w) for i, w in enumerate(words)]
    original, copy = _tickets([" ".join(words), " ".join(edited)])
    assert set(original.keys) & set(copy.keys)
    match = verify(copy, original, bytes([0]), CONFIG)
    assert match is not None and match.method == "near"
    assert match.earlier is original and match.later is copy  # position 0 came first
    assert 0.7 < match.similarity <= 1.0


def test_a_truncated_copy_matches_by_containment_not_jaccard() -> None:
    words = _text(600, 4).split()
    original, truncated = _tickets([" ".join(words), " ".join(words[:240])])
    jaccard, containment = similarity(original, truncated)
    assert jaccard < CONFIG.jaccard_threshold and containment > 0.9
    match = verify(original, truncated, b"p", CONFIG)
    assert match is not None and match.method == "near"


def test_exact_keys_match_whatever_the_text_and_say_so() -> None:
    one, two = _tickets([_text(100, 5), _text(100, 6)], urls=["https://a.example/x"] * 2)
    assert set(one.keys) & set(two.keys)
    match = verify(one, two, b"u", CONFIG)
    assert match is not None and match.method == "exact" and match.similarity < 0.1
    same = verify(one, two, b"h", CONFIG)
    assert same is not None and same.similarity == 1.0


def test_short_texts_only_match_exactly() -> None:
    one, two = _tickets(["Markets rose today.", "Markets rose today again."])
    assert len(one.keys) == 0 and len(two.keys) == 0  # no URL or hash given, too short for bands


def test_articles_further_apart_than_the_ttl_never_match() -> None:
    text = _text(200, 8)
    (early,) = _tickets([text], time_us=0)
    (late,) = _tickets([text], time_us=CONFIG.ttl_micros + 1)
    assert verify(early, late, b"h", CONFIG) is None


def test_seeds_come_first_and_are_never_duplicates() -> None:
    text = _text(200, 9)
    (new,) = _tickets([text], time_us=10)
    seed = Ticket(**{**new.__dict__, "record_id": 99, "time_us": 1_000, "seed": True})
    match = verify(new, seed, b"h", CONFIG)
    assert match is not None and match.earlier is seed and match.later is new
    assert verify(seed, Ticket(**{**seed.__dict__, "record_id": 98}), b"h", CONFIG) is None


def test_tickets_and_entries_round_trip_through_their_byte_forms() -> None:
    (ticket,) = _tickets([_text(120, 10)], time_us=1_700_000_000_000_000)
    assert decode_ticket(encode_ticket(ticket)) == Ticket(**{**ticket.__dict__, "keys": ()})
    assert decode_entry(encode_entry(ticket)) == (ticket.record_id, ticket.time_us, False)
    assert len(encode_entry(ticket)) == 14
    before_1970 = Ticket(**{**ticket.__dict__, "time_us": -5_000_000, "seed": True})
    assert decode_entry(encode_entry(before_1970)) == (ticket.record_id, -5_000_000, True)


def test_the_index_decides_the_same_whatever_the_arrival_order() -> None:
    base = _text(300, 11).split()
    texts = [
        " ".join(base),
        " ".join(base[:200]),
        " ".join(w if i % 30 else "x" for i, w in enumerate(base)),
        _text(300, 12),
    ]
    tickets = _tickets(texts)
    outcomes = set()
    for permutation in itertools.permutations(tickets):
        index = DedupIndex(CONFIG)
        for ticket in permutation:
            index.add(ticket)
        decisions = []
        for ticket in tickets:
            match = index.decision(ticket)
            decisions.append(None if match is None else (match.earlier.article_id, match.method))
        outcomes.add(tuple(decisions))
    assert outcomes == {(None, ("id0", "near"), ("id0", "near"), None)}


@pytest.mark.parametrize("bands, rows", [(24, 6), (0, 4), (101, 1)])
def test_impossible_band_layouts_are_refused(bands: int, rows: int) -> None:
    with pytest.raises(ValueError):
        DedupConfig(bands=bands, rows=rows)
