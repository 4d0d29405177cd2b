#!/usr/bin/env bash
# Makes (or refreshes) the Python venv of the tests and prints its python.
#
#   py=$(scripts/python-venv.sh)
#
# The venv lives at ${RUNNEL_VENV:-$HOME/.cache/runnel/venv} and holds the
# pinned packages of tests/python/requirements.txt: the Flight SQL clients
# and the two Delta readers (DuckDB with its delta extension, deltalake).
# It is remade when it is missing or the requirements (or the Python
# version) changed since it was made. Messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tests/python/requirements.txt
venv=${RUNNEL_VENV:-$HOME/.cache/runnel/venv}
stamp=$venv/.runnel-requirements.sha256
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "python-venv: '$python' not found; install Python 3 (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi

venv_works() {
    # Debian's python3 has the venv module but not ensurepip without the
    # python3-venv package, and `python3 -m venv` then fails halfway.
    "$python" -c 'import venv, ensurepip' >/dev/null 2>&1
}

if ! venv_works; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "python-venv: python3 cannot make venvs; installing python3-venv" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2; then
            apt-get update -q >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 || true
        fi
    fi
    if ! venv_works; then
        echo "python-venv: '$python -m venv' is unavailable; install the python3-venv package" >&2
        echo "python-venv: (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

want=$({ sha256sum "$requirements" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [[ ! -x $venv/bin/python || $want != "$have" ]]; then
    echo "python-venv: setting up the venv at $venv" >&2
    mkdir -p "$(dirname "$venv")"
    rm -f "$stamp"
    "$python" -m venv --clear "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
fi

echo "$venv/bin/python"
