#!/usr/bin/env bash
# What the web console's browser test needs from the system and npm:
# Debian's chromium, Node.js and playwright-core (pinned in
# tests/browser/package-lock.json). Called by scripts/test.sh; not needed
# by the demo.
set -euo pipefail
# Headless Chromium and Node.js with playwright-core, for the web console's
# browser test (tests/python/test_console.py drives tests/browser/console.mjs).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]} (for the console's browser test)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
      $SUDO apt-get update -qq
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
  else
    echo "setup: ${need[*]} missing; install them (the console's browser test uses them)" >&2
    exit 1
  fi
fi
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [ ! -f "$browser_dir/node_modules/.package-lock.json" ] \
   || ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.lock-copy"; then
  echo "setup: installing playwright-core from npm (tests/browser)"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
     && cp package-lock.json node_modules/.lock-copy)
fi
