"""Pure parts of the report: resolving duplicate chains, a lake with nothing in it, entity keys."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.query import connect
from pipelines.report import NOT_NAMED, build_sections, resolve_clusters, top_named_entities, write_report
from transforms.io.lake import Lake, compact


def test_a_copy_of_a_copy_belongs_to_the_kept_article() -> None:
    links = [("b", "a"), ("c", "b"), ("d", "c"), ("x", "y")]
    assert resolve_clusters(links, kept={"a"}) == {"b": "a", "c": "a", "d": "a", "x": "y"}


def test_an_id_resent_as_its_own_copy_does_not_loop() -> None:
    assert resolve_clusters([("a", "a"), ("b", "c"), ("c", "b")], kept=set()) == {"a": "a", "b": "b", "c": "c"}


def test_an_empty_lake_has_a_no_data_note_in_every_section(tmp_path: Path) -> None:
    sections = build_sections(str(tmp_path))
    assert all(section.no_data and not section.charts for section in sections)
    assert "No data" in Path(write_report(str(tmp_path))).read_text("utf-8")


def test_no_lake_at_all_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no lake at"):
        write_report(str(tmp_path / "missing"))


ONE_ENTITY_THREE_SPELLINGS = [("U.S.", "GPE", 3, 8), ("Lloyd Austin", "PERSON", 2, 3), ("Britain", "GPE", 1, 2)]


def test_top_entities_count_every_spelling_once_also_in_a_lake_from_before_keys(lake_from_before_keys: Path) -> None:
    lake = str(lake_from_before_keys)
    connection = connect(lake)
    assert connection.execute("SELECT count(*) FROM entities WHERE key IS NULL").fetchone() == (0,)
    assert top_named_entities(connection, "entities", 10) == ONE_ENTITY_THREE_SPELLINGS  # no "two", no "one"
    assert top_named_entities(connection, "entities", 1, by="mentions") == ONE_ENTITY_THREE_SPELLINGS[:1]
    (section,) = [s for s in build_sections(lake) if s.key == "top-entities"]
    assert section.tables[1][2] == ONE_ENTITY_THREE_SPELLINGS
    assert all(label not in NOT_NAMED for _, label, _ in section.tables[0][2])


def test_a_lake_compacted_across_the_key_column_still_keys_every_row(lake_from_before_keys: Path) -> None:
    assert compact(Lake(str(lake_from_before_keys)))  # the old and new files merge: old rows get NULL keys
    merged = pq.read_table(next((lake_from_before_keys / "entities").rglob("*.parquet")))
    assert merged["key"].null_count == 4 + 1 + 4
    assert top_named_entities(connect(str(lake_from_before_keys)), "entities", 10) == ONE_ENTITY_THREE_SPELLINGS


def test_a_lake_with_no_key_column_at_all_is_keyed_from_canonical(lake_from_before_keys: Path) -> None:
    for path in lake_from_before_keys.glob("*/dt=*/hour=*/news+0+0000000000000000002+*.parquet"):
        path.unlink()
    expected = [("U.S.", "GPE", 2, 4), ("Lloyd Austin", "PERSON", 1, 1)]
    assert top_named_entities(connect(str(lake_from_before_keys)), "entities", 10) == expected
