#!/usr/bin/env bash
# Installs what the build needs from the system, once. Safe to run again.
# The workspace builds with the Rust toolchain, a C/C++ compiler (rdkafka
# builds librdkafka with its own configure script, librocksdb-sys builds
# RocksDB) and libclang; the Kafka tests need the
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

# librocksdb-sys generates its bindings with bindgen, which needs libclang;
# RocksDB itself is compiled from source by the crate (C++, no cmake).
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' \
  && ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libclang-dev (for RocksDB's bindings)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libclang-dev >/dev/null
  else
    echo "setup: libclang is missing; install your system's libclang package (RocksDB needs it to build)" >&2
    exit 1
  fi
fi

# Prometheus and promtool, for the metrics test (tests/python/test_metrics.py).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing prometheus (for the metrics test)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; then
      $SUDO apt-get update -qq
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    fi
  else
    echo "setup: prometheus is missing; install your system's prometheus package (the metrics test runs it)" >&2
    exit 1
  fi
fi

# A Kafka-protocol broker for the Kafka tests (a static binary, no JVM).
"$(dirname "$0")/kafka-broker.sh" install >/dev/null
