#!/usr/bin/env bash
# The IoT demo: generated sensor readings through quarantine, silver and
# gold, written in SQL (examples/iot/pipeline.sql) and run by `runnel run`.
# Console: the hourly gold table and outage alerts as they are emitted, with
# a progress line. Output in target/iot-demo/: the Delta tables quarantine,
# silver (partitioned by region) and gold_hourly; CSV and JSON files
# sliding_15min and device_sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p runnel-flight
rm -rf target/iot-demo
target/release/runnel run examples/iot/pipeline.sql
echo
echo "Written:"
for d in target/iot-demo/*; do
  if [[ -d $d/_delta_log ]]; then
    # Rows and files of the table's latest version, from the Delta log (the
    # row counts are the writer's per-file statistics).
    python3 - "$d" <<'PY'
import json, os, sys
d = sys.argv[1]
log = os.path.join(d, "_delta_log")
files = {}
commits = sorted(f for f in os.listdir(log) if f.endswith(".json"))
for name in commits:
    for line in open(os.path.join(log, name)):
        action = json.loads(line)
        if "add" in action:
            stats = json.loads(action["add"].get("stats") or "{}")
            files[action["add"]["path"]] = stats.get("numRecords", 0)
        elif "remove" in action:
            files.pop(action["remove"]["path"], None)
print(f"  {d}: Delta table, version {len(commits) - 1}, "
      f"{len(files)} Parquet files, {sum(files.values())} rows")
PY
  else
    rows=$(cat "$d"/* 2>/dev/null | wc -l)
    echo "  $d: $rows rows"
  fi
done
echo
echo "Read the Delta tables with any Delta reader, e.g. DuckDB:"
echo "  SELECT expectations, count(*) FROM delta_scan('target/iot-demo/quarantine') GROUP BY expectations;"
