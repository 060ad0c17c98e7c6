"""``wirestream report LAKE``: one self-contained HTML page of charts and tables about a lake.

Every figure is computed with DuckDB over the lake's views (``pipelines.query.connect``) and over
the quality summaries in ``LAKE/_quality/summaries/*.json``; charts are drawn with matplotlib and
inlined as SVG, text kept as text. The page has no script, no stylesheet, image or font from
elsewhere: it fetches nothing when it is opened, so it can be mailed or archived as one file.

A chart over time has a real time axis (``pipelines.report_axis``): bars sit where their hour, day
or month is, so a gap of years looks like years; a span with too many hours or days for readable
bars is counted per coarser bin, and the chart's caption says so.

A table the lake does not have yet (no dead letter ever written, say) or a lake without quality
results gives its section a "no data" note instead of a chart; nothing is drawn from no rows.

The package, by job (every public name is importable from here):

``model``     ``Section``, ``Chart``, ``TimeChart`` and the constants they share
``queries``   the query helpers the section builders share (rows, spans, captions, "no data")
``articles``  overview, articles over time, top entities (``top_named_entities``)
``outcomes``  duplicates (``resolve_clusters``), quarantine and dead-letter reasons, language mix
``runs``      quality results over time, end-to-end latency
``sections``  ``build_sections``: every section, in page order
``render``    ``render_chart``, ``render_time_chart``, ``render_html``: the page and its SVG
``write``     ``write_report`` and ``default_path``: the entry point
"""

from __future__ import annotations

from pipelines.report.articles import articles_over_time, overview, top_entities, top_named_entities
from pipelines.report.model import COLOURS, MAX_BARS, TOP, Chart, Section, TimeChart
from pipelines.report.outcomes import (
    dead_letter_reasons,
    duplicates,
    language_mix,
    quarantine_reasons,
    resolve_clusters,
)
from pipelines.report.render import TIME_CHART_SIZE, render_chart, render_html, render_time_chart
from pipelines.report.runs import latency, quality_over_time
from pipelines.report.sections import build_sections, tables_present
from pipelines.report.write import DEFAULT_REPORT, default_path, write_report
from schemas.entity_keys import NOT_NAMED

__all__ = [
    "COLOURS",
    "DEFAULT_REPORT",
    "MAX_BARS",
    "NOT_NAMED",
    "TIME_CHART_SIZE",
    "TOP",
    "Chart",
    "Section",
    "TimeChart",
    "articles_over_time",
    "build_sections",
    "dead_letter_reasons",
    "default_path",
    "duplicates",
    "language_mix",
    "latency",
    "overview",
    "quality_over_time",
    "quarantine_reasons",
    "render_chart",
    "render_html",
    "render_time_chart",
    "resolve_clusters",
    "tables_present",
    "top_entities",
    "top_named_entities",
    "write_report",
]
