import pytest

from tests.conftest import make_record
from transforms.clean import clean_article
from transforms.entities import EntityConfig, annotate, canonicalise, load_model, split_into_chunks
from transforms.parse import parse_record


def test_canonical_is_the_fullest_form_of_the_same_label() -> None:
    entities = canonicalise(
        [
            ("Lloyd Austin", "PERSON", 0, 12),
            ("Austin", "PERSON", 40, 46),
            ("Kim Yong-hyun", "PERSON", 60, 73),
            ("Kim", "PERSON", 90, 93),
            ("Austin", "GPE", 100, 106),
            ("Wednesday", "DATE", 120, 129),
            ("Austin's", "PERSON", 140, 148),
        ]
    )
    assert [e.canonical for e in entities] == [
        "Lloyd Austin",
        "Lloyd Austin",
        "Kim Yong-hyun",
        "Kim Yong-hyun",
        "Austin",
        "Wednesday",
        "Lloyd Austin",
    ]


def test_partial_words_do_not_match() -> None:
    entities = canonicalise([("Kimberly Clark", "PERSON", 0, 14), ("Kim", "PERSON", 20, 23)])
    assert entities[1].canonical == "Kim"


def test_chunks_cut_at_paragraphs_and_keep_offsets() -> None:
    text = "alpha beta.\n\ngamma delta.\n\nepsilon."
    chunks = split_into_chunks(text, 16)
    assert all(len(chunk) <= 16 for _, chunk in chunks)
    assert "".join(chunk for _, chunk in chunks) == text
    assert all(text[offset : offset + len(chunk)] == chunk for offset, chunk in chunks)
    assert split_into_chunks("short", 100) == [(0, "short")]


@pytest.fixture(scope="module")
def nlp():
    return load_model(EntityConfig().model)


def test_model_keeps_only_what_ner_needs(nlp) -> None:
    assert nlp.pipe_names == ["ner"]


def _seed_article(seed_text: str):
    import json

    article = parse_record(make_record(json.dumps({"url": "https://s.example/seed", "body": seed_text}).encode()))
    return clean_article(article)


def test_seed_entities_and_canonical_forms(nlp, seed_text: str) -> None:
    (article,) = annotate(nlp, [_seed_article(seed_text)], EntityConfig())
    found = {(e.text, e.label) for e in article.entities}
    assert {("Lloyd Austin", "PERSON"), ("Kim Yong-hyun", "PERSON"), ("Pyongyang", "GPE")} <= found
    canonical = {e.text: e.canonical for e in article.entities if e.label == "PERSON"}
    assert canonical.get("Austin") == "Lloyd Austin"
    assert canonical.get("Kim") == "Kim Yong-hyun"
    for entity in article.entities:
        assert article.text[entity.start : entity.end] == entity.text


def test_chunked_text_gives_the_same_entities(nlp, seed_text: str) -> None:
    article = _seed_article(seed_text)
    (whole,) = annotate(nlp, [article], EntityConfig())
    (chunked,) = annotate(nlp, [article], EntityConfig(max_chunk_chars=700))
    assert len(split_into_chunks(article.text, 700)) > 2
    for entity in chunked.entities:
        assert article.text[entity.start : entity.end] == entity.text
    people = {e.text for e in whole.entities if e.label == "PERSON"}
    assert people == {e.text for e in chunked.entities if e.label == "PERSON"}


def test_the_stage_scores_on_re3d_exactly_as_bare_spacy_on_the_same_text(nlp, corpus) -> None:
    from benchmarks.entity_quality import compare, score

    count, spans = compare(corpus, nlp)
    assert count == 98 and len(spans["gold"]) > 1000
    assert spans["pipeline"] == spans["bare_on_clean"]  # span for span, so the same F1
    f1 = score(spans["pipeline"], spans["gold"])[2]
    assert f1 == score(spans["bare_on_clean"], spans["gold"])[2]
    assert abs(f1 - score(spans["bare"], spans["gold"])[2]) < 0.005  # cleaning moves a few spans
    assert f1 > 0.3
