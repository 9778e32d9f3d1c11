"""moto's server, with AWS IoT's documented behaviour where jitp's guarantees rest on it.

moto 5.2.5 deviates from AWS IoT on exactly the primitives jitp argues its one-identity-per-device guarantee
from (tests/README.md lists every deviation). A test that passed on those deviations would prove nothing, so
the workflow's end-to-end tests run against this launcher, which patches moto's IoT backend in-process and then
starts the ordinary moto server (same arguments as moto_server):

- CreateThing of an existing thing: success if the configuration (thing type, attributes) is identical,
  ResourceAlreadyExistsException otherwise (AWS API reference, CreateThing). moto overwrites the thing.
- UpdateThing with expectedVersion: VersionConflictException unless the thing's version equals it; every
  successful update increments the version (AWS API reference, UpdateThing / DescribeThing). moto ignores
  expectedVersion and never increments the version.
- AttachThingPrincipal with thingPrincipalType=EXCLUSIVE_THING: the certificate may be attached to that thing
  only; attaching it (exclusively or not) to a second thing, or exclusively while it is attached elsewhere, is
  InvalidRequestException (AWS API reference, AttachThingPrincipal). moto ignores the type.
- DescribeCertificate of a certificate registered with its CA: caCertificateId in the description (AWS API
  reference, CertificateDescription); moto stores it but leaves it out, so `jitp reconcile`, which has no event
  to name the CA, could re-decide nothing.
- ListThings with usePrefixAttributeValue=true: the things whose attribute value starts with attributeValue
  (AWS API reference, ListThings); `jitp reconcile` lists its things that way. moto ignores the parameter and
  matches the whole value, so it would list nothing.
- TagResource, UntagResource, ListTagsForResource on a policy's ARN (AWS API reference; policies are taggable,
  at most 50 tags, keys of 1 to 128 characters, values of at most 256): jitp records the default a new policy
  version replaces in the policy's tags, which is what `jitp reconcile --rollback` restores. moto 5.2.5 has no
  tagging for AWS IoT at all. Here: policies only (the only resource jitp tags), a resource that is not one of
  this account's policies is ResourceNotFoundException, UntagResource of an absent key succeeds.
- ListCACertificates (AWS API reference): the account's CA certificates, with certificateId, certificateArn,
  status and creationDate. `jitp reconcile` lists them to find orphaned certificates (ACTIVE, with a jitp policy,
  named by no thing). moto 5.2.5 has no ListCACertificates at all.

moto's server answers requests on several threads, so each patched call runs under one lock: the check and the
write are one atomic step, as they are in AWS IoT.

Usage: python moto_aws_semantics.py -H 127.0.0.1 -p PORT
"""

import sys
import threading

from moto.iot import exceptions, models, responses
from moto.server import main

_LOCK = threading.RLock()
_EXCLUSIVE = {}  # principal ARN -> the thing it is attached to exclusively

_Backend = models.IoTBackend
_Responses = responses.IoTResponse

_create_thing = _Backend.create_thing
_update_thing = _Backend.update_thing
_attach_thing_principal = _Backend.attach_thing_principal
_detach_thing_principal = _Backend.detach_thing_principal


def _find(backend, thing_name):
    for thing in backend.things.values():
        if thing.thing_name == thing_name:
            return thing
    return None


def create_thing(self, thing_name, thing_type_name, attribute_payload, billing_group_name=None):
    with _LOCK:
        existing = _find(self, thing_name)
        if existing is not None:
            attributes = (attribute_payload or {}).get("attributes") or {}
            existing_type = existing.thing_type.thing_type_name if existing.thing_type else None
            if existing_type == (thing_type_name or None) and dict(existing.attributes) == dict(attributes):
                return existing
            raise exceptions.ResourceAlreadyExistsException(
                f"Thing {thing_name} already exists in account with different attributes", thing_name, existing.arn
            )
        return _create_thing(self, thing_name, thing_type_name, attribute_payload, billing_group_name)


def update_thing(self, thing_name, thing_type_name, attribute_payload, remove_thing_type, expected_version=None):
    with _LOCK:
        thing = self.describe_thing(thing_name)
        if expected_version is not None and int(expected_version) != thing.version:
            raise exceptions.VersionConflictException(thing_name)
        _update_thing(self, thing_name, thing_type_name, attribute_payload, remove_thing_type)
        thing.version += 1


def update_thing_response(self):
    self.iot_backend.update_thing(
        thing_name=self._get_param("thingName"),
        thing_type_name=self._get_param("thingTypeName"),
        attribute_payload=self._get_param("attributePayload"),
        remove_thing_type=self._get_param("removeThingType"),
        expected_version=self._get_param("expectedVersion"),
    )
    return responses.EmptyResult()


def attach_thing_principal_response(self):
    thing_name = self._get_param("thingName")
    principal = self.headers.get("x-amzn-principal")
    exclusive = self._get_param("thingPrincipalType") == "EXCLUSIVE_THING"
    with _LOCK:
        elsewhere = [k[1] for k in self.iot_backend.principal_things if k[0] == principal and k[1] != thing_name]
        held = _EXCLUSIVE.get(principal)
        if (exclusive and elsewhere) or (held is not None and held != thing_name):
            raise exceptions.InvalidRequestException(
                f"Principal {principal} is already attached exclusively to another thing"
                if held
                else f"Principal {principal} is attached to other things; it cannot be attached exclusively"
            )
        _attach_thing_principal(self.iot_backend, thing_name=thing_name, principal_arn=principal)
        if exclusive:
            _EXCLUSIVE[principal] = thing_name
    return responses.EmptyResult()


def detach_thing_principal(self, thing_name, principal_arn):
    with _LOCK:
        _detach_thing_principal(self, thing_name, principal_arn)
        if _EXCLUSIVE.get(principal_arn) == thing_name:
            del _EXCLUSIVE[principal_arn]


def list_things_response(self):
    """ListThings, with AWS's usePrefixAttributeValue; paged by an offset token, maxResults as AWS's (1 to 250)."""
    if str(self._get_param("usePrefixAttributeValue")).lower() != "true":
        return _list_things(self)
    name = self._get_param("attributeName")
    prefix = self._get_param("attributeValue") or ""
    type_name = self._get_param("thingTypeName")
    max_results = max(1, min(250, self._get_int_param("maxResults", 250)))
    start = int(self._get_param("nextToken") or 0)
    with _LOCK:
        things = sorted((t.to_dict() for t in self.iot_backend.things.values()), key=lambda t: t["thingName"])
    matching = [
        t for t in things
        if (name is None or str(t["attributes"].get(name, None)).startswith(prefix) and name in t["attributes"])
        and (type_name is None or t.get("thingTypeName") == type_name)
    ]
    page = matching[start:start + max_results]
    after = start + len(page)
    body = {"things": page}
    if after < len(matching):
        body["nextToken"] = str(after)
    return responses.ActionResult(body)


_list_things = _Responses.list_things

_TAGS = {}  # policy ARN -> {key: value}


def _tagged_policy(backend, arn):
    for policy in backend.policies.values():
        if policy.arn == arn:
            return policy
    raise exceptions.ResourceNotFoundException(f"No resource {arn}")


def tag_resource_response(self):
    arn = self._get_param("resourceArn")
    tags = {t["Key"]: t.get("Value", "") for t in self._get_param("tags") or []}
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.startswith("aws:") or len(value) > 256:
            raise exceptions.InvalidRequestException(f"Tag {key!r} is not valid")
    with _LOCK:
        _tagged_policy(self.iot_backend, arn)
        merged = {**_TAGS.get(arn, {}), **tags}
        if len(merged) > 50:
            raise exceptions.InvalidRequestException(f"{arn} would have {len(merged)} tags; at most 50 are allowed")
        _TAGS[arn] = merged
    return responses.EmptyResult()


def untag_resource_response(self):
    arn = self._get_param("resourceArn")
    with _LOCK:
        _tagged_policy(self.iot_backend, arn)
        for key in self._get_param("tagKeys") or []:
            _TAGS.get(arn, {}).pop(key, None)
    return responses.EmptyResult()


def list_tags_for_resource_response(self):
    arn = self._get_param("resourceArn")
    with _LOCK:
        _tagged_policy(self.iot_backend, arn)
        tags = [{"Key": k, "Value": v} for k, v in sorted(_TAGS.get(arn, {}).items())]
    return responses.ActionResult({"tags": tags})


def list_ca_certificates_response(self):
    with _LOCK:
        cas = [
            {
                "certificateId": ca.certificate_id,
                "certificateArn": ca.arn,
                "status": ca.status,
                "creationDate": ca.creation_date,
            }
            for ca in self.iot_backend.ca_certificates.values()
        ]
    return responses.ActionResult({"certificates": cas})


_to_description_dict = models.FakeCertificate.to_description_dict


def to_description_dict(self):
    description = _to_description_dict(self)
    if self.ca_certificate_id:
        description["caCertificateId"] = self.ca_certificate_id
    return description


models.FakeCertificate.to_description_dict = to_description_dict
_Backend.create_thing = create_thing
_Backend.update_thing = update_thing
_Backend.detach_thing_principal = detach_thing_principal
_Responses.update_thing = update_thing_response
_Responses.attach_thing_principal = attach_thing_principal_response
_Responses.list_things = list_things_response
_Responses.tag_resource = tag_resource_response
_Responses.untag_resource = untag_resource_response
_Responses.list_tags_for_resource = list_tags_for_resource_response
_Responses.list_ca_certificates = list_ca_certificates_response

if __name__ == "__main__":
    sys.exit(main())
