"""Configuration files (TOML) for ``wirestream run`` and ``wirestream produce``.

A file holds the same settings as the command line, in four tables::

    [kafka]        shared by run and produce: bootstrap_servers, topic, security_protocol, sasl_..., ssl_...
    [run]          the other options of ``wirestream run`` (lake, group_id, until_caught_up, ...)
    [run.beam]     Apache Beam pipeline options passed through (runner, flink_master, ...)
    [produce]      the other options of ``wirestream produce`` (partitions)

Keys are option names with underscores (``--max-batch-records`` is ``max_batch_records``; in
``[kafka]`` the ``kafka_`` prefix is dropped). The file becomes command-line flags placed before the
ones typed, so a flag on the command line overrides the file. Unknown tables or keys and values of
the wrong type are errors that name the key.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transforms.errors import UserError

__all__ = ["ConfigError", "config_args", "expand_config", "load_config"]

COMMANDS = ("run", "produce")
_KAFKA_OPTIONS = ("bootstrap_servers", "topic")  # [kafka] keys without the kafka_ prefix of the flags


class ConfigError(UserError, ValueError):
    """The configuration file cannot be read, or a key or value in it is wrong."""


def load_config(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file; a syntax error or a missing file becomes a :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings and action.dest != "help"}


def _kafka_dest(key: str, actions: Mapping[str, argparse.Action]) -> str | None:
    if key in _KAFKA_OPTIONS:
        return key
    return f"kafka_{key}" if f"kafka_{key}" in actions else None


def _flag(where: str, action: argparse.Action, value: Any, one_topic: bool = False) -> list[str]:
    """``value`` checked against ``action`` (type, choices) and turned into flags.

    ``topic`` may be a list of topics (read together) unless ``one_topic``.
    """
    if action.dest == "topic" and one_topic and isinstance(value, list) and len(value) != 1:
        raise ConfigError(f"{where}: wirestream produce writes to one topic; give it with --topic")
    name = action.option_strings[0]
    if action.nargs == 0:  # a switch (store_true)
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return [name] if value else []
    if action.dest == "topic" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if action.type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif action.type is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    else:
        ok = isinstance(value, str)
        expected = "a string" + (" or a list of strings" if action.dest == "topic" else "")
    if not ok:
        raise ConfigError(f"{where} must be {expected}, not {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, action.choices))}, not {value!r}")
    return [f"{name}={value}"]


def _beam_flags(table: Mapping[str, Any], ours: Mapping[str, argparse.Action]) -> list[str]:
    from apache_beam.options.pipeline_options import PipelineOptions

    known = PipelineOptions([]).get_all_options()
    flags = []
    for key, value in table.items():
        where = f"[run.beam] {key}"
        if key in ours:
            raise ConfigError(f"{where}: {key} is a wirestream option; put it in [run] or [kafka]")
        if key not in known:
            raise ConfigError(f"{where}: unknown Apache Beam pipeline option {key!r}")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                flags += [f"--{key}"] if item else []
            elif isinstance(item, str | int | float):
                flags.append(f"--{key}={item}")
            else:
                raise ConfigError(f"{where} must be a string, number, boolean or a list of them, not {item!r}")
    return flags


def config_args(
    config: Mapping[str, Any],
    command: str,
    parsers: Mapping[str, argparse.ArgumentParser],
) -> list[str]:
    """The flags the file sets for ``command``; checks every table of the file, not only this command's.

    ``parsers``: the option parser of each command in :data:`COMMANDS`.
    """
    flags: dict[str, list[str]] = {name: [] for name in COMMANDS}
    for table in config:
        if table not in ("kafka", *COMMANDS):
            raise ConfigError(f"unknown table [{table}]; the tables are [kafka], [run], [run.beam] and [produce]")
        if not isinstance(config[table], dict):
            raise ConfigError(f"{table} must be a table ([{table}]), not a single value")
    run_actions = _actions(parsers["run"])
    for key, value in config.get("kafka", {}).items():
        dest = _kafka_dest(key, run_actions)
        if dest is None:
            raise ConfigError(f"[kafka] {key}: unknown key; [kafka] holds {', '.join(_kafka_keys(run_actions))}")
        flags["run"] += _flag(f"[kafka] {key}", run_actions[dest], value)  # checks it whatever the command
        produce_actions = _actions(parsers["produce"])
        if command == "produce" and dest in produce_actions:
            flags["produce"] += _flag(f"[kafka] {key}", produce_actions[dest], value, one_topic=True)
    for name in COMMANDS:
        actions = _actions(parsers[name])
        for key, value in config.get(name, {}).items():
            where = f"[{name}] {key}"
            if name == "run" and key == "beam":
                if not isinstance(value, dict):
                    raise ConfigError("[run] beam must be a table ([run.beam]) of Apache Beam options")
                flags[name] += _beam_flags(value, actions)
                continue
            if key in _kafka_keys(actions) or _kafka_dest(key.removeprefix("kafka_"), actions) == key:
                raise ConfigError(f"{where}: Kafka connection settings go in [kafka] (as {key.removeprefix('kafka_')})")
            if key not in actions or key == "config":
                raise ConfigError(f"{where}: unknown option of wirestream {name} (see wirestream {name} --help)")
            flags[name] += _flag(where, actions[key], value)
    return flags[command]


def _kafka_keys(actions: Mapping[str, argparse.Action]) -> list[str]:
    return [*_KAFKA_OPTIONS, *(dest.removeprefix("kafka_") for dest in actions if dest.startswith("kafka_"))]


def expand_config(argv: Sequence[str], command: str, parsers: Mapping[str, argparse.ArgumentParser]) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by the file's flags, placed first so typed flags win."""
    args, files = [], []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--config":
            if index + 1 >= len(argv):
                raise ConfigError("--config needs a file name")
            files.append(argv[index + 1])
            index += 2
            continue
        if arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
        else:
            args.append(arg)
        index += 1
    if len(files) > 1:
        raise ConfigError("--config may be given once")
    if not files:
        return args
    return [*config_args(load_config(files[0]), command, parsers), *args]
