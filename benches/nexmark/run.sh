#!/usr/bin/env bash
# Builds the release `runnel-bench` and runs its Nexmark harness; the
# arguments are runnel-bench's (see benches/nexmark/README.md), e.g.
#   benches/nexmark/run.sh --query q0,q11 --events 10000000 --parallelism 2
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runnel/target}"
cargo build --release --locked -q -p runnel-benches --bin runnel-bench
exec "$CARGO_TARGET_DIR/release/runnel-bench" nexmark "$@"
