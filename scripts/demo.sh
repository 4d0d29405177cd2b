#!/usr/bin/env bash
# The IoT demo: a generated sensor stream through validation, unit
# conversion and windowed aggregates by region, printed as tables.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --release --locked -p runnel-engine --example iot
