#![cfg(test)]
//! AwsRegistry against moto's server, which speaks AWS IoT's HTTP API: every method, with moto's state read
//! back through the SDK, and moto's deviations from AWS measured (tests/README.md lists them; the AWS
//! behaviour each one hides is pinned by a replay test in tests/replay.rs).
//!
//! Each test starts its own server on a free loopback port (about a second). Without moto installed the tests
//! print SKIP and pass, unless `CI` or `JITP_REQUIRE_MOTO` is set (scripts/setup-moto.sh installs it).

use std::collections::BTreeMap;

use aws_sdk_iot::types::CertificateStatus as SdkStatus;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};
use jitp_registry::event::CertificateStatus;
use jitp_registry::registry::{CaStatus, IotRegistry, RegistryError, ThingSpec};
use jitp_registry::thing::ThingName;
use jitp_testkit::moto::{Moto, Registered};
use jitp_testkit::{Alg, Ca, Device, to_pem};
use sha2::Digest as _;

macro_rules! moto_or_skip {
    () => {
        match Moto::start().await {
            Some(m) => m,
            None => return,
        }
    };
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn thing(name: &str) -> ThingName {
    name.parse().unwrap()
}

fn policy(name: &str) -> PolicyName {
    name.parse().unwrap()
}

fn spec(name: &str, thing_type: Option<&str>, attributes: &[(&str, &str)]) -> ThingSpec {
    ThingSpec {
        name: thing(name),
        thing_type: thing_type.map(str::to_owned),
        attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn describe_certificate_and_ca() {
    let moto = moto_or_skip!();
    let ca = Ca::new("moto describe CA", Alg::P256);
    let device = ca.issue(&Device::new("sensor-000000000001"));
    let ca_id = moto.register_ca(&ca, true).await;
    let Registered { id, arn } = moto.register_pending(&device.pem, &ca).await;

    let d = moto.registry.describe_certificate(&id).await.unwrap();
    assert_eq!(d.id, id);
    assert_eq!(d.arn, arn);
    assert_eq!(d.pem, device.pem);
    assert_eq!(d.status, CertificateStatus::PendingActivation);
    // Deviation: moto knows the CA (ListCertificatesByCA finds it) but DescribeCertificate never says.
    assert_eq!(d.ca_certificate_id, None);
    let by_ca = moto.sdk().list_certificates_by_ca().ca_certificate_id(ca_id.as_str()).send().await.unwrap();
    assert_eq!(by_ca.certificates.unwrap_or_default().len(), 1);

    let c = moto.registry.describe_ca_certificate(&ca_id).await.unwrap();
    assert_eq!((c.id.clone(), c.pem.as_str(), c.status), (ca_id.clone(), ca.cert.pem.as_str(), CaStatus::Active));
    // Deviation: registered with allowAutoRegistration=true, but moto never returns autoRegistrationStatus.
    assert!(!c.auto_registration);

    let missing: CertificateId = "f".repeat(64).parse().unwrap();
    assert!(matches!(moto.registry.describe_certificate(&missing).await, Err(RegistryError::NotFound(_))));
    let missing_ca: CaCertificateId = "e".repeat(64).parse().unwrap();
    assert!(matches!(moto.registry.describe_ca_certificate(&missing_ca).await, Err(RegistryError::NotFound(_))));
}

/// Deviation: AWS's certificate id is the SHA-256 of the DER; moto's is the SHA-256 of the PEM text as sent.
#[tokio::test]
async fn moto_ids_hash_the_pem_text_not_the_der() {
    let moto = moto_or_skip!();
    let ca = Ca::new("moto id CA", Alg::P256);
    let device = ca.issue(&Device::new("sensor-000000000002"));
    let ca_id = moto.register_ca(&ca, true).await;
    let id = moto.register_pending(&device.pem, &ca).await.id;
    assert_eq!(id.as_str(), sha256_hex(device.pem.as_bytes()));
    assert_ne!(id.as_str(), device.id());
    assert_eq!(ca_id.as_str(), sha256_hex(ca.cert.pem.as_bytes()));
    assert_ne!(ca_id.as_str(), ca.id());
}

/// Deviation: AWS verifies that a certificate registered with a CA is signed by it
/// (CertificateValidationException); moto stores whatever it is given.
#[tokio::test]
async fn moto_register_certificate_checks_no_signature() {
    let moto = moto_or_skip!();
    let ca = Ca::new("moto signature CA", Alg::P256);
    let other = Ca::new("moto other CA", Alg::P256);
    moto.register_ca(&ca, true).await;
    let forged = to_pem(&jitp_testkit::corrupt_signature(&ca.issue(&Device::new("sensor-000000000003")).der));
    let foreign = other.issue(&Device::new("sensor-000000000004")).pem;
    for pem in [forged, foreign] {
        let id = moto.register_pending(&pem, &ca).await.id;
        assert_eq!(moto.status(&id).await, SdkStatus::PendingActivation);
    }
}

#[tokio::test]
async fn update_certificate_and_moto_transitions() {
    let moto = moto_or_skip!();
    let ca = Ca::new("moto status CA", Alg::P256);
    moto.register_ca(&ca, true).await;
    let id = moto.register_pending(&ca.issue(&Device::new("sensor-000000000005")).pem, &ca).await.id;
    for (status, wire) in [
        (CertificateStatus::Active, SdkStatus::Active),
        (CertificateStatus::Inactive, SdkStatus::Inactive),
        (CertificateStatus::Revoked, SdkStatus::Revoked),
        // Deviation: AWS refuses to leave REVOKED (CertificateStateException); moto does as it is told.
        (CertificateStatus::Active, SdkStatus::Active),
        // Deviation: AWS documents that setting PENDING_ACTIVATION throws; moto sets it.
        (CertificateStatus::PendingActivation, SdkStatus::PendingActivation),
    ] {
        moto.registry.update_certificate(&id, status).await.unwrap();
        assert_eq!(moto.status(&id).await, wire);
    }
    let missing: CertificateId = "d".repeat(64).parse().unwrap();
    let err = moto.registry.update_certificate(&missing, CertificateStatus::Active).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn things() {
    let moto = moto_or_skip!();
    moto.create_thing_type("sensor").await;
    moto.create_thing_type("gateway").await;
    let s = spec("sensor-00000000000a", Some("sensor"), &[("batch", "b1"), ("profile", "sensors")]);
    moto.registry.create_thing(&s).await.unwrap();
    let d = moto.registry.describe_thing(&s.name).await.unwrap();
    assert_eq!((d.name, d.thing_type.as_deref(), d.attributes), (s.name.clone(), Some("sensor"), s.attributes.clone()));

    // Identical: Ok, as on AWS.
    moto.registry.create_thing(&s).await.unwrap();
    // Deviation: another configuration is ResourceAlreadyExistsException on AWS; moto replaces the thing.
    let other = spec("sensor-00000000000a", Some("gateway"), &[("batch", "b2")]);
    moto.registry.create_thing(&other).await.unwrap();
    let d = moto.registry.describe_thing(&s.name).await.unwrap();
    assert_eq!((d.thing_type.as_deref(), d.attributes), (Some("gateway"), attrs(&[("batch", "b2")])));

    // UpdateThing replaces the attributes (merge=false) and sets or removes the type.
    moto.registry
        .update_thing(&spec("sensor-00000000000a", Some("sensor"), &[("profile", "sensors")]), None)
        .await
        .unwrap();
    let d = moto.registry.describe_thing(&s.name).await.unwrap();
    assert_eq!((d.thing_type.as_deref(), d.attributes), (Some("sensor"), attrs(&[("profile", "sensors")])));
    moto.registry.update_thing(&spec("sensor-00000000000a", None, &[("a", "1")]), None).await.unwrap();
    let d = moto.registry.describe_thing(&s.name).await.unwrap();
    assert_eq!((d.thing_type, d.attributes), (None, attrs(&[("a", "1")])));

    // Thing groups.
    moto.sdk().create_thing_group().thing_group_name("fleet").send().await.unwrap();
    moto.registry.add_thing_to_thing_group(&s.name, "fleet").await.unwrap();
    let members = moto.sdk().list_things_in_thing_group().thing_group_name("fleet").send().await.unwrap();
    assert_eq!(members.things.unwrap_or_default(), ["sensor-00000000000a"]);

    // Errors.
    let err = moto.registry.describe_thing(&thing("sensor-missing")).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.create_thing(&spec("sensor-x", Some("no-such-type"), &[])).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.add_thing_to_thing_group(&s.name, "no-such-group").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn policies_and_versions() {
    let moto = moto_or_skip!();
    let name = policy("jitp-sensor-00000000000b");
    let doc = |n: u32| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/v{n}"}}]}}"#
        )
    };
    moto.registry.create_policy(&name, &doc(1)).await.unwrap();
    let err = moto.registry.create_policy(&name, &doc(1)).await.unwrap_err();
    assert!(matches!(err, RegistryError::AlreadyExists(_)), "{err}");
    let p = moto.registry.get_policy(&name).await.unwrap();
    assert_eq!(
        (p.name.clone(), p.document.as_str(), p.default_version_id.as_str()),
        (name.clone(), doc(1).as_str(), "1")
    );

    for n in 2..=5 {
        let id = moto.registry.create_policy_version(&name, &doc(n)).await.unwrap();
        assert_eq!(id, n.to_string());
        let p = moto.registry.get_policy(&name).await.unwrap();
        assert_eq!((p.document, p.default_version_id), (doc(n), n.to_string()), "set as default");
    }
    // moto enforces AWS's limit of 5 versions.
    let err = moto.registry.create_policy_version(&name, &doc(6)).await.unwrap_err();
    assert!(matches!(err, RegistryError::VersionsLimitExceeded(_)), "{err}");

    let versions = moto.registry.list_policy_versions(&name).await.unwrap();
    let got: Vec<(&str, bool)> = versions.iter().map(|v| (v.version_id.as_str(), v.is_default)).collect();
    assert_eq!(got, [("1", false), ("2", false), ("3", false), ("4", false), ("5", true)]);

    let err = moto.registry.delete_policy_version(&name, "5").await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidRequest(_)), "the default cannot be deleted: {err}");
    moto.registry.delete_policy_version(&name, "1").await.unwrap();
    let err = moto.registry.delete_policy_version(&name, "1").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    assert_eq!(moto.registry.create_policy_version(&name, &doc(6)).await.unwrap(), "6");

    let err = moto.registry.get_policy(&policy("no-such-policy")).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.list_policy_versions(&policy("no-such-policy")).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
}

/// Deviation: AWS validates the policy document (MalformedPolicyException); moto stores any text.
#[tokio::test]
async fn moto_create_policy_accepts_invalid_json() {
    let moto = moto_or_skip!();
    let name = policy("jitp-not-json");
    moto.registry.create_policy(&name, "this is { not json").await.unwrap();
    assert_eq!(moto.registry.get_policy(&name).await.unwrap().document, "this is { not json");
}

#[tokio::test]
async fn attachments() {
    let moto = moto_or_skip!();
    let ca = Ca::new("moto attach CA", Alg::P256);
    moto.register_ca(&ca, true).await;
    let arn = moto.register_pending(&ca.issue(&Device::new("sensor-00000000000c")).pem, &ca).await.arn;
    let name = policy("jitp-sensor-00000000000c");
    moto.registry.create_policy(&name, r#"{"Version":"2012-10-17","Statement":[]}"#).await.unwrap();

    moto.registry.attach_policy(&name, &arn).await.unwrap();
    moto.registry.attach_policy(&name, &arn).await.unwrap(); // idempotent, as on AWS
    assert_eq!(moto.registry.list_attached_policies(&arn).await.unwrap(), std::slice::from_ref(&name));

    let a = thing("sensor-00000000000c");
    let b = thing("sensor-00000000000d");
    moto.registry.create_thing(&spec(a.as_str(), None, &[])).await.unwrap();
    moto.registry.create_thing(&spec(b.as_str(), None, &[])).await.unwrap();
    assert!(moto.registry.list_thing_principals(&a).await.unwrap().is_empty());
    moto.registry.attach_thing_principal(&a, &arn, true).await.unwrap();
    moto.registry.attach_thing_principal(&a, &arn, true).await.unwrap(); // idempotent
    assert_eq!(moto.registry.list_thing_principals(&a).await.unwrap(), [arn.as_str()]);

    // Deviation: AWS refuses an EXCLUSIVE_THING attachment of a certificate already attached to another thing
    // (InvalidRequestException); moto ignores thingPrincipalType and attaches it to both.
    moto.registry.attach_thing_principal(&b, &arn, true).await.unwrap();
    let things = moto.sdk().list_principal_things().principal(&arn).send().await.unwrap();
    let mut things = things.things.unwrap_or_default();
    things.sort();
    assert_eq!(things, [a.as_str(), b.as_str()]);

    // Errors.
    let missing_arn = format!("arn:aws:iot:us-east-1:123456789012:cert/{}", "c".repeat(64));
    let err = moto.registry.attach_policy(&name, &missing_arn).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.attach_policy(&policy("no-such-policy"), &arn).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.attach_thing_principal(&thing("no-such-thing"), &arn, true).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let err = moto.registry.list_thing_principals(&thing("no-such-thing")).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn reset_forgets_everything() {
    let moto = moto_or_skip!();
    let name = policy("jitp-reset");
    moto.registry.create_policy(&name, "{}").await.unwrap();
    moto.server.reset();
    assert!(matches!(moto.registry.get_policy(&name).await, Err(RegistryError::NotFound(_))));
}

/// moto 5.2.5 has no AWS IoT tagging: TagResource and ListTagsForResource on a policy's ARN are HTTP 500 (AWS
/// tags policies; replay.rs pins the requests). The end-to-end suite runs on the patched server (tests/moto_aws_semantics.py), which adds it.
#[tokio::test]
async fn moto_has_no_iot_tagging() {
    let moto = moto_or_skip!();
    let name = policy("jitp-sensor-00000000000c");
    moto.registry.create_policy(&name, r#"{"Version":"2012-10-17","Statement":[]}"#).await.unwrap();
    let arn = moto.registry.get_policy(&name).await.unwrap().arn;
    assert!(arn.ends_with(":policy/jitp-sensor-00000000000c"), "{arn}");
    let tags = BTreeMap::from([("jitp:rollback:ab".to_owned(), "1".to_owned())]);
    let err = moto.registry.tag_resource(&arn, &tags).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable(_)) && err.to_string().contains("HTTP 500"), "{err}");
    let err = moto.registry.list_tags_for_resource(&arn).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}

/// The patched server's tagging, as AWS IoT's: tags on a policy's ARN, replaced by key, removed by key (an
/// absent key is no error), an unknown resource NotFound, at most 50 tags.
#[tokio::test]
async fn patched_moto_tags_policies_as_aws_does() {
    let Some(moto) = Moto::start_with_aws_semantics().await else { return };
    let name = policy("jitp-sensor-00000000000d");
    moto.registry.create_policy(&name, r#"{"Version":"2012-10-17","Statement":[]}"#).await.unwrap();
    let arn = moto.registry.get_policy(&name).await.unwrap().arn;
    moto.registry.tag_resource(&arn, &attrs(&[("a", "1"), ("b", "2")])).await.unwrap();
    moto.registry.tag_resource(&arn, &attrs(&[("a", "3")])).await.unwrap();
    assert_eq!(moto.registry.list_tags_for_resource(&arn).await.unwrap(), attrs(&[("a", "3"), ("b", "2")]));
    moto.registry.untag_resource(&arn, &["b".into(), "absent".into()]).await.unwrap();
    assert_eq!(moto.registry.list_tags_for_resource(&arn).await.unwrap(), attrs(&[("a", "3")]));
    let missing = arn.replace("00000000000d", "00000000000e");
    let err = moto.registry.list_tags_for_resource(&missing).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    let many: BTreeMap<String, String> = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
    let err = moto.registry.tag_resource(&arn, &many).await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidRequest(_)), "51 tags: {err}");
}
