#!/usr/bin/env bash
# Install moto's server (an AWS IoT API emulator) into .venv/moto for the moto test suites.
# Idempotent and quick when done: it reinstalls only if tests/requirements-moto.txt changed since the last run.
# Afterwards: export JITP_MOTO_SERVER="$PWD/.venv/moto/bin/moto_server" (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/moto
state=$(scripts/pinned-venv.sh "$venv" tests/requirements-moto.txt 9 "$venv/bin/moto_server" --help)
echo "moto: $("$venv/bin/python" -c 'import moto; print(moto.__version__)') $state in $venv"
