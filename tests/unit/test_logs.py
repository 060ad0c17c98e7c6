"""Quiet by default: what the launcher's logging shows at each level, with Beam's real log sources."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from pipelines import cli, logs


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    if logs._HANDLER is not None:
        root.removeHandler(logs._HANDLER)
        logs._HANDLER = None
    root.setLevel(level)


def _prism_says(line: dict[str, object]) -> None:
    """Log one line of Prism's output exactly as Beam relays it (the logger and filter its job server sets up)."""
    from apache_beam.runners.portability.prism_runner import PrismRunnerLogFilter

    logger = logging.getLogger("PrismJobServer")
    if not any(isinstance(f, PrismRunnerLogFilter) for f in logger.filters):
        logger.addFilter(PrismRunnerLogFilter())
    logger.setLevel(logging.INFO)  # as Beam's SubprocessJobServer.start does

    def log_stdout() -> None:  # the filter rewrites only records made in a function of this name
        logger.info(json.dumps(line))

    log_stdout()


SERVING = {"time": "2026-12-03T02:58:38.633Z", "level": "INFO", "msg": "Serving JobManagement", "endpoint": "x:1"}
PRISM_WARNING = {"time": "2026-12-03T02:58:39.000Z", "level": "WARN", "msg": "unknown urn, ignoring"}
PRISM_ERROR = {"time": "2026-12-03T02:58:40.000Z", "level": "ERROR", "msg": "job failed", "error": "boom"}


@pytest.mark.parametrize("level", [None, "INFO", "ERROR"])
def test_prism_lines_and_service_chatter_are_for_debug(
    level: str | None, configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.utils import subprocess_server

    logs.configure(level)
    _prism_says(SERVING)
    _prism_says(PRISM_WARNING)
    subprocess_server._LOGGER.warning("Really starting service at %s with cmd: %s", "localhost:1", ("prism",))
    PipelineOptions.from_dictionary({"unset_option": None})  # Beam warns on the root logger
    PipelineOptions(["stray"]).get_all_options()  # "Discarding unparseable args"
    logging.getLogger("kafka.conn").info("connecting to 127.0.0.1:19092")
    logging.getLogger("apache_beam.typehints.native_type_compatibility").info("Converting string literal")
    logging.getLogger("pipelines.ingest").info("plan t-0: from 0 to 3")
    logging.getLogger("pipelines.lifecycle").warning("SIGINT: stopping the sources")
    logging.getLogger("kafka.sasl.plain").warning("Sending username and password in the clear")
    _prism_says(PRISM_ERROR)
    shown = [line.split(" ", 2)[2] for line in capsys.readouterr().err.splitlines()]
    expected = {
        None: [
            "WARNING pipelines.lifecycle: SIGINT: stopping the sources",
            "WARNING kafka.sasl.plain: Sending username and password in the clear",
            "ERROR PrismRunner: job failed (error='boom')",
        ],
        "ERROR": ["ERROR PrismRunner: job failed (error='boom')"],
    }
    expected["INFO"] = ["INFO pipelines.ingest: plan t-0: from 0 to 3", *expected[None]]
    assert shown == expected[level]


def test_debug_shows_everything(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.utils import subprocess_server

    logs.configure("debug")
    _prism_says(SERVING)
    subprocess_server._LOGGER.warning("Really starting service at %s", "localhost:1")
    PipelineOptions.from_dictionary({"unset_option": None})
    PipelineOptions(["stray"]).get_all_options()
    logging.getLogger("kafka.conn").debug("Request 3: SaslHandshakeRequest_v1(mechanism='PLAIN')")
    shown = [line.split(" ", 2)[2] for line in capsys.readouterr().err.splitlines()]
    assert shown == [
        "INFO PrismRunner: Serving JobManagement (endpoint='x:1')",
        "WARNING apache_beam.utils.subprocess_server: Really starting service at localhost:1",
        "WARNING root: Not setting flag with value None: unset_option",
        "WARNING apache_beam.options.pipeline_options: Discarding unparseable args: ['stray']",
        "DEBUG kafka.conn: Request 3: SaslHandshakeRequest_v1(mechanism='PLAIN')",
    ]


def test_the_launchers_handler_redacts_at_every_level(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("DEBUG")
    logging.getLogger("kafka.conn").debug("Request 3: SaslAuthenticateRequest_v0(auth_bytes=b'u\\x00u\\x00hunter2')")
    assert capsys.readouterr().err.endswith(
        " DEBUG kafka.conn: Request 3: SaslAuthenticateRequest_v0(auth_bytes=b'***')\n"
    )


def test_configure_again_replaces_its_handler(configured: None) -> None:
    logs.configure("INFO")
    logs.configure("WARNING")
    ours = [handler for handler in logging.getLogger().handlers if isinstance(handler, logs._StderrHandler)]
    assert len(ours) == 1 and ours[0].level == logging.WARNING


def test_an_unknown_level_is_refused_by_name(
    configured: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WIRESTREAM_LOG_LEVEL", "LOUD")
    assert cli.main(["query", "--help"]) == 2
    assert capsys.readouterr().err == (
        "wirestream: WIRESTREAM_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'\n"
    )


@pytest.mark.parametrize(
    ("name", "level", "pathname", "threshold", "expected"),
    [
        ("PrismRunner", logging.INFO, "", logging.ERROR, False),  # the line that showed even at ERROR
        ("PrismRunner", logging.ERROR, "", logging.ERROR, True),
        ("root", logging.WARNING, "/venv/apache_beam/options/pipeline_options.py", logging.WARNING, False),
        ("root", logging.WARNING, "/venv/somewhere/else.py", logging.WARNING, True),
        ("transforms.io.kafka", logging.INFO, "", logging.INFO, True),
        ("transformsx", logging.INFO, "", logging.INFO, False),  # a prefix, not a package of ours
        ("great_expectations._docs_decorators", logging.INFO, "", logging.INFO, False),
        ("SdkWorker@1", logging.WARNING, "", logging.WARNING, True),
        ("apache_beam.utils.subprocess_server", logging.WARNING, "", logging.DEBUG, True),
    ],
)
def test_shown(name: str, level: int, pathname: str, threshold: int, expected: bool) -> None:
    assert logs.shown(name, level, pathname, threshold) is expected
