"""The unit layer stays light: a run of ``tests/unit`` alone must not load spaCy or Great Expectations.

Checked when the session ends, only when every test collected is a unit test (``pytest tests``
runs the heavier layers in the same process, which load them by design). A unit test that needs
either belongs in ``tests/component/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HEAVY = ("spacy", "great_expectations")
_UNIT = Path(__file__).resolve().parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    items = getattr(session, "items", [])
    if not items or any(_UNIT not in Path(str(item.path)).resolve().parents for item in items):
        return
    loaded = [name for name in HEAVY if name in sys.modules]
    if loaded:
        sys.stderr.write(f"\ntests/unit loaded {', '.join(loaded)}: move the test that needs it to tests/component\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
