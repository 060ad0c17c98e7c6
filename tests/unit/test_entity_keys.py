import json

import pytest

from schemas.entity_keys import ALIASES_PATH, NOT_NAMED, aliases, entity_key, strip_possessive


@pytest.mark.parametrize(
    ("names", "key"),
    [
        (
            [
                "US",
                "U.S.",
                "the US",
                "the United States",
                "The United States",
                "USA",
                "U.S.A.",
                "United States of America",
            ],
            "us",
        ),
        (["UK", "U.K.", "the United Kingdom", "Britain", "Great Britain", "the United Kingdom’s"], "uk"),
        (["EU", "E.U.", "the European Union", "the European Union's"], "eu"),
        (["UN", "U.N.", "the United Nations"], "un"),
        (["NATO", "Nato", "the North Atlantic Treaty Organisation’s"], "nato"),
        (["China", "the People’s Republic of China", "the People's Republic of China"], "china"),
        (["The Hague", "the Hague", "Hague"], "hague"),
        (["Ford", "Ford’s", "Ford's", "FORD"], "ford"),
        (["Lloyd Austin", "Lloyd  Austin", "Lloyd\nAustin", "Lloyd Austin's"], "lloyd austin"),
        (["Washington D.C.", "Washington DC"], "washington dc"),
        (["Donald Trump Jr.", "Donald Trump Jr"], "donald trump jr"),
        (["National Police Chiefs’ Council", "the National Police Chiefs' Council"], "national police chiefs' council"),
    ],
)
def test_variants_of_one_name_share_a_key(names: list[str], key: str) -> None:
    assert {entity_key(name) for name in names} == {key}


def test_different_entities_keep_different_keys() -> None:
    names = ["US", "UK", "USAID", "America", "England", "Amazon", "amazon.com", "Donald Trump", "Donald Trump Jr"]
    assert len({entity_key(name) for name in names}) == len(names)


def test_a_lone_article_or_word_is_kept() -> None:
    assert entity_key("The") == "the"
    assert entity_key("A.") == "a"


def test_possessives_and_stray_quotes_are_stripped() -> None:
    assert strip_possessive("Bloomberg’s") == "Bloomberg"
    assert strip_possessive("Travis Kelce‘s") == "Travis Kelce"
    assert strip_possessive("the Chiefs’") == "the Chiefs"
    assert strip_possessive("Meghan Markle '") == "Meghan Markle"
    assert strip_possessive("Vasyl’ Stus") == "Vasyl’ Stus"
    assert strip_possessive("Texas") == "Texas"


def test_the_alias_table_is_small_and_in_normal_form() -> None:
    table = json.loads(ALIASES_PATH.read_text("utf-8"))["aliases"]
    names = [name for key, variants in table.items() for name in (key, *variants)]
    assert len(names) == len(set(names)) == len(aliases()) == 28
    assert all(entity_key(name) == key for key, variants in table.items() for name in (key, *variants))
    assert all(entity_key(key) == key for key in table)


def test_numbers_and_times_are_not_named() -> None:
    assert sorted(NOT_NAMED) == ["CARDINAL", "DATE", "MONEY", "ORDINAL", "PERCENT", "QUANTITY", "TIME"]
