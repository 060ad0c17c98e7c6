"""Sections about what became of records: duplicates, quarantine and dead-letter reasons, language mix.

``resolve_clusters`` follows ``duplicate_of`` chains to the kept article; the rest are DuckDB
queries over the lake's views that return a ``Section``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import duckdb

from pipelines.report.model import TOP, Chart, Section, _shorten
from pipelines.report.queries import _missing, _rows, _table_rows


def resolve_clusters(links: Sequence[tuple[str, str]], kept: set[str]) -> dict[str, str]:
    """Duplicate id → the id its chain of ``duplicate_of`` ends at (a kept article when the lake has it).

    A copy may name an earlier copy rather than the kept article (see docs/dedup.md), so
    the chain is followed through ``duplicates``; a loop (an id re-sent as its own copy) stops it.
    """
    parent: dict[str, str] = {}
    for article_id, duplicate_of in links:
        parent.setdefault(article_id, duplicate_of)
    roots = {}
    for article_id in parent:
        node, seen = parent[article_id], {article_id}
        while node not in kept and node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        roots[article_id] = node
    return roots


def duplicates(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Share of parsed records that were copies, and the largest clusters of one story."""
    section = Section(
        "duplicates",
        "Duplicates",
        "Duplicate rate: rows of `duplicates` over all records that became an article "
        "(`articles` + `quarantine` + `duplicates`). A cluster is a kept article and every copy "
        "whose `duplicate_of` chain leads to it; its size counts the kept article too.",
    )
    copies = _table_rows(
        connection, present, section, "duplicates", "SELECT article_id, duplicate_of, method, source FROM duplicates"
    )
    if copies is None:
        return section
    kept_rows = _rows(connection, "SELECT article_id, title, source FROM articles")
    kept = {article_id: (title, source) for article_id, title, source in kept_rows}
    quarantined = _rows(connection, "SELECT count(*) FROM quarantine")[0][0]
    total = len(kept_rows) + quarantined + len(copies)
    methods = Counter(method for _, _, method, _ in copies)
    section.tables.append(
        (
            "Duplicate rate",
            ["duplicates", "records that became articles", "rate", "exact", "near"],
            [(len(copies), total, f"{len(copies) / total:.1%}", methods.get("exact", 0), methods.get("near", 0))],
        )
    )
    roots = resolve_clusters([(a, b) for a, b, _, _ in copies], set(kept))
    members: dict[str, list[str | None]] = {}
    for article_id, _, _, source in copies:
        members.setdefault(roots[article_id], []).append(source)
    largest = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP]
    rows = []
    for root, sources in largest:
        title, source = kept.get(root, (None, None))
        outlets = {s for s in [source, *sources] if s}
        rows.append((root, title or "(not in articles)", 1 + len(sources), len(outlets)))
    section.charts.append(
        Chart(
            f"Largest {len(rows)} duplicate clusters",
            [_shorten(f"{title} [{root}]") for root, title, _, _ in rows],
            {"articles in cluster": [size for *_, size, _ in rows]},
            x_label="articles in cluster",
        )
    )
    section.tables.append(("Largest clusters", ["kept article", "title", "cluster size", "outlets"], rows))
    return section


def quarantine_reasons(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Which expectations quarantined articles broke."""
    section = Section(
        "quarantine",
        "Quarantine reasons",
        "Articles that broke an expectation, counted per expectation name in `failed_expectations` "
        "(an article that broke two counts under both).",
    )
    rows = _table_rows(
        connection,
        present,
        section,
        "quarantine",
        "SELECT reason, count(*) FROM (SELECT unnest(failed_expectations) AS reason FROM quarantine)"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    if rows is None:
        return section
    section.charts.append(
        Chart("Quarantined articles by expectation", [r for r, _ in rows], {"articles": [n for _, n in rows]})
    )
    section.tables.append(("Quarantine reasons", ["expectation", "articles"], rows))
    return section


def dead_letter_reasons(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Rejected records by stage and reason."""
    section = Section(
        "dead-letters",
        "Dead-letter reasons",
        "Records that could not become an article, by the stage that rejected them and its reason.",
    )
    rows = _table_rows(
        connection,
        present,
        section,
        "dead_letters",
        "SELECT stage, reason, count(*) FROM dead_letters GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
    )
    if rows is None:
        return section
    section.charts.append(
        Chart(
            "Dead letters by stage/reason",
            [f"{stage}/{reason}" for stage, reason, _ in rows],
            {"records": [n for *_, n in rows]},
        )
    )
    section.tables.append(("Dead-letter reasons", ["stage", "reason", "records"], rows))
    return section


def language_mix(connection: duckdb.DuckDBPyConnection, present: set[str]) -> Section:
    """Languages of kept and quarantined articles."""
    section = Section(
        "languages",
        "Language mix",
        "Languages (ISO 639-1, given or detected) of kept articles and of quarantined ones.",
    )
    if not present & {"articles", "quarantine"}:
        section.no_data = _missing("articles")
        return section
    rows = _rows(
        connection,
        "SELECT coalesce(language, 'und') AS language, count(*) FILTER (WHERE kept), count(*) FILTER (WHERE NOT kept)"
        " FROM (SELECT language, true AS kept FROM articles UNION ALL SELECT language, false FROM quarantine)"
        " GROUP BY 1 ORDER BY count(*) DESC, 1",
    )
    if not rows:
        section.no_data = "No data: neither `articles` nor `quarantine` has rows."
        return section
    section.charts.append(
        Chart(
            "Articles by language",
            [language for language, *_ in rows],
            {"kept": [row[1] for row in rows], "quarantined": [row[2] for row in rows]},
        )
    )
    section.tables.append(("Languages", ["language", "kept", "quarantined"], rows))
    return section
