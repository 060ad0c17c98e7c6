#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (a small S3-compatible object store: master, volume, filer and S3
# gateway in one process) from the Go module proxy, at the commit pinned below, into
# ~/.cache/wirestream/seaweedfs-<commit>/weed (WIRESTREAM_CACHE overrides). The tests run the lake
# against it on 127.0.0.1 (infra/s3/s3.sh): a real S3 server, not an in-process mock.
#
# `go install github.com/seaweedfs/seaweedfs/weed@VERSION` refuses this module (its go.mod has
# replace directives), so the module is downloaded with `go mod download`, copied to a writable
# folder and built there with its own go.mod. The first build takes several minutes.
set -euo pipefail
MODULE="github.com/seaweedfs/seaweedfs"
VERSION="v0.0.0-20261109003541-7506e5f91cd6"
COMMIT="${VERSION##*-}"
CACHE="${WIRESTREAM_CACHE:-$HOME/.cache/wirestream}"
TARGET="$CACHE/seaweedfs-${COMMIT:0:8}"
if [ -x "$TARGET/weed" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "need Go (go1.24 or later) to build SeaweedFS" >&2; exit 1; }
echo "building SeaweedFS $VERSION from the Go module proxy into $TARGET (first time only, several minutes)" >&2
SOURCE="$CACHE/seaweedfs-build/$COMMIT"
for attempt in 1 2 3; do
  if dir="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" && [ -d "$dir" ]; then
    break
  fi
  echo "go mod download failed (attempt $attempt); retrying" >&2
  sleep 3
done
[ -d "${dir:-}" ] || { echo "cannot download $MODULE@$VERSION" >&2; exit 1; }
rm -rf "$SOURCE"
mkdir -p "$SOURCE" "$TARGET"
cp -R "$dir/." "$SOURCE/"
chmod -R u+w "$SOURCE"
for attempt in 1 2 3; do
  if (cd "$SOURCE" && go build -buildvcs=false -o "$TARGET/weed.partial" ./weed); then
    mv "$TARGET/weed.partial" "$TARGET/weed"
    rm -rf "$SOURCE"
    exit 0
  fi
  echo "go build failed (attempt $attempt); retrying" >&2
  sleep 3
done
exit 1
