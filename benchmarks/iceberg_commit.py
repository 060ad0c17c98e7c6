"""The Iceberg lake's commit cost against the Hive lake's, on a local disk (issue #20 part 2).

``python -m benchmarks.iceberg_commit [--commits 20] [--size 20]`` builds batches of ``--size``
records that touch all six tables (articles with an entity, duplicates, quarantined articles and
dead letters in turn), and measures, interleaved in one process (this machine's speed drifts):

1. **Hive**: ``commit_batch`` of a batch (staged files, manifest, renames);
2. **Iceberg, write**: ``write_batch`` (six files with field ids, then the manifest);
3. **Iceberg, commit**: ``commit_manifests`` of that one manifest (six snapshots, ``_records`` last);
4. **Iceberg, grouped**: ``commit_manifests`` of ten manifests at once (still six snapshots).

Each batch is new (the next offsets), as in a run. Without ``--keep`` no snapshot is expired, so
the later figures include the growth of the table metadata (pyiceberg deep-copies it, O(snapshots),
about 19 times per commit); with ``--keep N`` every tenth round expires all but N snapshots per
table (``expire``, timed as its own step). Prints the median, the
minimum and the maximum of each, and the medians of the first and last five, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict

from benchmarks.batches import mixed_outcomes
from schemas.records import SourceBatch


def measure(commits: int, size: int, keep: int | None = None) -> dict[str, list[float]]:
    """Seconds per step, ``commits`` times each, the steps interleaved."""
    from transforms.io.lake import Lake, commit_batch
    from transforms.io.lake.iceberg.catalog import data_schemas, ensure_tables, open_catalog
    from transforms.io.lake.iceberg.commit import commit_manifests, expire
    from transforms.io.lake.iceberg.files import write_batch

    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as hive_root, tempfile.TemporaryDirectory() as iceberg_root:
        hive, lake = Lake(hive_root), Lake(iceberg_root)
        catalog = open_catalog(lake)
        ensure_tables(catalog, lake)
        schemas = data_schemas(catalog)
        next_offset = 0

        def batch() -> SourceBatch:
            nonlocal next_offset
            next_offset += size
            return SourceBatch("bench", 0, next_offset - size, next_offset, size)

        for round_ in range(commits):
            if keep is not None and round_ % 10 == 9:
                started = time.perf_counter()
                expire(catalog, lake, keep)
                times[f"iceberg expire, keep {keep}"].append(time.perf_counter() - started)
            hive_batch = batch()
            started = time.perf_counter()
            commit_batch(hive, hive_batch, mixed_outcomes(hive_batch))
            times["hive commit_batch"].append(time.perf_counter() - started)

            iceberg_batch = batch()
            outcomes = mixed_outcomes(iceberg_batch)
            started = time.perf_counter()
            manifest = write_batch(lake, iceberg_batch, outcomes, schemas)
            times["iceberg write_batch"].append(time.perf_counter() - started)
            started = time.perf_counter()
            commit_manifests(catalog, lake, [manifest])
            times["iceberg commit_manifests, 1 batch"].append(time.perf_counter() - started)

            manifests = []
            for _ in range(10):
                grouped = batch()
                manifests.append(write_batch(lake, grouped, mixed_outcomes(grouped), schemas))
            started = time.perf_counter()
            commit_manifests(catalog, lake, manifests)
            times["iceberg commit_manifests, 10 batches"].append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    """Print the median, minimum and maximum of each step in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--size", type=int, default=20, help="records per batch")
    parser.add_argument("--keep", type=int, default=None, help="expire all but N snapshots every 10 rounds")
    args = parser.parse_args(argv)
    for step, values in measure(args.commits, args.size, args.keep).items():
        milliseconds = [value * 1000 for value in values]
        print(
            f"{step:40} median {statistics.median(milliseconds):7.1f} ms"
            f"  min {min(milliseconds):7.1f}  max {max(milliseconds):7.1f}"
            f"  first 5 {statistics.median(milliseconds[:5]):7.1f}  last 5 {statistics.median(milliseconds[-5:]):7.1f}"
            f"  (n={len(values)})"
        )


if __name__ == "__main__":
    main()
