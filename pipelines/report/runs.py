"""Sections about how the pipeline ran: quality results over time and end-to-end latency.

These read beside the lake's tables: the quality summaries in ``LAKE/_quality/summaries/*.json``
and the record log (``_records/``); a lake without them gives the section a "no data" note.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.report.model import COLOURS, MAX_BARS, Section, TimeChart, _time
from pipelines.report.queries import _bars_caption, _rows, _span
from pipelines.report_axis import bin_unit
from schemas import arrow
from transforms.io.lake import Lake, data_files


def quality_over_time(connection: duckdb.DuckDBPyConnection, lake: Lake) -> Section:
    """Validated batches per hour by status, from the stored quality summaries."""
    section = Section(
        "quality",
        "Quality results over time",
        "Batches validated by Great Expectations per hour (`validated_at`, UTC), by status: `passed`, "
        "`rows_quarantined`, `batch_failed` (a batch-level expectation failed) or `error`; read from "
        "`_quality/summaries/*.json`. Details per batch: `_quality/docs/index.html`.",
    )
    summaries = lake.path("_quality", "summaries")
    if not any(info.base_name.endswith(".json") for info in lake.list(summaries)):
        section.no_data = "No data: the lake has no quality results (`_quality/summaries/` is empty or absent)."
        return section
    select = "SELECT run, status, counts, CAST(validated_at AS TIMESTAMPTZ) AS validated_at, failed_batch_expectations"
    if lake.local:
        pattern = f"{summaries}/*.json".replace("'", "''")
        connection.execute(
            f"CREATE OR REPLACE TEMP VIEW quality AS {select} FROM read_json('{pattern}', union_by_name = true)"
        )
    else:
        _copy_summaries(connection, lake, summaries, select)
    validated = _span(connection, "validated_at AT TIME ZONE 'UTC'", "quality")
    if validated is not None:
        unit = bin_unit(*validated, finest="hour", max_bins=MAX_BARS)
        by_bin = _rows(
            connection,
            f"SELECT date_trunc('{unit}', validated_at AT TIME ZONE 'UTC'), status, count(*)"
            " FROM quality WHERE validated_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
        )
        starts = sorted({start for start, _, _ in by_bin})
        statuses = [s for s in COLOURS if any(status == s for _, status, _ in by_bin)]
        statuses += sorted({status for _, status, _ in by_bin} - set(statuses))
        counts = {(start, status): n for start, status, n in by_bin}
        section.charts.append(
            TimeChart(
                f"Validated batches per {unit} by status",
                unit,
                starts,
                {status: [counts.get((start, status), 0) for start in starts] for status in statuses},
                y_label="batches",
                x_label="validated_at (UTC)",
                caption=_bars_caption(unit, "hour", validated, "validation times", "no batch was validated"),
                legend=True,
            )
        )
    runs = _rows(
        connection,
        "SELECT run, min(validated_at), count(*), count(*) FILTER (WHERE status = 'passed'),"
        " count(*) FILTER (WHERE status = 'rows_quarantined'), count(*) FILTER (WHERE status = 'batch_failed'),"
        " count(*) FILTER (WHERE status = 'error'), sum(counts.articles_validated), sum(counts.quarantined)"
        " FROM quality GROUP BY 1 ORDER BY 2, 1",
    )
    section.tables.append(
        (
            "Runs",
            [
                "run",
                "first batch validated",
                "batches",
                "passed",
                "rows_quarantined",
                "batch_failed",
                "error",
                "articles validated",
                "quarantined",
            ],
            [(run, _time(first), *rest) for run, first, *rest in runs],
        )
    )
    failed = _rows(
        connection,
        "SELECT name, count(*) FROM (SELECT unnest(failed_batch_expectations) AS name FROM quality)"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    if failed:
        section.tables.append(("Failed batch-level expectations", ["expectation", "batches"], failed))
    return section


def _copy_summaries(connection: duckdb.DuckDBPyConnection, lake: Lake, summaries: str, select: str) -> None:
    """Table ``quality`` from the summaries of an object-store lake, read through the lake's filesystem.

    DuckDB cannot read the store itself here (no ``httpfs``): the summaries are copied into one
    local JSON-lines file, read the way the local glob is read, and the file removed.
    """
    import os
    import tempfile

    descriptor, local = tempfile.mkstemp(prefix="wirestream-summaries-", suffix=".json")
    try:
        with os.fdopen(descriptor, "wb") as out:
            for info in lake.list(summaries):
                if info.base_name.endswith(".json"):
                    with lake.fs.open_input_stream(info.path) as stream:
                        out.write(b" ".join(stream.read().splitlines()) + b"\n")
        quoted = local.replace("'", "''")
        connection.execute(f"CREATE OR REPLACE TEMP TABLE quality AS {select} FROM read_json('{quoted}')")
    finally:
        os.unlink(local)


def latency(connection: duckdb.DuckDBPyConnection, lake: Lake) -> Section:
    """End-to-end latency per hour of commit, from the record log."""
    section = Section(
        "latency",
        "End-to-end latency",
        "Time from each record's Kafka timestamp (its event time) to the commit of its batch in the "
        "lake, per hour of commit (UTC), from the pipeline's record log (`_records/`). A backlog read "
        "long after it was produced shows here as high latency, as it should.",
    )
    files = data_files(lake, arrow.RECORD_LOG_TABLE)
    if not files:
        section.no_data = "No data: the lake has no record log (`_records/`) yet."
        return section
    from pipelines.query import files_relation

    source = files_relation(connection, lake, arrow.RECORD_LOG_TABLE, files)
    parameters: list[Any] = []
    records = (
        "(SELECT committed_at AT TIME ZONE 'UTC' AS committed, epoch_ms(committed_at) - epoch_ms(event_time) AS ms"
        f" FROM {source} WHERE event_time IS NOT NULL)"
    )
    rows = _rows(
        connection,
        "SELECT strftime(date_trunc('hour', committed), '%Y-%m-%d %H:00') AS hour,"
        " count(*), round(quantile_cont(ms, 0.5) / 1000, 2), round(quantile_cont(ms, 0.95) / 1000, 2),"
        f" round(max(ms) / 1000, 2) FROM {records} GROUP BY 1 ORDER BY 1",
        parameters,
    )
    committed = _span(connection, "committed", records, parameters)
    if not rows or committed is None:
        section.no_data = "No data: no committed record has a known event time."
        return section
    unit = bin_unit(*committed, finest="hour", max_bins=MAX_BARS)
    bins = _rows(
        connection,
        f"SELECT date_trunc('{unit}', committed), round(quantile_cont(ms, 0.95) / 1000, 2),"
        f" round(quantile_cont(ms, 0.5) / 1000, 2) FROM {records} GROUP BY 1 ORDER BY 1",
        parameters,
    )
    section.charts.append(
        TimeChart(
            f"Latency per {unit} of commit (s)",
            unit,
            [start for start, _, _ in bins],
            {"p95": [p95 for _, p95, _ in bins], "p50": [p50 for _, _, p50 in bins]},
            y_label="seconds",
            x_label="committed_at (UTC)",
            caption=_bars_caption(unit, "hour", committed, "commit times", "no record was committed")
            + " The p50 bar is drawn over the p95 bar, not stacked on it.",
            legend=True,
            overlay=True,
        )
    )
    section.tables.append(("Latency per hour of commit", ["hour (UTC)", "records", "p50 s", "p95 s", "max s"], rows))
    return section
