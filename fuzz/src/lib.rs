//! The bodies of jitp's fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`) and by the replay test
//! below, which runs every file under `regressions/<target>/` (and the corpora, when present) without libFuzzer:
//! `cd fuzz && cargo test`.
//!
//! Each body panics only when a property fails; everything jitp-core does with the input must end in `Ok` or a
//! `Rejection`, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a fuzz target reports a failed property by panicking

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jitp_pki::cert::{self, Certificate, DeviceCheck, Subject};
use jitp_core::decide::{self, Input};
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_policy::policy::{self, AwsContext, DeviceContext, Scope};
use jitp_profile::profile::Overrides;
use jitp_core::rules::Rules;
use jitp_registry::thing::ThingName;

/// The fixed clock of the fixtures (jitp_testkit::NOW): 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;

/// The fixed CA the certificate target verifies against: `fixtures/ca.pem`, made by
/// `jitp-seed --new-ca` from `fixtures/ca.key.pem` (a test-only key). The seed corpus is signed with that key,
/// so seeds pass verification and the fuzzer starts from the deep end of the decision.
pub const CA_PEM: &[u8] = include_bytes!("../fixtures/ca.pem");

fn dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Fixed {
    ca: Certificate,
    ca_id: CaCertificateId,
    /// The fixed CA as the repository's profiles see it (checked once, as the workflow's cache does).
    registered: jitp_profile::judge::RegisteredCa,
    repo: Rules,
    fuzz: Rules,
    aws: AwsContext,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let ca = jitp_profile::judge::parse_ca(CA_PEM).expect("fixtures/ca.pem parses");
        let ca_id = CaCertificateId::of_der(ca.der());
        let repo = Rules::load(dir().join("../templates/jitp.toml")).expect("the repository's jitp.toml loads");
        let fuzz_path = dir().join("fixtures/jitp-fuzz.toml");
        let fuzz = Rules::load_with(&fuzz_path, &Overrides::default()).expect("fixtures/jitp-fuzz.toml loads");
        let registered = jitp_profile::judge::RegisteredCa::new(repo.config(), ca_id.clone(), CA_PEM);
        Fixed { ca, ca_id, registered, repo, fuzz, aws: AwsContext::default() }
    })
}

/// `event::parse` on arbitrary bytes: never panics; an event that parses survives a JSON round trip unchanged,
/// and decoding it from a `serde_json::Value` agrees.
pub fn event_parse(data: &[u8]) {
    let Ok(event) = jitp_registry::event::parse(data) else { return };
    let json = serde_json::to_vec(&event).expect("a parsed event serializes");
    let again = jitp_registry::event::parse(&json).expect("a serialized event parses");
    assert_eq!(event, again, "the event changed in a round trip");
    // Findings (regressions/event_parse/): serde_json skipped the values of ignored fields without validating
    // them (invalid UTF-8, lone surrogate escapes), so parse accepted documents that are not JSON. Fixed in
    // jitp-core: parse reads a serde_json::Value first. Whatever parse accepts must be JSON.
    let value = serde_json::from_slice::<serde_json::Value>(data).expect("parse accepted a document that is not JSON");
    let from_value = jitp_registry::event::from_value(value).expect("from_value accepts what parse accepts");
    assert_eq!(event, from_value, "parse and from_value disagree");
}

/// Arbitrary bytes as a device certificate (PEM, and DER): parse, inspect, verify against the fixed CA, and run
/// the whole decision with the repository's profiles. Never panics.
pub fn certificate(data: &[u8]) {
    let f = fixed();
    let check = DeviceCheck { now: NOW, clock_skew_seconds: 300 };
    let ca_ok = cert::verify_ca(&f.ca, check).expect("the fixed CA is a valid CA");
    for parsed in [Certificate::from_pem(data), Certificate::from_der(data.to_vec())] {
        let Ok(device) = parsed else { continue };
        let _ = (device.subject_line(), device.serial_hex(), device.validity(), device.is_ca());
        let _ = (device.issuer_der(), device.subject_der(), device.fingerprint_hex(), device.key());
        for field in ["cn", "o", "ou", "c", "st", "serial_number"] {
            let _ = device.subject().single(field);
        }
        let _ = cert::verify_device(&device, &f.ca, ca_ok, check);
    }
    let input = Input { certificate_pem: data, ca: &f.registered, now: NOW, aws: &f.aws };
    if let Ok(verdict) = decide::decide(&f.repo, &input) {
        assert_rendered_clean(&verdict.policy.document, verdict.thing_name.as_str(), None);
    }
}

/// Decode the render target's input: segments separated by 0xFF; a segment's first byte picks the subject field
/// (modulo 6: cn, o, ou, c, st, serial_number) and the rest, read as UTF-8 (lossily), is one value of it. The
/// first segment's first byte also picks the configuration and profile.
pub fn subject_of(data: &[u8]) -> (u8, Subject) {
    let mut subject = Subject::default();
    let selector = data.first().copied().unwrap_or(0);
    for segment in data.get(1..).unwrap_or_default().split(|b| *b == 0xFF) {
        let Some((&field, value)) = segment.split_first() else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        let slot = match field % 6 {
            0 => &mut subject.cn,
            1 => &mut subject.o,
            2 => &mut subject.ou,
            3 => &mut subject.c,
            4 => &mut subject.st,
            _ => &mut subject.serial_number,
        };
        slot.push(value);
    }
    (selector, subject)
}

/// Render a policy for a device with an arbitrary subject, with the repository's templates and with
/// `fixtures/` templates that print subject values in several ways. Properties: no panic; a policy that renders
/// contains no subject value that carries a forbidden character (`policy::FORBIDDEN` or a control character)
/// and passes the lint. Returns the rendered document, if one rendered.
pub fn render(data: &[u8]) -> Option<String> {
    let f = fixed();
    let (selector, subject) = subject_of(data);
    let config = if selector & 1 == 0 { &f.repo } else { &f.fuzz };
    let profiles = &config.config().profiles;
    let profile = &profiles[usize::from(selector >> 1) % profiles.len()];
    let engine = config.templates();
    let certificate_id = CertificateId::of_der(data);
    let serial = "0123456789abcdef";
    // The thing name as decide derives it: the profile's expression over the subject, then the newtype.
    let mut device = DeviceContext::new(profile, &subject, certificate_id.as_str(), serial, f.ca_id.as_str());
    let raw = engine.render_thing_name(&device).ok()?;
    let thing_name = ThingName::try_from(raw).ok()?;
    device.name(thing_name.clone());
    device.place(&f.aws);
    let rendered = engine.render_policy(&device).ok()?;
    // The same device with every forbidden-carrying value replaced by a plain one: what the document would
    // hold without them, so that a forbidden value that happens to be part of the template's own text (a lone
    // "/" say) is not mistaken for a printed one.
    let mut plain = subject.clone();
    for (_, values) in [
        (0, &mut plain.cn),
        (1, &mut plain.o),
        (2, &mut plain.ou),
        (3, &mut plain.c),
        (4, &mut plain.st),
        (5, &mut plain.serial_number),
    ] {
        for v in values.iter_mut() {
            if policy::forbidden_reason(v).is_some() {
                *v = "plain".into();
            }
        }
    }
    let mut plain_device = DeviceContext::new(profile, &plain, certificate_id.as_str(), serial, f.ca_id.as_str());
    plain_device.name(thing_name.clone());
    plain_device.place(&f.aws);
    let reference = engine.render_policy(&plain_device).ok();
    assert_rendered_clean(
        &rendered.document,
        thing_name.as_str(),
        Some((&subject, reference.as_ref().map(|r| r.document.as_str()))),
    );
    Some(rendered.document)
}

fn assert_rendered_clean(document: &str, thing: &str, subject: Option<(&Subject, Option<&str>)>) {
    let report = policy::lint::lint(document, Scope::Thing(thing));
    assert!(
        !report.has_errors(),
        "a rendered policy fails the lint: {:?}\n{document}",
        report.errors().collect::<Vec<_>>()
    );
    let Some((subject, reference)) = subject else { return };
    for (field, values) in subject.fields() {
        for value in values {
            if value.is_empty() || policy::forbidden_reason(value).is_none() {
                continue;
            }
            if reference.is_some_and(|r| r.contains(value.as_str())) {
                continue;
            }
            assert!(
                !document.contains(value.as_str()),
                "subject.{field} {value:?} carries a forbidden character and was printed into the policy:\n{document}"
            );
        }
    }
}

/// Arbitrary bytes as a CRL file a profile lists (`crl = [...]`): DER or PEM, parsed by webpki. Properties: no
/// panic; a CRL that parses round-trips through its DER; its dates are ordered as webpki read them; verifying it
/// against the fixed CA and looking a certificate up in it end in an answer, never a panic.
pub fn crl(data: &[u8]) {
    let Ok(crl) = cert::Crl::from_bytes(data) else { return };
    let again = cert::Crl::from_der(crl.der().to_vec()).expect("a parsed CRL's DER parses again");
    assert_eq!((again.issuer(), again.this_update(), again.next_update()), (crl.issuer(), crl.this_update(), crl.next_update()));
    assert_eq!(again.revoked_count(), crl.revoked_count());
    let _ = (crl.crl_number(), crl.expired_at(NOW), crl.freshest_crl(), crl.on_hold_count(), crl.removed_count());
    // The scope read at load, against a certificate's distribution points (the fixed CA has none: the issuer's).
    let _ = (crl.scope().describe(), crl.scope().coverage(&cert::DistributionPoints::of(&fixed().ca)));
    let Ok(ca) = cert::TrustedCa::check(fixed().ca.clone()) else { return };
    if let Ok(proof) = crl.verify(&ca) {
        // Only a CRL signed with the fixture CA's test key gets here: look the CA itself up (any certificate will do).
        let _ = crl.revocation(&fixed().ca, proof);
    }
}

/// The files of `dir`, sorted (none if it does not exist).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Target = fn(&[u8]);
    const TARGETS: [(&str, Target); 4] = [
        ("event_parse", event_parse),
        ("certificate", certificate),
        ("crl", crl),
        ("render", |data| {
            render(data);
        }),
    ];

    /// Every regression input, and every corpus file when the corpora exist, through its target.
    #[test]
    fn replay_regressions_and_corpora() {
        let mut ran = 0;
        for (name, target) in TARGETS {
            for sub in ["regressions", "corpus"] {
                for file in files(&dir().join(sub).join(name)) {
                    // A fuzzer running on the same corpus may remove a file between the listing and the read.
                    let Ok(data) = std::fs::read(&file) else { continue };
                    target(&data);
                    ran += 1;
                }
            }
        }
        eprintln!("replayed {ran} inputs");
    }

    /// What the event_parse finding should turn into: a document that is not JSON (not UTF-8, or with a lone
    /// surrogate escape) is MALFORMED_EVENT, wherever the fault is (`event::from_value` cannot even get such a
    /// document: the Lambda runtime fails to decode it first).
    #[test]
    fn known_finding_non_json_event_is_rejected() {
        let files = files(&dir().join("regressions/event_parse"));
        assert!(!files.is_empty());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            assert!(serde_json::from_slice::<serde_json::Value>(&data).is_err(), "{} is JSON", file.display());
            assert!(jitp_registry::event::parse(&data).is_err(), "event::parse accepted {}", file.display());
        }
    }

    #[test]
    fn the_fixed_ca_and_configurations_load() {
        let f = fixed();
        assert!(cert::verify_ca(&f.ca, DeviceCheck { now: NOW, clock_skew_seconds: 300 }).is_ok());
        assert!(!f.repo.config().profiles.is_empty() && !f.fuzz.config().profiles.is_empty());
    }

    /// The render target reaches printed subject values: a clean one is printed, a forbidden one refuses.
    #[test]
    fn render_harness_reaches_printed_values() {
        let clean = render(b"\x01\x00sensor-0123456789ab\xff\x01Acme\xff\x02lot-1").expect("renders");
        assert!(clean.contains("/ou/lot-1\""), "{clean}");
        assert!(render(b"\x01\x00sensor-0123456789ab\xff\x01Acme\xff\x02lot/1").is_none());
        assert!(render(b"\x01\x00sensor-0123456789ab\xff\x01Acme\xff\x04a\x07b").is_none());
        let repo = render(b"\x00\x00sensor-0123456789ab\xff\x01Acme").expect("the sensors template renders");
        assert!(repo.contains("sensor-0123456789ab"));
    }

    #[test]
    fn subject_decoding() {
        let (sel, s) = subject_of(b"\x01\x00sensor-0123456789ab\xff\x01Acme\xff\x02\xff\x08x");
        assert_eq!(sel, 1);
        assert_eq!(s.cn, ["sensor-0123456789ab"]);
        assert_eq!(s.o, ["Acme"]);
        assert_eq!(s.ou, ["", "x"]);
    }
}
