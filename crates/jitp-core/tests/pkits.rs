#![cfg(test)]
//! jitp's CRL handling against NIST PKITS (version 1.0.1, the 2011 data: RSA 2048, SHA-256), sections 4.4 (basic
//! revocation), 4.14 (distribution points) and 4.15 (delta CRLs), for the cases that fit jitp's model: the
//! end-entity's issuing CA registered as the one CA, the device certificate signed by it directly, and that CA's
//! CRLs listed in its profile (`crl_policy = "enforce"`). Each case runs through `decide::check`, the code path
//! of `jitp check` and the workflow. The data (public domain) is in `tests/fixtures/pkits/`, with its provenance.
//!
//! The test fails on any disagreement that is not in [`KNOWN_DIFFERENCES`], and on a listed one that no longer
//! happens, so the cert README's list stays true.

use jitp_core::decide::check;
use jitp_core::rules::Rules;
use jitp_policy::policy::AwsContext;
use jitp_testkit::NOW;
use jitp_testkit::config_dir::ConfigDir;

/// Cases where jitp's answer differs from PKITS's on purpose; why is in the cert README ("NIST PKITS").
const KNOWN_DIFFERENCES: &[&str] = &[
    // A listed CRL the registered CA did not issue (another issuer name, or signed by a separate CRL key) holds the
    // profile's devices under `enforce`: jitp verifies CRLs with the registered CA's key only.
    "4.4.7", "4.4.19",  // onlyContainsCACerts (an ARL) says nothing of devices: refused at load.
    "4.14.13", // Indirect CRLs (indirectCRL, even for the CA's own certificates) are refused at load.
    "4.14.22",
    // A certificate whose distribution point names a cRLIssuer (an indirect CRL) is covered by none of the CA's
    // own CRLs with a distribution point name: held.
    "4.14.28", "4.14.29", // Delta CRLs are refused at load.
    "4.15.2", "4.15.5", "4.15.7", "4.15.8",
];

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pkits")
}

/// jitp's verdict: `Ok(())` accepted, `Err(why)` refused (a configuration jitp does not load counts as refused:
/// no device of the profile is provisioned).
fn jitp(ca: &str, ee: &str, crls: &[&str]) -> Result<(), String> {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    for crl in crls {
        std::fs::copy(fixtures().join(format!("crls/{crl}.crl")), dir.path().join(format!("crl/{crl}.crl"))).unwrap();
    }
    let list: Vec<String> = crls.iter().map(|c| format!("\"crl/{c}.crl\"")).collect();
    let config = format!(
        "[[profiles]]\nname = \"pkits\"\nca = [\"*\"]\ncommon_name = '.+'\nthing_name = \"pkits-device\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [{}]\n",
        list.join(", ")
    );
    let rules = Rules::load(dir.write_config(&config)).map_err(|e| format!("refused at load: {e}"))?;
    let pem = |name: &str| jitp_testkit::to_pem(&std::fs::read(fixtures().join(format!("certs/{name}.crt"))).unwrap());
    let report = check(&rules, pem(ca).as_bytes(), pem(ee).as_bytes(), None, NOW, &AwsContext::default());
    match report.reason {
        None => Ok(()),
        Some(reason) => Err(format!("{reason}: {}", report.message)),
    }
}

#[test]
fn nist_pkits_revocation_cases() {
    let cases = std::fs::read_to_string(fixtures().join("cases.txt")).unwrap();
    let (mut agree, mut known, mut unexpected) = (0, 0, Vec::new());
    for line in cases.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let [id, expected, ca, ee, crls] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("{line}") };
        let crls: Vec<&str> = crls.split(',').collect();
        let verdict = jitp(ca, ee, &crls);
        let agrees = verdict.is_ok() == (expected == "valid");
        let listed = KNOWN_DIFFERENCES.contains(&id);
        println!(
            "{} {id} {ee}: PKITS {expected} / jitp {}",
            match (agrees, listed) {
                (true, false) => "agree   ",
                (false, true) => "known   ",
                _ => "UNEXPECTED",
            },
            verdict.as_ref().err().map_or("accepted", String::as_str)
        );
        match (agrees, listed) {
            (true, false) => agree += 1,
            (false, true) => known += 1,
            (true, true) => unexpected.push(format!("{id}: listed as a difference but now agrees")),
            (false, false) => unexpected.push(format!("{id}: PKITS {expected}, jitp {verdict:?}")),
        }
    }
    println!("NIST PKITS: {agree} agree, {known} known differences, {} unexpected", unexpected.len());
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
