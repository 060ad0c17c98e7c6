"""Dedup seeds: what the lake remembers of the articles earlier runs decided, read back at start.

Deduplication's keyed state does not outlive a run, so a run starts from the lake: every article
a batch brought to deduplication is committed with that batch into ``_records/`` as its ticket,
keys and root (:func:`transforms.dedup_core.encode_memory`). :class:`LakeSeeds` reads those of the
last TTL back, as *seeds* for :class:`transforms.dedup.Deduplicate`. Reading the lake is IO, so it
lives here, and the stage only receives the tickets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from schemas import arrow
from transforms.dedup_core import ArticleRef, DedupConfig, Ticket, decode_memory, encode_memory, fingerprint, record_id
from transforms.io.lake.store import Lake
from transforms.io.lake.tables import data_files

__all__ = ["LakeSeeds"]

_SEED_TIME = Timestamp(0)


class _SeedTicketsFn(beam.DoFn):
    """Reads one lake partition folder and makes seed tickets of the articles a previous run decided.

    A ``_records/`` folder holds every article deduplication saw (kept, duplicate, quarantined) with
    its ticket, keys and root, as that run computed them. A memory written before roots were kept
    takes the ``duplicate_of`` of its row in the same hour of ``duplicates/`` as its root (one
    step: under the old rule that row could name another duplicate), else (kept) its own id. An
    ``articles/`` folder is read only for hours that have no ``_records/`` folder (a lake written
    before it existed): its kept articles are fingerprinted again, ordered at their ingestion time.
    """

    def __init__(self, lake_uri: str, config: DedupConfig, since_us: int) -> None:
        self._lake_uri = lake_uri
        self._config = config
        self._since_us = since_us

    def process(self, folder: str) -> Iterator[TimestampedValue]:
        lake = Lake(self._lake_uri)
        named: dict[int, str] | None = None
        for path in data_files(lake, folder, recursive=False):
            if folder.startswith(f"{arrow.RECORD_LOG_TABLE}/"):
                seeds = self._remembered(lake, path)
                if any(not seed.root for seed in seeds):
                    if named is None:
                        named = self._named_in_duplicates(lake, "duplicates/" + folder.split("/", 1)[1])
                    seeds = [
                        seed if seed.root else dataclasses.replace(seed, root=named.get(seed.record_id, ""))
                        for seed in seeds
                    ]
            else:
                seeds = self._refingerprinted(lake, path)
            for seed in seeds:
                # Stamped at the epoch, not at the seed's own time: a verdict that waits for a
                # seed's ticket is then never stamped later than the batch it concerns.
                yield TimestampedValue(encode_memory(seed), _SEED_TIME)

    def _remembered(self, lake: Any, path: str) -> list[Ticket]:
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["dedup_memory", "ingested_at"], filesystem=lake.fs)
        return [
            decode_memory(row["dedup_memory"])
            for row in table.to_pylist()
            if row["dedup_memory"] and int(row["ingested_at"].timestamp() * 1_000_000) >= self._since_us
        ]

    def _named_in_duplicates(self, lake: Any, folder: str) -> dict[int, str]:
        """``duplicate_of`` by record id, from a ``duplicates/`` hour folder (empty if it has none)."""
        import pyarrow.parquet as pq

        if not lake.exists(lake.path(folder)):
            return {}
        named = {}
        columns = ["kafka_topic", "kafka_partition", "kafka_offset", "duplicate_of"]
        for path in data_files(lake, folder, recursive=False):
            for row in pq.read_table(path, columns=columns, filesystem=lake.fs).to_pylist():
                coordinates = (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"])
                named[record_id(*coordinates)] = row["duplicate_of"] or ""
        return named

    def _refingerprinted(self, lake: Any, path: str) -> list[Ticket]:
        import pyarrow.parquet as pq

        columns = [
            "article_id",
            "text",
            "canonical_url",
            "content_hash",
            "ingested_at",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
        ]
        refs = []
        for row in pq.read_table(path, columns=columns, filesystem=lake.fs).to_pylist():
            time_us = int(row["ingested_at"].timestamp() * 1_000_000)
            if time_us >= self._since_us:
                refs.append(
                    ArticleRef(
                        row["article_id"],
                        row["text"] or "",
                        row["canonical_url"] or "",
                        row["content_hash"] or "",
                        row["kafka_topic"],
                        row["kafka_partition"],
                        row["kafka_offset"],
                        time_us,
                    )
                )
        return fingerprint(refs, 0, "", self._config, seed=True) if refs else []


class LakeSeeds(beam.PTransform):
    """``PBegin`` → the remembered tickets (:func:`encode_memory`) of articles decided in the TTL before ``now_us``.

    ``folders``: ``_records/`` partition folders (and ``articles/`` ones of hours without
    ``_records/``); the TTL is counted on ``ingested_at``; one folder per element, read in parallel.
    """

    def __init__(self, lake_uri: str, folders: Sequence[str], config: DedupConfig, now_us: int) -> None:
        super().__init__()
        self._lake_uri = lake_uri
        self._folders = list(folders)
        self._config = config
        self._since_us = now_us - config.ttl_micros

    def expand(self, begin: pvalue.PBegin) -> beam.PCollection:
        return (
            begin
            | "ListFolders" >> beam.Create(self._folders)
            | "SeedTickets" >> beam.ParDo(_SeedTicketsFn(self._lake_uri, self._config, self._since_us))
        )
