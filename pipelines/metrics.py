"""Prometheus metrics of ``wirestream run`` (``--metrics-port``), served by the launcher.

Every metric is derived from the progress monitor's polls (:mod:`pipelines.progress`), so from
what is durable in the lake and from Kafka's offsets, never from a worker's memory: the same
numbers on Prism, Flink and Dataflow (see :mod:`pipelines.lake_watch` for each source). Counters
count since the launcher started (the run), so they start at 0 with each run, as a Prometheus
counter of a restarted process does.

Each exporter has its own registry (nothing is registered in ``prometheus_client``'s global
one) and its own HTTP server thread; :meth:`MetricsExporter.stop` closes the port. The families
are made by a pure function of the latest poll, :func:`metric_families`, so what a scrape shows is
always one consistent poll. :data:`METRICS` names every family with its type, labels and help:
the Grafana dashboard in ``infra/grafana/`` uses only these names (a unit test checks it).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pipelines.lake_watch import QUALITY_STATUSES, STAGES, Buckets, LakeTally
from pipelines.progress import RATE_WINDOW_S
from transforms.errors import UserError

if TYPE_CHECKING:
    from pipelines.progress import Snapshot

__all__ = ["METRICS", "MetricsExporter", "MetricsPortError", "check_port", "Poll", "exposed_names", "metric_families"]

_PREFIX = "wirestream_"
_TABLES = ("articles", "entities", "duplicates", "quarantine", "dead_letters")

METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # name (as exposed, less _total/_bucket/_sum/_count): (type, labels, help)
    "wirestream_records": (
        "counter",
        (),
        "Kafka records whose batch the lake committed this run (rows of the record log _records/)",
    ),
    "wirestream_lake_rows": ("counter", ("table",), "Rows committed this run per lake table"),
    "wirestream_batches": ("counter", (), "Batches (one Kafka poll of one partition) committed this run"),
    "wirestream_dead_letters": (
        "counter",
        ("reason",),
        "Dead letters committed this run per reason (dead_letters.reason)",
    ),
    "wirestream_quarantined_rows": (
        "counter",
        ("expectation",),
        "Quarantined rows committed this run per failed expectation (a row can fail several)",
    ),
    "wirestream_quality_batches": (
        "counter",
        ("status",),
        "Committed batches by their quality verdict (passed, rows_quarantined, batch_failed, error), "
        "from _quality/summaries/; batches with no article are not validated",
    ),
    "wirestream_kafka_lag_records": (
        "gauge",
        ("topic", "partition"),
        "Offsets of a partition this run has still to commit to the lake (to the planned stop with "
        "--until-caught-up, to Kafka's end offset otherwise)",
    ),
    "wirestream_offsets_to_account": (
        "gauge",
        (),
        "Offsets this run has to account for so far (records + lag on a log with no offset gaps)",
    ),
    "wirestream_end_to_end_latency_seconds": (
        "histogram",
        (),
        "Kafka record timestamp to lake commit, per record committed this run (from _records/)",
    ),
    "wirestream_batch_stage_seconds": (
        "histogram",
        ("stage",),
        "Time of each committed batch per stage, from the lake's timestamps: read_to_quality (parse, clean), "
        "quality (validation), quality_to_commit (dedup, entities, write), read_to_commit",
    ),
    "wirestream_records_per_second": ("gauge", (), f"Records committed per second over the last {RATE_WINDOW_S:.0f} s"),
    "wirestream_eta_seconds": (
        "gauge",
        (),
        "Seconds until a --until-caught-up run has committed everything at the current rate (absent when unknown)",
    ),
    "wirestream_run_elapsed_seconds": ("gauge", (), "Seconds since the run started"),
    "wirestream_progress_poll_errors": (
        "counter",
        ("source",),
        "Polls of the lake or of Kafka that failed (retried at the next poll)",
    ),
}


def exposed_names() -> frozenset[str]:
    """Every sample name a scrape can show (``_total``, ``_bucket``, ``_sum``, ``_count`` included)."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return frozenset(name + suffix for name, (kind, _, _) in METRICS.items() for suffix in suffixes[kind])


class MetricsPortError(UserError):
    """The metrics port could not be listened on (in use, or not allowed)."""


def check_port(port: int, address: str = "0.0.0.0") -> None:
    """Raise :class:`MetricsPortError` now if nothing could listen on ``port``: before a run touches its lake.

    The exporter listens later, once the run has its partitions; a port taken between the two is
    still refused then, with the same message.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the exporter's server does
        try:
            probe.bind((address, port))
        except OSError as error:
            raise MetricsPortError(
                f"cannot serve metrics on {address}:{port} ({error.strerror or error}); choose another --metrics-port"
            ) from error


@dataclass(frozen=True)
class Poll:
    """What one progress poll knows: the display's snapshot, the lake's tally, failed polls by source."""

    snapshot: Snapshot
    tally: LakeTally
    errors: Mapping[str, int] = field(default_factory=dict)


def _family(name: str, **kwargs: Any) -> Any:
    kind, labels, help_text = METRICS[name]
    make = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}[kind]
    return make(name, help_text, labels=list(labels), **kwargs)


def _histogram(family: HistogramMetricFamily, labels: list[str], buckets: Buckets) -> None:
    family.add_metric(
        labels, [(floatToGoString(bound), count) for bound, count in buckets.cumulative()], sum_value=buckets.total
    )


def metric_families(poll: Poll) -> list[Metric]:
    """The metric families of one poll (every family of :data:`METRICS`; samples where known)."""
    snapshot, tally = poll.snapshot, poll.tally
    families: dict[str, Any] = {name: _family(name) for name in METRICS}
    families["wirestream_records"].add_metric([], tally.records)
    for table in _TABLES:
        families["wirestream_lake_rows"].add_metric([table], tally.rows.get(table, 0))
    families["wirestream_batches"].add_metric([], tally.batches)
    for reason, count in sorted(tally.dead_letter_reasons.items()):
        families["wirestream_dead_letters"].add_metric([reason], count)
    for expectation, count in sorted(tally.quarantined_by_expectation.items()):
        families["wirestream_quarantined_rows"].add_metric([expectation], count)
    for status in QUALITY_STATUSES:
        families["wirestream_quality_batches"].add_metric([status], tally.quality_batches.get(status, 0))
    if snapshot.lag is not None:
        for (topic, partition), lag in sorted(snapshot.lag.items()):
            families["wirestream_kafka_lag_records"].add_metric([topic, str(partition)], lag)
    if snapshot.offsets is not None:
        families["wirestream_offsets_to_account"].add_metric([], snapshot.offsets)
    _histogram(families["wirestream_end_to_end_latency_seconds"], [], tally.latency_buckets)
    for stage in STAGES:
        _histogram(families["wirestream_batch_stage_seconds"], [stage], tally.stage_buckets[stage])
    families["wirestream_records_per_second"].add_metric([], snapshot.rate)
    if snapshot.eta_s is not None:
        families["wirestream_eta_seconds"].add_metric([], snapshot.eta_s)
    families["wirestream_run_elapsed_seconds"].add_metric([], snapshot.elapsed_s)
    for source in ("lake", "kafka"):
        families["wirestream_progress_poll_errors"].add_metric([source], poll.errors.get(source, 0))
    return list(families.values())


class _LatestPoll(Collector):
    """Collects the families of the latest poll handed to it (none before the first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Poll | None = None

    def set(self, poll: Poll) -> None:
        with self._lock:
            self._latest = poll

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            latest = self._latest
        if latest is not None:
            yield from metric_families(latest)


class MetricsExporter:
    """Serves the latest poll's metrics on ``http://ADDRESS:PORT/metrics`` until :meth:`stop`.

    ``address``: every interface by default, so a Prometheus elsewhere can scrape the launcher.
    """

    def __init__(self, port: int, address: str = "0.0.0.0") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._latest = _LatestPoll()
        self.registry.register(self._latest)
        self._port = port
        self._address = address
        self._server: Any = None

    @property
    def port(self) -> int:
        """The port served (the one given, or the one the system chose for port 0 in tests)."""
        return int(self._server.server_port) if self._server is not None else self._port

    def start(self) -> MetricsExporter:
        """Listen now; raises :class:`MetricsPortError` naming the port when that fails."""
        try:
            self._server, _ = start_http_server(self._port, self._address, self.registry)
        except OSError as error:
            raise MetricsPortError(
                f"cannot serve metrics on {self._address}:{self._port} ({error.strerror or error}); "
                "choose another --metrics-port"
            ) from error
        return self

    def update(self, snapshot: Snapshot, tally: LakeTally, errors: Mapping[str, int] | None = None) -> None:
        """Make this poll what the next scrape shows."""
        self._latest.set(Poll(snapshot, tally, dict(errors or {})))

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
