#!/usr/bin/env bash
# Every test suite of jitp, with its own setup: formatting, lints, unit and integration tests (including the
# moto-server suites), the template lint, and the offline infrastructure checks.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -x scripts/setup-moto.sh ]; then
  echo "== moto server (AWS IoT emulator)"
  scripts/setup-moto.sh
  export JITP_MOTO_SERVER="$PWD/.venv/moto/bin/moto_server"
fi

echo "== cargo test"
cargo test --workspace --locked

echo "== jitp lint (shipped templates)"
cargo run --quiet --locked -p jitp-cli -- lint --config templates/jitp.toml

if [ -f scripts/test-infra.sh ]; then
  echo "== infrastructure (CDK, SAM)"
  bash scripts/test-infra.sh
fi
echo "== all suites passed"
