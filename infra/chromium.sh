#!/usr/bin/env bash
# Headless Chromium for the Data Docs browser test: Debian's own package (no browser download by
# a test tool). Does nothing when a Chromium is already on PATH or at $WIRESTREAM_CHROMIUM.
set -euo pipefail
for candidate in "${WIRESTREAM_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
    echo "chromium: using $(command -v "$candidate")"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not found and no apt-get here; the Data Docs browser test will be skipped" >&2
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium: not root and no sudo; the Data Docs browser test will be skipped" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "chromium: installed $(command -v chromium)"
else
  echo "chromium: apt-get could not install it; the Data Docs browser test will be skipped" >&2
fi
