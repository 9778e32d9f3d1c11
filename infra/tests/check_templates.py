#!/usr/bin/env python3
"""Offline checks of the two jitp templates: the SAM template and the template synthesized from the CDK app.

    python infra/tests/check_templates.py --sam infra/sam/template.yaml --cdk <cdk.out>/Jitp.template.json

Run with the infra virtualenv (it needs cfn-lint, whose package carries the IAM action and resource-type data of
the Service Authorization Reference: cfnlint/data/AdditionalSpecs/Policies.json).

What it checks:
  * infra/iam-actions.json (the one list of the AWS IoT actions jitp calls, with each one's resource types) against
    the reference: real actions, resource types the reference gives each, '*' only where it gives none.
  * IAM, in both templates: no wildcard action; the function may call exactly the AWS IoT actions of the list, each
    on exactly the resources the list gives it (no extra, none missing); every
    AWS IoT resource ARN is of a resource type the action is authorized on; `Resource: "*"` only for an action that
    supports no resource-level permission; no other statement uses `Resource: "*"`.
  * Parity: both templates grant the same AWS IoT actions on the same resources.
  * The drift report: its function's role (a role whose logical id starts with DriftFunctionRole) grants exactly
    drift_actions and is not counted as the provisioning function's; both functions' JITP_QUOTA_INSTANCES count both
    functions' concurrency; the state machine's definition is the same in both templates, its Map's
    MaxConcurrency the drift function's reserved concurrency; a schedule and the drift alarms in both.
  * S3 CRLs: the one S3 statement (ReadCrlObjects) is s3:GetObject, authorized on the reference's object resource
    type, on object ARNs without a wildcard; the SAM template's (from its CrlObjects parameter) evaluates to exactly
    the CDK template's for the same objects, in each partition, and is absent when CrlObjects is empty.
  * The connect guard (when a template has it: SAM always, conditionally; the CDK app with jitp:enableGuard): its
    role (a role whose logical id starts with GuardFunctionRole) grants exactly guard_actions and is counted as
    neither function's; it reads the provisioning function's S3 CRL objects; AWS IoT may invoke it only for this
    account's domain configuration; the domain configuration is X.509 with its ClientCertificateConfig on the guard;
    an alarm on its refusals. SAM and CDK grant the guard the same.
  * SAM template structure: the topic rules, the queue wiring, the direct-mode permissions, log retention, alarms.
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from cfnlint.decode import decode

IAM_ACTIONS_FILE = Path(__file__).resolve().parents[1] / "iam-actions.json"


def load_iam_actions(path: Path) -> dict[str, Any]:
    """infra/iam-actions.json: {"resources": {type: ARN resource part}, "actions": {action: [type, ...] or ["*"]}}."""
    data = json.loads(path.read_text())
    assert set(data) >= {"resources", "actions"}, f"{path}: needs resources and actions"
    return data


def expected_grants(iam: dict[str, Any], policy_prefix: str, section: str = "actions") -> dict[str, list[str]]:
    """Per action, the resource tails (after arn:X:iot:X:X:) or '*' that iam-actions.json grants it."""
    out = {}
    for action, types in iam[section].items():
        out[action] = sorted("*" if t == "*" else iam["resources"][t].replace("${PolicyPrefix}", policy_prefix)
                             for t in types)
    return out


RESULTS: list[tuple[str, str | None]] = []


def check(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        try:
            fn()
            RESULTS.append((name, None))
            print(f"ok   {name}")
        except AssertionError as err:
            RESULTS.append((name, str(err) or "assertion failed"))
            print(f"FAIL {name}: {err}")
        return fn

    return register


# ---- loading ---------------------------------------------------------------------------------------------------
def load(path: str) -> dict[str, Any]:
    template, matches = decode(path)
    if matches or template is None:
        raise SystemExit(f"{path}: cannot parse: {matches}")
    return template


def iot_reference() -> dict[str, Any]:
    return service_reference("iot")


def service_reference(service: str) -> dict[str, Any]:
    data = importlib.resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text()
    return json.loads(data)[service]


# ---- intrinsic-function helpers --------------------------------------------------------------------------------
def literal(value: Any) -> str | None:
    """The text of an ARN written as a string, Fn::Sub or Fn::Join (placeholders kept as ${...}); None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(p if isinstance(p, str) else "${token}" for p in parts)
        if fn == "Ref":
            return "${" + arg + "}"
    return None


def branches(value: Any) -> Iterator[Any]:
    """Both sides of every Fn::If, recursively; AWS::NoValue dropped."""
    if isinstance(value, dict) and list(value) == ["Fn::If"]:
        for side in value["Fn::If"][1:]:
            yield from branches(side)
    elif isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


DRIFT_ROLE = "DriftFunctionRole"
GUARD_ROLE = "GuardFunctionRole"


def is_drift_role(role_id: str) -> bool:
    """The drift report function's role: SAM's DriftFunctionRole, the CDK's DriftFunctionRole<hash>."""
    return role_id.startswith(DRIFT_ROLE)


def is_guard_role(role_id: str) -> bool:
    """The connect guard function's role: SAM's GuardFunctionRole, the CDK's GuardFunctionRole<hash>."""
    return role_id.startswith(GUARD_ROLE)


def role_filter(which: str) -> Callable[[str], bool]:
    """The roles of `which` function: main (provisioning), drift or guard."""
    if which == "drift":
        return is_drift_role
    if which == "guard":
        return is_guard_role
    return lambda rid: not is_drift_role(rid) and not is_guard_role(rid)


def identity_statements(template: dict[str, Any], roles: Callable[[str], bool] = lambda _: True) -> list[dict[str, Any]]:
    """Allow statements of identity policies (AWS::IAM::Policy, ManagedPolicy, Role.Policies) attached to a role
    `roles` accepts (every role by default), Fn::If expanded."""
    documents = []
    for rid, resource in template.get("Resources", {}).items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            attached = [r["Ref"] for r in props.get("Roles", []) if isinstance(r, dict) and "Ref" in r]
            if any(roles(r) for r in attached) or (not attached and roles("")):
                documents.append(props["PolicyDocument"])
        elif kind == "AWS::IAM::Role" and roles(rid):
            documents.extend(p["PolicyDocument"] for p in props.get("Policies", []))
    statements = []
    for document in documents:
        for entry in as_list(document["Statement"]):
            for statement in branches(entry):
                if statement.get("Effect") == "Allow":
                    statements.append(statement)
    return statements


def arn_regex(arn_format: str) -> re.Pattern[str]:
    pattern = re.escape(arn_format).replace(r"\.\*", ".*")
    pattern = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]+", pattern)
    return re.compile(pattern)


def normalize(arn: str) -> str:
    return re.sub(r"\$\{[^}]+\}", "X", arn)


# ---- IAM checks, per template ----------------------------------------------------------------------------------
def iot_grants(template: dict[str, Any], drift: bool | str = False) -> dict[str, set[str]]:
    """The AWS IoT grants of the provisioning function's roles, or (drift) of the drift report function's role, or
    (drift="guard") of the connect guard's."""
    which = drift if isinstance(drift, str) else ("drift" if drift else "main")
    grants: dict[str, set[str]] = {}
    for statement in identity_statements(template, role_filter(which)):
        for action in as_list(statement["Action"]):
            if action.startswith("iot:"):
                for resource in as_list(statement["Resource"]):
                    text = literal(resource)
                    assert text is not None, f"{action}: resource {resource!r} is not a literal ARN"
                    grants.setdefault(action, set()).add(normalize(text))
    return grants


def shape(template: dict[str, Any], drift: bool | str = False) -> dict[str, list[str]]:
    """Per AWS IoT action, its resources without the arn:PARTITION:iot:REGION:ACCOUNT: head (placeholders are X)."""
    return {a: sorted(re.sub(r"^arn:X:iot:X:X:", "", r) for r in rs) for a, rs in iot_grants(template, drift).items()}


def check_iam_list(iam: dict[str, Any], reference: dict[str, Any]) -> None:
    actions_ref = reference["Actions"]

    @check("iam-actions.json: every action of every list (the function's, the operator's, the drift report's) is an "
           "AWS IoT action, on resource types the reference gives it")
    def _() -> None:
        listed = [item for section in ("actions", "operator_actions", "drift_actions") for item in iam[section].items()]
        for action, types in listed:
            assert action.startswith("iot:") and "*" not in action, action
            known = actions_ref.get(action.split(":", 1)[1].lower())
            assert known is not None, f"{action} is not an AWS IoT action"
            allowed = known.get("Resources", [])
            if types == ["*"]:
                assert not allowed, f"{action} on '*' but the reference allows {allowed}: use those"
            else:
                assert types and "*" not in types, f"{action}: {types}"
                assert set(types) <= set(allowed), f"{action}: {sorted(set(types) - set(allowed))} not in {allowed}"

    @check("iam-actions.json: every resource type is one of the reference's, with a narrowed ARN")
    def _() -> None:
        for rtype, tail in iam["resources"].items():
            assert rtype in reference["Resources"], rtype
            assert tail.endswith("*") and tail.startswith(f"{rtype}/"), (rtype, tail)

    @check("iam-actions.json: no iot:ListPrincipalThings (nothing calls it)")
    def _() -> None:
        assert "iot:ListPrincipalThings" not in iam["actions"]


def check_iam(
    name: str, template: dict[str, Any], reference: dict[str, Any], iam: dict[str, Any], policy_prefix: str
) -> None:
    actions_ref = reference["Actions"]
    resource_types = reference["Resources"]

    @check(f"{name}: no wildcard action anywhere")
    def _() -> None:
        for statement in identity_statements(template):
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"wildcard action {action}"

    @check(f"{name}: the function may call exactly the AWS IoT actions of infra/iam-actions.json")
    def _() -> None:
        granted, listed = set(iot_grants(template)), set(iam["actions"])
        assert granted == listed, f"extra {sorted(granted - listed)}, missing {sorted(listed - granted)}"

    @check(f"{name}: each AWS IoT action on exactly the resources infra/iam-actions.json gives it")
    def _() -> None:
        actual = shape(template)
        expected = expected_grants(iam, policy_prefix)
        wrong = {a: {"template": actual.get(a), "iam-actions.json": r} for a, r in expected.items() if actual.get(a) != r}
        assert not wrong, json.dumps(wrong, indent=1)

    @check(f"{name}: every AWS IoT ARN is of a resource type its action is authorized on")
    def _() -> None:
        for action, arns in iot_grants(template).items():
            known = actions_ref.get(action.split(":", 1)[1].lower())
            assert known is not None, f"{action} is not an AWS IoT action"
            allowed = known.get("Resources", [])
            for arn in arns:
                if arn == "*":
                    assert not allowed, f"{action} on '*' but it supports resource types {allowed}"
                    continue
                fits = [t for t in allowed for f in resource_types[t]["ARNFormats"] if arn_regex(f).fullmatch(arn)]
                assert fits, f"{action} on {arn}: not one of its resource types {allowed}"

    @check(f"{name}: Resource '*' only where AWS allows nothing narrower")
    def _() -> None:
        for statement in identity_statements(template):
            if "*" in as_list(statement["Resource"]):
                for action in as_list(statement["Action"]):
                    assert action.startswith("iot:"), f"{action} on '*'"
                    assert not actions_ref[action.split(":", 1)[1].lower()].get("Resources"), f"{action} on '*'"


# ---- the drift report, per template --------------------------------------------------------------------------
def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def functions(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the provisioning function, the drift function) as AWS::Lambda::Function or AWS::Serverless::Function."""
    found = {**resources_of(template, "AWS::Lambda::Function"), **resources_of(template, "AWS::Serverless::Function")}
    # CDK adds a log-retention or custom-resource function only for features this stack does not use.
    drift = [v for k, v in found.items() if k.startswith("DriftFunction")]
    main = [v for k, v in found.items() if k.startswith("Function")]
    assert len(drift) == 1 and len(main) == 1, sorted(found)
    return main[0], drift[0]


def definition(template: dict[str, Any], drift_concurrency: Any) -> dict[str, Any]:
    """The drift state machine's definition, the function's ARN written FUNCTION, the concurrency substituted."""
    machines = resources_of(template, "AWS::StepFunctions::StateMachine")
    assert len(machines) == 1, sorted(machines)
    (machine,) = machines.values()
    text = machine["Properties"]["DefinitionString"]
    if isinstance(text, dict) and "Fn::Sub" in text:
        body = text["Fn::Sub"] if isinstance(text["Fn::Sub"], str) else text["Fn::Sub"][0]
        body = body.replace("${DriftConcurrency}", str(drift_concurrency))
        body = re.sub(r"\$\{DriftFunction\.Arn\}", "FUNCTION", body)
    else:
        sep, parts = text["Fn::Join"]
        body = sep.join(p if isinstance(p, str) else "FUNCTION" for p in parts)
    return json.loads(body)


def check_drift(name: str, template: dict[str, Any], iam: dict[str, Any], policy_prefix: str) -> dict[str, Any]:
    main, drift = functions(template)

    @check(f"{name}: the drift function's role grants exactly drift_actions, each on its resources")
    def _() -> None:
        actual = shape(template, drift=True)
        expected = expected_grants(iam, policy_prefix, "drift_actions")
        assert actual == expected, json.dumps({"template": actual, "drift_actions": expected}, indent=1)
        for statement in identity_statements(template, is_drift_role):
            for action in as_list(statement["Action"]):
                assert action.startswith("iot:") or action in (
                    "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject"), action

    @check(f"{name}: the drift function reads exactly the S3 CRL objects the provisioning function reads")
    def _() -> None:
        def objects(roles: Callable[[str], bool]) -> list[Any]:
            return sorted((json.dumps(s["Resource"], sort_keys=True) for s in identity_statements(template, roles)
                           if "s3:GetObject" in as_list(s["Action"])))
        drift_objects = objects(is_drift_role)
        main_objects = objects(lambda r: not is_drift_role(r) and r.startswith("FunctionRole"))
        assert drift_objects == main_objects, {"drift": drift_objects, "function": main_objects}

    @check(f"{name}: the drift function is jitp-drift, read-only, 900 s, paced with the provisioning function")
    def _() -> None:
        props, env = drift["Properties"], drift["Properties"]["Environment"]["Variables"]
        assert props["Timeout"] == 900, props["Timeout"]
        assert env["JITP_QUOTA_INSTANCES"] == main["Properties"]["Environment"]["Variables"]["JITP_QUOTA_INSTANCES"]
        assert env["JITP_POLICY_PREFIX"] == main["Properties"]["Environment"]["Variables"]["JITP_POLICY_PREFIX"]
        assert env["JITP_POLICY_MODE"] == main["Properties"]["Environment"]["Variables"]["JITP_POLICY_MODE"]
        assert "JITP_DRIFT_STACK" in env
        assert env["JITP_CRL_REFRESH_SECONDS"] == main["Properties"]["Environment"]["Variables"]["JITP_CRL_REFRESH_SECONDS"]
        role = props["Role"]["Fn::GetAtt"][0]
        assert is_drift_role(role), role

    @check(f"{name}: a schedule starts the drift state machine; alarms on drift, a failed and a missing report")
    def _() -> None:
        rules = resources_of(template, "AWS::Events::Rule")
        assert len(rules) == 1, sorted(rules)
        (rule,) = rules.values()
        targets = rule["Properties"]["Targets"]
        machine_id = next(iter(resources_of(template, "AWS::StepFunctions::StateMachine")))
        assert targets[0]["Arn"] == {"Ref": machine_id}, targets
        alarms = {a["Properties"].get("MetricName"): a["Properties"] for a in
                  resources_of(template, "AWS::CloudWatch::Alarm").values()}
        assert alarms["DevicesDrifted"]["Namespace"] == "jitp/Drift", alarms["DevicesDrifted"]
        assert alarms["DevicesDrifted"]["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarms["ExecutionsFailed"]["Namespace"] == "AWS/States"
        assert alarms["Devices"]["TreatMissingData"] == "breaching"

    return {"definition": definition, "rule": next(iter(resources_of(template, "AWS::Events::Rule").values()), None)}
# ---- the connect guard, per template -------------------------------------------------------------------------
def check_guard(name: str, template: dict[str, Any], iam: dict[str, Any]) -> bool:
    """The guard's checks; False (and nothing checked) when the template has no guard."""
    roles = [rid for rid, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role" and is_guard_role(rid)]
    if not roles:
        return False
    found = {**resources_of(template, "AWS::Lambda::Function"), **resources_of(template, "AWS::Serverless::Function")}
    guards = [(k, v) for k, v in found.items() if k.startswith("GuardFunction")]

    @check(f"{name}: the guard's role grants exactly guard_actions, each on its resources; logs and S3 CRLs besides")
    def _() -> None:
        actual = shape(template, "guard")
        expected = expected_grants(iam, "X", "guard_actions")
        assert actual == expected, json.dumps({"template": actual, "guard_actions": expected}, indent=1)
        for statement in identity_statements(template, is_guard_role):
            for action in as_list(statement["Action"]):
                assert action.startswith("iot:") or action in (
                    "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject"), action

    @check(f"{name}: the guard reads exactly the S3 CRL objects the provisioning function reads")
    def _() -> None:
        def objects(roles: Callable[[str], bool]) -> list[Any]:
            return sorted((json.dumps(s["Resource"], sort_keys=True) for s in identity_statements(template, roles)
                           if "s3:GetObject" in as_list(s["Action"])))
        main_objects = objects(lambda r: r.startswith("FunctionRole"))
        assert objects(is_guard_role) == main_objects, {"guard": objects(is_guard_role), "function": main_objects}

    @check(f"{name}: the guard is jitp-guard, with the provisioning function's CRL refresh period")
    def _() -> None:
        assert len(guards) == 1, sorted(found)
        (gid, guard), = guards
        env = guard["Properties"]["Environment"]["Variables"]
        main, _ = functions(template)
        assert env["JITP_CRL_REFRESH_SECONDS"] == main["Properties"]["Environment"]["Variables"]["JITP_CRL_REFRESH_SECONDS"]
        assert {"JITP_CONFIG", "JITP_GUARD_MODE", "JITP_GUARD_STACK"} <= set(env), sorted(env)
        assert is_guard_role(guard["Properties"]["Role"]["Fn::GetAtt"][0])

    @check(f"{name}: AWS IoT may invoke the guard only for this account's domain configuration")
    def _() -> None:
        (gid, _), = guards
        permissions = [p["Properties"] for p in resources_of(template, "AWS::Lambda::Permission").values()
                       if gid in json.dumps(p["Properties"]["FunctionName"])]
        assert len(permissions) == 1, permissions
        props = permissions[0]
        assert props["Principal"] == "iot.amazonaws.com" and props["Action"] == "lambda:InvokeFunction"
        assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}, props
        assert ":domainconfiguration/" in json.dumps(props["SourceArn"]), props["SourceArn"]

    @check(f"{name}: a domain configuration, X.509, whose client certificate validation calls the guard")
    def _() -> None:
        (gid, _), = guards
        configs = resources_of(template, "AWS::IoT::DomainConfiguration")
        assert len(configs) == 1, sorted(configs)
        (config,) = configs.values()
        props = config["Properties"]
        assert props["AuthenticationType"] == "AWS_X509" and props["ServiceType"] == "DATA", props
        assert props["ClientCertificateConfig"]["ClientCertificateCallbackArn"] == {"Fn::GetAtt": [gid, "Arn"]}

    @check(f"{name}: an alarm on the guard's refusals (jitp/Guard Refused by Stack)")
    def _() -> None:
        alarms = [a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()
                  if a["Properties"].get("MetricName") == "Refused"]
        assert len(alarms) == 1 and alarms[0]["Namespace"] == "jitp/Guard", alarms
        assert [d["Name"] for d in alarms[0]["Dimensions"]] == ["Stack"], alarms[0]["Dimensions"]

    return True


# ---- S3 CRLs --------------------------------------------------------------------------------------------------
def s3_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in identity_statements(template) if any(a.startswith("s3:") for a in as_list(s["Action"]))]


def evaluate(value: Any, params: dict[str, str]) -> Any:
    """The value of the intrinsics the SAM S3 grant uses (Ref, Fn::If on the partition, Fn::Split, Fn::Join)."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Fn::Split":
            return evaluate(arg[1], params).split(arg[0])
        if fn == "Fn::Join":
            parts = evaluate(arg[1], params) if isinstance(arg[1], dict) else [evaluate(p, params) for p in arg[1]]
            return arg[0].join(parts)
        if fn == "Fn::If":
            partition = params["AWS::Partition"]
            taken = {"IsChinaPartition": partition == "aws-cn", "IsGovCloudPartition": partition == "aws-us-gov"}
            return evaluate(arg[1] if taken[arg[0]] else arg[2], params)
        raise AssertionError(f"unexpected intrinsic {fn}")
    return value


def check_s3(name: str, template: dict[str, Any], reference: dict[str, Any]) -> None:
    formats = reference["Resources"]["object"]["ARNFormats"]

    @check(f"{name}: S3 only s3:GetObject, on the object resource type, on exact object ARNs")
    def _() -> None:
        assert "object" in reference["Actions"]["getobject"]["Resources"], "GetObject is not on object"
        for statement in s3_statements(template):
            assert as_list(statement["Action"]) == ["s3:GetObject"], statement["Action"]
            if name == "sam":
                continue  # its ARNs are computed from CrlObjects: checked by evaluation below
            for resource in as_list(statement["Resource"]):
                arn = normalize(literal(resource) or "")
                assert "*" not in arn and "?" not in arn, f"wildcard in {arn}"
                assert any(arn_regex(f).fullmatch(arn) for f in formats), f"{arn} is not an S3 object ARN"


def check_s3_sam(sam: dict[str, Any], cdk_objects: list[str]) -> None:
    @check("sam: ReadCrlObjects is conditional on CrlObjects and evaluates to exactly its objects' ARNs")
    def _() -> None:
        functions = [r for r in sam["Resources"].values() if r.get("Type") == "AWS::IAM::Role"]
        entries = [e for r in functions for p in r["Properties"].get("Policies", []) for e in as_list(p["PolicyDocument"]["Statement"])]
        conditional = [e for e in entries if isinstance(e, dict) and "Fn::If" in e and e["Fn::If"][1].get("Sid") == "ReadCrlObjects"]
        # One in the provisioning function's role, one in the drift report's, one in the guard's: all three decide
        # with the same CRLs.
        assert len(conditional) == 3, "a conditional ReadCrlObjects statement in each function's role"
        assert sam["Conditions"]["HasCrlObjects"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CrlObjects"}, ""]}]}
        samples = [sorted(set(cdk_objects)) or ["s3://acme-pki/crl/a.crl"],
                   ["s3://acme-pki/a.crl", "s3://b.c-d/x/y=z.crl"]]
        for entry in conditional:
            condition, statement, otherwise = entry["Fn::If"]
            assert condition == "HasCrlObjects" and otherwise == {"Ref": "AWS::NoValue"}
            for objects in samples:
                for partition in ("aws", "aws-cn", "aws-us-gov"):
                    params = {"CrlObjects": ",".join(objects), "AWS::Partition": partition}
                    got = evaluate(statement["Resource"], params)
                    want = [f"arn:{partition}:s3:::{o.removeprefix('s3://')}" for o in objects]
                    assert got == want, f"{partition}: {got} != {want}"
        pattern = re.compile(sam["Parameters"]["CrlObjects"]["AllowedPattern"])
        for good in ["", "s3://acme-pki/crl/a.crl", "s3://acme-pki/a.crl,s3://b.c-d/x/y=z.crl"]:
            assert pattern.fullmatch(good), f"CrlObjects refuses {good!r}"
        for bad in ["s3://acme-pki/*", "s3://acme-pki", "S3://acme-pki/a", "s3://acme-pki/a b", "s3://a/k",
                    "s3://acme-pki/a,", "arn:aws:s3:::acme-pki/a", "s3://acme-pki/a?x=1", "s3://acme-pki/${x}"]:
            assert not pattern.fullmatch(bad), f"CrlObjects accepts {bad!r}"


def cdk_crl_objects(cdk: dict[str, Any]) -> list[str]:
    """The s3:// URIs a synthesized CDK template grants GetObject on."""
    out = []
    for statement in s3_statements(cdk):
        for resource in as_list(statement["Resource"]):
            arn = normalize(literal(resource) or "")
            out.append("s3://" + arn.removeprefix("arn:X:s3:::"))
    return out


# ---- SAM structure -------------------------------------------------------------------------------------------
def check_sam(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    of_type = lambda kind: {k: v for k, v in resources.items() if v["Type"] == kind}  # noqa: E731

    @check("sam: one topic rule per CA slot on $aws/events/certificates/registered/<id>, SQL 2016-03-23")
    def _() -> None:
        rules = of_type("AWS::IoT::TopicRule")
        assert len(rules) == 5, len(rules)
        for i, (rid, rule) in enumerate(sorted(rules.items())):
            payload = rule["Properties"]["TopicRulePayload"]
            assert payload["AwsIotSqlVersion"] == "2016-03-23"
            sql, subs = payload["Sql"]["Fn::Sub"]
            assert sql == "SELECT * FROM '$aws/events/certificates/registered/${CaId}'", sql
            assert subs["CaId"]["Fn::Select"][0] == i, (rid, subs)
            assert ("Condition" in rule) == (i > 0), rid
            actions = payload["Actions"][0]["Fn::If"]
            assert actions[0] == "IsDirect" and "Lambda" in actions[1] and "Sqs" in actions[2], actions
            assert "CloudwatchLogs" in payload["ErrorAction"], payload["ErrorAction"]

    @check("sam: direct mode grants lambda:InvokeFunction per rule, scoped by SourceArn and SourceAccount")
    def _() -> None:
        permissions = {k: v for k, v in of_type("AWS::Lambda::Permission").items() if not k.startswith("Guard")}
        assert len(permissions) == 5
        for pid, permission in permissions.items():
            props = permission["Properties"]
            assert props["Principal"] == "iot.amazonaws.com" and props["Action"] == "lambda:InvokeFunction"
            rule_id = props["SourceArn"]["Fn::GetAtt"][0]
            assert resources[rule_id]["Type"] == "AWS::IoT::TopicRule", pid
            assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}, pid
            assert permission["Condition"].endswith("Direct") or permission["Condition"] == "IsDirect", pid

    @check("sam: SQS event source with batch size, max concurrency, ReportBatchItemFailures; DLQ after N receives")
    def _() -> None:
        esm = resources["EventSourceMapping"]["Properties"]
        assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert esm["BatchSize"] == 10
        assert esm["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
        queue = resources["EventQueue"]["Properties"]
        assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
        timeout = resources["Function"]["Properties"]["Timeout"]
        assert queue["VisibilityTimeout"] >= 6 * timeout, (queue["VisibilityTimeout"], timeout)
        for q in of_type("AWS::SQS::Queue").values():
            assert q["Properties"]["KmsMasterKeyId"] == "alias/aws/sqs"

    @check("sam: function is provided.al2023 arm64 built by cargo-lambda, JSON logs, reserved concurrency")
    def _() -> None:
        fn = resources["Function"]
        assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
        assert fn["Metadata"]["BuildProperties"]["Binary"] == "jitp-lambda"
        props = fn["Properties"]
        assert props["Runtime"] == "provided.al2023" and props["Architectures"] == ["arm64"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["ReservedConcurrentExecutions"] == {"Ref": "MaxConcurrency"}
        env = props["Environment"]["Variables"]
        assert set(env) == {"JITP_CONFIG", "JITP_POLICY_MODE", "JITP_POLICY_PREFIX", "JITP_ON_REJECT",
                            "JITP_QUOTA_INSTANCES", "JITP_CRL_REFRESH_SECONDS", "RUST_LOG"}
        # Each instance's share of the quotas is 1/(MaxConcurrency + DriftConcurrency): both functions' reserved
        # concurrency, so provisioning and the drift report together stay under every quota.
        assert env["JITP_QUOTA_INSTANCES"] == {
            "Fn::FindInMap": ["QuotaInstances", {"Ref": "MaxConcurrency"}, {"Ref": "DriftConcurrency"}]}
        assert env["JITP_CRL_REFRESH_SECONDS"] == {"Ref": "CrlRefreshSeconds"}

    @check("sam: the QuotaInstances table is MaxConcurrency + DriftConcurrency for every value either can take")
    def _() -> None:
        table = sam["Mappings"]["QuotaInstances"]
        params = sam["Parameters"]
        maxes = range(params["MaxConcurrency"]["MinValue"], params["MaxConcurrency"]["MaxValue"] + 1)
        drifts = [int(v) for v in params["DriftConcurrency"]["AllowedValues"]]
        assert sorted(int(k) for k in table) == list(maxes), sorted(table)
        for m in maxes:
            assert {int(k): v for k, v in table[str(m)].items()} == {d: m + d for d in drifts}, (m, table[str(m)])
        drift = resources["DriftFunction"]["Properties"]
        assert drift["ReservedConcurrentExecutions"] == {"Ref": "DriftConcurrency"}
        assert resources["DriftFunction"]["Metadata"]["BuildProperties"]["Binary"] == "jitp-drift"

    @check("sam: the drift schedule and its missing-report alarm exist only with a DriftSchedule (default daily)")
    def _() -> None:
        assert sam["Parameters"]["DriftSchedule"]["Default"] == "rate(1 day)"
        # The same schedules in both: the CDK app's DRIFT_SCHEDULE is SAM's AllowedPattern.
        config_ts = (Path(__file__).resolve().parents[1] / "cdk" / "lib" / "config.ts").read_text()
        cdk_pattern = re.search(r"export const DRIFT_SCHEDULE = /(.*)/;", config_ts)
        assert cdk_pattern and cdk_pattern.group(1) == sam["Parameters"]["DriftSchedule"]["AllowedPattern"], cdk_pattern
        pattern = re.compile(sam["Parameters"]["DriftSchedule"]["AllowedPattern"])
        for good in ["", "rate(1 day)", "rate(1 minute)", "rate(30 minutes)", "rate(1 hour)", "rate(24 hours)", "cron(0 3 * * ? *)"]:
            assert pattern.fullmatch(good), good
        for bad in ["rate(2 days)", "rate(1 minutes)", "rate(5 minute)", "rate(1 hours)", "rate(25 hours)", "rate(0 minutes)"]:
            assert not pattern.fullmatch(bad), bad
        assert resources["DriftScheduleRule"]["Condition"] == "HasDriftSchedule"
        assert resources["DriftScheduleRule"]["Properties"]["ScheduleExpression"] == {"Ref": "DriftSchedule"}
        assert resources["DriftReportMissingAlarm"]["Condition"] == "HasDriftSchedule"
        assert resources["DriftAlarm"]["Properties"]["Threshold"] == {"Ref": "DriftThreshold"}

    @check("sam: every log group has a retention")
    def _() -> None:
        groups = of_type("AWS::Logs::LogGroup")
        assert len(groups) == 5
        for gid, group in groups.items():
            assert group["Properties"].get("RetentionInDays") == 365, gid

    @check("sam: metric filters on audit outcomes, DUPLICATE_THING and DUPLICATE_CLIENT_ID")
    def _() -> None:
        patterns = {f["Properties"]["FilterPattern"] for f in of_type("AWS::Logs::MetricFilter").values()}
        for p in ('{ $.outcome = "PROVISIONED" }', '{ $.outcome = "REJECTED" }', '{ $.outcome = "ERROR" }',
                  '{ $.outcome = "HELD" }', '{ $.reason = "DUPLICATE_THING" }'):
            assert p in patterns, p
        assert any('$.reason = "DUPLICATE_CLIENT_ID"' in p for p in patterns)

    @check("sam: alarms on rejections, held devices, audit errors, function errors, DLQ depth, rule errors, duplicate client ids, drift, guard")
    def _() -> None:
        names = sorted(a["Properties"]["MetricName"] for a in of_type("AWS::CloudWatch::Alarm").values())
        assert names == ["ApproximateNumberOfMessagesVisible", "Devices", "DevicesDrifted", "DuplicateClientId",
                         "Errors", "Errors", "Errors", "ExecutionsFailed", "Held", "Refused", "Rejected",
                         "RuleActionErrors"], names

    @check("sam: AWS IoT logging at the chosen level (default ERROR) with its own role")
    def _() -> None:
        logging = resources["IotLogging"]["Properties"]
        assert logging["DefaultLogLevel"] == {"Ref": "IotLogLevel"}
        assert sam["Parameters"]["IotLogLevel"]["Default"] == "ERROR"
        assert logging["RoleArn"] == {"Fn::GetAtt": ["IotLoggingRole", "Arn"]}

    @check("sam: every checkov suppression carries a reason")
    def _() -> None:
        skips = 0
        for rid, resource in resources.items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                skips += 1
                assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (rid, skip)
                assert len(skip.get("comment", "")) > 40, (rid, skip["id"])
        assert skips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sam", required=True)
    parser.add_argument("--cdk", required=True, nargs="+", help="one or more synthesized CDK templates")
    parser.add_argument("--iam", type=Path, default=IAM_ACTIONS_FILE, help="the list (default infra/iam-actions.json)")
    args = parser.parse_args()

    reference = iot_reference()
    iam = load_iam_actions(args.iam)
    check_iam_list(iam, reference)
    sam = load(args.sam)
    # The SAM policy prefix is a parameter, ${PolicyPrefix}, which normalizes to X.
    check_iam("sam", sam, reference, iam, "X")
    check_drift("sam", sam, iam, "X")
    assert check_guard("sam", sam, iam), "the SAM template has the guard (conditional on EnableGuard)"
    sam_guard_shape = shape(sam, "guard")
    guarded_cdk = False
    # The SAM template's default DriftConcurrency, the CDK app's default driftConcurrency.
    sam_definition = definition(sam, 1)
    sam_drift_shape = {a: [r.replace("policy/X*", "policy/jitp-*") for r in rs] for a, rs in shape(sam, True).items()}

    # The SAM policy prefix is a parameter (policy/X*); the CDK templates are synthesized with the default, jitp-.
    sam_shape = {a: [r.replace("policy/X*", "policy/jitp-*") for r in rs] for a, rs in shape(sam).items()}
    s3_reference = service_reference("s3")
    check_s3("sam", sam, s3_reference)
    crl_objects: list[str] = []
    for path in args.cdk:
        name = f"cdk ({path})"
        cdk = load(path)
        check_iam(name, cdk, reference, iam, "jitp-")
        check_s3(name, cdk, s3_reference)
        crl_objects = crl_objects or cdk_crl_objects(cdk)

        @check(f"parity: SAM and {name} grant the same AWS IoT actions on the same resources")
        def _() -> None:
            assert sam_shape == shape(cdk), json.dumps({"sam": sam_shape, "cdk": shape(cdk)}, indent=1)

        check_drift(name, cdk, iam, "jitp-")
        if check_guard(name, cdk, iam):
            guarded_cdk = True

            @check(f"parity: SAM and {name}: the same guard role grants")
            def _() -> None:
                assert sam_guard_shape == shape(cdk, "guard"), json.dumps({"sam": sam_guard_shape, "cdk": shape(cdk, "guard")})

        @check(f"parity: SAM and {name}: the same drift role grants and state machine definition")
        def _() -> None:
            assert sam_drift_shape == shape(cdk, True), json.dumps({"sam": sam_drift_shape, "cdk": shape(cdk, True)})
            main, drift = functions(cdk)
            concurrency = drift["Properties"]["ReservedConcurrentExecutions"]
            ours = definition(cdk, concurrency)
            assert ours == sam_definition, json.dumps({"sam": sam_definition, "cdk": ours}, indent=1)
            assert ours["States"]["PlanShards"]["MaxConcurrency"] == concurrency
            quota = int(main["Properties"]["Environment"]["Variables"]["JITP_QUOTA_INSTANCES"])
            assert quota == main["Properties"]["ReservedConcurrentExecutions"] + concurrency, quota

    @check("parity: a CDK template grants an S3 CRL object (scripts/test-infra.sh synthesizes one), compared with SAM's")
    def _() -> None:
        assert crl_objects, "no CDK template grants s3:GetObject: the SAM evaluation would compare with samples only"

    @check("parity: a CDK template has the guard (scripts/test-infra.sh synthesizes one with jitp:enableGuard)")
    def _() -> None:
        assert guarded_cdk, "no CDK template has the guard: SAM's would be compared with nothing"

    check_s3_sam(sam, crl_objects)
    check_sam(sam)

    failed = [name for name, err in RESULTS if err]
    print(f"check_templates: {len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
