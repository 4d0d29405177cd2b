#!/usr/bin/env bash
# Installs what the build needs from the system, once. Safe to run again.
# The workspace builds with the Rust toolchain and a C compiler (rdkafka
# builds librdkafka with its own configure script); the Kafka tests need the
# Tansu broker, installed from PyPI by scripts/kafka-broker.sh.
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

# A Kafka-protocol broker for the Kafka tests (a static binary, no JVM).
"$(dirname "$0")/kafka-broker.sh" install >/dev/null
