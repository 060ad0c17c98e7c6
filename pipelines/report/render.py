"""The page: sections drawn as one self-contained HTML file, charts as inline SVG.

Charts are drawn with matplotlib (imported on first use) and inlined as SVG, text kept as text.
The page has no script, no stylesheet, image or font from elsewhere: it fetches nothing when it
is opened, so it can be mailed or archived as one file. A ``TimeChart`` has a real time axis
(``pipelines.report_axis``): bars sit where their hour, day or month is, so a gap of years looks
like years.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Sequence
from typing import Any

from pipelines.report.model import COLOURS, Chart, Section, TimeChart, _shorten
from pipelines.report_axis import advance, axis_limits, time_ticks

TIME_CHART_SIZE = (9.0, 3.4)  # inches


def _svg_element(figure: Any, key: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text, element ids prefixed by ``key``."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: it is inline HTML now
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{key}-\1"', svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def render_chart(chart: Chart, key: str) -> str:
    """The chart as an inline ``<svg>`` element: text kept as text, element ids prefixed by ``key``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = len(chart.labels)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": 9}):
        if chart.horizontal:
            figure, axes = plt.subplots(figsize=(7.5, 0.8 + 0.28 * count))
        else:
            figure, axes = plt.subplots(figsize=(min(12, 4 + 0.35 * count), 3.4))
        try:
            positions = list(range(count))
            offsets = [0.0] * count
            for index, (name, values) in enumerate(chart.series.items()):
                colour = COLOURS.get(name, f"C{index}")
                if chart.horizontal:
                    axes.barh(positions, values, left=offsets, label=name, color=colour)
                else:
                    axes.bar(positions, values, bottom=offsets, label=name, color=colour)
                offsets = [o + v for o, v in zip(offsets, values, strict=True)]
            if chart.horizontal:
                axes.set_yticks(positions, [_shorten(str(label)) for label in chart.labels])
                axes.invert_yaxis()
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))
                axes.set_xlabel(chart.x_label)
            else:
                axes.set_xticks(positions, [str(label) for label in chart.labels], rotation=30, ha="right")
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
                axes.set_ylabel(chart.y_label)
            axes.set_title(chart.title)
            if len(chart.series) > 1 or chart.legend:
                axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, not over bars
            axes.spines[["top", "right"]].set_visible(False)
            figure.tight_layout()
            return _svg_element(figure, key, chart.title)
        finally:
            plt.close(figure)


def _days(at: dt.datetime) -> float:
    """A naive UTC time as days since 1970, the time axis' coordinate."""
    return (at - dt.datetime(1970, 1, 1)) / dt.timedelta(days=1)


def render_time_chart(chart: TimeChart, key: str, font_size: float = 9.0) -> str:
    """The chart as an inline ``<svg>``: bars where their bins are in time, ticks from ``time_ticks``.

    The tick labels are chosen for the axis' width as laid out, so they never overlap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    starts = [_days(start) for start in chart.starts]
    spans = [_days(advance(start, chart.unit)) - _days(start) for start in chart.starts]
    lefts = [start + 0.075 * span for start, span in zip(starts, spans, strict=True)]  # a gap between bins
    widths = [0.85 * span for span in spans]
    start, end = axis_limits(chart.starts[0], chart.starts[-1], chart.unit)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": font_size}):
        figure, axes = plt.subplots(figsize=TIME_CHART_SIZE)
        try:
            offsets = [0.0] * len(starts)
            for index, (name, values) in enumerate(chart.series.items()):
                bottom = [0.0] * len(starts) if chart.overlay else offsets
                colour = COLOURS.get(name, f"C{index}")
                axes.bar(lefts, values, widths, bottom, align="edge", label=name, color=colour)
                offsets = [o + v for o, v in zip(offsets, values, strict=True)]
            if all(float(value).is_integer() for series in chart.series.values() for value in series):
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_xlim(_days(start), _days(end))
            axes.set_xlabel(chart.x_label)
            axes.set_ylabel(chart.y_label)
            axes.set_title(chart.title)
            if len(chart.series) > 1 or chart.legend:
                axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, not over bars
            axes.spines[["top", "right"]].set_visible(False)
            axes.set_xticks([(starts[0] + starts[-1]) / 2], ["0"])  # holds the label row's height for the layout
            figure.tight_layout()
            width = axes.get_position().width * figure.get_figwidth() * 72  # in points, as the SVG draws it
            ticks = time_ticks(start, end, width, font_size)
            axes.set_xticks([_days(tick.at) for tick in ticks], [tick.label for tick in ticks])
            return _svg_element(figure, key, chart.title)
        finally:
            plt.close(figure)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
section { border-top: 1px solid #ccc; padding-top: 0.5em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.number { text-align: right; }
figure { margin: 0.5em 0; }
figcaption { font-size: 0.85em; color: #555; }
figure svg { max-width: 100%; height: auto; }
p.no-data { background: #f4f4f4; border-left: 4px solid #999; padding: 0.5em 1em; }
nav a { margin-right: 1em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escape, then show `backticked` names as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="number">{value}</td>'
    return f"<td>{html.escape('NULL' if value is None else str(value))}</td>"


def render_html(lake_uri: str, sections: Sequence[Section], generated_at: dt.datetime) -> str:
    """The whole page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wirestream report: {html.escape(lake_uri)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>wirestream lake report</h1>",
        f'<p>Lake <code class="lake">{html.escape(lake_uri)}</code>, generated '
        f"<time>{generated_at.strftime('%Y-%m-%d %H:%M:%S UTC')}</time>. "
        "Self-contained: no script, nothing fetched from elsewhere.</p>",
        "<nav>" + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections) + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>')
        if section.intro:
            parts.append(f"<p>{_inline(section.intro)}</p>")
        if section.no_data:
            parts.append(f'<p class="no-data">{_inline(section.no_data)}</p>')
        for index, chart in enumerate(section.charts):
            key = f"{section.key}-{index}"
            if isinstance(chart, TimeChart):
                svg = f"{render_time_chart(chart, key)}<figcaption>{_inline(chart.caption)}</figcaption>"
            else:
                svg = render_chart(chart, key)
            parts.append(f'<figure class="chart">{svg}</figure>')
        for caption, columns, rows in section.tables:
            parts.append(f'<table class="{section.key}"><caption>{html.escape(caption)}</caption><tr>')
            parts.append("".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
            parts.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
