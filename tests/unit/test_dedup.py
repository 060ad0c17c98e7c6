"""The pure dedup core: fingerprints, verification, the order rule, compact state."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from transforms.dedup_core import (
    KEY_ANCHOR,
    KEY_PREFIX,
    ArticleRef,
    DedupConfig,
    DedupIndex,
    ShardIndex,
    Ticket,
    best_match,
    decode_memory,
    decode_probes,
    decode_ticket,
    encode_memory,
    encode_probes,
    encode_ticket,
    fingerprint,
    key_kind,
    key_number,
    match_shard,
    probes_by_shard,
    shard_rows,
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
            time_us + 1000 * i,  # the list's order is the records' event-time order
        )
        for i, text in enumerate(texts)
    ]
    return fingerprint(refs, time_us, "news+0+batch", CONFIG)


def test_identical_texts_share_every_key_and_are_exactly_similar() -> None:
    base = _text(300, 1)
    one, two = _tickets([base, base])
    assert set(one.keys) == set(two.keys) and len(one.keys) == CONFIG.bands + 1 + CONFIG.anchors  # + prefix
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
    assert match.earlier is original and match.later is copy  # the earlier event time came first
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


def test_seeds_keep_their_place_in_the_order_and_are_never_decided_again() -> None:
    text = _text(200, 9)
    (new,) = _tickets([text], time_us=10_000)
    earlier_seed = Ticket(**{**new.__dict__, "record_id": 99, "time_us": 1_000, "seed": True})
    match = verify(new, earlier_seed, b"h", CONFIG)
    assert match is not None and match.earlier is earlier_seed and match.later is new
    # A seed that orders after a new article was decided by a run that saw that article: no match.
    later_seed = Ticket(**{**earlier_seed.__dict__, "time_us": 20_000})
    assert verify(new, later_seed, b"h", CONFIG) is None
    assert verify(earlier_seed, Ticket(**{**earlier_seed.__dict__, "record_id": 98}), b"h", CONFIG) is None


def test_the_lake_remembers_a_ticket_with_its_keys() -> None:
    (ticket,) = _tickets([_text(120, 12)], time_us=1_700_000_000_000_000, urls=["https://a.example/x"])
    assert decode_memory(encode_memory(ticket)) == Ticket(**{**ticket.__dict__, "seed": True})
    assert decode_memory(encode_memory(ticket), seed=False) == ticket


def test_tickets_and_shard_probes_round_trip_through_their_byte_forms() -> None:
    (ticket,) = _tickets([_text(120, 10)], time_us=1_700_000_000_000_000, urls=["https://a.example/x"])
    bare = Ticket(**{**ticket.__dict__, "keys": ()})
    assert decode_ticket(encode_ticket(ticket)) == bare
    numbers = [key_number(key) for key in ticket.keys]
    assert len(set(numbers)) == len(numbers)  # one number per key
    assert [key_kind(n) for n in numbers] == [key[:1] for key in ticket.keys]
    before_1970 = Ticket(**{**bare.__dict__, "record_id": 7, "time_us": -5_000_000, "seed": True})
    decoded = decode_probes(encode_probes([(encode_ticket(ticket), numbers[:3]), (encode_ticket(before_1970), [])]))
    assert decoded == [(encode_ticket(ticket), bare, numbers[:3]), (encode_ticket(before_1970), before_1970, [])]
    rows = shard_rows([(before_1970, numbers[:2])])
    assert rows.itemsize == 25
    assert rows.tolist() == [(n, 7, -5_000_000, 1) for n in numbers[:2]]


def test_a_shard_index_finds_entries_across_merges_and_prunes_old_ones() -> None:
    ShardIndex.MERGE_AT, merge_at = 8, ShardIndex.MERGE_AT
    try:
        index = ShardIndex()
        for n in range(50):
            index.add(n % 7, (n, n * 1_000, n % 2 == 0))
        assert len(index) == index.stored == 50 and index.newest == 49_000
        for key in range(7):
            assert sorted(index.lookup(key)) == [(n, n * 1_000, n % 2 == 0) for n in range(key, 50, 7)]
        assert index.lookup(99) == []
        reloaded = ShardIndex.from_blobs([index.entries()[:20].tobytes(), index.entries()[20:].tobytes()], b"t")
        assert reloaded.token == b"t" and len(reloaded) == 50
        assert sorted(reloaded.lookup(3)) == sorted(index.lookup(3))
        assert index.prune(30_000) == 30
        assert sorted(e[0] for key in range(7) for e in index.lookup(key)) == list(range(30, 50))
    finally:
        ShardIndex.MERGE_AT = merge_at


def test_match_shard_pairs_each_probe_once_with_earlier_entries_and_its_own_batch() -> None:
    ttl = CONFIG.ttl_micros
    index = ShardIndex()
    index.add(1, (100, 0, True))  # a seed
    index.add(2, (100, 0, True))
    index.add(1, (101, -2 * ttl, False))  # beyond the TTL
    exact = key_number(b"u" + b"\1" * 7)
    index.add(exact, (100, 0, True))

    def ticket(record: int, seed: bool = False) -> Ticket:
        return Ticket(record, 10, seed, 0, f"a{record}", "b", record, b"", 0)

    pairs = match_shard(index, [(ticket(200), [1, 2, exact]), (ticket(201), [2]), (ticket(300, True), [1])], ttl)
    assert sorted(pairs) == sorted(
        [
            (100, b"u", 0),  # met under two bands and the URL key: once, as exact
            (100, bytes([0]), 1),
            (200, bytes([0]), 1),  # the batch's own earlier probe
            (200, bytes([0]), 2),  # a seed meets a new article, never another seed
        ]
    )
    assert len(index) == 4 + 5


def test_the_sharded_index_finds_the_pairs_the_one_process_index_finds() -> None:
    rng = random.Random(13)
    stories = [_text(250, 100 + i).split() for i in range(6)]
    texts = []
    for _ in range(40):
        words = list(rng.choice(stories))
        for position in rng.sample(range(len(words)), rng.randrange(0, 12)):
            words[position] = "edit"
        texts.append(" ".join(words[: rng.randrange(150, len(words) + 1)]))
    tickets = _tickets(texts, urls=[f"https://x.example/{i % 31}" for i in range(40)])
    reference = DedupIndex(CONFIG)
    for ticket in tickets:
        reference.add(ticket)
    methods = [getattr(reference.decision(t), "method", None) for t in tickets]
    assert methods.count("near") > 10 and methods.count("exact") > 3 and methods.count(None) >= 6
    for shards in (1, 3, 16):
        arrival = tickets[:]
        rng.shuffle(arrival)
        indexes: dict[int, ShardIndex] = {}
        by_record = {t.record_id: t for t in tickets}
        matches: dict[int, list] = {}
        for first in range(0, len(arrival), 7):  # batches of 7, in arrival order
            for shard, probes in probes_by_shard(arrival[first : first + 7], shards).items():
                for record, via, position in match_shard(
                    indexes.setdefault(shard, ShardIndex()), probes, CONFIG.ttl_micros
                ):
                    match = verify(by_record[record], probes[position][0], via, CONFIG)
                    if match is not None:
                        matches.setdefault(match.later.record_id, []).append(match)
        for ticket in tickets:
            ours, theirs = best_match(matches.get(ticket.record_id, ())), reference.decision(ticket)
            assert (ours and (ours.earlier.record_id, ours.method)) == (
                theirs and (theirs.earlier.record_id, theirs.method)
            ), shards
        assert sum(len(index) for index in indexes.values()) == sum(len(t.keys) for t in tickets)


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


@pytest.mark.parametrize("changes", [{"anchors": 65}, {"anchors": -1}, {"anchor_words": 3}])
def test_impossible_anchor_settings_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        DedupConfig(**changes)


def _re3d_texts(corpus: Path) -> list[str]:
    """The corpus's re3d documents, longest first."""
    texts = []
    for path in sorted((corpus / "re3d").glob("*/documents.json")):
        texts += [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    return sorted(texts, key=lambda text: -len(text.split()))


def test_an_excerpt_from_inside_a_long_article_meets_it_under_an_anchor_and_duplicates_it(corpus: Path) -> None:
    """Real articles of 450+ words; excerpts of 15–35 % of their words from past the first 30, every
    other one wrapped in words of another article (so 80 % of it lies in the long one). They do not
    start alike and their Jaccard similarity is far below the threshold: the anchors pair them, and
    the containment estimate decides."""
    texts = [text for text in _re3d_texts(corpus) if len(text.split()) >= 450]
    assert len(texts) >= 6
    rng = random.Random(7)
    decided = []
    for number, text in enumerate(texts[:6]):
        words = text.split()
        for share in (0.15, 0.25, 0.35):
            length = int(len(words) * share)
            start = rng.randrange(30, len(words) - length)
            filler = texts[-1 - number].split()[: length // 4 if number % 2 else 0]
            excerpt = " ".join(filler[: len(filler) // 2] + words[start : start + length] + filler[len(filler) // 2 :])
            original, copy = _tickets([text, excerpt])
            shared = {key[:1] for key in set(original.keys) & set(copy.keys)}
            assert KEY_ANCHOR in shared and KEY_PREFIX not in shared, (number, share)
            assert similarity(original, copy)[0] < CONFIG.jaccard_threshold
            index = DedupIndex(CONFIG)
            index.add(original)
            index.add(copy)
            match = index.decision(copy)
            decided.append(match is not None and match.earlier is original and match.method == "near")
    # one wrapped 15 % excerpt (true containment 0.8) is estimated at 0.69 and kept
    assert decided.count(True) == 17, decided


def test_a_short_text_sharing_a_sentence_with_a_long_one_is_not_its_duplicate(corpus: Path) -> None:
    """40–120 words of one real article ending with a 10–25-word sentence of a long one: they may
    meet under an anchor of that sentence, and the containment estimate can be high (a few
    one-byte minima agree by the shared sentence alone), but too few minima agree to trust it."""
    texts = _re3d_texts(corpus)
    long_ones, short_sources = texts[:10], texts[20:60]
    rng = random.Random(11)
    met = claimed = 0
    for number, source in enumerate(short_sources):
        long_text = long_ones[number % len(long_ones)].split()
        sentence = rng.randrange(10, 26)
        at = rng.randrange(0, len(long_text) - sentence)
        brief = " ".join(source.split()[: rng.randrange(40, 121)] + long_text[at : at + sentence])
        original, copy = _tickets([" ".join(long_text), brief])
        met += bool(set(original.keys) & set(copy.keys))
        claimed += verify(original, copy, KEY_ANCHOR, CONFIG) is not None
    assert met >= 5  # the anchors did pair some of them
    assert claimed == 0


def test_an_articles_keys_do_not_depend_on_its_batch(corpus: Path) -> None:
    texts = _re3d_texts(corpus)[:40]
    together = _tickets(texts)
    for position in (0, 17, 39):
        (alone,) = fingerprint(
            [ArticleRef(f"id{position}", texts[position], "", "", "news", 0, position, 1000 * position)],
            0,
            "news+0+batch",
            CONFIG,
        )
        assert alone.keys == together[position].keys
        assert sum(key[:1] == KEY_ANCHOR for key in alone.keys) == CONFIG.anchors
