#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of every crate, and
# the Python end-to-end tests of the Flight SQL server with real clients
# (and of the web console in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/browser-setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== Python clients against runnel serve (tests/python)"
cargo build --locked -p runnel-flight --bin runnel
scripts/python-tests.sh
