#!/usr/bin/env bash
# Install MiniStack (a local AWS), paho-mqtt and boto3 into .venv/ministack, for scripts/local-aws.sh and its
# integration suite. Idempotent and quick when done: it reinstalls only if tests/requirements-ministack.txt changed
# since the last run. MiniStack needs Python 3.10 or later.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/ministack
state=$(scripts/pinned-venv.sh "$venv" tests/requirements-ministack.txt 10 \
  "$venv/bin/python" -c 'import ministack, paho.mqtt.client, boto3, cryptography, samtranslator')
echo "ministack: $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("ministack"))') $state in $venv"
