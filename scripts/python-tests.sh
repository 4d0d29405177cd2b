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

requirements=tests/python/requirements.txt
venv=${RUNNEL_VENV:-$HOME/.cache/runnel/venv}
stamp=$venv/.runnel-requirements.sha256
python=${PYTHON:-python3}

# ---- the server binary
bin=${RUNNEL_BIN:-${CARGO_TARGET_DIR:-target}/debug/runnel}
if [[ ! -x $bin || -d $bin ]]; then
    echo "python-tests: no runnel binary at '$bin'; build it with cargo build -p runnel-flight" >&2
    echo "python-tests: (or point RUNNEL_BIN at one)" >&2
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# ---- the venv
if ! command -v "$python" >/dev/null 2>&1; then
    echo "python-tests: '$python' not found; install Python 3 (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi

venv_works() {
    # Debian's python3 has the venv module but not ensurepip without the
    # python3-venv package, and `python3 -m venv` then fails halfway.
    "$python" -c 'import venv, ensurepip' >/dev/null 2>&1
}

if ! venv_works; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "python-tests: python3 cannot make venvs; installing python3-venv" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2; then
            apt-get update -q >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 || true
        fi
    fi
    if ! venv_works; then
        echo "python-tests: '$python -m venv' is unavailable; install the python3-venv package" >&2
        echo "python-tests: (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

want=$({ sha256sum "$requirements" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [[ ! -x $venv/bin/python || $want != "$have" ]]; then
    echo "python-tests: setting up the venv at $venv" >&2
    mkdir -p "$(dirname "$venv")"
    rm -f "$stamp"
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi

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
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "${paths[@]}" "$@"
