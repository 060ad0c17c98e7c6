"""The real thing: records produced to the local broker, the CLI on Prism, the lake read by DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.demo import DEMO_ARTICLES, seed_message
from pipelines.produce import produce
from pipelines.query import query
from tests.integration.helpers import assert_each_once, reset_group_to_earliest, run_until_caught_up

pytestmark = pytest.mark.integration

NOT_JSON = b"this record is not JSON {at all"


def _filler(index: int) -> bytes:
    body = f"Filler story {index}: the council of Springfield met on Tuesday to discuss the budget for {index} parks."
    return json.dumps({"url": f"https://filler.example/{index}", "body": body}).encode()


@pytest.fixture(scope="module")
def demo_run(bootstrap_servers: str, corpus: Path, prism: Path, tmp_path_factory: pytest.TempPathFactory):
    import uuid

    topic = f"e2e-{uuid.uuid4().hex[:10]}"
    lake = tmp_path_factory.mktemp("lake")
    seed = seed_message(corpus)
    values = [json.dumps(seed).encode()]
    values += [line for line in DEMO_ARTICLES.read_bytes().splitlines() if line.strip()]
    values += [_filler(i) for i in range(12)]
    keys = [b"k%d" % (i % 3) for i in range(len(values))]  # spread records over all partitions
    values.insert(16, NOT_JSON)  # between two fillers of the same key, so its neighbours are good articles
    keys.insert(16, keys[15])
    placed = produce(values, bootstrap_servers, topic, partitions=3, keys=keys)
    result = run_until_caught_up(lake, topic, bootstrap_servers, "--progress=log", "--progress-interval=0.5")
    return {"topic": topic, "lake": lake, "values": values, "placed": placed, "result": result}


def test_run_used_prism_and_downloaded_nothing(demo_run) -> None:
    output = demo_run["result"].stdout + demo_run["result"].stderr
    assert "on Prism (portable)" in output
    assert "github.com" not in output and "Falling back" not in output and "download" not in output.lower()


def test_seed_entities_come_out_of_the_lake(demo_run) -> None:
    _, rows = query(
        str(demo_run["lake"]),
        """
        SELECT e.text, e.label, e.canonical, e.ingested_at = a.ingested_at FROM entities e
        JOIN articles a USING (article_id) WHERE a.article_id = 'seed-kursk-deployment'""",
    )
    assert {same for *_, same in rows} == {True}  # every mention carries its article's ingestion time
    rows = [row[:3] for row in rows]
    found = {(text, label) for text, label, _ in rows}
    assert {("Lloyd Austin", "PERSON"), ("Kim Yong-hyun", "PERSON"), ("Pyongyang", "GPE")} <= found
    canonical = {text: canonical for text, label, canonical in rows if label == "PERSON"}
    assert canonical["Austin"] == "Lloyd Austin" and canonical["Kim"] == "Kim Yong-hyun"
    _, nested = query(
        str(demo_run["lake"]),
        """
        SELECT count(*) FROM (SELECT unnest(entities) AS e FROM articles
        WHERE article_id = 'seed-kursk-deployment') WHERE e.text = 'Pyongyang' AND e.label = 'GPE'""",
    )
    assert nested[0][0] >= 1


def test_non_json_record_is_a_dead_letter_and_its_neighbours_are_not(demo_run) -> None:
    partition, offset = demo_run["placed"][demo_run["values"].index(NOT_JSON)]
    _, rows = query(
        str(demo_run["lake"]),
        f"""
        SELECT stage, reason, raw_value, kafka_topic, ingested_at <= failed_at, ingested_at = (
            SELECT r.ingested_at FROM read_parquet('{demo_run["lake"]}/_records/*/*/*.parquet') r
            WHERE r.kafka_topic = d.kafka_topic AND r.kafka_partition = d.kafka_partition
            AND r.kafka_offset = d.kafka_offset
        ) FROM dead_letters d
        WHERE kafka_partition = {partition} AND kafka_offset = {offset}""",
    )
    assert rows == [("parse", "not_json", NOT_JSON, demo_run["topic"], True, True)]  # read when its record was
    neighbours = [
        (p, o)
        for (p, o), value in zip(demo_run["placed"], demo_run["values"], strict=True)
        if p == partition and abs(o - offset) == 1
    ]
    assert neighbours
    for p, o in neighbours:
        _, found = query(
            str(demo_run["lake"]), f"SELECT url FROM articles WHERE kafka_partition = {p} AND kafka_offset = {o}"
        )
        value = json.loads(demo_run["values"][demo_run["placed"].index((p, o))])
        assert found == [(value["url"],)]


def test_every_produced_record_is_accounted_for_exactly_once(demo_run) -> None:
    assert_each_once(demo_run["lake"], {(demo_run["topic"], p, o) for p, o in demo_run["placed"]})
    _, reasons = query(str(demo_run["lake"]), "SELECT reason, count(*) FROM dead_letters GROUP BY 1 ORDER BY 1")
    assert reasons == [("missing_body", 1), ("not_json", 2)]


def test_replay_after_resetting_the_group_adds_nothing(demo_run, bootstrap_servers: str) -> None:
    topic = demo_run["topic"]
    reset_group_to_earliest(bootstrap_servers, topic)
    before = sorted(path.name for path in demo_run["lake"].rglob("*.parquet"))
    result = run_until_caught_up(demo_run["lake"], topic, bootstrap_servers)
    assert "read (records accounted for this run): 0" in result.stdout
    assert sorted(path.name for path in demo_run["lake"].rglob("*.parquet")) == before


def _progress_lines(stderr: str) -> list[dict[str, str]]:
    lines = [line for line in stderr.splitlines() if " event=progress " in line]
    return [dict(field.split("=", 1) for field in line.split(" ")) for line in lines]


def test_progress_lines_count_up_and_end_with_the_lake_and_no_lag(demo_run) -> None:
    lines = _progress_lines(demo_run["result"].stderr)
    assert len(lines) >= 2, demo_run["result"].stderr[-3000:]
    assert [line["final"] for line in lines] == ["false"] * (len(lines) - 1) + ["true"]
    tables = ("records", "articles", "entity_mentions", "duplicates", "quarantined", "dead_letters")
    for earlier, later in zip(lines, lines[1:], strict=False):
        assert all(int(earlier[name]) <= int(later[name]) for name in tables), (earlier, later)
        if later["final"] == "false":
            assert float(earlier["elapsed_s"]) < float(later["elapsed_s"])
        else:  # the final line comes when the run ends, which can be within 0.1 s (the display's) of a tick
            assert float(earlier["elapsed_s"]) <= float(later["elapsed_s"])
    final = lines[-1]
    _, (counts,) = query(
        str(demo_run["lake"]),
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM entities), (SELECT count(*) FROM duplicates),"
        " (SELECT count(*) FROM quarantine), (SELECT count(*) FROM dead_letters)",
    )
    assert tuple(int(final[name]) for name in tables[1:]) == counts
    assert int(final["records"]) == len(demo_run["values"]) == sum(counts) - counts[1]
    topic = demo_run["topic"]
    assert {key: value for key, value in final.items() if key.startswith("lag")} == {
        "lag": "0",
        f"lag.{topic}.0": "0",
        f"lag.{topic}.1": "0",
        f"lag.{topic}.2": "0",
    }
    assert f"read (records accounted for this run): {final['records']}" in demo_run["result"].stdout
