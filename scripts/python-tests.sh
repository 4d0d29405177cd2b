#!/usr/bin/env bash
# The Python end-to-end tests: real Flight SQL clients from PyPI (ADBC,
# pyarrow.flight, flightsql-dbapi + SQLAlchemy) against `runnel serve`.
#
#   scripts/python-tests.sh [PYTEST ARGS...]
#
# The server binary is $RUNNEL_BIN, else ${CARGO_TARGET_DIR:-target}/debug/runnel
# (build it with `cargo build -p runnel-flight`). The clients live in a venv at
# ${RUNNEL_VENV:-$HOME/.cache/runnel/venv}, made (or remade) here when it is
# missing or tests/python/requirements.txt has changed since it was made.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- the server binary
bin=${RUNNEL_BIN:-${CARGO_TARGET_DIR:-target}/debug/runnel}
if [[ ! -x $bin || -d $bin ]]; then
    echo "python-tests: no runnel binary at '$bin'; build it with cargo build -p runnel-flight" >&2
    echo "python-tests: (or point RUNNEL_BIN at one)" >&2
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# ---- the venv (made or refreshed by python-venv.sh, which prints its python)
py=$(scripts/python-venv.sh)

# ---- the tests
export RUNNEL_BIN=$bin
# Arguments that name tests (tests/python/...) replace the default of all.
paths=(tests/python)
for arg in "$@"; do
    if [[ $arg == tests/python* ]]; then
        paths=()
        break
    fi
done
# -p no:cacheprovider: no .pytest_cache in the work tree.
exec "$py" -m pytest -q -p no:cacheprovider "${paths[@]}" "$@"
