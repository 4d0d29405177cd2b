#!/usr/bin/env bash
# The IoT demo: generated sensor readings through quarantine, silver and
# gold, written in SQL (examples/iot/pipeline.sql) and run by `runnel run`.
# Console: the hourly gold table and outage alerts as they are emitted, with
# a progress line. Files: target/iot-demo/{quarantine,sliding_15min,device_sessions}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p runnel-flight
rm -rf target/iot-demo
target/release/runnel run examples/iot/pipeline.sql
echo
echo "Files written:"
for d in target/iot-demo/*; do
  rows=$(cat "$d"/* 2>/dev/null | wc -l)
  echo "  $d: $rows rows"
done
echo
echo "A few quarantined readings:"
head -n 3 "$(ls target/iot-demo/quarantine/* | head -n 1)" | cut -c1-160
