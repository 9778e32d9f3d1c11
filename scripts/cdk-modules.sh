#!/usr/bin/env bash
# npm ci in infra/cdk, once, and again only when package.json, package-lock.json or node's major version change.
# Shared by scripts/test-infra.sh and scripts/local-aws.sh. Needs node >= 20 with npm.
set -euo pipefail
CDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../infra/cdk" && pwd)"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
stamp="$CDK_DIR/node_modules/.jitp-package-lock.sha256"
want="$(printf '%s\n%s\n' "$node_major" "$(cat "$CDK_DIR/package.json" "$CDK_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)" |
  sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "up to date: infra/cdk/node_modules"
  exit 0
fi
echo "npm ci in infra/cdk"
(cd "$CDK_DIR" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
