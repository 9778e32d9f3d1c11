#!/usr/bin/env python3
"""The whole path on a local AWS: real devices, over MQTT with mutual TLS, through the deployed stack.

Run it through scripts/local-aws.sh, which installs MiniStack (pinned in tests/requirements-ministack.txt),
builds the Lambda and the CDK app first. This file:

1. starts MiniStack (its own ports, its own temporary directory) and stops it, and every Lambda process it
   started, on exit, on Ctrl-C and on SIGTERM;
2. registers a CA with auto-registration, as infra/README.md says (openssl, AWS's documented commands);
3. deploys the project's own stack: the CDK app's synthesized template (`--stack cdk`) and/or the SAM template
   (`--stack sam`), with the function's code uploaded as `cdk deploy` / `sam package` would, and with only the
   adjustments MiniStack's gaps force, each printed with its reason (tests/README.md lists them);
4. lets real MQTT clients (paho-mqtt) connect for the first time with certificates made by openssl, and checks
   what AWS IoT would do: valid devices end ACTIVE and publish to their own topics; out-of-profile devices are
   refused and stay refused; clones of one name leave exactly one ACTIVE; a provisioned device is refused another
   device's client id and topics (MiniStack's AUTH=true enforces the IoT policy jitp attached);
5. prints a summary: devices, outcomes, connect-to-ACTIVE p50/p99.

`--check` turns each expectation into a pass/fail line and exits 1 on any failure (scripts/test.sh runs it);
`--burst N` connects N more devices within seconds and reports the end-to-end latency (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import yaml
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "000000000000"  # MiniStack's default account
REGION = "us-east-1"
START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- MiniStack ---------------------------------------------------------------------------------------------------


def die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL if this driver dies, even by a SIGKILL nothing can trap."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: stop() and the signal handlers still end it


class MiniStack:
    """One MiniStack server in its own process group, on free ports, with its files in `workdir`."""

    def __init__(self, workdir: Path, auth: bool):
        self.workdir = workdir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "ministack.log"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            GATEWAY_PORT=str(self.port),
            IOT_MTLS_PORT=str(self.mqtt_port),
            BIND_HOST="127.0.0.1",
            MINISTACK_REGION=REGION,
            # Lambda processes inherit MiniStack's environment: the function's AWS SDK finds MiniStack here, as a
            # real function finds AWS IoT's regional endpoint. Nothing in the stack names an endpoint.
            AWS_ENDPOINT_URL=self.url,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AUTH="true" if self.auth else "false",
            # The Lambda code caches and MiniStack's own temporary files go under workdir, removed at exit.
            TMPDIR=str(self.workdir),
        )
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
            env.pop(key, None)
        # MiniStack's own entry point, with its Lambda log capture made whole (scripts/ministack_run.py says how).
        command = [sys.executable, str(ROOT / "scripts" / "ministack_run.py")]
        log = open(self.log_path, "wb")
        # A process group of its own: stop() ends MiniStack and the Lambda bootstraps it spawned, by this group's id.
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"local-aws: MiniStack exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_ministack/health", timeout=1) as r:
                    if r.status == 200 and self.mqtt_listening():
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"local-aws: MiniStack did not answer within 60 s; see {self.log_path}")

    def mqtt_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pgid = self.process.pid  # start_new_session: the group's id is the process's
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        # Lambda bootstraps live in the same group; make sure none outlives MiniStack.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=BotoConfig(retries={"max_attempts": 2}, max_pool_connections=64),
        )

    def broker_ca(self) -> str:
        with urllib.request.urlopen(f"{self.url}/_ministack/iot/ca.pem", timeout=5) as r:
            return r.read().decode()


# ---- PKI: openssl, as AWS's documentation does it ---------------------------------------------------------------


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"local-aws: openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


@dataclass
class Device:
    """One device: its key and certificate files, the client id it connects with, what the run expects of it."""

    label: str
    cn: str
    key: Path
    cert: Path
    expect: str  # "active", "refused" (never ACTIVE), "clone" (one of a set: exactly one ACTIVE)
    reason: str = ""  # the audit record's outcome and reason code expected, e.g. "HELD SUBJECT_MISMATCH"
    certificate_id: str = ""
    first_connect: float = 0.0
    status: str = ""
    status_at: float = 0.0

    @property
    def latency_ms(self) -> float | None:
        if self.status == "ACTIVE" and self.status_at:
            return (self.status_at - self.first_connect) * 1000
        return None


class Pki:
    """A CA (openssl's commands from AWS IoT's "Register your CA certificate") and device certificates it signs."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = self.dir / "ca.key"
        self.ca_pem = self.dir / "ca.pem"
        openssl("genrsa", "-out", str(self.ca_key), "2048")
        openssl(
            "req", "-x509", "-new", "-nodes", "-key", str(self.ca_key), "-sha256", "-days", "1024",
            "-out", str(self.ca_pem), "-subj", "/O=Acme/CN=Acme local-aws CA",
        )
        self.serial = 1000
        self.lock = threading.Lock()

    def verification_cert(self, code: str) -> str:
        key, csr, pem = self.dir / "verification.key", self.dir / "verification.csr", self.dir / "verification.pem"
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", f"/CN={code}", "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_pem), "-CAkey", str(self.ca_key), "-set_serial", "1",
                "-days", "1", "-sha256", "-out", str(pem))
        return pem.read_text()

    def device(self, label: str, subject: str, expect: str, *, bits: int = 2048, extfile: str | None = None,
               ca: "Pki | None" = None, ec: bool = False) -> Device:
        """`openssl genrsa`, `openssl req -new`, `openssl x509 -req -CA`: the device certificate commands of AWS IoT's
        just-in-time registration docs. `extfile` adds extensions (a device that claims to be a CA)."""
        signer = ca or self
        with self.lock:  # devices are made on a thread pool
            self.serial += 1
            serial = self.serial
        key, csr, pem = self.dir / f"{label}.key", self.dir / f"{label}.csr", self.dir / f"{label}.pem"
        if ec:  # ECDSA P-256, which AWS IoT also takes: a key in a millisecond, for the burst's hundreds of devices
            openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", subject)
        else:
            openssl("genrsa", "-out", str(key), str(bits))
            openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject)
        args = ["x509", "-req", "-in", str(csr), "-CA", str(signer.ca_pem), "-CAkey", str(signer.ca_key),
                "-set_serial", str(serial), "-days", "500", "-sha256", "-out", str(pem)]
        if extfile:
            ext = self.dir / f"{label}.ext"
            ext.write_text(extfile)
            args += ["-extfile", str(ext)]
        openssl(*args)
        der = openssl("x509", "-in", str(pem), "-outform", "der")
        cn = subject.rsplit("CN=", 1)[-1]
        return Device(label, cn, key, pem, expect, certificate_id=hashlib.sha256(der).hexdigest())

    def ca_id(self) -> str:
        return hashlib.sha256(openssl("x509", "-in", str(self.ca_pem), "-outform", "der")).hexdigest()


# ---- MQTT over mutual TLS ----------------------------------------------------------------------------------------


class Mqtt:
    """A device's MQTT 3.1.1 session (paho-mqtt) over TLS with its certificate, as an AWS IoT device connects."""

    def __init__(self, broker_ca: Path, port: int):
        self.broker_ca = broker_ca
        self.port = port

    def session(self, device: Device, client_id: str, timeout: float = 5.0) -> tuple[str, mqtt.Client | None]:
        """Connect; ("connected", client) or ("refused: why", None). The caller disconnects a connected client."""
        state: dict = {}
        done = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.tls_set(ca_certs=str(self.broker_ca), certfile=str(device.cert), keyfile=str(device.key),
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)

        def on_connect(_c, _u, _flags, reason, _props):
            state["connack"] = reason
            done.set()

        def on_disconnect(_c, _u, _flags, reason, _props):
            state.setdefault("disconnect", reason)
            done.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect("localhost", self.port, keepalive=30)
            client.loop_write()  # send CONNECT now, not at the network thread's first 1-second select
        except (OSError, ssl.SSLError) as e:
            return f"refused: {type(e).__name__}", None
        client.loop_start()
        if not done.wait(timeout):
            client.loop_stop()
            client.disconnect()
            return "refused: no CONNACK", None
        reason = state.get("connack")
        if reason is not None and not reason.is_failure and "disconnect" not in state:
            return "connected", client
        client.loop_stop()
        try:
            client.disconnect()
        except Exception:
            pass
        if reason is not None:
            return f"refused: CONNACK {reason}", None
        return "refused: connection closed", None

    def first_connect(self, device: Device) -> str:
        """The device's first connection: AWS IoT registers the certificate and closes it."""
        device.first_connect = device.first_connect or time.monotonic()
        outcome, client = self.session(device, device.cn)
        if client is not None:
            client.disconnect()
            client.loop_stop()
        return outcome


def publish(client: mqtt.Client, topic: str, timeout: float = 3.0) -> str:
    """QoS 1 publish: "acked" (PUBACK) or "refused" (the broker closed the connection, as AWS IoT does on a denied
    publish)."""
    gone = threading.Event()
    client.on_disconnect = lambda *_: gone.set()
    info = client.publish(topic, b'{"temperature": 21.5}', qos=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info.is_published():
            return "acked"
        if gone.is_set():
            return "refused"
        time.sleep(0.01)
    return "refused" if gone.is_set() else "no answer"


def subscribe(client: mqtt.Client, topic: str, timeout: float = 3.0) -> str:
    """"granted" or "refused" (SUBACK 0x80, or the connection closed)."""
    granted = threading.Event()
    result: dict = {}

    def on_subscribe(_c, _u, _mid, reasons, _props):
        result["reasons"] = reasons
        granted.set()

    gone = threading.Event()
    client.on_subscribe = on_subscribe
    client.on_disconnect = lambda *_: gone.set()
    client.subscribe(topic, qos=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not granted.is_set() and not gone.is_set():
        time.sleep(0.01)
    if granted.is_set():
        return "refused" if any(r.is_failure for r in result["reasons"]) else "granted"
    return "refused" if gone.is_set() else "no answer"


# ---- the stacks --------------------------------------------------------------------------------------------------


@dataclass
class Adjustment:
    what: str
    why: str


def lambda_zip(binary: Path) -> bytes:
    """What cargo-lambda's zip holds (crates/jitp-lambda's `include`): the binary as `bootstrap`, `templates/` beside it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, binary.read_bytes())
        add_templates(z, "templates/")
    return buffer.getvalue()


def add_templates(z: zipfile.ZipFile, prefix: str) -> None:
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.is_file():
            z.write(path, f"{prefix}{path.relative_to(ROOT / 'templates')}")


def templates_layer_zip() -> bytes:
    """The SAM template's TemplatesLayer (ContentUri ../../templates): jitp.toml at the layer's root, /opt/jitp.toml."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        add_templates(z, "")
    return buffer.getvalue()


def wait_stack(cfn, name: str) -> dict:
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        time.sleep(0.2)


# CloudFormation's limit on an inline TemplateBody, bytes (a larger template goes through S3: TemplateURL).
TEMPLATE_BODY_LIMIT = 51_200
TEMPLATE_BUCKET = "local-aws-templates"


def deploy(local: MiniStack, name: str, template: dict, parameters: dict[str, str]) -> dict:
    cfn = local.client("cloudformation")
    t0 = time.monotonic()
    body = json.dumps(template)
    if len(body) <= TEMPLATE_BODY_LIMIT:
        source = {"TemplateBody": body}
    else:
        # Over CloudFormation's limit for an inline template (AWS's, which MiniStack enforces too): upload it to S3
        # and pass its URL, as `sam deploy` and `cdk deploy` do for a large template.
        s3 = local.client("s3")
        s3.create_bucket(Bucket=TEMPLATE_BUCKET)
        s3.put_object(Bucket=TEMPLATE_BUCKET, Key=f"{name}.json", Body=body.encode())
        source = {"TemplateURL": f"https://s3.amazonaws.com/{TEMPLATE_BUCKET}/{name}.json"}
        say(f"stack {name}: the template is {len(body):,} bytes, over CloudFormation's {TEMPLATE_BODY_LIMIT:,}-byte "
            f"TemplateBody limit: deployed from S3 (TemplateURL), as sam deploy does")
    cfn.create_stack(
        StackName=name,
        **source,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = wait_stack(cfn, name)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        failures = [
            f"  {e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
            for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
            if e["ResourceStatus"].endswith("_FAILED")
        ]
        raise SystemExit(f"local-aws: stack {name} ended {stack['StackStatus']}:\n" + "\n".join(failures))
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    say(f"stack {name}: CREATE_COMPLETE, {len(resources)} resources, in {time.monotonic() - t0:.2f} s")
    return stack


def print_adjustments(stack: str, adjustments: list[Adjustment]) -> None:
    say(f"stack {stack}: {len(adjustments)} adjustment(s) for MiniStack's gaps (the shipped template is unchanged):")
    for a in adjustments:
        print(f"    - {a.what}\n      why: {a.why}", flush=True)


def synth_cdk(ca_id: str, out: Path, delivery: str) -> dict:
    """`cdk synth` of infra/cdk (compiled by local-aws.sh), as scripts/test-infra.sh does it: no bundling."""
    cdk = ROOT / "infra/cdk"
    env = dict(os.environ, JITP_SKIP_BUNDLING="1", CDK_DEFAULT_ACCOUNT=ACCOUNT, CDK_DEFAULT_REGION=REGION,
               CDK_DISABLE_CLI_TELEMETRY="true")
    args = [str(cdk / "node_modules/.bin/cdk"), "synth", "--app", "node dist/bin/jitp.js", "--quiet", "--no-notices",
            "--no-version-reporting", "--output", str(out), "-c", f"jitp:caCertificateIds={ca_id}",
            "-c", "jitp:manageIotLogging=false", "-c", f"jitp:deliveryMode={delivery}"]
    result = subprocess.run(args, cwd=cdk, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"local-aws: cdk synth failed:\n{result.stdout}\n{result.stderr}")
    return json.loads((out / "Jitp.template.json").read_text())


def deploy_cdk(local: MiniStack, ca_id: str, work: Path, no_pacing: bool, delivery: str) -> str:
    say(f"stack cdk: cdk synth (infra/cdk, jitp:deliveryMode={delivery}, jitp:manageIotLogging=false: see the "
        "adjustments)")
    template = synth_cdk(ca_id, work / "cdk.out", delivery)
    adjustments = [
        Adjustment(
            "synthesized with -c jitp:manageIotLogging=false (the stack's option for an account that already has AWS "
            "IoT logging), and the log group AWSIotLogsV2 created beforehand, as such an account has it",
            "MiniStack's CloudFormation has no AWS::IoT::Logging resource type (CreateStack fails: \"Unrecognized "
            "resource types\")",
        ),
        *queue_policy_adjustments(template),
        *iam_adjustments(template),
        *function_adjustments(template, no_pacing, "/var/task/templates/jitp.toml"),
    ]
    print_adjustments("cdk", adjustments)
    local.client("logs").create_log_group(logGroupName="AWSIotLogsV2")

    # What `cdk deploy` does with the function assets: the bootstrap bucket and version, the zips under their keys.
    s3 = local.client("s3")
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            code = resource["Properties"]["Code"]
            binary = "jitp-drift" if name.startswith("DriftFunction") else "jitp-lambda"
            try:
                s3.create_bucket(Bucket=code["S3Bucket"])
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"],
                          Body=lambda_zip(ROOT / "target/debug" / binary))
    local.client("ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="21", Type="String", Overwrite=True)
    deploy(local, "Jitp", template, {})
    return "Jitp"


def queue_policy_adjustments(template: dict) -> list[Adjustment]:
    """The queues' DenyInsecureTransport statements dropped (MiniStack's rules engine and Lambda poller use HTTP)."""
    adjustments = []
    resources = template["Resources"]
    for name in list(resources):
        resource = resources[name]
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        document = resource["Properties"]["PolicyDocument"]
        kept = [s for s in document["Statement"]
                if not (s.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {})))]
        if len(kept) == len(document["Statement"]):
            continue
        if kept:
            document["Statement"] = kept
            what = f"{name}: its Deny on aws:SecureTransport = false removed"
        else:
            del resources[name]
            for other in resources.values():
                depends = other.get("DependsOn")
                if depends == name or (isinstance(depends, list) and name in depends):
                    other["DependsOn"] = [d for d in ([depends] if isinstance(depends, str) else depends) if d != name]
            what = f"{name}: removed (its one statement denies requests without TLS)"
        adjustments.append(Adjustment(
            what,
            "under AUTH=true MiniStack evaluates the queue policy, and its rules engine sends SQS messages over "
            "plain HTTP on the loopback, so AWS's TLS-only rule would refuse every event (AWS IoT's rules engine "
            "reaches SQS over TLS)",
        ))
    return adjustments


# Where MiniStack's IAM authorizes an AWS IoT action on another resource than AWS does (the Service Authorization
# Reference, as infra/iam-actions.json grants it): action -> (AWS's resource, the resource MiniStack checks). The
# first four were measured (each denied to the function's role until granted here); DetachThingPrincipal shares
# AttachThingPrincipal's path in MiniStack's resource mapping, and the workflow calls it only to undo a claim.
MINISTACK_IAM_GAPS = {
    "iot:DescribeCACertificate": ("cacert/<id>", "*"),
    "iot:AttachPolicy": ("cert/<id> (the target)", "*"),
    "iot:AttachThingPrincipal": ("cert/<id> (the principal)", "thing/<name>"),
    "iot:DetachThingPrincipal": ("cert/<id> (the principal)", "thing/<name>"),
    "iot:ListTargetsForPolicy": ("policy/<name>", "*"),
}


def iam_adjustments(template: dict) -> list[Adjustment]:
    """One more policy on the provisioning function's role: the actions MiniStack checks on another resource."""
    resources = template["Resources"]
    function = next(r for n, r in resources.items()
                    if r["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function") and not n.startswith("Drift"))
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for resource in ("*", "thing/*"):
        actions = sorted(a for a, (_, checked) in MINISTACK_IAM_GAPS.items() if checked.replace("<name>", "*") == resource)
        arn = "*" if resource == "*" else {"Fn::Sub": f"arn:${{AWS::Partition}}:iot:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}
        statements.append({"Sid": "MiniStack" + ("Any" if resource == "*" else "Things"), "Effect": "Allow",
                           "Action": actions, "Resource": arn})
    resources["LocalAwsMiniStackIamGaps"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {"PolicyName": "local-aws-ministack-iam-gaps", "Roles": [{"Ref": role}],
                       "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}},
    }
    gaps = "; ".join(f"{a} on {checked} (AWS: {aws})" for a, (aws, checked) in MINISTACK_IAM_GAPS.items())
    return [Adjustment(
        f"policy LocalAwsMiniStackIamGaps added to {role}: {gaps}",
        "under AUTH=true MiniStack authorizes these calls on another resource than AWS's Service Authorization "
        "Reference says; the stack grants AWS's (infra/iam-actions.json), which MiniStack would deny",
    )]


def function_adjustments(template: dict, no_pacing: bool, config_path: str) -> list[Adjustment]:
    """The function environments: JITP_CONFIG where MiniStack's executor can see it, and pacing if asked."""
    adjustments = []
    for name, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            continue
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        if variables.get("JITP_CONFIG") == config_path:
            del variables["JITP_CONFIG"]
            adjustments.append(Adjustment(
                f"{name}: JITP_CONFIG={config_path} removed, so jitp reads $LAMBDA_TASK_ROOT/templates/jitp.toml "
                "(its default: the same file on AWS, where LAMBDA_TASK_ROOT is /var/task)",
                "MiniStack runs provided.al2023 functions as local processes from a directory of its own "
                "(LAMBDA_TASK_ROOT), with no /var/task and no /opt",
            ))
        if no_pacing and "JITP_QUOTA_INSTANCES" in variables and "DriftFunction" not in name:
            variables["JITP_NO_PACING"] = "1"
            adjustments.append(Adjustment(
                f"{name}: JITP_NO_PACING=1 (the burst measured with the pacing off)",
                "asked for with --pacing off: the same burst without jitp's quota pacing (BENCHMARKS.md)",
            ))
    return adjustments


def deploy_sam(local: MiniStack, ca_id: str, work: Path, no_pacing: bool, delivery: str) -> str:
    say("stack sam: infra/sam/template.yaml, packaged as `sam package` would (code zips in S3)")
    template = yaml.load((ROOT / "infra/sam/template.yaml").read_text(), Loader=CfnLoader)
    s3 = local.client("s3")
    bucket = "jitp-sam-artifacts"
    s3.create_bucket(Bucket=bucket)
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            binary = "jitp-drift" if name.startswith("Drift") else "jitp-lambda"
            # The function zip carries templates/ too: MiniStack does not mount layers for provided runtimes.
            s3.put_object(Bucket=bucket, Key=f"{name}.zip", Body=lambda_zip(ROOT / "target/debug" / binary))
            props["CodeUri"] = f"s3://{bucket}/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            s3.put_object(Bucket=bucket, Key=f"{name}.zip", Body=templates_layer_zip())
            props["ContentUri"] = f"s3://{bucket}/{name}.zip"
    parameters = {"CaCertificateIds": ca_id, "ManageIotLogging": "false", "DeliveryMode": delivery}
    adjustments = [
        *sam_condition_adjustments(template, ca_id),
        *sam_type_adjustments(template, parameters),
        *queue_policy_adjustments(template),
        *iam_adjustments(template),
        *function_adjustments(template, no_pacing, "/opt/jitp.toml"),
    ]
    if any("JITP_CONFIG" in a.what for a in adjustments):
        adjustments.append(Adjustment(
            "the function zips also carry templates/ beside bootstrap (the layer is deployed as well)",
            "with JITP_CONFIG at its default, jitp reads $LAMBDA_TASK_ROOT/templates/jitp.toml; MiniStack does not "
            "extract layers to /opt for a provided runtime run as a local process",
        ))
    adjustments.append(Adjustment(
        "ManageIotLogging=false, and the log group AWSIotLogsV2 created beforehand",
        "MiniStack's CloudFormation has no AWS::IoT::Logging resource type",
    ))
    print_adjustments("sam", adjustments)
    try:
        local.client("logs").create_log_group(logGroupName="AWSIotLogsV2")
    except Exception:
        pass  # the CDK stack made it
    deploy(local, "JitpSam", template, parameters)
    return "JitpSam"


def sam_condition_adjustments(template: dict, ca_id: str) -> list[Adjustment]:
    """HasCa2..HasCa5 evaluated here: for one CA id they are false."""
    adjustments = []
    for name in ("HasCa2", "HasCa3", "HasCa4", "HasCa5"):
        if name in template.get("Conditions", {}):
            template["Conditions"][name] = {"Fn::Equals": ["one CA", "more CAs"]}
            adjustments.append(Adjustment(
                f"condition {name} replaced by its value for one CA id (false)",
                "MiniStack's CloudFormation refuses the template's Fn::Select over Fn::Split of the padded CA list in "
                "Conditions (\"Fn::Select cannot select nonexistent value at index 1\"; AWS's list has 5 entries)",
            ))
    return adjustments[:1] + [Adjustment(a.what, "(same)") for a in adjustments[1:]]


def sam_type_adjustments(template: dict, given: dict[str, str]) -> list[Adjustment]:
    """Numbers where MiniStack passes a parameter's string on, strings where it passes a mapping's number on."""
    values = {name: str(given.get(name, p.get("Default"))) for name, p in template["Parameters"].items()}
    adjustments = []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for holder, key in ((props, "ReservedConcurrentExecutions"), (props.get("ScalingConfig", {}), "MaximumConcurrency")):
            value = holder.get(key)
            if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in values:
                holder[key] = int(values[value["Ref"]])
                adjustments.append(Adjustment(
                    f"{name}: {key} = {holder[key]} (the number), for !Ref {value['Ref']}",
                    "MiniStack keeps a Number parameter's value as a string there, and its SQS poller then fails "
                    "comparing it with a number (\"'>=' not supported between instances of 'int' and 'str'\")",
                ))
        variables = props.get("Environment", {}).get("Variables", {})
        for var, value in variables.items():
            if isinstance(value, dict) and "Fn::FindInMap" in value:
                table, first, second = value["Fn::FindInMap"]
                pick = lambda v: values[v["Ref"]] if isinstance(v, dict) else v
                variables[var] = str(template["Mappings"][table][pick(first)][pick(second)])
                adjustments.append(Adjustment(
                    f"{name}: {var} = \"{variables[var]}\" (the string), for its !FindInMap",
                    "MiniStack passes the mapping's number into the function's environment as a number, and "
                    "spawning the function then fails (\"expected str, bytes or os.PathLike object, not int\"); "
                    "AWS makes it a string",
                ))
    return adjustments


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) read as their long forms."""


def _cfn_constructor(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {name: value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _cfn_constructor)


# ---- the run -----------------------------------------------------------------------------------------------------


class Watcher:
    """Polls the CA's certificates (ListCertificatesByCA) and records when each first left PENDING_ACTIVATION."""

    def __init__(self, iot, ca_id: str, devices: dict[str, Device], period: float = 0.02):
        self.iot, self.ca_id, self.devices, self.period = iot, ca_id, devices, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                marker = None
                while True:
                    kwargs = {"caCertificateId": self.ca_id, "pageSize": 250}
                    if marker:
                        kwargs["marker"] = marker
                    page = self.iot.list_certificates_by_ca(**kwargs)
                    now = time.monotonic()
                    for c in page.get("certificates", []):
                        device = self.devices.get(c["certificateId"])
                        if device and c["status"] != device.status:
                            device.status = c["status"]
                            device.status_at = now
                    marker = page.get("nextMarker")
                    if not marker:
                        break
            except Exception as e:  # a poll that fails is tried again; the run's own checks report what matters
                print(f"    (watcher: {e})", flush=True)
            self.stop.wait(self.period)



def wait_until(condition, timeout: float, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed: list[str] = []
        self.prefix = ""

    def expect(self, ok: bool, what: str) -> None:
        what = f"{self.prefix}{what}"
        if ok:
            self.passed += 1
            print(f"    ok    {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"    FAIL  {what}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def audit_lines(local: MiniStack, stack: str) -> list[dict]:
    """The function's audit records, from its log group (one JSON object a line, as Lambda's JSON log format)."""
    cfn, logs = local.client("cloudformation"), local.client("logs")
    groups = [r["PhysicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
              if r["LogicalResourceId"].startswith("FunctionLogGroup")]
    records = []
    for group in groups:
        try:
            kwargs = {"logGroupName": group}
            while True:
                page = logs.filter_log_events(**kwargs)
                for event in page.get("events", []):
                    try:
                        line = json.loads(event["message"])
                    except ValueError:
                        continue
                    if isinstance(line, dict) and "outcome" in line:
                        records.append(line)
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except Exception as e:
            print(f"    (audit lines of {group}: {e})", flush=True)
    return records


def scenario(local: MiniStack, stack: str, pki: Pki, ca_id: str, broker: Mqtt, checks: Checks, sensors: int,
             work: Path) -> list[Device]:
    """Valid sensors and a gateway, out-of-profile devices, clones, then what a provisioned device may not do."""
    iot = local.client("iot")
    say("devices: certificates by openssl (AWS's commands), signed by the registered CA")
    other = Pki(work / "unregistered-ca")
    specs: list[tuple] = [(f"sensor-{i}", f"/O=Acme/OU=batch-7/CN=sensor-{i:012x}", "active", {}, "PROVISIONED")
                          for i in range(1, sensors + 1)]
    specs += [
        ("gateway", "/O=Acme/ST=Lyon/CN=gw-ly-0001", "active", {"bits": 3072}, "PROVISIONED"),
        # Out of profile: held for the operator (the profile's own rules), the certificate left PENDING_ACTIVATION.
        ("intruder-cn", "/O=Acme/CN=printer-0001", "refused", {}, "HELD SUBJECT_MISMATCH"),
        ("intruder-org", "/O=Evil/CN=sensor-00000000beef", "refused", {}, "HELD SUBJECT_MISMATCH"),
        ("weak-gateway", "/O=Acme/CN=gw-ly-0002", "refused", {"bits": 2048}, "HELD KEY_TOO_SHORT"),
        # The device's own fault: rejected, and revoked (on_reject = "revoke").
        ("ca-as-device", "/O=Acme/CN=sensor-0000000000ca", "refused",
         {"extfile": "basicConstraints=critical,CA:TRUE\n"}, "REJECTED DEVICE_CERT_IS_CA"),
        # Signed by a CA nobody registered: AWS IoT refuses the handshake and registers nothing.
        ("unknown-ca", "/O=Acme/CN=sensor-0000000000ff", "refused", {"ca": other}, ""),
    ]
    specs += [(f"clone-{k}", "/O=Acme/CN=sensor-c10e00000001", "clone", {}, "") for k in range(1, 4)]
    with futures.ThreadPoolExecutor(4) as pool:
        devices = list(pool.map(lambda s: pki.device(s[0], s[1], s[2], **s[3]), specs))
    for device, spec in zip(devices, specs):
        device.reason = spec[4]
    by_id = {d.certificate_id: d for d in devices}
    watcher = Watcher(iot, ca_id, by_id)
    watcher.thread.start()
    try:
        say(f"devices: {len(devices)} first connections over MQTT/mTLS (clones at once)")
        with futures.ThreadPoolExecutor(len(devices)) as pool:
            first = dict(zip([d.label for d in devices], pool.map(broker.first_connect, devices)))
        for d in devices:
            print(f"    {d.label:14} {d.cn:22} first connection: {first[d.label]}", flush=True)
        clones = [d for d in devices if d.expect == "clone"]
        settle = [d for d in devices if d.expect == "active" or d.label == "ca-as-device"]
        wait_until(lambda: all(d.status not in ("", "PENDING_ACTIVATION") for d in settle)
                   and any(c.status == "ACTIVE" for c in clones), 60)
        # Every registered certificate's event decided once (a held one stays PENDING: wait for its audit line).
        registered = {d.certificate_id for d in devices if d.status}
        wait_until(lambda: registered <= {r.get("certificate_id") for r in audit_lines(local, stack)}, 20, period=0.5)
    finally:
        watcher.stop.set()
        watcher.thread.join()

    say("checks: the audit records, the registry and the second connection")
    decided: dict[str, set[str]] = {}
    records = audit_lines(local, stack)
    sources = sorted({str(r.get("ca_source")) for r in records if r["outcome"] == "PROVISIONED"})
    checks.expect(sources == ["registry"], f"the CA of every provisioned device came from DescribeCertificate's "
                                           f"caCertificateId, as on AWS (ca_source {sources})")
    for r in records:
        decided.setdefault(r.get("certificate_id"), set()).add(f"{r['outcome']} {r.get('reason') or ''}".strip())
    for d in devices:
        if d.reason:
            checks.expect(d.reason in decided.get(d.certificate_id, set()),
                          f"{d.label}: audit record {d.reason} (has {sorted(decided.get(d.certificate_id, set()))})")
    checks.expect(all(not first[d.label].startswith("connected") for d in devices),
                  "every first connection is closed by the broker (the certificate was unknown)")
    for d in devices:
        if d.expect == "active":
            checks.expect(d.status == "ACTIVE", f"{d.label}: certificate ACTIVE (is {d.status or 'not registered'})")
            thing = describe_thing(iot, d.cn)
            checks.expect(thing is not None and thing.get("attributes", {}).get("jitp_certificate") == d.certificate_id,
                          f"{d.label}: thing {d.cn} exists and names the certificate")
            outcome, client = broker.session(d, d.cn)
            checks.expect(client is not None, f"{d.label}: connects as {d.cn} ({outcome})")
            if client is not None:
                topic = f"things/{d.cn}/telemetry"  # both templates allow it
                checks.expect(publish(client, topic) == "acked", f"{d.label}: publishes to {topic}")
                client.disconnect()
                client.loop_stop()
        elif d.expect == "refused":
            if d.label == "unknown-ca":
                checks.expect(d.status == "", f"{d.label}: never registered (its CA is not registered)")
            else:
                checks.expect(d.status != "ACTIVE", f"{d.label}: certificate not ACTIVE (is {d.status})")
            outcome, client = broker.session(d, d.cn)
            checks.expect(client is None, f"{d.label}: a second connection is refused ({outcome})")
            if client is not None:
                client.disconnect()
                client.loop_stop()
    clones = [d for d in devices if d.expect == "clone"]
    active = [d for d in clones if d.status == "ACTIVE"]
    checks.expect(len(active) == 1, f"clones of {clones[0].cn}: exactly one ACTIVE (of {len(clones)}: "
                                    f"{', '.join(f'{d.label} {d.status}' for d in clones)})")
    for d in clones:
        want = "PROVISIONED" if d in active else "HELD DUPLICATE_THING"
        checks.expect(want in decided.get(d.certificate_id, set()),
                      f"{d.label}: audit record {want} (has {sorted(decided.get(d.certificate_id, set()))})")
    for d in clones:
        if d not in active:
            outcome, client = broker.session(d, d.cn)
            checks.expect(client is None, f"{d.label}: the clone that lost is refused ({outcome})")
            if client is not None:
                client.disconnect()
                client.loop_stop()

    if local.auth:
        say("checks: a provisioned device against another device's client id and topics (AUTH=true: IoT policies)")
        a, b = devices[0], devices[1]
        outcome, client = broker.session(a, b.cn)
        checks.expect(client is None, f"{a.label} connecting with {b.label}'s client id {b.cn} is refused ({outcome})")
        if client is not None:
            client.disconnect()
            client.loop_stop()
        for action, topic in (("subscribe", f"things/{b.cn}/commands/#"), ("publish", f"things/{b.cn}/telemetry")):
            outcome, client = broker.session(a, a.cn)
            if client is None:
                checks.expect(False, f"{a.label} connects as itself to try {action} ({outcome})")
                continue
            result = subscribe(client, topic) if action == "subscribe" else publish(client, topic)
            checks.expect(result == "refused", f"{a.label} may not {action} {topic} ({result})")
            client.disconnect()
            client.loop_stop()
        outcome, client = broker.session(a, a.cn)
        if client is not None:
            own = f"things/{a.cn}/commands/reboot"
            checks.expect(subscribe(client, own) == "granted", f"{a.label} may subscribe to its own {own}")
            received = threading.Event()
            client.on_message = lambda _c, _u, message: received.set() if message.topic == own else None
            # The operator sends a command through the data plane (iot-data Publish), as a backend would.
            local.client("iot-data").publish(topic=own, qos=1, payload=b'{"command": "reboot"}')
            checks.expect(received.wait(5), f"{a.label} receives a command published on {own}")
            client.disconnect()
            client.loop_stop()
    return devices


def one_at_a_time(local: MiniStack, pki: Pki, broker: Mqtt, checks: Checks, count: int) -> list[Device]:
    """`count` more sensors, each connecting only once the one before is ACTIVE: the latency of a warm function."""
    iot = local.client("iot")
    say(f"devices: {count} more sensors, one at a time (the function is warm now)")
    devices = []
    for i in range(count):
        d = pki.device(f"warm-{i}", f"/O=Acme/OU=warm/CN=sensor-{0xa0a0a0a0a000 + i:012x}", "active", ec=True)

        def poll(device: Device = d) -> None:  # beside the connection: the broker closes it only after ~1 s
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    status = iot.describe_certificate(certificateId=device.certificate_id)["certificateDescription"]["status"]
                except iot.exceptions.ResourceNotFoundException:
                    status = ""
                if status and status != "PENDING_ACTIVATION":
                    device.status, device.status_at = status, time.monotonic()
                    return
                time.sleep(0.005)

        d.first_connect = time.monotonic()
        poller = threading.Thread(target=poll)
        poller.start()
        broker.first_connect(d)
        poller.join()
        checks.expect(d.status == "ACTIVE", f"{d.label}: ACTIVE in {(d.latency_ms or 0):.0f} ms ({d.status or 'pending'})")
        devices.append(d)
    return devices


# ---- MiniStack against AWS IoT: tests/README.md's deviation table, measured ---------------------------------------


def error_code(call) -> str:
    """"ok" or the AWS error code a call ends with."""
    try:
        call()
        return "ok"
    except Exception as e:  # botocore's ClientError carries the code; anything else is reported by its type
        return getattr(e, "response", {}).get("Error", {}).get("Code") or type(e).__name__


def probe_registry(local: MiniStack, pki: Pki, ca_id: str, work: Path) -> dict[str, str]:
    """What MiniStack does where moto or MiniStack have been seen to differ from AWS IoT (tests/README.md)."""
    iot = local.client("iot")
    found: dict[str, str] = {}
    mine = pki.device("probe-1", "/O=Acme/CN=sensor-00000000f001", "probe", ec=True)
    other = Pki(work / "probe-ca").device("probe-2", "/O=Acme/CN=sensor-00000000f002", "probe", ec=True)
    registered = iot.register_certificate(certificatePem=mine.cert.read_text(), caCertificatePem=pki.ca_pem.read_text(),
                                          status="ACTIVE")
    found["certificate id"] = "SHA-256 of the DER" if registered["certificateId"] == mine.certificate_id else "other"
    described = iot.describe_certificate(certificateId=registered["certificateId"])["certificateDescription"]
    found["DescribeCertificate caCertificateId"] = "present" if described.get("caCertificateId") == ca_id else "absent"
    found["DescribeCACertificate autoRegistrationStatus"] = str(
        iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"].get("autoRegistrationStatus"))
    found["RegisterCertificate of another CA's certificate"] = error_code(lambda: iot.register_certificate(
        certificatePem=other.cert.read_text(), caCertificatePem=pki.ca_pem.read_text()))
    iot.create_thing(thingName="probe-thing", attributePayload={"attributes": {"jitp_certificate": "ab12"}})
    found["CreateThing of an existing thing, other attributes"] = error_code(lambda: iot.create_thing(
        thingName="probe-thing", attributePayload={"attributes": {"jitp_certificate": "cd34"}}))
    found["UpdateThing with a stale expectedVersion"] = error_code(lambda: iot.update_thing(
        thingName="probe-thing", attributePayload={"attributes": {"x": "1"}}, expectedVersion=99))
    listed = iot.list_things(attributeName="jitp_certificate", attributeValue="a", usePrefixAttributeValue=True)
    found["ListThings usePrefixAttributeValue"] = "prefix match" if listed.get("things") else "whole values only"
    found["CreatePolicy with a document that is not JSON"] = error_code(
        lambda: iot.create_policy(policyName="probe-bad", policyDocument="{not json"))
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
    iot.create_policy(policyName="jitp-probe", policyDocument=document)
    for _ in range(4):
        iot.create_policy_version(policyName="jitp-probe", policyDocument=document, setAsDefault=True)
    found["CreatePolicyVersion at 5 versions"] = error_code(
        lambda: iot.create_policy_version(policyName="jitp-probe", policyDocument=document))
    arn = iot.get_policy(policyName="jitp-probe")["policyArn"]
    found["TagResource of a policy"] = error_code(lambda: iot.tag_resource(
        resourceArn=arn, tags=[{"Key": "jitp:rollback:probe", "Value": "1"}]))
    iot.update_certificate(certificateId=registered["certificateId"], newStatus="REVOKED")
    found["UpdateCertificate REVOKED to ACTIVE"] = error_code(
        lambda: iot.update_certificate(certificateId=registered["certificateId"], newStatus="ACTIVE"))
    cert_arn = described["certificateArn"]
    iot.create_thing(thingName="probe-other")
    iot.attach_thing_principal(thingName="probe-thing", principal=cert_arn, thingPrincipalType="EXCLUSIVE_THING")
    found["AttachThingPrincipal EXCLUSIVE_THING, then to a second thing"] = error_code(
        lambda: iot.attach_thing_principal(thingName="probe-other", principal=cert_arn,
                                           thingPrincipalType="EXCLUSIVE_THING"))
    found["ListCACertificates"] = error_code(lambda: iot.list_ca_certificates())
    found["ListTargetsForPolicy"] = error_code(lambda: iot.list_targets_for_policy(policyName="jitp-probe"))
    return found


# What MiniStack 1.5.33 answers (the pinned version): a change shows up as a failed check, to re-check the table.
MINISTACK_OBSERVED = {
    "certificate id": "SHA-256 of the DER",
    "DescribeCertificate caCertificateId": "present",
    "DescribeCACertificate autoRegistrationStatus": "ENABLE",
    "RegisterCertificate of another CA's certificate": "CertificateValidationException",
    "CreateThing of an existing thing, other attributes": "ResourceAlreadyExistsException",
    "UpdateThing with a stale expectedVersion": "ok",
    "ListThings usePrefixAttributeValue": "whole values only",
    "CreatePolicy with a document that is not JSON": "MalformedPolicyException",
    "CreatePolicyVersion at 5 versions": "ok",
    "TagResource of a policy": "ok",
    "UpdateCertificate REVOKED to ACTIVE": "ok",
    "AttachThingPrincipal EXCLUSIVE_THING, then to a second thing": "ok",
    "ListCACertificates": "ok",
    "ListTargetsForPolicy": "ok",
}


def describe_thing(iot, name: str) -> dict | None:
    try:
        return iot.describe_thing(thingName=name)
    except iot.exceptions.ResourceNotFoundException:
        return None


def burst(local: MiniStack, pki: Pki, ca_id: str, broker: Mqtt, count: int, checks: Checks) -> list[Device]:
    """`count` valid sensors connecting for the first time within seconds; connect-to-ACTIVE for each."""
    iot = local.client("iot")
    say(f"burst: {count} device certificates (openssl)")
    base = int(time.time()) % 0xFFFFFF << 16
    with futures.ThreadPoolExecutor(4) as pool:
        devices = list(pool.map(lambda i: pki.device(f"burst-{i}", f"/O=Acme/OU=burst/CN=sensor-{base + i:012x}", "active", ec=True),
                                range(count)))
    watcher = Watcher(iot, ca_id, {d.certificate_id: d for d in devices}, period=0.05)
    watcher.thread.start()
    try:
        say(f"burst: {count} first connections at once (32 at a time)")
        t0 = time.monotonic()
        with futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(broker.first_connect, devices))
        say(f"burst: all {count} connected once in {time.monotonic() - t0:.1f} s; waiting for ACTIVE")
        wait_until(lambda: all(d.status not in ("", "PENDING_ACTIVATION") for d in devices), 300)
    finally:
        watcher.stop.set()
        watcher.thread.join()
    active = [d for d in devices if d.status == "ACTIVE"]
    checks.expect(len(active) == count, f"burst: {len(active)} of {count} ACTIVE")
    if active:
        last = max(d.status_at for d in active) - min(d.first_connect for d in devices)
        say(f"burst: first connect of the first device to the last ACTIVE: {last:.1f} s "
            f"({len(active) / last:.1f} devices/s)")
    return devices


def summary(label: str, devices: list[Device], records: list[dict]) -> None:
    latencies = [d.latency_ms for d in devices if d.latency_ms is not None]
    statuses: dict[str, int] = {}
    for d in devices:
        statuses[d.status or "not registered"] = statuses.get(d.status or "not registered", 0) + 1
    print(f"\n== {label}: {len(devices)} devices", flush=True)
    print("   certificates: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    if records:
        outcomes: dict[str, int] = {}
        for r in records:
            key = r["outcome"] + (f" {r['reason']}" if r.get("reason") else "")
            outcomes[key] = outcomes.get(key, 0) + 1
        print("   audit records: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        for key, what in (("duration_ms", "the function's time per event"), ("quota_wait_ms", "waiting for quota slots")):
            values = [float(r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if values:
                print(f"   {what} ({key}): p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms")
    if latencies:
        print(f"   connect-to-ACTIVE: p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, "
              f"max {max(latencies):.0f} ms over {len(latencies)} devices (first connection to the certificate "
              f"seen ACTIVE, polled every 5-50 ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", choices=["cdk", "sam", "both"], default="cdk")
    parser.add_argument("--sensors", type=int, default=5, help="valid sensors in the scenario (default 5)")
    parser.add_argument("--burst", type=int, default=0, metavar="N", help="then N devices at once (BENCHMARKS.md)")
    parser.add_argument("--delivery", choices=["sqs", "direct", "both"], default="sqs",
                        help="the stacks' delivery mode: topic rule -> SQS -> function, or topic rule -> function")
    parser.add_argument("--pacing", choices=["on", "off"], default="on", help="jitp's quota pacing in the function")
    parser.add_argument("--no-auth", action="store_true", help="MiniStack without AUTH=true (no IoT policy checks)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every expectation holds")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (certificates, logs)")
    args = parser.parse_args()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also where a background job inherited SIGINT ignored
    checks = Checks()
    stacks = ["cdk", "sam"] if args.stack == "both" else [args.stack]
    deliveries = ["sqs", "direct"] if args.delivery == "both" else [args.delivery]
    try:
        deployments = [(kind, delivery) for delivery in deliveries for kind in stacks]
        for n, (kind, delivery) in enumerate(deployments):
            # One MiniStack per deployment: each is an account of its own, as a newcomer's would be. The registry
            # probe runs in the first only.
            if run_stack(kind, delivery, args, checks, probe=n == 0) == "interrupted":
                return 130
    finally:
        print(f"\nlocal-aws: {checks.passed} passed, {len(checks.failed)} failed", flush=True)
        for what in checks.failed:
            print(f"  FAILED: {what}")
    return 1 if (checks.failed and args.check) else 0


def run_stack(kind: str, delivery: str, args: argparse.Namespace, checks: Checks, probe: bool) -> str:
    work = Path(tempfile.mkdtemp(prefix=f"jitp-local-aws-{kind}-"))
    local = MiniStack(work, auth=not args.no_auth)
    try:
        say(f"MiniStack: starting (AUTH={'true' if local.auth else 'false'}, API {local.url}, MQTT/mTLS "
            f"127.0.0.1:{local.mqtt_port}, files in {work}; its Lambda log capture waits for a 100 ms silence, "
            "not 5 ms, so that no line is lost: scripts/ministack_run.py)")
        local.start()
        say(f"MiniStack: ready (process group {local.process.pid})")
        iot = local.client("iot")
        for thing_type in ("sensor", "gateway"):  # infra/README.md: the types jitp.toml names exist beforehand
            iot.create_thing_type(thingTypeName=thing_type)

        say("CA: openssl, registration code, verification certificate, RegisterCACertificate --allow-auto-registration")
        pki = Pki(work / "pki")
        code = iot.get_registration_code()["registrationCode"]
        ca_id = iot.register_ca_certificate(
            caCertificate=pki.ca_pem.read_text(), verificationCertificate=pki.verification_cert(code),
            setAsActive=True, allowAutoRegistration=True,
        )["certificateId"]
        checks.prefix = f"{kind}/{delivery}: "
        checks.expect(ca_id == pki.ca_id(), f"CA id {ca_id[:12]}... is the SHA-256 of its DER, as AWS's")

        if probe:
            say("MiniStack against AWS IoT: the registry calls of tests/README.md's deviation table")
            for what, observed in probe_registry(local, pki, ca_id, work).items():
                checks.expect(observed == MINISTACK_OBSERVED[what], f"MiniStack {what}: {observed} "
                              f"(1.5.33: {MINISTACK_OBSERVED[what]})")
        broker_ca = work / "broker-ca.pem"
        broker_ca.write_text(local.broker_ca())
        broker = Mqtt(broker_ca, local.mqtt_port)
        deployer = deploy_cdk if kind == "cdk" else deploy_sam
        name = deployer(local, ca_id, work, args.pacing == "off", delivery)
        devices = scenario(local, name, pki, ca_id, broker, checks, args.sensors, work) if args.sensors else []
        warm = one_at_a_time(local, pki, broker, checks, 5) if args.sensors else []
        records = audit_lines(local, name)
        if devices:
            summary(f"the {kind} stack, {delivery} delivery", devices, records)
            summary(f"the {kind} stack, {delivery} delivery, one device at a time, warm", warm, [])
        if args.burst:
            devices_burst = burst(local, pki, ca_id, broker, args.burst, checks)
            ids = {d.certificate_id for d in devices_burst}
            summary(f"burst through the {kind} stack, {delivery} delivery, pacing {args.pacing}", devices_burst,
                    [r for r in audit_lines(local, name) if r.get("certificate_id") in ids])
        return "done"
    except KeyboardInterrupt as e:
        print(f"\nlocal-aws: interrupted ({e or 'Ctrl-C'}); stopping MiniStack", flush=True)
        return "interrupted"
    except (Exception, SystemExit) as e:  # the run could not go on: a failure, with its cause
        checks.expect(False, f"the run stopped: {e}")
        return "failed"
    finally:
        local.stop()
        if args.keep:
            print(f"local-aws: files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
if __name__ == "__main__":
    sys.exit(main())
