"""Local defaults the CLI adds: the Flink job-server jar (never a run-time download) and its version."""

from __future__ import annotations

import re
from pathlib import Path

import apache_beam as beam
import pytest

from pipelines.options import with_local_defaults
from pipelines.runners import FLINK_MINOR_VERSION, flink_job_server_jar
from tests.kit import ROOT
from transforms.errors import UserError


def test_flink_runner_gets_the_local_job_server_jar_and_its_flink_version(tmp_path: Path) -> None:
    jar = tmp_path / "job-server.jar"
    jar.write_bytes(b"")
    args = with_local_defaults(["--runner=FlinkRunner"], {"WIRESTREAM_FLINK_JOB_SERVER_JAR": str(jar)})
    assert f"--flink_job_server_jar={jar}" in args and f"--flink_version={FLINK_MINOR_VERSION}" in args
    assert not any(arg.startswith("--prism_location") for arg in args)


def test_explicit_flink_settings_are_kept() -> None:
    args = with_local_defaults(
        ["--runner=FlinkRunner", "--flink_job_server_jar=/opt/js.jar", "--flink_version=2.0"], {}
    )
    assert args.count("--flink_job_server_jar=/opt/js.jar") == 1 and "--flink_version=2.0" in args
    assert not any(arg == f"--flink_version={FLINK_MINOR_VERSION}" for arg in args)


def test_missing_job_server_jar_stops_before_beam_would_download_one(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="make flink"):
        with_local_defaults(["--runner=FlinkRunner"], {"WIRESTREAM_CACHE": str(tmp_path)})


def test_default_jar_path_matches_what_infra_flink_resolves(tmp_path: Path) -> None:
    pom = (ROOT / "infra" / "flink" / "pom.xml").read_text()
    beam_version = re.search(r"<beam.version>(.*)</beam.version>", pom)
    flink_minor = re.search(r"<flink.minor>(.*)</flink.minor>", pom)
    assert beam_version and flink_minor
    assert beam_version[1] == beam.__version__ and flink_minor[1] == FLINK_MINOR_VERSION
    jar = flink_job_server_jar({"WIRESTREAM_CACHE": str(tmp_path)})
    assert jar == tmp_path / f"beam-flink-job-server-{beam.__version__}" / (
        f"beam-runners-flink-{FLINK_MINOR_VERSION}-job-server-{beam.__version__}.jar"
    )


def test_ner_workers_ask_prism_for_worker_processes_and_refuse_other_runners(monkeypatch) -> None:
    import os
    import sys

    from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions

    from pipelines.runners import separate_worker_processes

    monkeypatch.setenv("PATH", "/usr/bin")
    options = PipelineOptions(["--runner=PrismRunner", "--ner-workers=2"])
    separate_worker_processes(options)
    assert options.view_as(DebugOptions).lookup_experiment("use_loopback_process_worker")
    assert os.environ["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    with pytest.raises(UserError, match="runner's parallelism"):
        separate_worker_processes(PipelineOptions(["--runner=FlinkRunner"]))


def test_dedup_settings_come_from_the_options_and_a_bad_shard_count_stops_the_run() -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.options import IngestOptions, dedup_config

    config = dedup_config(PipelineOptions(["--dedup-shards=4", "--dedup-ttl-hours=2"]).view_as(IngestOptions))
    assert config.index_shards == 4 and config.ttl_seconds == 7200.0
    with pytest.raises(UserError, match="index_shards must be between 1 and 65536, not 0"):
        dedup_config(PipelineOptions(["--dedup-shards=0"]).view_as(IngestOptions))


def test_a_mistyped_option_is_named_with_a_guess_and_beam_options_pass() -> None:
    from pipelines.options import unknown_options

    good = ["--lake=/l", "--topic", "t", "--runner=FlinkRunner", "--flink_master=h:8081", "--experiments=x"]
    assert unknown_options([*good, "--prism_location=/p", "--dedup-jaccard=0.5", "--dedup_jaccard=0.5"]) == []
    assert unknown_options(["--topik=t2", "--lake", "/l"]) == ["unknown option --topik (did you mean --topic?)"]
    assert unknown_options(["--dedup-jacard=0.5"]) == ["unknown option --dedup-jacard (did you mean --dedup-jaccard?)"]
    assert unknown_options(["--top=t"]) == ["unknown option --top (did you mean --topic?)"]  # no abbreviations
    assert unknown_options(["--zzzz"]) == ["unknown option --zzzz"]


def test_numeric_options_out_of_range_are_named() -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.options import IngestOptions, out_of_range

    def problems(*argv: str) -> list[str]:
        return out_of_range(PipelineOptions(["--lake=/l", *argv]).view_as(IngestOptions))

    assert problems() == []
    assert problems("--dedup-jaccard=5", "--ner-workers=0") == [
        "--ner-workers 0 is out of range: give 1 to 64",
        "--dedup-jaccard 5 is out of range: give 0 to 1",
    ]
    assert problems("--max-batch-records=-3") == ["--max-batch-records -3 is out of range: give 1 to 1,000,000"]
