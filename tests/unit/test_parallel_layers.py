"""How ``make test`` runs on pytest-xdist workers: each worker's own services (ports moved by its
number, the CLI's broker with them), the work units, integration tests first."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import (
    SERVICE_PORTS,
    SESSION_LAKE_MODULES,
    WHOLE_MODULES,
    pytest_collection_modifyitems,
    work_unit,
    worker_environment,
    worker_port_offset,
)


def test_one_process_keeps_the_ports_as_they_are() -> None:
    assert worker_environment({"PATH": "/usr/bin"}) == {}
    assert worker_port_offset({"PATH": "/usr/bin"}) == 0


def test_each_worker_moves_every_port_by_a_hundred_per_number() -> None:
    first, second = (
        worker_environment({"PYTEST_XDIST_WORKER": "gw0"}),
        worker_environment({"PYTEST_XDIST_WORKER": "gw1"}),
    )
    assert first == {
        "WIRESTREAM_KAFKA_PORT": "19092",
        "WIRESTREAM_S3_PORT": "18333",
        "WIRESTREAM_ICEBERG_REST_PORT": "18181",
        "WIRESTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    }
    assert second == {
        "WIRESTREAM_KAFKA_PORT": "19192",
        "WIRESTREAM_S3_PORT": "18433",
        "WIRESTREAM_ICEBERG_REST_PORT": "18281",
        "WIRESTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:19192",
    }
    assert set(SERVICE_PORTS) < set(second)


def test_a_port_setting_is_moved_too() -> None:
    moved = worker_environment({"PYTEST_XDIST_WORKER": "gw2", "WIRESTREAM_KAFKA_PORT": "29092"})
    assert moved["WIRESTREAM_KAFKA_PORT"] == "29292"
    assert moved["WIRESTREAM_BOOTSTRAP_SERVERS"] == "127.0.0.1:29292"


def test_no_two_workers_services_share_a_port() -> None:
    """Kafka listens on PORT and PORT+1, the S3 server on PORT..PORT+7: eight workers never overlap."""
    taken: list[int] = []
    for number in range(8):
        ports = worker_environment({"PYTEST_XDIST_WORKER": f"gw{number}"})
        taken += [int(ports["WIRESTREAM_KAFKA_PORT"]) + i for i in range(2)]
        taken += [int(ports["WIRESTREAM_S3_PORT"]) + i for i in range(8)]
        taken.append(int(ports["WIRESTREAM_ICEBERG_REST_PORT"]))
    assert len(taken) == len(set(taken))


def test_a_module_sharing_a_fixture_is_one_unit_the_readers_of_a_session_lake_one_other_tests_alone() -> None:
    assert work_unit("tests/integration/test_quality.py::test_a") == "tests/integration/test_quality.py"
    assert work_unit("tests/integration/test_quality.py::test_b[x-y]") == "tests/integration/test_quality.py"
    assert work_unit("tests/integration/test_report.py::test_a") == "event_time_lake"
    assert work_unit("tests/integration/test_recipes.py::test_b") == "event_time_lake"
    assert work_unit("tests/integration/test_chaos.py::test_a") == "tests/integration/test_chaos.py::test_a"
    assert work_unit("tests/unit/test_docs.py::test_a[README.md]") == "tests/unit/test_docs.py::test_a[README.md]"


def test_the_units_match_the_fixtures_the_integration_modules_share() -> None:
    """A module sharing a fixture left out would make it once per worker it lands on (a second
    secured broker, a lake made twice); a module listed that shares none would only wait."""
    integration = Path(__file__).resolve().parents[1] / "integration"
    session_lakes = ("event_time_lake", "twin_lakes")
    reading: dict[str, str] = {}
    sharing: list[str] = []
    for path in sorted(integration.glob("test_*.py")):
        source = path.read_text("utf-8")
        for lake in session_lakes:
            if re.search(rf"\b{lake}\b", source):
                reading[path.name] = lake
        if path.name not in reading and re.search(r"scope=[\"'](module|session)[\"']", source):
            sharing.append(path.name)
    assert reading == SESSION_LAKE_MODULES
    assert sharing == sorted(WHOLE_MODULES)


class _Item:
    """Just what the collection hook reads of a pytest item."""

    def __init__(self, path: Path) -> None:
        self.path = path


def test_the_integration_tests_come_first_the_longest_modules_before_the_rest() -> None:
    tests = Path(__file__).resolve().parents[1]
    unit = _Item(tests / "unit" / "test_a.py")
    report = _Item(tests / "integration" / "test_report.py")
    chaos = _Item(tests / "integration" / "test_chaos.py")
    determinism = _Item(tests / "integration" / "test_determinism.py")
    items = [unit, report, chaos, determinism]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert items == [determinism, chaos, report, unit]
