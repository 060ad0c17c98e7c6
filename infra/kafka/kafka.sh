#!/usr/bin/env bash
# A local, single-node Apache Kafka broker (KRaft) for development and tests.
#
#   infra/kafka/kafka.sh fetch                      resolve the Kafka jars from Maven Central (cached)
#   infra/kafka/kafka.sh up                         start the broker unless it runs; wait until it answers
#   infra/kafka/kafka.sh down                       stop the broker this script started
#   infra/kafka/kafka.sh status                     exit 0 when the broker runs and answers
#   infra/kafka/kafka.sh create-topic NAME [PARTS]  create a topic (idempotent)
#
# Settings (environment): WIRESTREAM_KAFKA_PORT (19092; the controller listens on PORT+1),
# WIRESTREAM_KAFKA_HOME (state: data, log, pid; default ~/.cache/wirestream/kafka-broker-PORT),
# WIRESTREAM_CACHE (jar cache; default ~/.cache/wirestream).
# For secured test brokers (tests/integration/secure_broker.py): WIRESTREAM_KAFKA_EXTRA_LISTENERS
# (e.g. SASL_PLAINTEXT://127.0.0.1:19522,SASL_SSL://127.0.0.1:19523; listened on and advertised),
# WIRESTREAM_KAFKA_EXTRA_CONFIG (a file appended to server.properties: JAAS, keystores) and
# WIRESTREAM_KAFKA_FORMAT_ARGS (extra `kafka-storage format` arguments, e.g. --add-scram ...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
PORT="${WIRESTREAM_KAFKA_PORT:-19092}"
CONTROLLER_PORT=$((PORT + 1))
STATE="${WIRESTREAM_KAFKA_HOME:-$CACHE/kafka-broker-$PORT}"
PIDFILE="$STATE/broker.pid"
SERVICE="broker"
LOG="$STATE/broker.log"

log() { echo "kafka.sh: $*" >&2; }
# shellcheck source=../service.sh
. "$HERE/../service.sh"

fetch() {
  if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)" ]; then
    return 0
  fi
  log "resolving Kafka $KAFKA_VERSION jars into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime
  sha256sum "$HERE/pom.xml" | cut -d' ' -f1 > "$LIBS/.complete"
}

# C1 only (-XX:TieredStopAtLevel=1): a local broker for tests and the demo starts in half the CPU
# (15 CPU-s instead of 30 here, ready in 10 s instead of 16) and never pays for C2's compiling.
JVM_OPTS=(-XX:TieredStopAtLevel=1)
java_cp() { java "${JVM_OPTS[@]}" -Xms128m -Xmx${WIRESTREAM_KAFKA_HEAP:-768m} -cp "$LIBS/*" "$@"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

write_config() {
  mkdir -p "$STATE/data"
  local extra="${WIRESTREAM_KAFKA_EXTRA_LISTENERS:+,$WIRESTREAM_KAFKA_EXTRA_LISTENERS}"
  cat > "$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT$extra
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT$extra
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=${WIRESTREAM_KAFKA_PARTITIONS:-3}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=-1
PROPS
  if [ -n "${WIRESTREAM_KAFKA_EXTRA_CONFIG:-}" ]; then
    cat "$WIRESTREAM_KAFKA_EXTRA_CONFIG" >> "$STATE/server.properties"
  fi
  cat > "$STATE/log4j2.yaml" <<L4J
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$LOG"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: file
L4J
}

up() {
  fetch
  if pid_alive && port_open; then
    log "broker already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  if port_open; then
    log "port $PORT is taken by another process; assuming a broker runs there"
    return 0
  fi
  write_config
  if [ ! -f "$STATE/data/meta.properties" ]; then
    log "formatting $STATE/data (KRaft)"
    local format_args=()
    read -r -a format_args <<< "${WIRESTREAM_KAFKA_FORMAT_ARGS:-}"
    java_cp kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "$(java_cp kafka.tools.StorageTool random-uuid)" \
      --config "$STATE/server.properties" "${format_args[@]}" >> "$STATE/format.log" 2>&1
  fi
  log "starting broker on 127.0.0.1:$PORT (log: $LOG)"
  : > "$LOG"
  nohup java "${JVM_OPTS[@]}" -Xms128m -Xmx${WIRESTREAM_KAFKA_HEAP:-768m} -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$STATE/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" \
    >> "$STATE/stdout.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if ! pid_alive; then
      log "broker exited during start; see $LOG and $STATE/stdout.log"
      tail -n 20 "$STATE/stdout.log" >&2 || true
      return 1
    fi
    if port_open && grep -q "Kafka Server started" "$LOG" 2>/dev/null; then
      log "broker ready on 127.0.0.1:$PORT"
      return 0
    fi
    sleep 0.5
  done
  log "broker did not become ready in 60 s; see $LOG"
  return 1
}

down() {
  stop_service 30
}

status() {
  print_status port_open
}

create_topic() {
  local name="$1" parts="${2:-3}"
  fetch
  java_cp org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
    --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  create-topic) shift; create_topic "$@" ;;
  *) echo "usage: $0 fetch|up|down|status|create-topic NAME [PARTITIONS]" >&2; exit 2 ;;
esac
