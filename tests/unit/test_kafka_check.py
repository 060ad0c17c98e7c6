"""The launch-time Kafka check's pure parts: the missing-topic message and the repeat filter."""

from __future__ import annotations

import logging

from transforms.io.kafka.check import OncePerInterval, missing_topic_message


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_missing_topic_names_the_closest_and_lists_a_short_cluster() -> None:
    assert missing_topic_message("articels", "b:9092", ["articles", "wires"]) == (
        "topic 'articels' does not exist on b:9092; did you mean 'articles'? it has articles, wires. "
        "Fix --topic, or create it: wirestream produce FILE --topic articels creates it and loads FILE"
    )
    assert missing_topic_message("t3", "b:9092", []) == (
        "topic 't3' does not exist on b:9092; it has no topics. "
        "Fix --topic, or create it: wirestream produce FILE --topic t3 creates it and loads FILE"
    )
    many = [f"feed-{n:02d}" for n in range(40)]
    assert "; it has 40 other topics. " in missing_topic_message("zz", "b:9092", many)


def test_the_client_repeating_itself_is_shown_once_a_minute() -> None:
    now = [1000.0]
    quiet = OncePerInterval(60.0, clock=lambda: now[0])
    refused = "%s: Connect attempt returned error %s. Disconnecting."
    shown = []
    for step in range(200):  # a broker down for 100 s, retried every half second from two connections
        now[0] = 1000.0 + step / 2
        for broker in ("<broker 1>", "<broker 2>"):
            shown.append(quiet.filter(_record("kafka.conn", refused, broker, 111)))
    assert sum(shown) == 2  # at 0 s and at 60 s: the same format string, whatever the broker
    assert quiet.filter(_record("kafka.client", "No node available during check_version"))  # another message
    assert all(quiet.filter(_record("apache_beam.runners.common", refused, "x", 1)) for _ in range(5))  # not Kafka's
