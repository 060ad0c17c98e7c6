#!/usr/bin/env bash
# Builds Apache Beam's Prism runner from the Go module proxy at the Beam version pinned in
# pyproject.toml, into ~/.cache/wirestream/prism-<version>/prism (WIRESTREAM_CACHE overrides).
# The Python DirectRunner is handed this binary (--prism_location), so it never tries to download
# Prism from GitHub and never silently falls back to a non-streaming runner.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VERSION="$(sed -n 's/.*"apache-beam==\([0-9.]*\)".*/\1/p' "$ROOT/pyproject.toml")"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
TARGET="$CACHE/prism-$VERSION"
if [ -x "$TARGET/prism" ]; then
  exit 0
fi
echo "building Prism v$VERSION from the Go module proxy into $TARGET (first time only)" >&2
mkdir -p "$TARGET"
for attempt in 1 2 3; do
  if (cd "$TARGET" && GOBIN="$TARGET" GOFLAGS=-mod=mod go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$VERSION"); then
    exit 0
  fi
  echo "go install failed (attempt $attempt); retrying" >&2
  sleep 3
done
exit 1
