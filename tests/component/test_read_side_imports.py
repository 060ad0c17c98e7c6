"""The read side never loads Apache Beam or spaCy: ``query``, ``validate``, ``report``, ``compact``, ``--help``.

Each command runs in a fresh interpreter on a real small lake (written by the commit protocol),
through the same ``pipelines.cli.main`` the ``wirestream`` script calls; after it returns, the
interpreter reports which heavy packages ``sys.modules`` holds. Importing Beam alone costs about
two seconds per call, which the read side has no use for; ``query`` loads no pandas either (about
a second more).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("apache_beam", "spacy", "pandas")
NEVER = {"apache_beam", "spacy"}

# Runs the CLI like the console script, then names every heavy top-level package it loaded.
PROBE = """
import sys
from pipelines.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
loaded = sorted({name.split(".")[0] for name in sys.modules} & {HEAVY})
print("loaded:", ",".join(loaded), file=sys.stderr)
sys.exit(code)
""".replace("{HEAVY}", repr(set(HEAVY)))


def _run(*args: str) -> tuple[int, str, str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("loaded:"), done.stderr
    loaded = [name for name in last.removeprefix("loaded:").strip().split(",") if name]
    return done.returncode, done.stdout, done.stderr, loaded


@pytest.mark.parametrize("command", [[], ["query"], ["validate"], ["report"], ["compact"]], ids=str)
def test_help_loads_neither_beam_nor_spacy(command: list[str]) -> None:
    code, out, _, loaded = _run(*command, "--help")
    assert code == 0
    assert out.startswith("usage: wirestream " + (command[0] if command else "COMMAND"))
    assert not NEVER & set(loaded)


def test_query_loads_neither_nor_pandas(lake_from_before_keys: Path) -> None:
    # dead_letters: a table this lake has no file of, an empty view
    sql = "SELECT (SELECT count(*) FROM articles) AS n, (SELECT count(*) FROM dead_letters) AS d"
    code, out, _, loaded = _run("query", str(lake_from_before_keys), sql, "--format=csv")
    assert (code, out, loaded) == (0, "n,d\n4,0\n", [])


def test_validate_loads_neither(lake_from_before_keys: Path) -> None:
    code, out, _, loaded = _run("validate", str(lake_from_before_keys))
    # The test lake's articles have no titles: the batch-level title expectation fails (exit 1).
    assert (code, out.splitlines()[-1]) == (1, "overall: FAIL (1 of 1 partitions, 4 articles)")
    assert not NEVER & set(loaded)


def test_report_loads_neither(lake_from_before_keys: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, out, _, loaded = _run("report", str(lake_from_before_keys), "--out", str(page))
    assert (code, out) == (0, f"report: {page}\n")
    assert not NEVER & set(loaded)
    assert page.stat().st_size > 0


def test_compact_loads_neither(lake_from_before_keys: Path) -> None:
    code, out, _, loaded = _run("compact", str(lake_from_before_keys))
    # _records, articles and entities each hold two contiguous batch files of one partition.
    assert (code, out.splitlines()[-1]) == (0, "compacted 3 file groups (6 files)")
    assert not NEVER & set(loaded)


def test_the_probe_sees_beam_where_it_is_loaded() -> None:
    """``run --help`` builds its parser from Beam's options: the probe must report Beam there."""
    code, out, _, loaded = _run("run", "--help")
    assert code == 0 and out.startswith("usage: wirestream run")
    assert "apache_beam" in loaded


def test_validate_reads_a_lake_under_a_folder_whose_name_starts_with_an_underscore(tmp_path: Path) -> None:
    from tests.conftest import write_lake_from_before_keys

    lake = tmp_path / "_scratch" / "lake"
    lake.mkdir(parents=True)
    write_lake_from_before_keys(lake)
    code, out, _, _ = _run("validate", str(lake))
    assert (code, out.splitlines()[-1]) == (1, "overall: FAIL (1 of 1 partitions, 4 articles)")
