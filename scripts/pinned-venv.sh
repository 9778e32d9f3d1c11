#!/usr/bin/env bash
# A virtualenv holding exactly the pins of a requirements file: made, and made again from scratch whenever the file
# changed since (a copy of it in the venv is the stamp). Quick when nothing changed. Shared by setup-moto.sh and
# setup-ministack.sh.
#
#   scripts/pinned-venv.sh VENV REQUIREMENTS MIN_PYTHON_MINOR [SMOKE_COMMAND ...]
#
# SMOKE_COMMAND runs after an install, before the stamp is written (its output discarded), so a broken install is
# not taken for a good one next time. Prints "ready" or "installed". Set PYTHON to use another interpreter.
set -euo pipefail
venv=$1 requirements=$2 min_minor=$3
shift 3
stamp="$venv/.pinned-requirements.txt"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  echo ready
  exit 0
fi
python=${PYTHON:-python3}
if ! "$python" -c "import sys; sys.exit(sys.version_info < (3, $min_minor))" 2>/dev/null; then
  echo "pinned-venv: $python (3.$min_minor or later) is needed for $requirements" >&2
  exit 1
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --requirement "$requirements" >&2
if [ "$#" -gt 0 ]; then
  "$@" >/dev/null
fi
cp "$requirements" "$stamp"
echo installed
