#!/usr/bin/env bash
# Beam's Flink job server for the pinned Beam version, resolved from Maven Central (cached).
#
#   infra/flink/flink.sh fetch   resolve the job-server jar into ~/.cache/wirestream (once)
#   infra/flink/flink.sh jar     print the jar's path (exit 1 if it was not fetched)
#
# The pipeline gets the jar through --flink_job_server_jar (pipelines/options.py adds it for
# --runner=FlinkRunner), so Beam never downloads it at run time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BEAM_VERSION="$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$HERE/pom.xml")"
FLINK_MINOR="$(sed -n 's:.*<flink.minor>\(.*\)</flink.minor>.*:\1:p' "$HERE/pom.xml")"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
DIR="$CACHE/beam-flink-job-server-$BEAM_VERSION"
JAR="$DIR/beam-runners-flink-$FLINK_MINOR-job-server-$BEAM_VERSION.jar"

fetch() {
  [ -f "$JAR" ] && return 0
  echo "flink.sh: resolving beam-runners-flink-$FLINK_MINOR-job-server $BEAM_VERSION into $DIR" >&2
  mkdir -p "$DIR"
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$DIR" -DexcludeTransitive=true -DincludeScope=runtime; then
    echo "flink.sh: the Maven registry did not serve org.apache.beam:beam-runners-flink-$FLINK_MINOR-job-server:$BEAM_VERSION;" >&2
    echo "flink.sh: the Flink runner cannot be used from this machine (see infra/flink/README.md)" >&2
    return 1
  fi
  [ -f "$JAR" ]
}

case "${1:-}" in
  fetch) fetch ;;
  jar) [ -f "$JAR" ] && echo "$JAR" ;;
  *) echo "usage: $0 fetch|jar" >&2; exit 2 ;;
esac
