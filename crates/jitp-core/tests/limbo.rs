#![cfg(test)]
//! The verifier against C2SP/x509-limbo, for the cases that fit jitp's model: one trust anchor (the registered
//! CA), one leaf (the device certificate), no intermediates, no host name to match; a case's CRLs are read as a
//! profile's `crl` under `crl_policy = "enforce"`: a CRL jitp refuses, one the CA did not issue, a stale one,
//! one that does not cover the leaf and an entry for the leaf all fail the case.
//!
//! The suite is not part of this repository. Build `limbo.json` from a checkout of x509-limbo (see
//! `crates/jitp-pki/src/cert/README.md`), then:
//!
//! `JITP_LIMBO_JSON=/path/to/limbo.json cargo test -p jitp-core --test limbo -- --ignored --nocapture`
//!
//! The test fails on any disagreement that is not in [`KNOWN_DIFFERENCES`], and on a listed one that no
//! longer happens, so the README's list stays true.

use jitp_pki::cert::{self, Certificate, DeviceCheck, KeyKind};
use jitp_pki::reason::Rejection;
use serde_json::Value;

/// Cases where jitp's answer differs from the suite's on purpose; why is in the cert README.
const KNOWN_DIFFERENCES: &[&str] = &[
    // jitp accepts what a web-PKI profile (CA/Browser Forum) or a pedantic reading of RFC 5280 refuses.
    "rfc5280::aki::cross-signed-root-missing-aki",
    "rfc5280::aki::leaf-missing-aki",
    "rfc5280::ski::root-missing-ski",
    "webpki::aki::root-with-aki-all-fields",
    "webpki::aki::root-with-aki-authoritycertissuer",
    "webpki::aki::root-with-aki-authoritycertserialnumber",
    "webpki::aki::root-with-aki-missing-keyidentifier",
    "webpki::aki::root-with-aki-ski-mismatch",
    "rfc5280::ca-empty-subject",
    "rfc5280::san::noncritical-with-empty-subject",
    "rfc5280::serial::zero",
    "rfc5280::root-non-critical-basic-constraints",
    "rfc5280::nc::permitted-dns-match-noncritical",
    "rfc5280::nc::not-allowed-in-ee-noncritical",
    "rfc5280::nc::invalid-dnsname-leading-period",
    "webpki::eku::ee-without-eku",
    "webpki::eku::ee-anyeku",
    "webpki::eku::ee-critical-eku",
    "webpki::eku::root-has-eku",
    "webpki::malformed-aia",
    "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf",
    "webpki::forbidden-rsa-not-divisible-by-8-in-root",
    // CRLs: RFC 5280 5.2.3 requires a non-critical cRLNumber of the issuer; jitp does not track CRL numbers, so
    // neither its absence nor its criticality changes what the CRL says.
    "crl::crlnumber-missing",
    "crl::crlnumber-critical",
    // jitp refuses what the suite accepts.
    "rfc5280::ca-as-leaf",
    "rfc5280::nc::permitted-dn-match",
];

#[derive(Debug, PartialEq, Eq)]
enum Skip {
    /// More than one trust anchor, or intermediates: jitp has one CA and one device certificate.
    Intermediates,
    /// Matching the leaf to a host name: jitp has no host name.
    HostName,
}

fn skip(case: &Value) -> Option<Skip> {
    let id = case["id"].as_str().unwrap_or_default();
    let len = |k: &str| case[k].as_array().map_or(0, Vec::len);
    if len("trusted_certs") != 1 || len("untrusted_intermediates") != 0 {
        return Some(Skip::Intermediates);
    }
    // Cases about matching the leaf to a host name (SAN or CN): jitp has no host name to match.
    if id.starts_with("webpki::san::")
        || id.starts_with("webpki::cn::")
        || matches!(id, "rfc5280::san::underscore-dns" | "rfc5280::san::ip-in-dns" | "rfc5280::ca-as-leaf-wrong-san")
    {
        return Some(Skip::HostName);
    }
    None
}

fn now_or(case: &Value) -> i64 {
    match case["validation_time"].as_str() {
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .unwrap(),
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    }
}

/// jitp's verdict on the case: the cert module's checks plus decide's floor of 2048-bit RSA device keys.
fn jitp(case: &Value) -> Result<(), Rejection> {
    let ca_pem = case["trusted_certs"][0].as_str().unwrap_or_default();
    let leaf_pem = case["peer_certificate"].as_str().unwrap_or_default();
    let check = DeviceCheck { now: now_or(case), clock_skew_seconds: 0 };
    let ca = Certificate::from_pem(ca_pem.as_bytes())?;
    let ok = cert::verify_ca(&ca, check)?;
    let leaf = Certificate::from_pem(leaf_pem.as_bytes())?;
    // The suite's leaves are TLS servers: check the EKU the case asks for (clientAuth only when it says so).
    if case["validation_kind"] == "CLIENT" {
        cert::verify_device(&leaf, &ca, ok, check)?;
    } else {
        cert::verify_device_as_server(&leaf, &ca, ok, check)?;
    }
    if let KeyKind::Rsa { bits } = leaf.key()
        && *bits < 2048
    {
        return Err(Rejection::new(jitp_pki::reason::ReasonCode::WeakKey, format!("{bits}-bit RSA")));
    }
    crls(case, &ca, &leaf, check.now)
}

/// The case's CRLs as one profile's `crl` under `enforce`, in decide's order: the CRL's own checks, then an
/// entry for the leaf on a covering CRL, then coverage.
fn crls(case: &Value, ca: &Certificate, leaf: &Certificate, now: i64) -> Result<(), Rejection> {
    use jitp_pki::reason::ReasonCode;
    let Some(list) = case["crls"].as_array().filter(|l| !l.is_empty()) else { return Ok(()) };
    let trusted = cert::TrustedCa::check(ca.clone())?;
    let points = cert::DistributionPoints::of(leaf);
    let held = |why: String| Rejection::new(ReasonCode::CaInvalid, why);
    let mut covered = 0;
    for pem in list {
        let crl = cert::Crl::from_bytes(pem.as_str().unwrap_or_default().as_bytes()).map_err(held)?;
        let proof = crl.verify(&trusted).map_err(held)?;
        if crl.expired_at(now) {
            return Err(held("stale".into()));
        }
        let coverage = crl.scope().coverage(&points);
        if let Some(entry) = crl.revocation(leaf, proof).filter(|e| !e.is_removal()) {
            return Err(Rejection::new(ReasonCode::CertRevoked, format!("{entry:?} (coverage {coverage:#b})")));
        }
        covered |= coverage;
    }
    if covered != cert::ALL_REASONS {
        return Err(Rejection::new(ReasonCode::CrlScopeMismatch, "not covered"));
    }
    Ok(())
}

#[test]
#[ignore = "needs JITP_LIMBO_JSON, the x509-limbo suite, which is not in this repository"]
fn x509_limbo() {
    let Ok(path) = std::env::var("JITP_LIMBO_JSON") else {
        eprintln!("JITP_LIMBO_JSON is not set; skipping");
        return;
    };
    let suite: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = suite["testcases"].as_array().unwrap();
    let (mut skipped, mut agree, mut known) = (std::collections::BTreeMap::new(), 0, 0);
    let mut unexpected = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap_or_default();
        if let Some(why) = skip(case) {
            *skipped.entry(format!("{why:?}")).or_insert(0) += 1;
            continue;
        }
        let expected_ok = case["expected_result"] == "SUCCESS";
        let result = std::panic::catch_unwind(|| jitp(case));
        let Ok(result) = result else {
            unexpected.push(format!("{id}: PANIC"));
            continue;
        };
        let verdict = match &result {
            Ok(()) => "accepted".to_owned(),
            Err(e) => format!("{}: {}", e.reason, e.message),
        };
        let agrees = result.is_ok() == expected_ok;
        let listed = KNOWN_DIFFERENCES.contains(&id);
        println!(
            "{} {id}: suite {} / jitp {verdict}",
            match (agrees, listed) {
                (true, false) => "agree   ",
                (false, true) => "known   ",
                _ => "UNEXPECTED",
            },
            case["expected_result"].as_str().unwrap_or_default(),
        );
        match (agrees, listed) {
            (true, false) => agree += 1,
            (false, true) => known += 1,
            (true, true) => unexpected.push(format!("{id}: listed as a difference but now agrees")),
            (false, false) => unexpected.push(format!("{id}: suite {expected_ok}, jitp {verdict}")),
        }
    }
    let applicable = agree + known + unexpected.len();
    println!(
        "x509-limbo: {} cases, {applicable} applicable: {agree} agree, {known} known differences, {} unexpected; \
         skipped {skipped:?}",
        cases.len(),
        unexpected.len()
    );
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
