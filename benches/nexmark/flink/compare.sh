#!/usr/bin/env bash
# Runnel and Apache Flink side by side on the same Nexmark events; see
# compare.py for what is measured and checked.
# Usage: benches/nexmark/flink/compare.sh [--events N] [--parallelism P]
#        [--query q0,q1,...] [--json FILE] [--markdown FILE] [--no-check]
# Needs Java 17 (installed with apt-get when missing) and makes a venv with
# PyFlink (requirements.txt) in ~/.cache/runnel/flink-venv.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runnel/target}"
if ! command -v java >/dev/null || ! java -version 2>&1 | grep -q 'version "17'; then
  if ! ls /usr/lib/jvm/java-17-openjdk-*/bin/java >/dev/null 2>&1; then
    echo "[compare] installing Java 17 (openjdk-17-jre-headless)" >&2
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  fi
fi
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME=$(dirname "$(dirname "$(ls /usr/lib/jvm/java-17-openjdk-*/bin/java | head -1)")")
  export JAVA_HOME
fi
export PATH="$JAVA_HOME/bin:$PATH"
venv="$HOME/.cache/runnel/flink-venv"
req=benches/nexmark/flink/requirements.txt
if ! cmp -s "$req" "$venv/requirements.txt" 2>/dev/null; then
  echo "[compare] making the PyFlink venv in $venv (a few hundred MB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
cargo build --release --locked -q -p runnel-benches --bin runnel-bench
exec "$venv/bin/python" benches/nexmark/flink/compare.py \
  --runnel-bench "$CARGO_TARGET_DIR/release/runnel-bench" "$@"
