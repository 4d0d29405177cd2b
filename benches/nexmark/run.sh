#!/usr/bin/env bash
# Runs Nexmark queries with the release `runnel` binary and reports events
# per second (wall clock, including start-up; one run each).
# Usage: benches/nexmark/run.sh [EVENTS] [PARALLELISM] [QUERY...]
#   e.g. benches/nexmark/run.sh 10000000 2 q0 q1 q2 q11
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-1000000}
parallelism=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
queries=("$@")
[ ${#queries[@]} -gt 0 ] || queries=(q0 q1 q2 q11)
cargo build --release --locked -q -p runnel-flight
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| query | events | parallelism | seconds | events/s | events/s per core |"
echo "|---|---|---|---|---|---|"
for q in "${queries[@]}"; do
  sed "s/\${EVENTS}/$events/" benches/nexmark/_source.sql > "$tmp/$q.sql"
  cat "benches/nexmark/$q.sql" >> "$tmp/$q.sql"
  start=$(date +%s.%N)
  target/release/runnel run "$tmp/$q.sql" --parallelism "$parallelism" > /dev/null 2> "$tmp/$q.err" || {
    echo "$q failed:"; cat "$tmp/$q.err"; exit 1; }
  end=$(date +%s.%N)
  python3 - "$q" "$events" "$parallelism" "$start" "$end" <<'PY'
import sys
q, events, par, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
secs = end - start
print(f"| {q} | {events} | {par} | {secs:.2f} | {events/secs/1e6:.2f} M | {events/secs/par/1e6:.2f} M |")
PY
done
