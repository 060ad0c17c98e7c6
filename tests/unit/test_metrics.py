"""The Prometheus exporter: families from one poll, its own registry and port, the Grafana dashboard."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.lake_watch import LATENCY_BOUNDS_S, STAGE_BOUNDS_S, Buckets, LakeTally
from pipelines.metrics import METRICS, MetricsExporter, MetricsPortError, exposed_names
from pipelines.progress import Snapshot
from tests.kit import ROOT

DASHBOARD = ROOT / "infra" / "grafana" / "wirestream-dashboard.json"

TALLY = LakeTally(
    rows={"articles": 5, "entities": 40, "duplicates": 1, "dead_letters": 3},
    records=9,
    offsets_done={("news", 0): 6, ("news", 1): 3},
    batches=2,
    dead_letter_reasons={"not_json": 2, "oversized": 1},
    quarantined_by_expectation={},
    quality_batches={"passed": 1},
    latency_buckets=Buckets(LATENCY_BOUNDS_S).add([0.3, 0.4, 2.0, 2.0, 2.0, 7.0, 7.0, 7.0, 7.0]),
    stage_buckets={
        "read_to_quality": Buckets(STAGE_BOUNDS_S).add([0.2]),
        "quality": Buckets(STAGE_BOUNDS_S).add([0.04]),
        "quality_to_commit": Buckets(STAGE_BOUNDS_S).add([3.0]),
        "read_to_commit": Buckets(STAGE_BOUNDS_S).add([3.24, 0.5]),
    },
)
SNAPSHOT = Snapshot(12.0, TALLY.rows, {("news", 0): 4, ("news", 1): 0}, None, 9, 13, 0.75, bounded=True)


def _samples(exporter: MetricsExporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(exporter.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_poll_becomes_exact_counters_gauges_and_histograms() -> None:
    exporter = MetricsExporter(0)
    assert _samples(exporter) == {}  # nothing before the first poll
    exporter.update(SNAPSHOT, TALLY, {"kafka": 2})
    samples = _samples(exporter)
    assert samples[("wirestream_records_total", ())] == 9
    tables = {labels[0][1]: value for (name, labels), value in samples.items() if name == "wirestream_lake_rows_total"}
    assert tables == {"articles": 5, "entities": 40, "duplicates": 1, "quarantine": 0, "dead_letters": 3}
    assert samples[("wirestream_dead_letters_total", (("reason", "not_json"),))] == 2
    assert samples[("wirestream_dead_letters_total", (("reason", "oversized"),))] == 1
    assert not [name for name, _ in samples if name == "wirestream_quarantined_rows_total"]
    assert samples[("wirestream_quality_batches_total", (("status", "passed"),))] == 1
    assert samples[("wirestream_quality_batches_total", (("status", "batch_failed"),))] == 0
    assert samples[("wirestream_kafka_lag_records", (("partition", "0"), ("topic", "news")))] == 4
    assert samples[("wirestream_offsets_to_account", ())] == 13  # records 9 + lag 4
    latency = "wirestream_end_to_end_latency_seconds"
    assert samples[(f"{latency}_bucket", (("le", "0.5"),))] == 2
    assert samples[(f"{latency}_bucket", (("le", "2.5"),))] == 5
    assert samples[(f"{latency}_bucket", (("le", "+Inf"),))] == samples[(f"{latency}_count", ())] == 9
    assert samples[(f"{latency}_sum", ())] == pytest.approx(34.7)
    stage = "wirestream_batch_stage_seconds"
    assert samples[(f"{stage}_count", (("stage", "read_to_commit"),))] == 2
    assert samples[(f"{stage}_bucket", (("le", "0.05"), ("stage", "quality")))] == 1
    assert samples[("wirestream_records_per_second", ())] == 0.75
    assert samples[("wirestream_eta_seconds", ())] == 4 / 0.75
    assert samples[("wirestream_progress_poll_errors_total", (("source", "kafka"),))] == 2
    assert samples[("wirestream_progress_poll_errors_total", (("source", "lake"),))] == 0
    # Every family the exporter defines is in a scrape of a full poll, and nothing else is.
    assert {name for name, _ in samples} == exposed_names() - {"wirestream_quarantined_rows_total"}


def test_unknown_lag_and_eta_are_absent_rather_than_zero() -> None:
    exporter = MetricsExporter(0)
    exporter.update(Snapshot(1.0, {}, None, rate=0.0, bounded=True), LakeTally())
    names = {name for name, _ in _samples(exporter)}
    assert "wirestream_kafka_lag_records" not in names and "wirestream_eta_seconds" not in names
    assert "wirestream_offsets_to_account" not in names and "wirestream_records_total" in names


def test_each_exporter_has_its_own_registry_and_port_and_leaves_the_global_one_alone() -> None:
    first, second = MetricsExporter(0).start(), MetricsExporter(0).start()
    try:
        first.update(SNAPSHOT, TALLY)
        second.update(Snapshot(1.0, {}, {}), LakeTally(records=1))
        assert first.port != second.port
        for exporter, records in ((first, 9), (second, 1)):
            with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=10) as response:
                body = response.read().decode()
            assert f"\nwirestream_records_total {records}.0\n" in body
        assert not [name for name in REGISTRY._names_to_collectors if name.startswith("wirestream")]
    finally:
        first.stop()
        second.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{first.port}/metrics", timeout=2)


def test_a_port_in_use_is_a_clear_error_naming_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortError) as raised:
            MetricsExporter(port, "127.0.0.1").start()
    assert str(raised.value) == (
        f"cannot serve metrics on 127.0.0.1:{port} (Address already in use); choose another --metrics-port"
    )


def test_metrics_port_is_range_checked_and_off_by_default() -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.options import IngestOptions, out_of_range

    assert PipelineOptions([]).view_as(IngestOptions).metrics_port == 0
    options = PipelineOptions(["--metrics-port=70000"]).view_as(IngestOptions)
    assert out_of_range(options) == ["--metrics-port 70,000 is out of range: give 0 to 65,535"]
    assert out_of_range(PipelineOptions(["--metrics-port=9464"]).view_as(IngestOptions)) == []


def test_the_grafana_dashboard_queries_only_metrics_the_exporter_defines_and_shows_each() -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(dashboard["panels"]) >= 10 and all(panel["targets"] for panel in dashboard["panels"])
    used = set()
    for title, expr in exprs:
        names = set(re.findall(r"\bwirestream_[a-z0-9_]+", expr))
        assert names and names <= exposed_names(), (title, names - exposed_names())
        used |= names
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    unused = [name for name, (kind, _, _) in METRICS.items() if not any(name + end in used for end in suffixes[kind])]
    assert unused == []
