#!/usr/bin/env bash
# The main job, offline: generate a CA and device certificates, decide each with the shipped templates.
# Builds only what the demo needs: jitp without the AWS SDK and the HTTP server (--no-default-features), in the
# demo profile (release without LTO), so a first run from a fresh clone builds in minutes, not seven.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --profile demo -p jitp-cli --no-default-features -- demo "$@"
