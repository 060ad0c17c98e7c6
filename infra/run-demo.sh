#!/usr/bin/env bash
# `make run`: start the local broker unless it runs, load the demo articles, run the pipeline on
# the DirectRunner (Prism) until caught up, print the summary, write the HTML report and print its
# path; stop the broker only if we started it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${VENV:-.venv}/bin"
LAKE="${LAKE:-./lake}"
TOPIC="${TOPIC:-articles}"
# The broker kafka.sh starts (WIRESTREAM_KAFKA_PORT moves it) is the one the CLI talks to.
export WIRESTREAM_BOOTSTRAP_SERVERS="${WIRESTREAM_BOOTSTRAP_SERVERS:-127.0.0.1:${WIRESTREAM_KAFKA_PORT:-19092}}"
started=no
if ! infra/kafka/kafka.sh status >/dev/null 2>&1; then
  infra/kafka/kafka.sh up
  started=yes
fi
stop_broker() { if [ "$started" = yes ]; then infra/kafka/kafka.sh down; fi; }
trap stop_broker EXIT
"$BIN/python" -m pipelines.demo build/demo.jsonl
"$BIN/wirestream" produce build/demo.jsonl --topic "$TOPIC"
"$BIN/wirestream" run --lake "$LAKE" --topic "$TOPIC" --until-caught-up
"$BIN/wirestream" report "$LAKE"
