"""The Kafka package keeps its old import paths, and loads Beam only for the source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_old_module_paths_name_the_same_objects() -> None:
    from transforms.io import kafka, kafka_check, kafka_security
    from transforms.io.kafka import check, security, source

    assert kafka_security.KafkaSecurity is security.KafkaSecurity is kafka.KafkaSecurity
    assert kafka_security.read_secret is security.read_secret
    assert kafka_check.check_kafka is check.check_kafka is kafka.check_kafka
    assert kafka_check.OncePerInterval is check.OncePerInterval
    assert kafka.ReadArticles is source.ReadArticles


def test_only_the_source_loads_beam() -> None:
    probe = (
        "import sys\n"
        "import transforms.io.kafka, transforms.io.kafka.check, transforms.io.kafka.group, transforms.io.kafka.plan\n"
        "from transforms.io.kafka import ConsumerConfig, OffsetCommitter, PartitionPlan, check_reachable\n"
        "before = 'apache_beam' in sys.modules\n"
        "from transforms.io.kafka import ReadArticles\n"
        "print(before, 'apache_beam' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
