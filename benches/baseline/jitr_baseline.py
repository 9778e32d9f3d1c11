#!/usr/bin/env python3
"""COMPARISON POINT ONLY -- not part of jitp, never deploy this.

A straightforward boto3 just-in-time registration (JITR) handler, written the way the classic AWS IoT JITR Lambda
samples are: read the certificate, take its CN as the thing name, create the thing and a per-thing policy from a
string template, attach both, activate. It makes the same AWS IoT calls as jitp's first provisioning
(DescribeCertificate, DescribeCACertificate once per process, CreateThing, CreatePolicy, AttachPolicy,
AttachThingPrincipal, UpdateCertificate) but none of jitp's checks: no signature or validity verification against
the CA, no CA profile or subject rules, no thing-name validation, no escaping of certificate values into the policy,
no lint, no idempotent convergence on replays or retries. It exists so that BENCHMARKS.md can put jitp's per-event
wall time beside it on the same moto server (`jitp-moto-compare` runs it).

Usage: jitr_baseline.py --endpoint http://127.0.0.1:PORT --events events.jsonl [--region us-east-1]
Prints one JSON object: {"durations_ms": [...], "errors": N, "calls": N}.
"""

import argparse
import json
import os
import sys
import time

import boto3
from cryptography import x509
from cryptography.x509.oid import NameOID

ACCOUNT = "123456789012"

# The repository's sensor policy (templates/policies/sensor.json.tera), as a plain string template.
POLICY = """{{
  "Version": "2012-10-17",
  "Statement": [
    {{"Sid": "ConnectAsOwnThing", "Effect": "Allow", "Action": "iot:Connect",
      "Resource": "{arn}:client/{thing}"}},
    {{"Sid": "PublishOwnTopics", "Effect": "Allow", "Action": "iot:Publish",
      "Resource": ["{arn}:topic/things/{thing}/telemetry", "{arn}:topic/things/{thing}/events/*",
                   "{arn}:topic/$aws/things/{thing}/shadow/*", "{arn}:topic/$aws/things/{thing}/jobs/*"]}},
    {{"Sid": "SubscribeOwnTopics", "Effect": "Allow", "Action": "iot:Subscribe",
      "Resource": ["{arn}:topicfilter/things/{thing}/commands/*", "{arn}:topicfilter/$aws/things/{thing}/shadow/*",
                   "{arn}:topicfilter/$aws/things/{thing}/jobs/*"]}},
    {{"Sid": "ReceiveOwnTopics", "Effect": "Allow", "Action": "iot:Receive",
      "Resource": ["{arn}:topic/things/{thing}/commands/*", "{arn}:topic/$aws/things/{thing}/shadow/*",
                   "{arn}:topic/$aws/things/{thing}/jobs/*"]}}
  ]
}}"""

CA_CACHE = {}
CALLS = 0


def call(fn, **kwargs):
    global CALLS
    CALLS += 1
    return fn(**kwargs)


def handler(event, iot, region):
    """The JITR handler: one certificate-registered event."""
    cert_id = event["certificateId"]
    ca_id = event["caCertificateId"]
    desc = call(iot.describe_certificate, certificateId=cert_id)["certificateDescription"]
    if desc["status"] == "ACTIVE":
        return
    if ca_id not in CA_CACHE:
        CA_CACHE[ca_id] = call(iot.describe_ca_certificate, certificateId=ca_id)["certificateDescription"]
    cert = x509.load_pem_x509_certificate(desc["certificatePem"].encode())
    thing = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    principal = desc["certificateArn"]
    call(
        iot.create_thing,
        thingName=thing,
        thingTypeName="sensor",
        attributePayload={"attributes": {"batch": "unassigned", "profile": "sensors", "jitp_certificate": cert_id}},
    )
    policy_name = "jitr-" + thing
    arn = "arn:aws:iot:%s:%s" % (region, ACCOUNT)
    call(iot.create_policy, policyName=policy_name, policyDocument=POLICY.format(arn=arn, thing=thing))
    call(iot.attach_policy, policyName=policy_name, target=principal)
    call(iot.attach_thing_principal, thingName=thing, principal=principal)
    call(iot.update_certificate, certificateId=cert_id, newStatus="ACTIVE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--events", required=True, help="one registration event (JSON) per line")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    # Built once, as a Lambda would at init.
    iot = boto3.client("iot", endpoint_url=args.endpoint, region_name=args.region)
    with open(args.events) as f:
        events = [json.loads(line) for line in f if line.strip()]
    durations, errors = [], 0
    for event in events:
        started = time.perf_counter()
        try:
            handler(event, iot, args.region)
        except Exception as e:  # noqa: BLE001 - a comparison harness counts failures, it does not handle them
            errors += 1
            print("baseline error: %r" % (e,), file=sys.stderr)
        durations.append((time.perf_counter() - started) * 1000.0)
    print(json.dumps({"durations_ms": durations, "errors": errors, "calls": CALLS}))


if __name__ == "__main__":
    main()
