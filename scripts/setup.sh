#!/usr/bin/env bash
# Installs what the build needs from the system, once. Safe to run again.
# Today the workspace builds with the Rust toolchain alone; the RocksDB and
# Kafka connectors (not built yet) will add libclang here.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust from https://rustup.rs first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    echo "setup: installing the ${component} component"
    rustup component add "${component}"
  fi
done
