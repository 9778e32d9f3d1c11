#!/usr/bin/env bash
# Offline checks of the jitp infrastructure (infra/): no AWS account, no credentials, no Rust build.
#
#   bash scripts/test-infra.sh
#
# Needs node >= 20 with npm, and python3 (>= 3.9) with venv. Installs, once, and again only when a pin changes:
#   infra/cdk/node_modules   npm ci from infra/cdk/package-lock.json
#   .venv/infra              aws-sam-cli, cfn-lint       (infra/requirements.txt)
#   .venv/infra-checkov      checkov                     (infra/requirements-checkov.txt; its boto3 pin clashes with SAM's)
# Then:
#   CDK app: type-check, assertion tests (node --test), cdk synth of two configurations (sqs + alarm email + the
#            connect guard, direct)
#   SAM template: sam validate, sam validate --lint
#   cfn-lint and checkov on the SAM template and on both synthesized CDK templates
#   infra/tests/check_templates.py: IAM against the Service Authorization data, SAM/CDK parity, SAM structure
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CDK_DIR="$ROOT/infra/cdk"
SAM_TEMPLATE="infra/sam/template.yaml"
VENV="$ROOT/.venv/infra"
VENV_CHECKOV="$ROOT/.venv/infra-checkov"
SYNTH_OUT="$CDK_DIR/cdk.out/test-infra"
LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

START=$SECONDS
step() { printf '\n==> [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
run() {
  printf '+ %s\n' "$*"
  "$@"
}
die() {
  printf 'test-infra: %s\n' "$*" >&2
  exit 1
}

# Everything below runs without AWS credentials and without reaching AWS: no profile, no keys, no instance metadata,
# no telemetry. The account and Region are fake; nothing is deployed.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export CDK_DEFAULT_ACCOUNT=123456789012 CDK_DEFAULT_REGION=us-east-1
export CDK_DISABLE_CLI_TELEMETRY=true SAM_CLI_TELEMETRY=0
# Synthesize without building the Rust function (no cargo-lambda, no Docker): see infra/cdk/bin/jitp.ts.
export JITP_SKIP_BUNDLING=1

# ---- prerequisites -----------------------------------------------------------------------------------------------
step "prerequisites"
command -v node >/dev/null || die "node is required (>= 20)"
command -v npm >/dev/null || die "npm is required"
command -v python3 >/dev/null || die "python3 is required (>= 3.9)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is required, found $(node --version)"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || die "python3 >= 3.9 is required"
printf 'node %s, npm %s, %s\n' "$(node --version)" "$(npm --version)" "$(python3 --version)"

# ---- installs (skipped when the stamp matches the pins) ----------------------------------------------------------
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Install a requirements file into a virtualenv unless the venv's stamp says it is already there.
ensure_venv() {
  local venv="$1" requirements="$2" stamp want
  stamp="$venv/.jitp-requirements.sha256"
  want="$(printf '%s\n%s\n' "$(python3 --version)" "$(fingerprint "$requirements")" | sha256sum | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "up to date: $venv ($requirements)"
    return 0
  fi
  echo "installing $requirements into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  echo "$want" >"$stamp"
}

step "install pinned tools (in parallel; logs shown on failure)"
declare -A jobs=()
ensure_venv "$VENV" infra/requirements.txt >"$LOG_DIR/venv.log" 2>&1 &
jobs[venv]=$!
ensure_venv "$VENV_CHECKOV" infra/requirements-checkov.txt >"$LOG_DIR/venv-checkov.log" 2>&1 &
jobs[venv-checkov]=$!
bash scripts/cdk-modules.sh >"$LOG_DIR/npm.log" 2>&1 &
jobs[npm]=$!
failed=0
for name in venv venv-checkov npm; do
  if wait "${jobs[$name]}"; then
    sed 's/^/  /' "$LOG_DIR/$name.log"
  else
    echo "FAILED: $name"
    sed 's/^/  /' "$LOG_DIR/$name.log"
    failed=1
  fi
done
[ "$failed" -eq 0 ] || die "installing the pinned tools failed"
run "$VENV/bin/sam" --version
run "$VENV/bin/cfn-lint" --version
run "$VENV_CHECKOV/bin/checkov" --version
run "$CDK_DIR/node_modules/.bin/cdk" --version

# ---- CDK app -----------------------------------------------------------------------------------------------------
step "CDK: type-check and compile (tsc)"
(cd "$CDK_DIR" && run node_modules/.bin/tsc -p tsconfig.json)

step "CDK: assertion tests (node --test)"
(cd "$CDK_DIR" && run node --test dist/test/*.test.js)

CA_1="$(printf 'a%.0s' $(seq 64))"
CA_2="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
CRL_OBJECT="s3://acme-pki/crl/acme-issuing.crl"
rm -rf "$SYNTH_OUT"
synth() {
  local name="$1"
  shift
  # --app: run the app compiled above (cdk.json's app compiles first, for people deploying by hand).
  (cd "$CDK_DIR" && run node_modules/.bin/cdk synth --app "node dist/bin/jitp.js" --quiet --no-notices \
    --no-version-reporting --output "$SYNTH_OUT/$name" "$@")
  [ -s "$SYNTH_OUT/$name/Jitp.template.json" ] || die "cdk synth wrote no template for $name"
}
step "CDK: cdk synth, sqs delivery, two CAs, alarm email, an S3 CRL, the connect guard"
synth sqs -c "jitp:caCertificateIds=$CA_1,$CA_2" -c jitp:alarmEmail=alarms@example.com \
  -c "jitp:crlObjects=$CRL_OBJECT" -c jitp:enableGuard=true -c jitp:guardDomainName=iot.example.com \
  -c "jitp:guardCertificateArn=arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0000-4000-8000-000000000000"
step "CDK: cdk synth, direct delivery, existing AWS IoT logging"
synth direct -c "jitp:caCertificateIds=$CA_1" -c jitp:deliveryMode=direct -c jitp:manageIotLogging=false
CDK_TEMPLATES=("$SYNTH_OUT/sqs/Jitp.template.json" "$SYNTH_OUT/direct/Jitp.template.json")

# ---- SAM template ------------------------------------------------------------------------------------------------
step "SAM: sam validate"
run "$VENV/bin/sam" validate --template-file "$SAM_TEMPLATE" --region us-east-1
step "SAM: sam validate --lint"
run "$VENV/bin/sam" validate --template-file "$SAM_TEMPLATE" --region us-east-1 --lint

# ---- linters and policy checks on every template -----------------------------------------------------------------
step "cfn-lint: SAM template and synthesized CDK templates"
run "$VENV/bin/cfn-lint" --format parseable -- "$SAM_TEMPLATE" "${CDK_TEMPLATES[@]}"
echo "cfn-lint: no findings"

step "checkov: SAM template and synthesized CDK templates (suppressions live in each template, with reasons)"
for template in "$SAM_TEMPLATE" "${CDK_TEMPLATES[@]}"; do
  run "$VENV_CHECKOV/bin/checkov" --file "$template" --framework cloudformation --skip-download --compact --quiet
done

step "IAM against the Service Authorization Reference, SAM/CDK parity, SAM structure"
run "$VENV/bin/python" infra/tests/check_templates.py --sam "$SAM_TEMPLATE" --cdk "${CDK_TEMPLATES[@]}"

printf '\ntest-infra: all checks passed in %ds\n' "$((SECONDS - START))"
