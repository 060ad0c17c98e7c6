"""Shared fixtures: the corpus setting, the real broker and S3 server, the locally built Prism, small lakes.

Record builders and paths are in :mod:`tests.kit`. The broker, the S3 server and the Iceberg REST
catalog are started by the first test of a session that needs them and stopped at its end, only if
that session started them.

``make test`` runs every layer on pytest-xdist workers. Each worker gets services of its own: its
ports are the defaults plus 100 per worker number (:func:`worker_environment`), set in its
environment before any test, so the scripts, the CLI and every subprocess find that worker's broker,
S3 server and catalog. A test that restarts the broker restarts only its worker's. Tests that share
a fixture broader than a test stay on one worker: an integration module with a module fixture is one
work unit, the modules that read one session lake share one, every other test is a unit alone
(:func:`work_unit`, the scheduler's scope); the integration tests are sent first, the longest
modules before the rest.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.runners import prism_binary
from schemas import arrow
from schemas.records import SourceBatch
from tests.kit import ICEBERG_REST_SCRIPT, KAFKA_SCRIPT, ROOT, S3_SCRIPT, article_with_mentions, dead_letter
from transforms.io.lake import Lake, commit_batch


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = Path(os.environ.get("WIRESTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (path / "seed").is_dir():
        pytest.skip(f"the shared corpus is missing at {path} (set WIRESTREAM_CORPUS): test needs real articles")
    return path


@pytest.fixture(scope="session")
def seed_text(corpus: Path) -> str:
    return (corpus / "seed" / "kursk-deployment.txt").read_text("utf-8")


# The services' ports when no worker or setting moves them, as the infra scripts default them.
SERVICE_PORTS = {"WIRESTREAM_KAFKA_PORT": 19092, "WIRESTREAM_S3_PORT": 18333, "WIRESTREAM_ICEBERG_REST_PORT": 18181}
WORKER_PORT_STRIDE = 100  # Kafka uses PORT and PORT+1, the S3 server PORT..PORT+7


def service_port(name: str, environ: Mapping[str, str] = os.environ) -> int:
    """The port of service ``name`` (a key of :data:`SERVICE_PORTS`) in ``environ``: its setting, else the default."""
    return int(environ.get(name, SERVICE_PORTS[name]))


def worker_port_offset(environ: Mapping[str, str]) -> int:
    """What the pytest-xdist worker named in ``environ`` adds to every fixed port (0 outside one)."""
    worker = environ.get("PYTEST_XDIST_WORKER")
    return 0 if worker is None else WORKER_PORT_STRIDE * int(worker.removeprefix("gw"))


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings that give the pytest-xdist worker named in ``environ`` services of its own: each
    service's port (the setting, else the default) plus 100 per worker number, and the CLI's default
    broker at that port. Nothing outside a worker: one process uses the ports as they are."""
    if "PYTEST_XDIST_WORKER" not in environ:
        return {}
    offset = worker_port_offset(environ)
    moved = {name: str(service_port(name, environ) + offset) for name in SERVICE_PORTS}
    return {**moved, "WIRESTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{moved['WIRESTREAM_KAFKA_PORT']}"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(worker_environment(os.environ))


# Integration modules whose tests share a module fixture (a secured broker, a lake made once): each
# is sent to one worker whole. The modules reading a session lake (tests/integration/conftest.py)
# share one unit per lake, so the lake is made once. Every other test is a unit of its own.
# tests/unit/test_parallel_layers.py checks both against the modules' source.
WHOLE_MODULES = ("test_end_to_end.py", "test_flink.py", "test_kafka_security.py", "test_quality.py")
SESSION_LAKE_MODULES = {
    "test_recipes.py": "event_time_lake",
    "test_report.py": "event_time_lake",
    "test_recipes_iceberg.py": "twin_lakes",
}
# The longest modules start first, so no worker is left alone with one of them at the end.
LONGEST_FIRST = ("test_determinism.py", "test_chaos.py", "test_streaming.py", "test_iceberg_rest.py")
_INTEGRATION = (ROOT / "tests" / "integration").resolve()


def work_unit(nodeid: str) -> str:
    """What pytest-xdist sends to one worker whole: the integration module of a test that shares a
    module fixture, the session lake its module reads, or the test alone."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if not path.startswith("tests/integration/"):
        return nodeid
    if name in SESSION_LAKE_MODULES:
        return SESSION_LAKE_MODULES[name]
    return path if name in WHOLE_MODULES else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scope scheduler with :func:`work_unit` as the scope. (Its ``loadgroup``
    cannot be used: it renames a test's ``_nodeid``, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The integration tests run first, the longest modules before the rest."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = Path(str(item.path)).resolve()
        if _INTEGRATION not in path.parents:
            return (2, 0)
        return (0, LONGEST_FIRST.index(path.name)) if path.name in LONGEST_FIRST else (1, 0)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """The real local broker: started if it is not running, and stopped only if we started it."""
    status = subprocess.run([str(KAFKA_SCRIPT), "status"], capture_output=True, text=True)
    started = status.returncode != 0
    if started:
        subprocess.run([str(KAFKA_SCRIPT), "up"], check=True)
    yield f"127.0.0.1:{service_port('WIRESTREAM_KAFKA_PORT')}"
    if started:
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """The real local S3 server (SeaweedFS, ``infra/s3/s3.sh``): started if it is not running, and
    stopped only if we started it. Yields the environment a client needs (endpoint, test key)."""
    status = subprocess.run([str(S3_SCRIPT), "status"], capture_output=True, text=True)
    started = status.returncode != 0
    if started:
        subprocess.run([str(S3_SCRIPT), "up"], check=True)
    printed = subprocess.run([str(S3_SCRIPT), "env"], check=True, capture_output=True, text=True).stdout
    yield dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines() if "=" in line)
    if started:
        subprocess.run([str(S3_SCRIPT), "down"], check=True)


@pytest.fixture
def s3_lake(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://BUCKET/lake`` in a new bucket of the local S3 server, its settings in this test's
    environment (and so in the subprocesses it starts); the bucket is deleted afterwards."""
    import pyarrow.fs as pafs

    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    # Configured by the environment, as the lake's own filesystem is.
    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true&allow_bucket_deletion=true")
    fs.create_dir(bucket)
    yield f"s3://{bucket}/lake"
    fs.delete_dir(bucket)


@pytest.fixture(scope="session")
def iceberg_rest_server(s3_server: dict[str, str]) -> Iterator[str]:
    """The real Iceberg REST catalog (the Iceberg project's test server, ``infra/iceberg-rest/rest.sh``),
    its S3 file IO set to the local S3 server: started if it is not running, and stopped only if we
    started it. Yields its URI."""
    status = subprocess.run([str(ICEBERG_REST_SCRIPT), "status"], capture_output=True, text=True)
    started = status.returncode != 0
    if started:
        subprocess.run([str(ICEBERG_REST_SCRIPT), "up"], check=True, env={**os.environ, **s3_server})
    yield f"http://127.0.0.1:{service_port('WIRESTREAM_ICEBERG_REST_PORT')}"
    if started:
        subprocess.run([str(ICEBERG_REST_SCRIPT), "down"], check=True)


@pytest.fixture
def iceberg_rest(iceberg_rest_server: str) -> Iterator[str]:
    """The REST catalog's URI for one lake: a catalog serves one lake (its table names are fixed), so
    the ``wirestream`` tables are dropped before and after the test (not their files)."""
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog("cleanup", type="rest", uri=iceberg_rest_server)

    def drop_tables() -> None:
        if ("wirestream",) in catalog.list_namespaces():
            for table in catalog.list_tables("wirestream"):
                catalog.drop_table(table)

    drop_tables()
    yield iceberg_rest_server
    drop_tables()


@pytest.fixture(scope="session")
def prism() -> Path:
    binary = prism_binary(os.environ)
    if not binary.exists():
        pytest.fail(f"Prism is not built at {binary}: run `make prism`")
    return binary


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def lake_from_before_keys(tmp_path: Path) -> Path:
    """A lake whose first batch was written before the ``key`` column (files without it, nor the
    later ``entities.ingested_at``) and whose second batch has them: "U.S." (old), "US" and "the
    United States" (new) are one entity."""
    write_lake_from_before_keys(tmp_path)
    return tmp_path


def write_lake_from_before_keys(tmp_path: Path) -> None:
    """See :func:`lake_from_before_keys`."""
    old, new = SourceBatch("news", 0, 0, 2, 2), SourceBatch("news", 0, 2, 4, 2)
    lake = Lake(str(tmp_path))
    commit_batch(
        lake,
        old,
        [
            article_with_mentions(
                0, old, [("U.S.", "GPE")] * 3 + [("two", "CARDINAL")] * 4 + [("Lloyd Austin", "PERSON")]
            ),
            article_with_mentions(1, old, [("U.S.", "GPE")]),
        ],
    )
    for path in tmp_path.glob(f"*/dt=*/hour=*/{old.key}.parquet"):
        table = pq.ParquetFile(path).read()  # the file alone, without Hive columns from its folders
        if "key" in table.column_names:
            table = table.drop_columns(["key"])
        table = table.drop_columns([c.column for c in arrow.LATER_COLUMNS if c.table == path.parts[-4]])
        if "entities" in table.column_names:
            without_key = [
                [{k: v for k, v in e.items() if k != "key"} for e in row] for row in table["entities"].to_pylist()
            ]
            struct = pa.list_(pa.struct([f for f in arrow.ENTITY_STRUCT if f.name != "key"]))
            table = table.set_column(table.column_names.index("entities"), "entities", pa.array(without_key, struct))
        pq.write_table(table, path)
    commit_batch(
        lake,
        new,
        [
            article_with_mentions(
                2, new, [("US", "GPE")] * 3 + [("the United States", "GPE")] + [("one", "CARDINAL")] * 5
            ),
            article_with_mentions(
                3,
                new,
                [("Britain", "GPE"), ("the United Kingdom", "GPE"), ("Austin", "PERSON")]
                + [("Lloyd Austin", "PERSON")],
            ),
        ],
    )


BEFORE_INGESTED_AT = SourceBatch("news", 0, 0, 3, 3)
"""The batch :func:`lake_from_before_ingested_at` wrote before ``entities`` and ``dead_letters`` had
``ingested_at`` (read at :data:`READ_BEFORE`); :data:`AFTER_INGESTED_AT` came after."""
AFTER_INGESTED_AT = SourceBatch("news", 0, 3, 6, 3)
READ_BEFORE, READ_AFTER = (
    dt.datetime(2026, 11, 24, 9, 10, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 24, 9, 40, tzinfo=dt.UTC),
)
INGESTED_AT_ANSWERS: dict[str, tuple[str, list[tuple[object, ...]]]] = {
    "entities": (
        "SELECT article_id, count(*), min(ingested_at), max(ingested_at) FROM entities GROUP BY 1 ORDER BY 1",
        [(a, 2, t, t) for a, t in (("a0", READ_BEFORE), ("a1", READ_BEFORE), ("a3", READ_AFTER), ("a5", READ_AFTER))],
    ),
    "dead_letters": (
        "SELECT kafka_offset, ingested_at, failed_at - ingested_at FROM dead_letters ORDER BY 1",
        [(2, READ_BEFORE, dt.timedelta(seconds=5)), (4, READ_AFTER, dt.timedelta(seconds=5))],
    ),
}
"""A query of each table over :func:`lake_from_before_ingested_at`, and its answer when every row's
``ingested_at`` is its article's or its record's."""


@pytest.fixture
def lake_from_before_ingested_at(tmp_path: Path) -> Path:
    """A lake of two batches in one partition folder, ``dt=2026-11-24/hour=09``: the first written
    before ``entities.ingested_at`` and ``dead_letters.ingested_at`` existed (its files of those
    tables have the old schema: today's without the column), the second after. Each batch holds two
    articles with entities and a dead letter (offsets 2 and 4), rejected 5 s after being read."""
    lake = Lake(str(tmp_path))
    for batch, read_at, articles, letter in (
        (BEFORE_INGESTED_AT, READ_BEFORE, (0, 1), 2),
        (AFTER_INGESTED_AT, READ_AFTER, (3, 5), 4),
    ):
        outcomes = [
            article_with_mentions(offset, batch, [("Lloyd Austin", "PERSON"), ("U.S.", "GPE")]).evolve(
                ingested_at=read_at
            )
            for offset in articles
        ]
        failed = dead_letter(letter, batch, at=read_at).evolve(failed_at=read_at + dt.timedelta(seconds=5))
        commit_batch(lake, batch, [*outcomes, failed])
    for later in arrow.LATER_COLUMNS:
        for path in (tmp_path / later.table).glob(f"dt=*/hour=*/{BEFORE_INGESTED_AT.key}.parquet"):
            pq.write_table(pq.ParquetFile(path).read().drop_columns([later.column]), path)
    return tmp_path
