"""Known failures of the real CLI, without a broker: one line ``wirestream COMMAND: ...``, exit 2, no traceback.

Each case runs ``python -m pipelines.cli`` in a subprocess, as an operator would, at the default
log level, and asserts the whole of stderr: the message and nothing else (no client log spam, no
traceback). The cases that need the broker are in ``tests/integration/test_errors.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.lake_check import LAKE_ENTRIES, require_lake
from pipelines.produce import produce_file
from pipelines.report import write_report
from tests.kit import ROOT
from transforms.errors import UserError
from transforms.quality import load_suite

# The launcher refuses before any runner starts, so no Prism binary is needed for these runs.
NO_RUNNER = "--prism_location=/nonexistent/prism"


def wirestream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``wirestream ARGS`` at the default log level; not checked."""
    environment = {k: v for k, v in os.environ.items() if k != "WIRESTREAM_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


def free_port() -> int:
    """A local port where nothing listens (the kernel's pick, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused(command: str, message: str) -> str:
    return f"wirestream {command}: {message}\n"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """What a run leaves in a lake before it writes any batch: ``_origins/``."""
    root = tmp_path / "lake"
    (root / "_origins").mkdir(parents=True)
    return root


def _down(port: int) -> str:
    return (
        f"no answer from Kafka at 127.0.0.1:{port} (PLAINTEXT): Closing connection. KafkaConnectionError: "
        "111 ECONNREFUSED; is the broker running? check --bootstrap-servers (or $WIRESTREAM_BOOTSTRAP_SERVERS), "
        "the security protocol, the TLS files and the credentials"
    )


def test_run_with_the_broker_down_says_so_in_one_line_and_creates_no_lake(tmp_path: Path) -> None:
    port = free_port()
    lake = tmp_path / "new-lake"
    result = wirestream("run", f"--lake={lake}", f"--bootstrap-servers=127.0.0.1:{port}", "--topic=t", NO_RUNNER)
    assert (result.returncode, result.stderr) == (2, refused("run", _down(port)))
    assert not lake.exists()  # the broker is checked before the lake (or its maintenance lock) is created


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--topik", "t2"], "unknown option --topik (did you mean --topic?); see wirestream run --help"),
        (["--dedup-jaccard", "5"], "--dedup-jaccard 5 is out of range: give 0 to 1"),
        (
            ["--spacy-model", "no_such_model_pkg"],
            "spaCy model 'no_such_model_pkg' (for en) is not installed here: install its package or give a saved "
            "pipeline's folder",
        ),
    ],
    ids=["misspelled", "out-of-range", "no-model"],
)
def test_run_refuses_a_mistaken_option_before_it_starts(option: list[str], message: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = wirestream("run", f"--lake={lake}", f"--bootstrap-servers=127.0.0.1:{free_port()}", NO_RUNNER, *option)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", refused("run", message))
    assert not lake.exists()


def test_run_refuses_a_broken_suite_before_it_starts(tmp_path: Path) -> None:
    suite, lake = tmp_path / "suite.json", tmp_path / "lake"
    suite.write_text('{"name": "s", "expectations": [\n')
    result = wirestream("run", f"--lake={lake}", f"--quality-suite={suite}", NO_RUNNER)
    message = f"the expectation suite {suite} is not JSON: Expecting value: line 2 column 1 (char 32)"
    assert (result.returncode, result.stderr) == (2, refused("run", message))
    assert not lake.exists()


def test_run_refuses_a_suite_great_expectations_would_drop_an_expectation_of(tmp_path: Path) -> None:
    """GX builds a suite without an expectation it does not know: that expectation would never be checked."""
    suite, lake = tmp_path / "suite.json", tmp_path / "lake"
    mistyped = {"type": "expect_column_valuse_to_be_unique", "kwargs": {"column": "url"}}
    expectation = {**mistyped, "meta": {"name": "u", "level": "row"}}
    suite.write_text(json.dumps({"name": "s", "expectations": [expectation]}))
    result = wirestream("run", f"--lake={lake}", f"--quality-suite={suite}", NO_RUNNER)
    message = (
        f"Great Expectations refuses expectation 'u' of the expectation suite {suite}: Could not add expectation; "
        "provided configuration is not valid: expect_column_valuse_to_be_unique not found"
    )
    assert (result.returncode, result.stderr) == (2, refused("run", message))
    assert not lake.exists()


def test_produce_with_the_broker_down_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    source = tmp_path / "in.jsonl"
    source.write_text('{"url": "https://example.org/1", "body": "One."}\n')
    result = wirestream("produce", str(source), f"--bootstrap-servers=127.0.0.1:{port}")
    assert (result.returncode, result.stderr) == (2, refused("produce", _down(port)))


def test_run_refuses_a_lake_path_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "lake.parquet"
    file.write_bytes(b"PAR1")
    result = wirestream("run", f"--lake={file}", f"--bootstrap-servers=127.0.0.1:{free_port()}", NO_RUNNER)
    message = f"--lake {file} is a file, not a folder: give the lake's folder (created if missing)"
    assert (result.returncode, result.stderr) == (2, refused("run", message))
    assert file.read_bytes() == b"PAR1"


def test_run_refuses_a_metrics_port_in_use_before_it_touches_the_lake(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = wirestream("run", "--lake", str(tmp_path / "lake"), f"--metrics-port={port}", NO_RUNNER)
    assert result.returncode == 2
    message = f"cannot serve metrics on 0.0.0.0:{port} (Address already in use); choose another --metrics-port"
    assert result.stderr == refused("run", message)
    assert not (tmp_path / "lake").exists()


def test_produce_refuses_an_input_it_cannot_read(tmp_path: Path) -> None:
    missing = wirestream("produce", str(tmp_path / "articles.jsonl"))
    message = f"cannot read {tmp_path / 'articles.jsonl'}: no such file; give a JSON-lines file, one record per line"
    assert (missing.returncode, missing.stderr) == (2, refused("produce", message))
    with pytest.raises(UserError) as folder:
        produce_file(tmp_path, f"127.0.0.1:{free_port()}", "t")
    assert str(folder.value) == f"cannot read {tmp_path}: Is a directory; give a JSON-lines file, one record per line"


@pytest.mark.parametrize("command", ["run", "produce"])
def test_a_password_option_gets_the_same_refusal_from_run_and_produce(command: str, tmp_path: Path) -> None:
    args = [f"--lake={tmp_path}", NO_RUNNER] if command == "run" else [str(tmp_path / "in.jsonl")]
    result = wirestream(command, *args, "--kafka-sasl-password", "hunter2")
    message = (
        "--kafka-sasl-password is not an option: a password must not travel with the job. "
        "Use --kafka-sasl-password-env NAME or --kafka-sasl-password-file PATH."
    )
    assert (result.returncode, result.stderr) == (2, refused(command, message))


def test_bad_sql_shows_duckdbs_own_message_without_a_traceback(lake: Path) -> None:
    result = wirestream("query", str(lake), "SELEC count(*) FROM articles")
    message = (
        'the query failed: Parser Error: syntax error at or near "SELEC"\n\nLINE 1: SELEC count(*) FROM articles\n'
    )
    assert result.returncode == 2
    assert result.stderr == refused("query", message + "        ^^^^^")


def test_a_lake_a_run_left_before_writing_a_batch_is_a_lake(lake: Path) -> None:
    result = wirestream("query", str(lake), "SELECT count(*) AS n FROM articles")
    assert (result.returncode, result.stdout, result.stderr) == (0, "n\n-\n0\n(1 row)\n", "")


@pytest.fixture
def not_lakes(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Paths that are not lakes, each with what the refusal says about it."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a lake")
    (tmp_path / "lake" / "_origins").mkdir(parents=True)
    missing, file, empty = tmp_path / "lak", tmp_path / "notes.txt", tmp_path / "empty"
    return {
        "missing": (
            missing,
            f"no lake at {missing}: the folder does not exist; give the --lake that wirestream run wrote",
        ),
        "file": (file, f"{file} is a file, not a lake: give the lake's folder (the --lake of wirestream run)"),
        "empty": (
            empty,
            f"{empty} is not a lake: it is empty, without the articles/, entities/ or _origins/ folders "
            "wirestream run writes; check the path",
        ),
        "unrelated": (
            tmp_path,
            f"{tmp_path} is not a lake: it holds 3 other entries, without the articles/, entities/ or _origins/ "
            "folders wirestream run writes; check the path",
        ),
    }


def test_a_path_is_a_lake_only_if_it_holds_what_a_run_writes(not_lakes: dict[str, tuple[Path, str]]) -> None:
    for path, message in not_lakes.values():
        with pytest.raises(UserError) as refusal:
            require_lake(str(path))
        assert str(refusal.value) == message
    for entry in sorted(LAKE_ENTRIES):
        root = not_lakes["empty"][0].parent / f"has-{entry}"
        (root / entry).mkdir(parents=True)
        assert require_lake(str(root)).root == str(root)


@pytest.mark.parametrize(
    ("command", "case"),
    [(["query", "SELECT 1"], "missing"), (["compact"], "file"), (["validate"], "empty"), (["report"], "unrelated")],
    ids=lambda value: value[0] if isinstance(value, list) else value,
)
def test_read_commands_refuse_a_path_that_is_not_a_lake(
    command: list[str], case: str, not_lakes: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    name, *rest = command
    path, message = not_lakes[case]
    before = sorted(tmp_path.rglob("*"))
    result = wirestream(name, str(path), *rest)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", refused(name, message))
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


SUITE = ROOT / "schemas" / "expectations" / "articles.json"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"name": "s", "expectations": [\n', " is not JSON: Expecting value: line 2 column 1 (char 32)"),
        ("[]", f' needs an object with a "name" (see {SUITE})'),
        ('{"name": "s", "expectations": {}}', f' needs an "expectations" list (see {SUITE})'),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_to_exist", "meta": {"name": "x"}}]}',
            ": expectation 1 needs a unique meta.name and meta.level row|batch|monitor: "
            '{"type": "expect_column_to_exist", "meta": {"name": "x"}}',
        ),
    ],
)
def test_a_broken_suite_file_is_named_with_what_is_wrong(tmp_path: Path, content: str, problem: str) -> None:
    suite = tmp_path / "broken.json"
    suite.write_text(content)
    with pytest.raises(UserError) as refusal:
        load_suite(suite)
    assert str(refusal.value) == f"the expectation suite {suite}{problem}"


def test_validate_names_a_broken_or_missing_suite_file(lake: Path) -> None:
    suite = lake.parent / "broken.json"
    suite.write_text('{"name": "s", "expectations": [\n')
    result = wirestream("validate", str(lake), "--suite", str(suite))
    message = f"the expectation suite {suite} is not JSON: Expecting value: line 2 column 1 (char 32)"
    assert (result.returncode, result.stderr) == (2, refused("validate", message))
    with pytest.raises(UserError) as refusal:
        load_suite(lake / "suite.json")
    assert str(refusal.value) == f"cannot read the expectation suite {lake / 'suite.json'}: No such file or directory"


def test_a_report_that_cannot_be_written_says_where(lake: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    target = tmp_path / "notes.txt" / "report.html"
    with pytest.raises(UserError) as refusal:
        write_report(str(lake), str(target))
    assert str(refusal.value) == (
        f"cannot write the report to {target}: [Errno 17] File exists: '{target.parent}'; "
        "give an --out where you can write"
    )


@pytest.mark.parametrize("how", [["--debug"], []], ids=["--debug", "WIRESTREAM_LOG_LEVEL=DEBUG"])
def test_the_traceback_is_shown_only_when_asked(how: list[str], tmp_path: Path) -> None:
    env = {} if how else {"WIRESTREAM_LOG_LEVEL": "DEBUG"}
    result = wirestream("query", str(tmp_path / "lak"), "SELECT 1", *how, env=env)  # --debug may follow the command
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "transforms.errors.UserError: no lake at" in result.stderr
    assert result.stderr.endswith(
        refused(
            "query",
            f"no lake at {tmp_path / 'lak'}: the folder does not exist; give the --lake that wirestream run wrote",
        )
    )
