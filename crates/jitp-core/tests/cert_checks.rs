#![cfg(test)]
//! The certificate checks of issue 12 item 2, each over the whole class of inputs it covers: CA validity at the
//! skew boundaries, unprocessed critical extensions at every position on the CA and on the device, every
//! keyUsage combination, every kind of invalid RSA and EC key (P-256, P-384, P-521) on the device and on the
//! CA, a device carrying the CA's key, name constraints, pre-1970 validity times, the order between checks,
//! and properties over arbitrary key bytes.

use std::sync::OnceLock;

use jitp_core::decide::{CheckReport, check};
use jitp_core::rules::Rules;
use jitp_pki::cert::{self, Certificate, DeviceCheck};
use jitp_pki::reason::{ReasonCode, Rejection};
use jitp_policy::policy::AwsContext;
use jitp_profile::profile::Overrides;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::surgery::{
    BadPoint, CaBuild, Ext, JAN_1960, Name, bad_ec_key, ca_extensions, device_extensions, ku, public_key_bytes,
    raw_key, rsa_key,
};
use jitp_testkit::{Alg, Ca, DAY, Device, NOW, corrupt_signature, replace_all, to_pem};
use proptest::prelude::*;

const CN: &str = "sensor-0123456789ab";
const SKEW: i64 = 300;

fn repo_config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

/// The repo's sensors profile without max_validity_days (for certificates from 1960).
fn unlimited_config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| {
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        let text = "[defaults]\nclock_skew_seconds = 300\n[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\n\
                    common_name = 'sensor-[0-9a-f]{12}'\norganization = [\"Acme\"]\n\
                    thing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n";
        Rules::load_with(dir.write_config(text), &Overrides::default()).unwrap()
    })
}

fn ca() -> &'static Ca {
    static C: OnceLock<Ca> = OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn run_with(config: &Rules, ca_pem: &str, device_pem: &str) -> CheckReport {
    check(config, ca_pem.as_bytes(), device_pem.as_bytes(), None, NOW, &AwsContext::default())
}

fn run(ca: &Ca, device_pem: &str) -> CheckReport {
    run_with(repo_config(), &ca.cert.pem, device_pem)
}

fn at_now() -> DeviceCheck {
    DeviceCheck { now: NOW, clock_skew_seconds: 300 }
}

/// The CA check alone, through the public API.
fn verify_ca_pem(ca_pem: &str) -> Result<(), Rejection> {
    let ca = Certificate::from_pem(ca_pem.as_bytes())?;
    cert::verify_ca(&ca, at_now()).map(|_| ())
}

#[track_caller]
fn assert_reason(report: &CheckReport, expected: ReasonCode, needles: &[&str]) {
    assert_eq!(report.reason, Some(expected), "{}", report.message);
    for needle in needles {
        assert!(report.message.contains(needle), "{:?} does not contain {needle:?}", report.message);
    }
}

#[track_caller]
fn assert_accepted(report: &CheckReport) {
    assert!(report.accepted(), "{:?}: {}", report.reason, report.message);
}

// ---- the registered CA's validity window ----------------------------------------------------------------

#[test]
fn ca_validity_window_with_skew_boundaries() {
    let device = Device::new(CN);
    let table: &[(i64, i64, Option<ReasonCode>)] = &[
        (NOW - 10 * DAY, NOW + 10 * DAY, None),
        // Expired: notAfter + skew < now.
        (NOW - 10 * DAY, NOW - SKEW - 1, Some(ReasonCode::CaExpired)),
        (NOW - 10 * DAY, NOW - SKEW, None),
        (NOW - 10 * DAY, NOW - 1, None),
        (NOW - 10 * DAY, NOW, None),
        (NOW - 100 * 365 * DAY, NOW - 50 * 365 * DAY, Some(ReasonCode::CaExpired)),
        // Not yet valid: notBefore - skew > now.
        (NOW + SKEW + 1, NOW + 10 * DAY, Some(ReasonCode::CaNotYetValid)),
        (NOW + SKEW, NOW + 10 * DAY, None),
        (NOW + 1, NOW + 10 * DAY, None),
        (NOW + 365 * DAY, NOW + 730 * DAY, Some(ReasonCode::CaNotYetValid)),
        // A CA from 1960 (UTCTime 600101000000Z) is a CA like any other.
        (JAN_1960, NOW + 10 * DAY, None),
        (JAN_1960, JAN_1960 + DAY, Some(ReasonCode::CaExpired)),
    ];
    for (not_before, not_after, expected) in table {
        let ca = CaBuild::new("Window CA", Alg::P256).valid(*not_before, *not_after).build();
        let report = run(&ca, &ca.issue(&device).pem);
        match expected {
            None => assert_accepted(&report),
            Some(ReasonCode::CaExpired) => {
                assert_reason(&report, ReasonCode::CaExpired, &["Window CA", "expired at", "300s clock skew"])
            }
            Some(code) => assert_reason(&report, *code, &["Window CA", "valid from", "300s clock skew"]),
        }
    }
}

#[test]
fn ca_validity_uses_the_configured_skew() {
    let ca = CaBuild::new("Skew CA", Alg::P256).valid(NOW - 10 * DAY, NOW - 100).build();
    let device = Certificate::from_pem(ca.issue(&Device::new(CN)).pem.as_bytes()).unwrap();
    let ca_cert = Certificate::from_pem(ca.cert.pem.as_bytes()).unwrap();
    for (skew, ok) in [(0u32, false), (99, false), (100, true), (3600, true)] {
        let check = DeviceCheck { now: NOW, clock_skew_seconds: skew };
        let result = cert::verify_ca(&ca_cert, check).and_then(|ok| cert::verify_device(&device, &ca_cert, ok, check));
        assert_eq!(result.is_ok(), ok, "skew {skew}: {result:?}");
        if !ok {
            assert_eq!(result.err().map(|e| e.reason), Some(ReasonCode::CaExpired));
        }
    }
}

#[test]
fn ca_whose_not_before_is_after_its_not_after_is_invalid() {
    // rcgen refuses to write this, so swap the two times in the DER (both are UTCTime, same length).
    let ca = CaBuild::new("Backwards CA", Alg::P256).valid(NOW - DAY, NOW + DAY).build();
    let nb = b"251231000000Z";
    let na = b"260102000000Z";
    let swapped =
        replace_all(&replace_all(&replace_all(&ca.cert.der, nb, b"XXXXXXXXXXXXX"), na, nb), b"XXXXXXXXXXXXX", na);
    let report = run_with(repo_config(), &to_pem(&swapped), &ca.issue(&Device::new(CN)).pem);
    assert_reason(&report, ReasonCode::CaInvalid, &["notBefore", "after its notAfter"]);
}

// ---- critical extensions -------------------------------------------------------------------------------

/// A device's usual extensions, with a SAN so that every processed extension is present.
fn full_device_extensions() -> Vec<Ext> {
    let mut exts = device_extensions();
    exts.push(Ext::eku_client_auth());
    exts.push(Ext::san(&[Name::Dns("sensor.devices.example.com".into())], false));
    exts
}

#[test]
fn unknown_critical_extension_on_the_device_at_every_position() {
    let base = full_device_extensions();
    for position in 0..=base.len() {
        for critical in [true, false] {
            let mut exts = base.clone();
            exts.insert(position, Ext::unknown(critical));
            let report = run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem);
            if critical {
                assert_reason(&report, ReasonCode::UnsupportedCriticalExtension, &["1.3.6.1.4.1.32473.1.1"]);
            } else {
                assert_accepted(&report);
            }
        }
    }
}

#[test]
fn known_but_unprocessed_extensions_marked_critical_on_the_device() {
    let table: &[(Ext, &str)] = &[
        (Ext::subject_key_id(true), "subjectKeyIdentifier (2.5.29.14)"),
        (Ext::raw(&[2, 5, 29, 35], true, vec![0x30, 0x00]), "authorityKeyIdentifier (2.5.29.35)"),
        (Ext::any_policy(true), "certificatePolicies (2.5.29.32)"),
        (Ext::raw(&[2, 5, 29, 31], true, vec![0x30, 0x00]), "cRLDistributionPoints (2.5.29.31)"),
        (Ext::raw(&[1, 3, 6, 1, 5, 5, 7, 1, 1], true, vec![0x30, 0x00]), "authorityInfoAccess"),
        (Ext::raw(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2], true, vec![0x04, 0x00]), "signedCertificateTimestampList"),
        (Ext::name_constraints(&[Name::Dns("example.com".into())], &[]), "nameConstraints (2.5.29.30)"),
        (Ext::raw(&[2, 5, 29, 36], true, vec![0x30, 0x00]), "policyConstraints"),
    ];
    for (ext, name) in table {
        for position in [0, 1] {
            let mut exts = device_extensions();
            exts.insert(position, ext.clone());
            let report = run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem);
            assert_reason(&report, ReasonCode::UnsupportedCriticalExtension, &[name, "critical"]);
        }
    }
}

#[test]
fn processed_extensions_may_be_critical_on_the_device() {
    let mut eku = Ext::eku_client_auth();
    eku.critical = true;
    let exts = vec![
        Ext::basic_constraints(false),
        Ext::key_usage(&[ku::DIGITAL_SIGNATURE]),
        eku,
        Ext::san(&[Name::Dns("sensor.example.com".into())], true),
    ];
    assert_accepted(&run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem));
}

#[test]
fn unknown_critical_extension_on_the_ca_at_every_position() {
    let base = ca_extensions();
    for position in 0..=base.len() {
        for critical in [true, false] {
            let mut exts = base.clone();
            exts.insert(position, Ext::unknown(critical));
            let mut build = CaBuild::new("Extension CA", Alg::P256);
            build.extensions = exts;
            let ca = build.build();
            let report = run(&ca, &ca.issue(&Device::new(CN)).pem);
            if critical {
                assert_reason(&report, ReasonCode::CaInvalid, &["registered CA", "1.3.6.1.4.1.32473.1.1", "critical"]);
            } else {
                assert_accepted(&report);
            }
        }
    }
}

#[test]
fn known_but_unprocessed_extensions_marked_critical_on_the_ca() {
    let table: &[(Ext, &str)] = &[
        (Ext::subject_key_id(true), "subjectKeyIdentifier"),
        (Ext::any_policy(true), "certificatePolicies"),
        (Ext::raw(&[2, 5, 29, 36], true, vec![0x30, 0x03, 0x80, 0x01, 0x00]), "policyConstraints"),
        (Ext::raw(&[2, 5, 29, 54], true, vec![0x02, 0x01, 0x00]), "inhibitAnyPolicy"),
        (Ext::raw(&[2, 5, 29, 37], true, vec![0x30, 0x00]), "extKeyUsage"),
    ];
    for (ext, name) in table {
        let ca = CaBuild::new("Policy CA", Alg::P256).with(ext.clone()).build();
        assert_reason(&run(&ca, &ca.issue(&Device::new(CN)).pem), ReasonCode::CaInvalid, &[name]);
        // The same extension, not critical, is ignored.
        let mut relaxed = ext.clone();
        relaxed.critical = false;
        let ca = CaBuild::new("Policy CA", Alg::P256).with(relaxed).build();
        assert_accepted(&run(&ca, &ca.issue(&Device::new(CN)).pem));
    }
}

// ---- the device's keyUsage -------------------------------------------------------------------------------

#[test]
fn every_key_usage_combination_on_the_device() {
    // All 512 combinations of the nine bits: accepted exactly when digitalSignature is set and neither
    // keyCertSign nor cRLSign is.
    for mask in 0u16..512 {
        let bits: Vec<u8> = (0u8..9).filter(|b| mask & (1 << b) != 0).collect();
        let exts = vec![Ext::key_usage(&bits)];
        let report = run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem);
        let has = |b: u8| bits.contains(&b);
        if has(ku::KEY_CERT_SIGN) || has(ku::CRL_SIGN) {
            assert_reason(&report, ReasonCode::KeyUsageInvalid, &["keyUsage", "only a CA may"]);
        } else if !has(ku::DIGITAL_SIGNATURE) {
            assert_reason(&report, ReasonCode::KeyUsageInvalid, &["keyUsage", "lacks digitalSignature"]);
        } else {
            assert_accepted(&report);
        }
    }
}

#[test]
fn key_usage_messages_name_the_bits() {
    let exts = vec![Ext::key_usage(&[ku::DIGITAL_SIGNATURE, ku::KEY_CERT_SIGN])];
    let report = run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem);
    assert_reason(&report, ReasonCode::KeyUsageInvalid, &["(digitalSignature, keyCertSign)", "asserts keyCertSign"]);
    let exts = vec![Ext::key_usage(&[ku::KEY_ENCIPHERMENT])];
    let report = run(ca(), &ca().issue_with(&Device::new(CN), &exts).pem);
    assert_reason(&report, ReasonCode::KeyUsageInvalid, &["(keyEncipherment)", "digitalSignature"]);
    let report = run(ca(), &ca().issue_with(&Device::new(CN), &[Ext::key_usage(&[])]).pem);
    assert_reason(&report, ReasonCode::KeyUsageInvalid, &["(empty)"]);
}

#[test]
fn no_key_usage_at_all_is_fine() {
    assert_accepted(&run(ca(), &ca().issue_with(&Device::new(CN), &[]).pem));
}

// ---- public keys -----------------------------------------------------------------------------------------

/// RSA exponents and whether they are valid, with a word the message must contain.
const RSA_EXPONENTS: &[(&[u8], bool, &str)] = &[
    (&[0x01, 0x00, 0x01], true, ""),                        // 65537
    (&[0x01, 0x00, 0x03], true, ""),                        // 65539
    (&[0x01, 0x00, 0x00, 0x01], true, ""),                  // 2^24 + 1
    (&[0x01, 0xFF, 0xFF, 0xFF, 0xFF], true, ""),            // 2^33 - 1
    (&[0x03], false, "is 3; jitp requires at least 65537"), // e = 3
    (&[0x11], false, "is 17"),
    (&[0xFF, 0xFF], false, "is 65535"),
    (&[0x01], false, "is 1"),
    (&[0x00], false, "even"),
    (&[0x02], false, "even"),
    (&[0x01, 0x00, 0x00], false, "even"), // 65536
    (&[0x01, 0x00, 0x02], false, "even"), // 65538
    (&[0x02, 0x00, 0x00, 0x00, 0x01], false, "34 bits"),
    (
        &[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01],
        false,
        "256-bit",
    ),
];

#[test]
fn rsa_keys_on_the_device() {
    for (exponent, valid, word) in RSA_EXPONENTS {
        for bits in [2048, 3072, 4096] {
            let mut device = Device::new(CN);
            device.public_key = Some(rsa_key(bits, exponent, false));
            let report = run(ca(), &ca().issue(&device).pem);
            if *valid {
                assert_accepted(&report);
            } else {
                assert_reason(&report, ReasonCode::InvalidPublicKey, &["RSA public exponent", word]);
            }
        }
    }
    let mut device = Device::new(CN);
    device.public_key = Some(rsa_key(2048, &[0x01, 0x00, 0x01], true));
    assert_reason(&run(ca(), &ca().issue(&device).pem), ReasonCode::InvalidPublicKey, &["RSA modulus is even"]);
}

#[test]
fn rsa_keys_on_the_ca() {
    for (exponent, valid, word) in RSA_EXPONENTS {
        let pem = Ca::with_public_key_for_tests(rsa_key(2048, exponent, false));
        match verify_ca_pem(&pem) {
            Ok(()) => assert!(valid, "exponent {exponent:x?} accepted"),
            Err(e) => {
                assert!(!valid, "exponent {exponent:x?}: {e}");
                assert_eq!(e.reason, ReasonCode::CaInvalid, "{e}");
                assert!(e.message.contains("registered CA's key") && e.message.contains(word), "{e}");
            }
        }
    }
    let pem = Ca::with_public_key_for_tests(rsa_key(2048, &[0x01, 0x00, 0x01], true));
    let e = verify_ca_pem(&pem).unwrap_err();
    assert_eq!(e.reason, ReasonCode::CaInvalid);
    assert!(e.message.contains("modulus is even"), "{e}");
}

const CURVES: [(Alg, &str); 3] = [(Alg::P256, "P-256"), (Alg::P384, "P-384"), (Alg::P521, "P-521")];

fn ec_word(how: BadPoint) -> &'static str {
    match how {
        BadPoint::Empty => "empty",
        BadPoint::Infinity => "point at infinity",
        BadPoint::Compressed => "compressed point",
        BadPoint::Hybrid => "only uncompressed points",
        BadPoint::Truncated | BadPoint::Extended | BadPoint::OtherCurve => "bytes",
        BadPoint::OffCurve | BadPoint::AbovePrime => "not a point on",
    }
}

#[test]
fn every_invalid_ec_key_on_the_device_for_every_curve() {
    for (alg, name) in CURVES {
        assert_accepted(&run(ca(), &ca().issue(&Device::new(CN).alg(alg)).pem));
        for how in BadPoint::ALL {
            let mut device = Device::new(CN);
            device.public_key = Some(bad_ec_key(alg, how));
            let report = run(ca(), &ca().issue(&device).pem);
            assert_reason(&report, ReasonCode::InvalidPublicKey, &[name, ec_word(how)]);
            if how == BadPoint::OtherCurve {
                let other = if alg == Alg::P256 { "P-384" } else { "P-256" };
                assert!(report.message.contains(&format!("the length of a {other} point")), "{}", report.message);
            }
        }
    }
}

#[test]
fn every_invalid_ec_key_on_the_ca_for_every_curve() {
    for (alg, name) in CURVES {
        for how in BadPoint::ALL {
            let e = verify_ca_pem(&Ca::with_public_key_for_tests(bad_ec_key(alg, how))).unwrap_err();
            assert_eq!(e.reason, ReasonCode::CaInvalid, "{alg:?} {how:?}: {e}");
            assert!(e.message.contains(name) && e.message.contains(ec_word(how)), "{e}");
        }
        // And a CA whose key is invalid refuses before the device is looked at.
        let pem = Ca::with_public_key_for_tests(bad_ec_key(alg, BadPoint::OffCurve));
        let report = run_with(repo_config(), &pem, &ca().issue(&Device::new(CN)).pem);
        assert_reason(&report, ReasonCode::CaInvalid, &["registered CA's key"]);
    }
}

#[test]
fn a_device_carrying_the_ca_key() {
    for alg in [Alg::P256, Alg::P384, Alg::P521, Alg::Rsa2048] {
        let ca = Ca::new("Key Reuse CA", alg);
        let mut device = Device::new(CN);
        device.public_key = Some(ca.public_key());
        let report = run(&ca, &ca.issue(&device).pem);
        assert_reason(&report, ReasonCode::DeviceKeyIsCaKey, &["registered CA's own public key", "Key Reuse CA"]);
        // The same key under another CA is just a key.
        let other = Ca::new("Other CA", Alg::P256);
        assert_accepted(&run(&other, &other.issue(&device).pem));
    }
}

#[test]
fn a_ca_and_a_device_of_the_same_algorithm_have_different_keys() {
    // The testkit shares RSA keys per process; CAs draw from their own pool, or every RSA CA would issue its
    // own key to RSA devices (jitp-bench's pairs did, and DEVICE_KEY_IS_CA_KEY caught it).
    for alg in [Alg::Rsa2048, Alg::Rsa3072, Alg::P256, Alg::P384, Alg::P521] {
        let ca = Ca::new(&format!("Same {alg:?} CA"), alg);
        assert_accepted(&run(&ca, &ca.issue(&Device::new(CN).alg(alg)).pem));
    }
}

// ---- name constraints ------------------------------------------------------------------------------------

fn constrained_ca(permitted: &[Name], excluded: &[Name]) -> Ca {
    CaBuild::new("Constrained CA", Alg::P256).with(Ext::name_constraints(permitted, excluded)).build()
}

fn device_with_sans(ca: &Ca, sans: &[Name]) -> CheckReport {
    let mut exts = device_extensions();
    if !sans.is_empty() {
        exts.push(Ext::san(sans, false));
    }
    run(ca, &ca.issue_with(&Device::new(CN), &exts).pem)
}

fn dns(s: &str) -> Name {
    Name::Dns(s.into())
}

/// An IPv4 address (SAN) or address and mask (constraint).
fn ip(addr: [u8; 4], mask: Option<[u8; 4]>) -> Name {
    let mut bytes = addr.to_vec();
    if let Some(mask) = mask {
        bytes.extend(mask);
    }
    Name::Ip(bytes)
}

#[test]
fn dns_name_constraints_permitted_and_excluded() {
    let permitted = constrained_ca(&[dns("devices.example.com")], &[]);
    let excluded = constrained_ca(&[], &[dns("bad.example.com")]);
    let both = constrained_ca(&[dns("example.com")], &[dns("bad.example.com")]);
    // (CA, SANs, accepted?)
    let table: Vec<(&Ca, Vec<Name>, bool)> = vec![
        (&permitted, vec![dns("devices.example.com")], true),
        (&permitted, vec![dns("a.devices.example.com")], true),
        (&permitted, vec![dns("a.b.devices.example.com")], true),
        (&permitted, vec![dns("example.com")], false),
        (&permitted, vec![dns("evildevices.example.com")], false),
        (&permitted, vec![dns("devices.example.com.evil.net")], false),
        (&permitted, vec![dns("a.devices.example.com"), dns("other.net")], false),
        (&excluded, vec![dns("good.example.com")], true),
        (&excluded, vec![dns("bad.example.com")], false),
        (&excluded, vec![dns("x.bad.example.com")], false),
        (&both, vec![dns("ok.example.com")], true),
        (&both, vec![dns("x.bad.example.com")], false),
        (&both, vec![dns("example.org")], false),
        // No SAN: nothing to constrain (webpki does not read the subject CN as a DNS name; see README.md).
        (&permitted, vec![], true),
        (&excluded, vec![], true),
    ];
    for (ca, sans, ok) in table {
        let report = device_with_sans(ca, &sans);
        if ok {
            assert_accepted(&report);
        } else {
            assert_reason(
                &report,
                ReasonCode::NameConstraintViolation,
                &["outside the registered CA's name constraints", "subjectAltName dNSName", "dNSName"],
            );
        }
    }
}

#[test]
fn name_constraint_messages_name_the_san_and_the_limit() {
    let ca = constrained_ca(&[dns("devices.example.com")], &[]);
    let report = device_with_sans(&ca, &[dns("x.other.net")]);
    assert_reason(
        &report,
        ReasonCode::NameConstraintViolation,
        &["subjectAltName dNSName \"x.other.net\"", "permitted dNSName \"devices.example.com\""],
    );
}

#[test]
fn ip_address_name_constraints() {
    let ca = constrained_ca(&[ip([10, 0, 0, 0], Some([255, 0, 0, 0]))], &[ip([10, 9, 0, 0], Some([255, 255, 0, 0]))]);
    assert_accepted(&device_with_sans(&ca, &[ip([10, 1, 2, 3], None)]));
    let report = device_with_sans(&ca, &[ip([192, 168, 1, 1], None)]);
    assert_reason(
        &report,
        ReasonCode::NameConstraintViolation,
        &["iPAddress 192.168.1.1", "permitted iPAddress 10.0.0.0/8"],
    );
    let report = device_with_sans(&ca, &[ip([10, 9, 1, 1], None)]);
    assert_reason(&report, ReasonCode::NameConstraintViolation, &["excluded iPAddress 10.9.0.0/16"]);
    // A DNS constraint says nothing about IP SANs, and the other way round.
    assert_accepted(&device_with_sans(&ca, &[dns("anything.example")]));
}

#[test]
fn the_subject_cn_is_not_checked_against_dns_constraints() {
    // webpki checks dNSName constraints against SAN dNSNames only (RFC 5280 4.2.1.10); jitp's CN is a thing
    // name, not a host name. A CN outside the permitted tree is accepted.
    let ca = constrained_ca(&[dns("devices.example.com")], &[]);
    assert_accepted(&device_with_sans(&ca, &[]));
    assert_accepted(&device_with_sans(&ca, &[dns("x.devices.example.com")]));
}

#[test]
fn constraints_jitp_cannot_evaluate() {
    // directoryName constraints could never be satisfied (webpki does not evaluate them): the CA is refused,
    // an operator fault, not a device one.
    for (permitted, excluded) in [(vec![Name::Dir("Acme".into())], vec![]), (vec![], vec![Name::Dir("Evil".into())])] {
        let ca = constrained_ca(&permitted, &excluded);
        assert_reason(&device_with_sans(&ca, &[]), ReasonCode::CaInvalid, &["directoryName"]);
    }
    // URI and rfc822Name constraints fail closed for a device that presents such a name.
    let ca = constrained_ca(&[Name::Uri("example.com".into())], &[]);
    assert_reason(&device_with_sans(&ca, &[Name::Uri("urn:x".into())]), ReasonCode::NameConstraintViolation, &["URI"]);
    assert_accepted(&device_with_sans(&ca, &[dns("a.example.com")]));
    let ca = constrained_ca(&[], &[Name::Email("example.com".into())]);
    let report = device_with_sans(&ca, &[Name::Email("a@example.com".into())]);
    assert_reason(&report, ReasonCode::NameConstraintViolation, &["rfc822Name"]);
}

// ---- validity times before 1970 --------------------------------------------------------------------------

#[test]
fn utc_time_years_50_to_69_are_1950_to_1969() {
    let mut device = Device::new(CN);
    device.not_before = JAN_1960;
    let pem = ca().issue(&device);
    assert!(pem.der.windows(13).any(|w| w == b"600101000000Z"), "rcgen writes UTCTime 600101000000Z");
    let parsed = Certificate::from_pem(pem.pem.as_bytes()).unwrap();
    assert_eq!(parsed.validity(), (JAN_1960, device.not_after));
    assert_accepted(&run_with(unlimited_config(), &ca().cert.pem, &pem.pem));
    // Under the repo's profile it is simply too long-lived, not malformed.
    assert_reason(&run(ca(), &pem.pem), ReasonCode::ValidityTooLong, &[]);

    // 1950 and 1969 too; and GeneralizedTime before 1950.
    for not_before in [-631_152_000, -1, -946_771_200 /* 1940 */] {
        let mut device = Device::new(CN);
        device.not_before = not_before;
        let pem = ca().issue(&device);
        assert_eq!(Certificate::from_pem(pem.pem.as_bytes()).unwrap().validity().0, not_before);
        assert_accepted(&run_with(unlimited_config(), &ca().cert.pem, &pem.pem));
    }
}

#[test]
fn a_certificate_entirely_before_1970_is_expired_not_malformed() {
    let mut device = Device::new(CN);
    device.not_before = JAN_1960;
    device.not_after = JAN_1960 + 365 * DAY;
    let report = run_with(unlimited_config(), &ca().cert.pem, &ca().issue(&device).pem);
    assert_reason(&report, ReasonCode::CertExpired, &["1960-12-31"]);
}

#[test]
fn pre_1970_times_are_still_covered_by_the_signature() {
    let mut device = Device::new(CN);
    device.not_before = JAN_1960;
    let pem = ca().issue(&device);
    // Another pre-1970 year in the signed bytes: the signature no longer verifies.
    let moved = replace_all(&pem.der, b"600101000000Z", b"650101000000Z");
    assert_reason(&run_with(unlimited_config(), &ca().cert.pem, &to_pem(&moved)), ReasonCode::SignatureInvalid, &[]);
    assert_reason(
        &run_with(unlimited_config(), &ca().cert.pem, &to_pem(&corrupt_signature(&pem.der))),
        ReasonCode::SignatureInvalid,
        &[],
    );
    // And the shifted copy's epoch time is no way in: writing 1970 where 1960 was signed fails too.
    let epoch = replace_all(&pem.der, b"600101000000Z", b"700101000000Z");
    assert_reason(&run_with(unlimited_config(), &ca().cert.pem, &to_pem(&epoch)), ReasonCode::SignatureInvalid, &[]);
}

#[test]
fn a_pre_1970_ca_can_be_in_a_ca_chain() {
    // chains_to checks signatures over the tbsCertificate as received, not a re-encoding.
    let root = CaBuild::new("Old Root", Alg::P256).valid(JAN_1960, NOW + 3650 * DAY).build();
    let parsed = Certificate::from_pem(root.cert.pem.as_bytes()).unwrap();
    assert!(parsed.validity().0 < 0);
    assert!(cert::chains_to(&parsed, std::slice::from_ref(&parsed)));
}

// ---- the order between checks ----------------------------------------------------------------------------

#[test]
fn the_most_specific_code_wins_in_the_documented_order() {
    let expired = |mut d: Device| {
        d.not_before = NOW - 30 * DAY;
        d.not_after = NOW - 10 * DAY;
        d
    };
    let bad_key = || Some(bad_ec_key(Alg::P256, BadPoint::OffCurve));
    let critical = || vec![Ext::key_usage(&[ku::DIGITAL_SIGNATURE]), Ext::unknown(true)];
    let bad_ku = || vec![Ext::key_usage(&[ku::KEY_CERT_SIGN])];

    // Invalid key before critical extension before keyUsage before the signature before time.
    let mut d = expired(Device::new(CN));
    d.public_key = bad_key();
    let pem = ca().issue_with(&d, &[Ext::unknown(true), Ext::key_usage(&[ku::KEY_CERT_SIGN])]);
    assert_reason(&run(ca(), &pem.pem), ReasonCode::InvalidPublicKey, &[]);
    let pem = ca().issue_with(&expired(Device::new(CN)), &[Ext::unknown(true), Ext::key_usage(&[ku::KEY_CERT_SIGN])]);
    assert_reason(&run(ca(), &pem.pem), ReasonCode::UnsupportedCriticalExtension, &[]);
    let pem = ca().issue_with(&expired(Device::new(CN)), &bad_ku());
    assert_reason(&run(ca(), &pem.pem), ReasonCode::KeyUsageInvalid, &[]);
    let forged = corrupt_signature(&ca().issue_with(&expired(Device::new(CN)), &critical()).der);
    assert_reason(&run(ca(), &to_pem(&forged)), ReasonCode::UnsupportedCriticalExtension, &[]);

    // The CA's key on an expired device certificate: DEVICE_KEY_IS_CA_KEY; with a bad signature, the signature.
    let mut d = expired(Device::new(CN));
    d.public_key = Some(ca().public_key());
    let pem = ca().issue(&d);
    assert_reason(&run(ca(), &pem.pem), ReasonCode::DeviceKeyIsCaKey, &[]);
    assert_reason(&run(ca(), &to_pem(&corrupt_signature(&pem.der))), ReasonCode::SignatureInvalid, &[]);

    // A name constraint violation is said before the time, and only of a certificate the CA signed.
    let constrained = constrained_ca(&[dns("devices.example.com")], &[]);
    let exts = vec![Ext::key_usage(&[ku::DIGITAL_SIGNATURE]), Ext::san(&[dns("x.other.net")], false)];
    let pem = constrained.issue_with(&expired(Device::new(CN)), &exts);
    assert_reason(&run(&constrained, &pem.pem), ReasonCode::NameConstraintViolation, &[]);
    assert_reason(&run(&constrained, &to_pem(&corrupt_signature(&pem.der))), ReasonCode::SignatureInvalid, &[]);

    // Every CA fault comes before every device fault.
    let old_ca = CaBuild::new("Old CA", Alg::P256).valid(NOW - 30 * DAY, NOW - 10 * DAY).build();
    let mut d = expired(Device::new(CN));
    d.public_key = bad_key();
    assert_reason(&run(&old_ca, &old_ca.issue_with(&d, &critical()).pem), ReasonCode::CaExpired, &[]);
    let mut build = CaBuild::new("Odd CA", Alg::P256).valid(NOW - 30 * DAY, NOW - 10 * DAY);
    build.extensions.push(Ext::unknown(true));
    let odd = build.build();
    assert_reason(&run(&odd, &odd.issue(&Device::new(CN)).pem), ReasonCode::CaInvalid, &["1.3.6.1.4.1.32473.1.1"]);
}

// ---- properties ------------------------------------------------------------------------------------------

const KEY_ALGS: [Alg; 4] = [Alg::P256, Alg::P384, Alg::P521, Alg::Rsa2048];

fn valid_point(index: usize) -> &'static [u8] {
    static POINTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    &POINTS.get_or_init(|| KEY_ALGS[..3].iter().map(|a| public_key_bytes(*a)).collect())[index % 3]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes as the subject public key, under every key algorithm: never a panic, never accepted for EC.
    #[test]
    fn arbitrary_key_bytes_never_panic(alg in 0usize..4, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut device = Device::new(CN);
        device.public_key = Some(raw_key(KEY_ALGS[alg], bytes));
        let report = run(ca(), &ca().issue(&device).pem);
        if alg < 3 {
            prop_assert_eq!(report.reason, Some(ReasonCode::InvalidPublicKey), "{}", report.message);
        } else {
            prop_assert_eq!(report.accepted(), report.reason.is_none());
        }
    }

    /// One byte of a valid point changed: always INVALID_PUBLIC_KEY (a changed coordinate leaves the curve,
    /// a changed prefix is not an uncompressed point).
    #[test]
    fn mutated_points_are_refused(curve in 0usize..3, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut point = valid_point(curve).to_vec();
        let i = at.index(point.len());
        prop_assume!(point[i] != byte);
        point[i] = byte;
        let mut device = Device::new(CN);
        device.public_key = Some(raw_key(KEY_ALGS[curve], point));
        let report = run(ca(), &ca().issue(&device).pem);
        prop_assert_eq!(report.reason, Some(ReasonCode::InvalidPublicKey), "{}", report.message);
    }

    /// The RSA exponent rule as an oracle: accepted exactly when odd, at least 65537 and below 2^33.
    #[test]
    fn rsa_exponent_rule(e in prop_oneof![0u64..70_000, any::<u64>()], even_modulus in any::<bool>()) {
        let bytes: Vec<u8> = e.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        let bytes = if bytes.is_empty() { vec![0] } else { bytes };
        let mut device = Device::new(CN);
        device.public_key = Some(rsa_key(2048, &bytes, even_modulus));
        let report = run(ca(), &ca().issue(&device).pem);
        let valid = !even_modulus && e % 2 == 1 && (65_537..(1 << 33)).contains(&e);
        if valid {
            prop_assert!(report.accepted(), "{}", report.message);
        } else {
            prop_assert_eq!(report.reason, Some(ReasonCode::InvalidPublicKey), "{}", report.message);
        }
    }
}
