#!/usr/bin/env bash
# The main job, offline: generate a CA and device certificates, decide each with the shipped templates.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p jitp-cli -- demo "$@"
