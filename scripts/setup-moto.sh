#!/usr/bin/env bash
# Install moto's server (an AWS IoT API emulator) into .venv/moto for the moto test suites.
# Idempotent and quick when done: it reinstalls only if tests/requirements-moto.txt changed since the last run.
# Afterwards: export JITP_MOTO_SERVER="$PWD/.venv/moto/bin/moto_server" (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/moto
requirements=tests/requirements-moto.txt
stamp="$venv/.requirements-moto.txt"

if [ -x "$venv/bin/moto_server" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  echo "moto: $("$venv/bin/python" -c 'import moto; print(moto.__version__)') ready in $venv"
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "setup-moto: $python (3.9 or later) is needed for moto" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --requirement "$requirements"
"$venv/bin/moto_server" --help >/dev/null
cp "$requirements" "$stamp"
echo "moto: $("$venv/bin/python" -c 'import moto; print(moto.__version__)') installed in $venv"
