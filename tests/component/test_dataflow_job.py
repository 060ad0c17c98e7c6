"""The Dataflow job specification, built offline (DataflowRunner ``--dry_run``, no Google account).

What a submission would send: the job (type, name), the portable pipeline with our stages, the
worker image as its environment, and the options the workers receive. Nothing is staged or sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.ingest import build
from pipelines.options import IngestOptions
from tests.kit import ROOT
from transforms.io.kafka import PartitionPlan

apiclient = pytest.importorskip(
    "apache_beam.runners.dataflow.internal.apiclient", reason="apache-beam[gcp] extras missing: run `make setup`"
)

WORKER_IMAGE = "europe-west1-docker.pkg.dev/test-project/wirestream/wirestream-worker:2.75.0"
SECRET = "dataflow-test-secret-91c3"
DATAFLOW_ARGS = [
    "--runner=DataflowRunner",
    "--project=test-project",
    "--region=europe-west1",
    "--job_name=wirestream-offline",
    "--temp_location=gs://test-bucket/tmp",
    "--staging_location=gs://test-bucket/staging",
    "--no_auth",
    "--dry_run=True",
    "--sdk_location=container",
    f"--sdk_container_image={WORKER_IMAGE}",
]
INGEST_ARGS = [
    "--lake=gs://test-bucket/lake",
    "--topic=articles",
    "--bootstrap-servers=kafka-1:9093",
    "--kafka-security-protocol=SASL_SSL",
    "--kafka-sasl-mechanism=SCRAM-SHA-512",
    "--kafka-sasl-username=wirestream",
    "--kafka-sasl-password-env=WIRESTREAM_KAFKA_PASSWORD",
]


@pytest.fixture(scope="module")
def job() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WIRESTREAM_KAFKA_PASSWORD", SECRET)
        options = PipelineOptions([*DATAFLOW_ARGS, *INGEST_ARGS])
        pipeline = beam.Pipeline(options=options)
        plans = [PartitionPlan("articles", partition, 0, None) for partition in range(3)]
        build(pipeline, options.view_as(IngestOptions), plans)
        return pipeline.run().job


def _worker_options(job: Any) -> dict[str, Any]:
    environment = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url="gs://test-bucket/staging/pipeline.pb",
        proto_pipeline=job.proto_pipeline,
    )
    struct = type(environment.proto).to_dict(environment.proto)["sdk_pipeline_options"]
    return dict(struct["options"])


def test_job_is_a_named_streaming_job(job: Any) -> None:
    assert job.proto.name == "wirestream-offline"
    assert job.proto.type_.name == "JOB_TYPE_STREAMING"  # the Kafka SDF's output is unbounded


def test_job_graph_has_every_stage(job: Any) -> None:
    names = {transform.unique_name for transform in job.proto_pipeline.components.transforms.values()}
    for stage in (
        "ReadArticles/PlanPartitions",
        "ReadArticles/ReadPartitions",
        "ParseArticles",
        "CleanArticles",
        "Deduplicate",
        "ExtractEntities",
        "WriteLake/CommitBatches",
        "MarkCompletePartitions/MarkWhenWatermarkPasses",
    ):
        assert stage in names, sorted(names)


def test_workers_run_the_wirestream_image(job: Any) -> None:
    environments = job.proto_pipeline.components.environments
    assert environments
    for environment in environments.values():
        assert environment.urn == "beam:env:docker:v1"
        assert WORKER_IMAGE.encode() in environment.payload


def test_workers_receive_the_pipeline_options_but_not_the_password(job: Any) -> None:
    options = _worker_options(job)
    assert options["lake"] == "gs://test-bucket/lake"
    assert options["bootstrap_servers"] == "kafka-1:9093"
    assert options["kafka_sasl_password_env"] == "WIRESTREAM_KAFKA_PASSWORD"
    assert options["sdk_container_image"] == WORKER_IMAGE
    assert options["streaming"] is True
    assert SECRET not in json.dumps(options, default=str)
    assert SECRET.encode() not in job.proto_pipeline.SerializeToString()


def test_flex_template_parameters_are_pipeline_options() -> None:
    metadata = json.loads((ROOT / "infra" / "dataflow" / "metadata.json").read_text())
    ingest = PipelineOptions([]).view_as(IngestOptions)
    for parameter in metadata["parameters"]:
        assert hasattr(ingest, parameter["name"]), parameter["name"]
    required = {parameter["name"] for parameter in metadata["parameters"] if not parameter["isOptional"]}
    assert required == {"lake", "bootstrap_servers"}
    assert Path(ROOT / "infra" / "dataflow" / "launch.py").exists()
