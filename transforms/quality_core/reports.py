"""A batch report's files and the Data Docs: names, the summary, static HTML, and the store protocol.

Owns what the stage writes for each validated batch and how it looks, not where it goes: the
stage writes through a :class:`QualityStore` it is given (the lake's is
:class:`transforms.io.quality_store.LakeQualityStore`), so no stage imports IO. Files live under
``LAKE/_quality/`` (:data:`QUALITY`): ``results/<batch key>.json`` (the full report),
``summaries/<batch key>.json`` (the :data:`SUMMARY_FIELDS` the index reads) and
``docs/batches/<batch key>.html`` (:func:`render_batch_page`); ``docs/index.html`` is
:func:`render_index`. Pages are self-contained (no script, no external assets).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "QUALITY",
    "SUMMARY_FIELDS",
    "QualityStore",
    "render_batch_page",
    "render_index",
    "report_summary",
]

QUALITY = "_quality"
SUMMARY_FIELDS = ("batch", "run", "validated_at", "validation_seconds", "status", "counts", "failed_batch_expectations")


class QualityStore(Protocol):
    """Where the quality stage writes each batch's report and rebuilds the Data Docs index."""

    def write_report(self, report: Mapping[str, Any]) -> None:
        """Store the batch's results, summary and HTML page (atomically, under the batch's key)."""

    def write_index(self) -> str:
        """Rebuild the Data Docs index from the stored summaries; returns where it went."""


def report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields of a report the index reads (:data:`SUMMARY_FIELDS`)."""
    return {field: report.get(field) for field in SUMMARY_FIELDS}


# --- Data Docs (static HTML rendered from the stored JSON) -----------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed,.true{color:#17692b}.batch_failed,.error,.false{color:#a4161a}.rows_quarantined{color:#9a6700}
.superseded,.uncommitted{color:#777}code{font-size:90%}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def render_batch_page(report: Mapping[str, Any]) -> str:
    """A batch's results as a self-contained HTML page (no script, no external assets)."""
    batch = report["batch"]
    counts = report.get("counts", {})
    rows = []
    for entry in report.get("expectations", []):
        failing = ", ".join(
            f"row {f['row']} ({_e(f.get('article_id'))}, offset {_e(f.get('kafka_offset'))})"
            for f in entry.get("failing_rows", [])[:50]
        )
        observed = entry.get("error") or (
            "" if entry.get("observed") is None else json.dumps(entry["observed"], default=str)
        )
        arguments = json.dumps(entry["kwargs"], default=str)
        rows.append(
            f"<tr><td><code>{_e(entry['name'])}</code></td><td>{_e(entry['level'])}</td>"
            f"<td><code>{_e(entry['type'])}</code><br><small>{_e(arguments)}</small></td>"
            f'<td class="{str(entry["success"]).lower()}">{"passed" if entry["success"] else "FAILED"}</td>'
            f"<td>{_e(observed)}</td><td>{failing}</td></tr>"
        )
    quarantined = "".join(
        f"<tr><td>{_e(q['kafka_offset'])}</td><td>{_e(q['article_id'])}</td>"
        f"<td>{_e(', '.join(q['failed_expectations']))}</td></tr>"
        for q in report.get("quarantined", [])
    )
    body = f"""<p><a href="../index.html">← all batches</a></p>
<h1>Batch {_e(batch["key"])}</h1>
<p>Run <strong class="run">{_e(report.get("run"))}</strong>, validated {_e(report.get("validated_at"))}
with suite <code>{_e(report.get("suite"))}</code>, policy <code>{_e(report.get("policy"))}</code>.</p>
<p>Status: <strong class="{_e(report.get("status"))}">{_e(report.get("status"))}</strong>.
{_e(counts.get("articles_validated"))} articles validated of {_e(counts.get("records"))} records;
{_e(counts.get("quarantined"))} quarantined. Failed batch expectations:
{_e(", ".join(report.get("failed_batch_expectations", [])) or "none")}.
{"<br>Error: " + _e(report.get("error")) if report.get("error") else ""}</p>
<h2>Expectations</h2>
<table><tr><th>name</th><th>level</th><th>expectation</th><th>result</th><th>observed</th><th>failing rows</th></tr>
{"".join(rows)}</table>
<h2>Quarantined articles</h2>
<table><tr><th>kafka offset</th><th>article_id</th><th>failed expectations</th></tr>{quarantined}</table>"""
    return _page(f"quality: batch {batch['key']}", body)


def render_index(
    reports: Sequence[Mapping[str, Any]], states: Mapping[str, str], title: str = "wirestream data quality"
) -> str:
    """The Data Docs index: one section per run (newest first), one row per batch report."""
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for report in sorted(reports, key=lambda r: (str(r.get("validated_at")), r["batch"]["key"])):
        runs.setdefault(str(report.get("run")), []).append(report)
    ordered = sorted(runs.items(), key=lambda item: str(item[1][-1].get("validated_at")), reverse=True)
    totals: dict[str, int] = {}
    for report in reports:
        totals[str(report.get("status"))] = totals.get(str(report.get("status")), 0) + 1
    sections = []
    for run, members in ordered:
        rows = []
        for report in members:
            key = report["batch"]["key"]
            counts = report.get("counts", {})
            state = states.get(key, "")
            rows.append(
                f'<tr><td><a href="batches/{_e(key)}.html">{_e(key)}</a></td><td>{_e(report.get("validated_at"))}</td>'
                f'<td class="{_e(report.get("status"))}">{_e(report.get("status"))}</td>'
                f"<td>{_e(counts.get('articles_validated'))}</td><td>{_e(counts.get('quarantined'))}</td>"
                f"<td>{_e(', '.join(report.get('failed_batch_expectations', [])))}</td>"
                f'<td class="{_e(state)}">{_e(state)}</td></tr>'
            )
        failed = sum(1 for r in members if r.get("status") in ("batch_failed", "error"))
        sections.append(
            f'<section class="run"><h2>Run <span class="run-name">{_e(run)}</span></h2>'
            f"<p>{len(members)} batches, {failed} failed a batch expectation or could not be validated, "
            f"{sum(r.get('counts', {}).get('quarantined', 0) for r in members)} articles quarantined.</p>"
            "<table><tr><th>batch</th><th>validated at</th><th>status</th><th>articles</th><th>quarantined</th>"
            f"<th>failed batch expectations</th><th>in lake</th></tr>{''.join(rows)}</table></section>"
        )
    summary = ", ".join(f"{status}: {count}" for status, count in sorted(totals.items())) or "no reports yet"
    body = f"""<h1>{_e(title)}</h1>
<p>{len(reports)} batch reports in {len(runs)} runs ({_e(summary)}). Each batch's results JSON is
<code>_quality/results/&lt;batch&gt;.json</code>. "in lake": <em>committed</em> (the lake holds the batch),
<em>uncommitted</em> (written before a crash; the batch is read again), <em>superseded</em> (a later report
covers it).</p>
{"".join(sections)}"""
    return _page(title, body)
