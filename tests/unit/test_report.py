"""Pure parts of the report: resolving duplicate chains, and a lake with nothing in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.report import build_sections, resolve_clusters, write_report


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
