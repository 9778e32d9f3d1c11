#!/usr/bin/env bash
# Install MiniStack (a local AWS), paho-mqtt and boto3 into .venv/ministack, for scripts/local-aws.sh and its
# integration suite. Idempotent and quick when done: it reinstalls only if tests/requirements-ministack.txt changed
# since the last run. MiniStack needs Python 3.10 or later.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/ministack
requirements=tests/requirements-ministack.txt
stamp="$venv/.requirements-ministack.txt"

if [ -x "$venv/bin/ministack" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  echo "ministack: $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("ministack"))') ready in $venv"
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup-ministack: $python (3.10 or later) is needed for MiniStack" >&2
  exit 1
fi

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --requirement "$requirements"
"$venv/bin/python" -c 'import ministack, paho.mqtt.client, boto3, cryptography, samtranslator'
cp "$requirements" "$stamp"
echo "ministack: $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("ministack"))') installed in $venv"
