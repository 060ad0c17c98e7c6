"""The shared services refuse a pytest-xdist worker: only ``tests/integration/`` may use them, in one process."""

from __future__ import annotations

import pytest

from tests.conftest import require_one_process


def test_a_worker_is_refused_the_shared_broker_with_the_layer_it_belongs_in() -> None:
    with pytest.raises(pytest.fail.Exception) as refused:
        require_one_process("the Kafka broker", {"PYTEST_XDIST_WORKER": "gw1", "PATH": "/usr/bin"})
    assert str(refused.value) == (
        "the Kafka broker is shared: a test that needs it belongs in tests/integration/, run in one process (gw1)"
    )


def test_one_process_may_use_it() -> None:
    assert require_one_process("the S3 server", {"PATH": "/usr/bin"}) is None
