# Sourced by infra/kafka/kafka.sh and infra/s3/s3.sh: the parts of a local service the scripts
# share, a process started in the background whose pid is kept in $PIDFILE and which listens on
# 127.0.0.1:$PORT. The sourcing script sets PIDFILE, PORT, SERVICE (what the messages call it,
# e.g. "broker") and defines log().

pid_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# stop_service GRACE_S: SIGTERM the process this script started, wait up to GRACE_S seconds
# (quarter-second polls), then kill -9 it; nothing to do when none runs.
stop_service() {
  local grace="$1" pid
  if ! pid_alive; then
    log "no $SERVICE started by this script is running on port $PORT"
    rm -f "$PIDFILE"
    return 0
  fi
  pid="$(cat "$PIDFILE")"
  log "stopping the $SERVICE (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 4))); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return 0; }
    sleep 0.25
  done
  log "the $SERVICE did not stop in $grace s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

# print_status CHECK: "running on ..." and exit status 0 when CHECK (a command) succeeds.
print_status() {
  if "$1"; then
    echo "running on 127.0.0.1:$PORT$(pid_alive && echo " (pid $(cat "$PIDFILE"))")"
    return 0
  fi
  echo "not running"
  return 1
}
