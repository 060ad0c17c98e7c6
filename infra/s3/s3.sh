#!/usr/bin/env bash
# A local S3-compatible server (SeaweedFS: master, volume server, filer and S3 gateway in one
# process) for development and tests; every port on 127.0.0.1 only.
#
#   infra/s3/s3.sh up        start it unless it runs; wait until it accepts a signed write
#   infra/s3/s3.sh down      stop the server this script started
#   infra/s3/s3.sh status    exit 0 when the S3 endpoint answers
#   infra/s3/s3.sh env       print the environment a client needs (export lines)
#
# Settings (environment): WIRESTREAM_S3_PORT (18333; the server's other ports are PORT+1..PORT+7),
# WIRESTREAM_S3_HOME (state: data, log, pid; default ~/.cache/wirestream/s3-server-PORT; the data
# is started afresh by every `up`: nothing stored outlives the server),
# WIRESTREAM_CACHE (where infra/s3/build.sh put `weed`; default ~/.cache/wirestream),
# WIRESTREAM_S3_MEMORY (the server's soft Go heap limit, GOMEMLIMIT; default 256MiB: keep it well
# above the server's live heap, about 40 MB at start and 150 MB after the S3 tests, or its garbage
# collector runs without pause and the idle server takes 15-20 % of a core).
#
# S3 requests are signed: the server accepts one identity, written into its -s3.config file at
# start. Its key and secret (WIRESTREAM_S3_ACCESS_KEY / WIRESTREAM_S3_SECRET_KEY, defaults below)
# are for this local test server only, listening on 127.0.0.1: never a real credential.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
VERSION="$(sed -n 's/^VERSION="\(.*\)"$/\1/p' "$HERE/build.sh")"
COMMIT="${VERSION##*-}"
WEED="$CACHE/seaweedfs-${COMMIT:0:8}/weed"
PORT="${WIRESTREAM_S3_PORT:-18333}"
STATE="${WIRESTREAM_S3_HOME:-$CACHE/s3-server-$PORT}"
PIDFILE="$STATE/weed.pid"
SERVICE="S3 server"
LOG="$STATE/weed.log"
ACCESS_KEY="${WIRESTREAM_S3_ACCESS_KEY:-wirestream-local}"
SECRET_KEY="${WIRESTREAM_S3_SECRET_KEY:-wirestream-local-test-secret}"

log() { echo "s3.sh: $*" >&2; }
# shellcheck source=../service.sh
. "$HERE/../service.sh"

answers() {
  # Any HTTP answer from the S3 gateway (403 for an unsigned request) means it is listening.
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/" 2>/dev/null || true)"
  [ -n "$code" ] && [ "$code" != "000" ]
}

signed() {
  # A request signed as the test identity (curl's own SigV4); prints the HTTP status.
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" 2>/dev/null || true
}

writable() {
  # The gateway answers before it reaches the master: ready means a bucket and an object can be
  # written (which also grows the first volume), then removed again.
  local url="http://127.0.0.1:$PORT/wirestream-ready" code
  code="$(signed -X PUT "$url")"
  [ "$code" = 200 ] || [ "$code" = 409 ] || return 1
  [ "$(signed -X PUT --data-binary ready "$url/probe")" = 200 ] || return 1
  signed -X DELETE "$url/probe" > /dev/null
  signed -X DELETE "$url" > /dev/null
}

write_config() {
  # A fresh store at every start: the server is for tests (a bucket each), and a master that
  # finds volumes from an earlier run refuses writes for 15 s while it waits for them to report.
  rm -rf "$STATE/data"
  mkdir -p "$STATE/data"
  umask 077
  cat > "$STATE/s3.json" <<JSON
{
  "identities": [
    {
      "name": "wirestream-local",
      "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
JSON
}

up() {
  if pid_alive && answers; then
    log "S3 server already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  if answers; then
    log "port $PORT is taken by another process; assuming an S3 server runs there"
    return 0
  fi
  [ -x "$WEED" ] || "$HERE/build.sh"
  write_config
  log "starting SeaweedFS on 127.0.0.1:$PORT (log: $LOG)"
  : > "$LOG"
  # Small volumes, no preallocation, nothing reported anywhere, no side services, and a soft
  # limit on the Go heap (the collector works harder above it): it starts in a few seconds and
  # stays within a few hundred MB.
  # Each bucket is a collection; the master grows one volume at a time for it, not seven, so
  # the volume slots last across the many buckets the tests create (as `weed mini` does).
  # The filer's metadata store is 8 leveldb databases, each with a 16 MB write buffer allocated up
  # front and a 32 MB block cache by default: 128 MB of live heap from the start, which with the
  # filer's 80 MB of metadata-log buffers put the heap above the 256MiB limit once tests had run,
  # and the collector then ran continuously. 1 MB each is ample for test metadata.
  GOMEMLIMIT="${WIRESTREAM_S3_MEMORY:-256MiB}" WEED_MASTER_VOLUME_GROWTH_COPY_1=1 \
  WEED_MASTER_VOLUME_GROWTH_COPY_OTHER=1 \
  WEED_LEVELDB2_WRITE_BUFFER_SIZE_MB=1 WEED_LEVELDB2_BLOCK_CACHE_SIZE_MB=1 nohup "$WEED" server \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$STATE/data" \
    -master.port=$((PORT + 1)) -master.port.grpc=$((PORT + 2)) \
    -volume.port=$((PORT + 3)) -volume.port.grpc=$((PORT + 4)) \
    -filer -filer.port=$((PORT + 5)) -filer.port.grpc=$((PORT + 6)) \
    -s3 -s3.port="$PORT" -s3.port.grpc=$((PORT + 7)) -s3.config="$STATE/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=64 -volume.max=64 -master.volumePreallocate=false \
    -master.telemetry=false -master.electionTimeout=1s -volume.preStopSeconds=0 \
    >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 240); do
    if ! pid_alive; then
      log "the server exited during start; see $LOG"
      tail -n 20 "$LOG" >&2 || true
      return 1
    fi
    if answers && writable; then
      log "S3 server ready on 127.0.0.1:$PORT"
      return 0
    fi
    sleep 0.25
  done
  log "the S3 server did not accept a write within 60 s; see $LOG"
  return 1
}

down() {
  stop_service 5 # its data is started afresh by the next `up`: no need to wait for a slow shutdown
}

status() {
  print_status answers
}

client_env() {
  cat <<ENV
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
ENV
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) client_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
