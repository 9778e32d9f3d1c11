#!/usr/bin/env bash
# jitp for real on a local AWS: MiniStack (AWS IoT with CA auto-registration and an MQTT/mTLS broker, topic rules,
# SQS, Lambda, CloudFormation), the project's own stack deployed on it, and real MQTT devices connecting for the
# first time. No AWS account, no Docker, no network beyond the package registries on the first run.
#
#   scripts/local-aws.sh                      the CDK app's stack, 14 devices, a summary
#   scripts/local-aws.sh --stack sam          the SAM template instead (--stack both: one after the other)
#   scripts/local-aws.sh --delivery direct    the stacks' other delivery mode, rule -> function (both: each)
#   scripts/local-aws.sh --burst 200 [--pacing off] [--sensors 0]     200 more devices at once (BENCHMARKS.md)
#   scripts/local-aws.sh --check              exit 1 unless every expectation holds (scripts/test.sh runs this)
#   scripts/local-aws.sh --prebuilt ...       (first) use target/debug's Lambda binaries as they are, no cargo build
#
# Installs, once: .venv/ministack (tests/requirements-ministack.txt, scripts/setup-ministack.sh) and
# infra/cdk/node_modules (scripts/cdk-modules.sh). Builds jitp-lambda and jitp-drift in the debug profile: a
# release build takes ~15 min on 2 cores, a debug one ~3 from a warm target/, and the emulator, not the binary,
# sets the pace here. Needs python3 >= 3.10, node >= 20, openssl, cargo.
# Every process it starts (MiniStack and the Lambda processes MiniStack spawns) is stopped when it ends, fails or is
# interrupted (Ctrl-C, SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== local-aws: MiniStack, paho-mqtt, boto3 (.venv/ministack)"
scripts/setup-ministack.sh
echo "== local-aws: the CDK app (infra/cdk: npm ci once, tsc)"
bash scripts/cdk-modules.sh
(cd infra/cdk && node_modules/.bin/tsc -p tsconfig.json)
# --prebuilt: use target/debug's jitp-lambda and jitp-drift as they are. scripts/test.sh passes it right after
# `cargo test --workspace` built them: `cargo build -p jitp-lambda` alone resolves other features for shared
# dependencies (tokio, hyper, the SDK) and would build them again, minutes on 2 cores.
if [ "${1:-}" = "--prebuilt" ]; then
  shift
  for bin in jitp-lambda jitp-drift; do
    [ -x "target/debug/$bin" ] || { echo "local-aws: --prebuilt, but target/debug/$bin is missing" >&2; exit 1; }
  done
  echo "== local-aws: the Lambda binaries: target/debug/jitp-lambda, jitp-drift as built (--prebuilt)"
else
  echo "== local-aws: the Lambda binaries (cargo build -p jitp-lambda --bins, debug)"
  cargo build --locked -p jitp-lambda --bins
fi
# exec: Ctrl-C and SIGTERM reach the Python driver, which stops MiniStack's process group before it exits.
exec .venv/ministack/bin/python scripts/local_aws.py "$@"
