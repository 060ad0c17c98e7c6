#!/usr/bin/env bash
# A local Apache Iceberg REST catalog: the Iceberg project's own REST test server
# (org.apache.iceberg.rest.RESTCatalogServer, from the test-fixtures jar of iceberg-open-api, the
# code of the apache/iceberg-rest-fixture image) for development and tests.
#
#   infra/iceberg-rest/rest.sh fetch    resolve the server's jars from Maven Central (cached)
#   infra/iceberg-rest/rest.sh up       start it unless it runs; wait until GET /v1/config answers
#   infra/iceberg-rest/rest.sh down     stop the server this script started
#   infra/iceberg-rest/rest.sh status   exit 0 when the catalog answers
#   infra/iceberg-rest/rest.sh env      print the catalog URI (an export line)
#
# Its backend is a JdbcCatalog on SQLite in the state folder, started afresh by every `up` (as
# infra/s3/s3.sh starts its data afresh: nothing outlives the server). Its file IO is Iceberg's
# ResolvingFileIO: HadoopFileIO for local paths, S3FileIO for s3:// ones, configured from the
# same AWS_* environment as the lake (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION) of whoever runs `up`. The server prints its properties, the
# S3 secret included, into its log: use it with the local test server's key only.
# It listens on every interface (the server takes a port only); no authentication.
#
# Settings (environment): WIRESTREAM_ICEBERG_REST_PORT (18181), WIRESTREAM_ICEBERG_REST_HOME
# (state: catalog, log, pid; default ~/.cache/wirestream/iceberg-rest-PORT), WIRESTREAM_CACHE
# (jar cache; default ~/.cache/wirestream).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ICEBERG_VERSION="$(sed -n 's:.*<iceberg.version>\(.*\)</iceberg.version>.*:\1:p' "$HERE/pom.xml")"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
LIBS="$CACHE/iceberg-rest-$ICEBERG_VERSION/libs"
PORT="${WIRESTREAM_ICEBERG_REST_PORT:-18181}"
STATE="${WIRESTREAM_ICEBERG_REST_HOME:-$CACHE/iceberg-rest-$PORT}"
PIDFILE="$STATE/server.pid"
SERVICE="Iceberg REST catalog"
LOG="$STATE/server.log"

log() { echo "rest.sh: $*" >&2; }
# shellcheck source=../service.sh
. "$HERE/../service.sh"

fetch() {
  if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)" ]; then
    return 0
  fi
  log "resolving the Iceberg $ICEBERG_VERSION REST catalog server's jars into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime
  sha256sum "$HERE/pom.xml" | cut -d' ' -f1 > "$LIBS/.complete"
}

answers() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/v1/config" 2>/dev/null || true)" = 200 ]
}

up() {
  fetch
  if pid_alive && answers; then
    log "catalog already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  if answers; then
    log "port $PORT answers as an Iceberg REST catalog started elsewhere; using it"
    return 0
  fi
  mkdir -p "$STATE"
  rm -rf "$STATE/catalog.db" "$STATE/warehouse"
  log "starting the catalog on 127.0.0.1:$PORT (log: $LOG)"
  : > "$LOG"
  (
    export CATALOG_REST_PORT="$PORT"
    export CATALOG_URI="jdbc:sqlite:file:$STATE/catalog.db"
    export CATALOG_JDBC_SCHEMA__VERSION=V1
    export CATALOG_WAREHOUSE="$STATE/warehouse"
    export CATALOG_IO__IMPL=org.apache.iceberg.io.ResolvingFileIO
    endpoint="${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}"
    if [ -n "$endpoint" ]; then
      export CATALOG_S3_ENDPOINT="$endpoint" CATALOG_S3_PATH__STYLE__ACCESS=true
    fi
    [ -z "${AWS_ACCESS_KEY_ID:-}" ] || export CATALOG_S3_ACCESS__KEY__ID="$AWS_ACCESS_KEY_ID"
    [ -z "${AWS_SECRET_ACCESS_KEY:-}" ] || export CATALOG_S3_SECRET__ACCESS__KEY="$AWS_SECRET_ACCESS_KEY"
    [ -z "${AWS_REGION:-}" ] || export CATALOG_CLIENT_REGION="$AWS_REGION"
    exec nohup java -Xms64m -Xmx${WIRESTREAM_ICEBERG_REST_HEAP:-384m} -XX:+UseSerialGC \
      -cp "$LIBS/*" org.apache.iceberg.rest.RESTCatalogServer >> "$LOG" 2>&1 < /dev/null
  ) &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if ! pid_alive; then
      log "the catalog exited during start; see $LOG"
      tail -n 20 "$LOG" >&2 || true
      return 1
    fi
    if answers; then
      log "catalog ready on 127.0.0.1:$PORT"
      return 0
    fi
    sleep 0.5
  done
  log "the catalog did not become ready in 60 s; see $LOG"
  return 1
}

down() {
  stop_service 15
}

status() {
  print_status answers
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export WIRESTREAM_ICEBERG_CATALOG_URI=http://127.0.0.1:$PORT" ;;
  *) echo "usage: $0 fetch|up|down|status|env" >&2; exit 2 ;;
esac
