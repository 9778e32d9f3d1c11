#!/usr/bin/env bash
# Every test suite of jitp, with its own setup: formatting, lints, unit and integration tests (including the
# moto-server suites), the template lint, the offline infrastructure checks, and the stacks deployed on a local AWS
# with real devices connecting (scripts/local-aws.sh --check).
set -euo pipefail
cd "$(dirname "$0")/.."

# A full run from a clean clone peaks at ~5.3 GB: target/ ~4 GB (debug builds, Cargo.toml's [profile.dev]), the
# moto, infra and MiniStack (130 MB) venvs and the CDK's node_modules ~1.3 GB. Say so up front rather than fail with ENOSPC half way.
free_mb=$(df -Pm . | awk 'NR == 2 { print $4 }')
echo "== disk: ${free_mb} MB free in $PWD (a full run from a clean clone needs ~5500 MB)"

echo "== cargo fmt"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== what ships links only what it needs (cargo tree)"
# The connect guard: no workflow, no template engine (ARCHITECTURE.md). The shipped binaries: nothing of the test kit.
forbidden() { cargo tree --locked -p "$1" -e normal --prefix none | awk '{ print $1 }' | sort -u | grep -x -E "$2" || true; }
found=$(forbidden jitp-guard 'tera|jitp-core|jitp-policy|jitp-testkit')
[ -z "$found" ] || { echo "jitp-guard links $found" >&2; exit 1; }
for crate in jitp-cli jitp-lambda; do
  found=$(forbidden "$crate" 'jitp-testkit')
  [ -z "$found" ] || { echo "$crate links $found" >&2; exit 1; }
done

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
echo "== the whole path on a local AWS (MiniStack: both stacks, both delivery modes, real MQTT/mTLS devices)"
# ~4-5 minutes on top of the rest (the MiniStack venv on a fresh machine ~50 s, each of the four deployments' runs
# 40-65 s); the Lambda binaries are the debug ones cargo test has just built (--prebuilt).
scripts/local-aws.sh --prebuilt --stack both --delivery both --check
echo "== all suites passed"
