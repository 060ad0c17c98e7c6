"""The lake on a local disk, on S3 and as Iceberg tables: commit latency, files per table-hour, run time.

``python -m benchmarks.lake_stores [--records N] [--commits N]`` starts the local broker and the
local S3 server (``infra/kafka``, ``infra/s3``) when they are not running, and stops what it
started. Two measurements, the three lakes interleaved in one process (this machine's speed drifts):

1. **Commit latency**: the same batch committed again and again by the lake's commit protocol
   (staged files, manifest, roll-forward) on each store, for a 20- and a 200-record batch writing
   to every table (benchmarks/batches.py); the median of ``--commits``. For the Iceberg lake
   (local disk): the batch's files and manifest written, then committed as one snapshot per table
   (a new batch range each time: a range the tables already cover is skipped).
2. **A real run**: N synthetic bulletins (with broken records and repeats) produced to a new topic,
   read by ``wirestream run --until-caught-up`` (blank spaCy pipeline: this is about storage, not
   NER) into a local lake, an ``s3://`` lake and a local ``--table-format iceberg`` lake; the run's
   wall time, then the data files per table-hour before and after ``wirestream compact`` (for
   Iceberg, the files of the current snapshot).

The S3 figures are against SeaweedFS on 127.0.0.1, so they show the protocol's request count, not
a cloud store's network latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA = ROOT / "infra" / "kafka" / "kafka.sh"
S3 = ROOT / "infra" / "s3" / "s3.sh"
BOOTSTRAP = f"127.0.0.1:{os.environ.get('WIRESTREAM_KAFKA_PORT', '19092')}"


def _started(script: Path) -> bool:
    """Start the service unless it runs; True if this process started it."""
    if subprocess.run([str(script), "status"], capture_output=True).returncode == 0:
        return False
    subprocess.run([str(script), "up"], check=True)
    return True


def _s3_environment() -> None:
    printed = subprocess.run([str(S3), "env"], check=True, capture_output=True, text=True).stdout
    for line in printed.splitlines():
        if "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            os.environ[name] = value


def _new_bucket() -> str:
    import pyarrow.fs as pafs

    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
    fs.create_dir(bucket)
    return bucket


def _drop_bucket(bucket: str) -> None:
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_deletion=true")
    fs.delete_dir(bucket)


def _outcomes(size: int, first: int = 0) -> tuple[object, list[object]]:
    """A batch of ``size`` records at offsets ``[first, first + size)`` writing to every table."""
    from benchmarks.batches import mixed_outcomes
    from schemas.records import SourceBatch

    batch = SourceBatch("bench", 0, first, first + size, size)
    return batch, list(mixed_outcomes(batch))


def commit_latency(local: str, s3: str, iceberg: str, commits: int) -> dict[tuple[str, int], float]:
    """Median seconds to commit a batch, per (lake, batch size), the lakes interleaved."""
    from transforms.io.lake import Lake, commit_batch
    from transforms.io.lake.iceberg.catalog import data_schemas, ensure_tables, open_catalog
    from transforms.io.lake.iceberg.commit import commit_manifests
    from transforms.io.lake.iceberg.files import write_batch

    lakes = {"local": Lake(local), "s3": Lake(s3)}
    iceberg_lake = Lake(iceberg)
    catalog = open_catalog(iceberg_lake)
    ensure_tables(catalog, iceberg_lake)
    schemas = data_schemas(catalog)
    times: dict[tuple[str, int], list[float]] = defaultdict(list)
    for size in (20, 200):
        batch, outcomes = _outcomes(size)
        for commit in range(commits):
            for name, lake in lakes.items():
                started = time.perf_counter()
                commit_batch(lake, batch, outcomes)  # type: ignore[arg-type]
                times[(name, size)].append(time.perf_counter() - started)
            moved, shifted = _outcomes(size, first=size * 10**9 + commit * 10**6)  # a new range each time
            started = time.perf_counter()
            manifest = write_batch(iceberg_lake, moved, shifted, schemas)  # type: ignore[arg-type]
            commit_manifests(catalog, iceberg_lake, [manifest])
            times[("iceberg", size)].append(time.perf_counter() - started)
    return {key: statistics.median(values) for key, values in times.items()}


def _values(records: int) -> list[bytes]:
    cities = ["Oslo", "Lagos", "Lima", "Hanoi", "Perth", "Quito", "Porto", "Accra"]
    values: list[bytes] = []
    for i in range(records):
        if i % 37 == 0:
            values.append(b"{broken record %d" % i)
        elif i % 23 == 0 and values:
            values.append(values[-1])
        else:
            body = f"Bulletin {i}: the mayor of {cities[i % 8]} met ministers from {cities[(i * 7) % 8]} on Tuesday."
            values.append(json.dumps({"url": f"https://bench.example/{i}", "body": body}).encode())
    return values


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )


def files_per_table_hour(uri: str) -> dict[str, tuple[int, float, int]]:
    """Per table: (table-hour folders, mean and max data files in one)."""
    from schemas import arrow
    from transforms.io.lake import Lake, data_files, partition_folders

    lake = Lake(uri)
    figures = {}
    for table in arrow.TABLES:
        counts = [len(data_files(lake, folder, recursive=False)) for folder, _ in partition_folders(lake, table)]
        if counts:
            figures[table] = (len(counts), statistics.mean(counts), max(counts))
    return figures


def _print_files(label: str, figures: dict[str, tuple[int, float, int]]) -> None:
    cells = ", ".join(f"{table} {mean:.1f} (max {top}, {folders} h)" for table, (folders, mean, top) in figures.items())
    print(f"  {label:<16} files per table-hour: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--commits", type=int, default=15)
    args = parser.parse_args()
    import spacy

    from pipelines.produce import produce

    started = [script for script in (KAFKA, S3) if _started(script)]
    _s3_environment()
    bucket = _new_bucket()
    try:
        with tempfile.TemporaryDirectory(prefix="lake-stores-") as scratch:
            medians = commit_latency(
                f"{scratch}/commit-local", f"s3://{bucket}/commit", f"{scratch}/commit-iceberg", args.commits
            )
            print(f"commit latency, median of {args.commits} (lakes interleaved):")
            for size in (20, 200):
                local, s3, iceberg = (medians[(name, size)] * 1000 for name in ("local", "s3", "iceberg"))
                print(f"  {size:>3}-record batch: local {local:.0f} ms, s3 {s3:.0f} ms, iceberg {iceberg:.0f} ms")
            blank = Path(scratch) / "blank-en"
            spacy.blank("en").to_disk(blank)
            topic = f"bench-stores-{uuid.uuid4().hex[:8]}"
            produce(_values(args.records), BOOTSTRAP, topic, partitions=3)
            print(f"run --until-caught-up over {args.records} records (3 partitions, blank spaCy):")
            runs: list[tuple[str, str, tuple[str, ...]]] = [
                ("local", f"{scratch}/run-local", ()),
                ("s3", f"s3://{bucket}/run", ()),
                ("iceberg", f"{scratch}/run-iceberg", ("--table-format=iceberg",)),
            ]
            for name, uri, extra in runs:
                begun = time.perf_counter()
                _cli(
                    "run",
                    f"--lake={uri}",
                    f"--topic={topic}",
                    f"--bootstrap-servers={BOOTSTRAP}",
                    f"--group-id=g-{topic}-{name}",
                    f"--spacy-model={blank}",
                    "--until-caught-up",
                    "--progress=off",
                    *extra,
                )
                print(f"  {name:<5} {time.perf_counter() - begun:.1f} s")
                _print_files(f"{name} run", files_per_table_hour(uri))
                _cli("compact", uri)
                _print_files(f"{name} compacted", files_per_table_hour(uri))
    finally:
        _drop_bucket(bucket)
        for script in started:
            subprocess.run([str(script), "down"], check=True)


if __name__ == "__main__":
    main()
