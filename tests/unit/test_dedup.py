"""The pure dedup core: fingerprints, verification, the order rule, compact state."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import struct
from pathlib import Path

import pytest

from transforms.dedup_core import (
    KEY_ANCHOR,
    KEY_ID,
    KEY_PREFIX,
    VOID,
    ArticleRef,
    ClusterRoots,
    DedupConfig,
    DedupIndex,
    Link,
    ShardIndex,
    Ticket,
    best_match,
    decode_links,
    decode_memory,
    decode_probes,
    decode_ticket,
    encode_links,
    encode_memory,
    encode_probes,
    encode_ticket,
    fingerprint,
    key_kind,
    key_number,
    match_shard,
    probes_by_shard,
    remember_root,
    shard_rows,
    similarity,
    verify,
)

CONFIG = DedupConfig()
_VOCABULARY = [f"w{i}" for i in range(3000)]


def _text(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCABULARY) for _ in range(words))


def _tickets(
    texts: list[str],
    time_us: int = 0,
    urls: list[str] | None = None,
    hashes: list[str] | None = None,
    ids: list[str] | None = None,
):
    refs = [
        ArticleRef(
            ids[i] if ids else f"id{i}",
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
    content_keys = {key for key in one.keys if key[:1] != KEY_ID}  # each article's id key is its own
    assert content_keys == {key for key in two.keys if key[:1] != KEY_ID}
    assert len(content_keys) == CONFIG.bands + 1 + CONFIG.anchors  # + prefix
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
    assert (
        one.keys == (KEY_ID + one.keys[0][1:],) and len(two.keys) == 1
    )  # only the id key: no URL or hash given, too short for bands


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


def test_the_lake_remembers_a_ticket_with_its_keys_and_root_and_reads_memories_written_before_roots() -> None:
    (ticket,) = _tickets([_text(120, 12)], time_us=1_700_000_000_000_000, urls=["https://a.example/x"])
    assert decode_memory(encode_memory(ticket)) == Ticket(**{**ticket.__dict__, "seed": True})
    assert decode_memory(encode_memory(ticket), seed=False) == ticket
    decided = remember_root(encode_memory(ticket), "the-kept-one")
    assert decode_memory(decided) == Ticket(**{**ticket.__dict__, "seed": True, "root": "the-kept-one"})
    # The form written before roots: the ticket ended with its batch key (no root length after it).
    old_ticket = encode_ticket(ticket)[:-2]
    keys = b"".join(bytes([len(key)]) + key for key in ticket.keys)
    old_memory = struct.pack("<IH", len(old_ticket), len(ticket.keys)) + old_ticket + keys
    assert decode_memory(old_memory) == Ticket(**{**ticket.__dict__, "seed": True})
    assert decode_ticket(old_ticket).root == ""


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
    # every one is found (before shingles were taken from the NFKC form, one wrapped 15 % excerpt,
    # true containment 0.8, was estimated at 0.69 and kept: estimates this close to the threshold
    # move with any change of the hashed words)
    assert decided.count(True) == 18, decided


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


def _chain_texts(corpus: Path, length: int = 120, copies: int = 6, documents: int = 4) -> list[list[str]]:
    """Chains of real text: windows of ``length`` words sliding by a third, so each window shares
    two thirds of its words with the next (a near duplicate) and a third with the one after."""
    chains = []
    for text in _re3d_texts(corpus)[:documents]:
        words = text.split()
        step = length // 3
        chains.append([" ".join(words[i * step : i * step + length]) for i in range(copies)])
    return chains


def test_a_duplicate_names_the_kept_article_heading_the_cluster_of_the_one_it_matched(corpus: Path) -> None:
    """A < B < C: B matches A, C matches only B. C names A, with the similarity of the pair C–B."""
    a, b, c = _chain_texts(corpus, copies=3, documents=1)[0]
    first, second, third = _tickets([a, b, c])
    assert verify(first, third, KEY_ANCHOR, CONFIG) is None  # C does not match A
    index = DedupIndex(CONFIG)
    for ticket in (third, first, second):
        index.add(ticket)
    assert index.decision(second).earlier is first and index.duplicate_of(second) == "id0"
    matched = index.decision(third)
    assert matched.earlier is second and index.duplicate_of(third) == "id0"
    assert matched.similarity == verify(second, third, KEY_ANCHOR, CONFIG).similarity
    assert index.duplicate_of(first) is None


def test_every_duplicate_names_a_kept_article_whatever_the_arrival_and_the_links_order(corpus: Path) -> None:
    """Chains of six copies from four real articles, with exact re-sends, in event-time order;
    arrival shuffled. Without roots a third of the duplicates would name another duplicate."""
    rng = random.Random(5)
    texts = [text for chain in _chain_texts(corpus) for text in chain]
    texts += [texts[i] for i in rng.sample(range(len(texts)), 6)]  # exact re-sends, later
    tickets = _tickets(texts, hashes=[hashlib.sha256(text.encode()).hexdigest() for text in texts])
    arrival = tickets[:]
    rng.shuffle(arrival)
    index = DedupIndex(CONFIG)
    for ticket in arrival:
        index.add(ticket)
    kept = {t.article_id for t in tickets if index.decision(t) is None}
    named = {t.article_id: index.duplicate_of(t) for t in tickets if index.decision(t) is not None}
    assert len(kept) == 4 and len(named) == len(tickets) - 4
    assert set(named.values()) <= kept
    via_duplicate = [t for t in tickets if index.decision(t) and index.decision(t).earlier.article_id not in kept]
    assert len(via_duplicate) >= len(named) // 3  # the old rule's dangling links
    links = [Link.kept(t).to(index.decision(t)) for t in tickets]
    for _ in range(5):
        rng.shuffle(links)
        roots = ClusterRoots()
        settled = {link.article_id: root for link, root in roots.add(decode_links(encode_links(links)))}
        assert roots.waiting == 0 and len(settled) == len(tickets)
        assert {i: r for i, r in settled.items() if i not in kept} == named
        assert {i for i, r in settled.items() if i == r} == kept


def test_a_seed_brings_the_root_its_run_recorded(corpus: Path) -> None:
    """B, decided by an earlier run as a duplicate of A, is a seed now (A beyond reach); C matches
    only B and names A. A memory written before roots were kept makes the seed its own root."""
    a, b, c = _chain_texts(corpus, copies=3, documents=1)[0]
    _, second, third = _tickets([a, b, c])
    remembered = remember_root(encode_memory(second), "id0")
    for memory, root in ((remembered, "id0"), (encode_memory(second), "id1")):
        seed = decode_memory(memory)
        index = DedupIndex(CONFIG)
        index.add(seed)
        index.add(third)
        assert index.decision(third).earlier == seed and index.duplicate_of(third) == root
        assert ClusterRoots().add([Link.kept(third).to(index.decision(third))])[0][1] == root


def test_cluster_roots_wait_for_the_link_they_need_and_forget_old_roots() -> None:
    def linked(record: int, time_s: int, matched: int | None = None) -> Link:
        if matched is None:
            return Link(record, time_s * 10**6, f"a{record}", "b", record)
        return Link(record, time_s * 10**6, f"a{record}", "b", record, matched, (time_s - 1) * 10**6, f"a{matched}")

    roots = ClusterRoots()
    assert roots.add([linked(4, 4, 3), linked(3, 3, 2)]) == [] and roots.waiting == 2
    settled = roots.add([linked(2, 2, 1), linked(1, 1)])
    assert sorted((link.record_id, root) for link, root in settled) == [(1, "a1"), (2, "a1"), (3, "a1"), (4, "a1")]
    assert roots.waiting == 0 and len(roots) == 4
    assert roots.prune(3 * 10**6) == 2 and roots.forgotten_before == 3 * 10**6
    rebuilt = ClusterRoots(roots.forgotten_before)
    rebuilt.add(roots.snapshot())
    assert rebuilt.add([linked(5, 5, 4)])[0][1] == "a1"
    # A link to a forgotten article settles on that article rather than wait for ever.
    assert rebuilt.add([linked(6, 2, 1)])[0][1] == "a1" and rebuilt.waiting == 0


def _edited(text: str, seed: int, share: float = 0.05) -> str:
    """``text`` with a share of its words replaced: a near copy."""
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCABULARY) if rng.random() < share else word for word in text.split())


def _conflicts() -> tuple[list[Ticket], dict[str, tuple[str, str | None]]]:
    """Five articles in event-time order, three of them claiming the id ``X``, and what becomes of each.

    A (X) is kept. B (X, another story) is turned away. C (its own id, a near copy of B) matched
    only B, which is not in the lake: kept. D (X, another near copy of B) matched only B and has
    an id conflict with A: turned away too. E (X, A's text again: a record produced twice) is
    A's duplicate: content comes first.
    """
    story, other = _text(300, 11), _text(300, 12)
    texts = [story, other, _edited(other, 1), _edited(other, 2), story]
    ids = ["X", "X", "C", "X", "X"]
    hashes = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
    tickets = _tickets(texts, hashes=hashes, ids=ids)
    expected = {
        "A": ("kept", None),
        "B": ("id_conflict", None),
        "C": ("kept", None),
        "D": ("id_conflict", None),
        "E": ("duplicate", "X"),
    }
    return tickets, expected


def test_a_second_story_under_a_taken_id_is_turned_away_whatever_the_order() -> None:
    tickets, expected = _conflicts()
    names = "ABCDE"
    for seed in range(6):
        arrival = tickets[:]
        random.Random(seed).shuffle(arrival)
        index = DedupIndex(CONFIG)
        for ticket in arrival:
            index.add(ticket)
        assert {name: index.outcome(t) for name, t in zip(names, tickets, strict=True)} == expected
        assert index.conflict(tickets[1]).earlier is tickets[0]
        links = [Link.kept(t).to(index.decision(t), index.conflict(t)) for t in tickets]
        random.Random(seed).shuffle(links)
        roots = ClusterRoots()
        settled = {link.offset: (link, root) for link, root in roots.add(decode_links(encode_links(links)))}
        assert roots.waiting == 0
        assert [settled[i][1] for i in range(5)] == ["X", VOID, "C", VOID, "X"]
        assert [settled[i][0].matched is None for i in range(5)] == [True, True, True, True, False]
        assert settled[1][0].conflict_with == "topic news, partition 0, offset 0"


def test_an_id_conflict_is_decided_by_the_pair_not_by_the_key_it_met_under() -> None:
    tickets, _ = _conflicts()
    a, b, c, d, e = tickets
    for via in (KEY_ID, KEY_ANCHOR, KEY_PREFIX, b"\x03"):
        assert verify(a, b, via, CONFIG).method == "id_conflict"
        assert verify(b, d, via, CONFIG).method == "near"  # same id, matching content: a copy
        assert verify(a, c, via, CONFIG) is None  # other id, other content
    assert verify(a, e, b"h", CONFIG).method == "exact"


def test_a_turned_away_article_is_remembered_as_such_and_decides_alike_after_a_restart() -> None:
    """A restart after B was turned away: B comes back as a seed with the root VOID; C and D get
    the decisions they got in one run."""
    tickets, expected = _conflicts()
    a, b, c, d, e = tickets
    first_run = DedupIndex(CONFIG)
    for ticket in (a, b):
        first_run.add(ticket)
    roots = {t.offset: first_run.root(t) for t in (a, b)}
    assert roots == {0: "X", 1: VOID}
    seeds = [decode_memory(remember_root(encode_memory(t), roots[t.offset])) for t in (a, b)]
    second_run = DedupIndex(CONFIG)
    for ticket in (*seeds, c, d, e):
        second_run.add(ticket)
    assert {name: second_run.outcome(t) for name, t in zip("CDE", (c, d, e), strict=True)} == {
        name: expected[name] for name in "CDE"
    }
    for live in (c, d, e):
        decided = Link.kept(live).to(second_run.decision(live), second_run.conflict(live))
        assert ClusterRoots().add([decided])[0][1] == first_run_root(live, expected)


def first_run_root(ticket: Ticket, expected: dict[str, tuple[str, str | None]]) -> str:
    kind, root = {2: expected["C"], 3: expected["D"], 4: expected["E"]}[ticket.offset]
    return {"kept": ticket.article_id, "id_conflict": VOID}.get(kind, root)
