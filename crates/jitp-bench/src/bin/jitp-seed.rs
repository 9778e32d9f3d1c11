//! Seed corpora for the fuzz targets, from the test fixtures: writes `fuzz/corpus/<target>/` (gitignored).
//!
//! - `event_parse`: the registration event as AWS IoT publishes it, and the malformed variants the unit tests use.
//! - `certificate`: device certificates signed by the fuzz crate's fixed CA (`fuzz/fixtures/ca.pem`, key in
//!   `fuzz/fixtures/ca.key.pem`, test-only) that pass or fail each check of the decision, the same as PEM and as
//!   DER, plus the testkit's hostile fixtures (other CAs, byte surgery) and malformed PEM files.
//! - `render`: subjects in the render target's input format (see `jitp_fuzz::subject_of`).
//!
//! `cargo run --release -p jitp-bench --bin jitp-seed [-- --new-ca]` (`--new-ca` makes a new fixed CA; the
//! fuzz crate embeds `ca.pem`, so run it only to replace the CA on purpose).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // seed generator: a fixture that cannot be built is a bug

use std::path::Path;

use jitp_testkit::{Alg, Ca, DAY, Device, NOW, Pem, events, oid, replace_all, repo_root, to_pem};
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// The fixed CA's parameters. Its subject must not change: `ca.pem` and every seed depend on it.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "jitp fuzz");
    dn.push(DnType::CommonName, "jitp fuzz CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(NOW - 6 * 365 * DAY);
    params.not_after = at(NOW + 14 * 365 * DAY);
    params.serial_number = Some(SerialNumber::from_slice(&[0x0f, 0x22]));
    params
}

/// A device certificate to sign with the fixed CA.
struct Spec {
    name: &'static str,
    subject: Vec<(DnType, DnValue)>,
    alg: Alg,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
}

impl Spec {
    fn new(name: &'static str, cn: &str) -> Self {
        Self {
            name,
            subject: vec![(DnType::OrganizationName, "Acme".into()), (DnType::CommonName, cn.into())],
            alg: Alg::P256,
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
            is_ca: false,
        }
    }

    fn alg(mut self, alg: Alg) -> Self {
        self.alg = alg;
        self
    }

    fn with(mut self, ty: DnType, value: DnValue) -> Self {
        self.subject.push((ty, value));
        self
    }

    fn sign(&self, issuer: &Issuer<'_, KeyPair>, serial: u8) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, value) in &self.subject {
            dn.push(ty.clone(), value.clone());
        }
        params.distinguished_name = dn;
        params.is_ca = if self.is_ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::NoCa };
        params.not_before = at(self.not_before);
        params.not_after = at(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&[0x5e, serial]));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.signed_by(&self.alg.key(), issuer).unwrap().der().to_vec()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let new_ca = std::env::args().any(|a| a == "--new-ca");
    let root = repo_root();
    let fixtures = root.join("fuzz/fixtures");
    let key_path = fixtures.join("ca.key.pem");
    if new_ca {
        std::fs::create_dir_all(&fixtures).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = ca_params().self_signed(&key).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(fixtures.join("ca.pem"), cert.pem()).unwrap();
        eprintln!("wrote a new fixed CA to {}", fixtures.display());
    }
    let key_pem = std::fs::read_to_string(&key_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with --new-ca to make the fixed CA)", key_path.display()));
    let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&key_pem).unwrap());
    let corpus = root.join("fuzz/corpus");
    let mut counts = Vec::new();

    // event_parse
    let dir = corpus.join("event_parse");
    std::fs::create_dir_all(&dir).unwrap();
    let good = events::sample();
    let mut seeds: Vec<Vec<u8>> = vec![good.clone().into_bytes()];
    seeds.extend(events::accepted_variants().into_iter().map(String::into_bytes));
    seeds.push(good.replace("PENDING_ACTIVATION", "ACTIVE").into_bytes());
    seeds.push(good.replace("PENDING_ACTIVATION", "REVOKED").into_bytes());
    seeds.extend(events::malformed_variants());
    seeds.push(events::sqs(&[("1", &good)]).to_string().into_bytes());
    let pretty: serde_json::Value = serde_json::from_str(&good).unwrap();
    seeds.push(serde_json::to_string_pretty(&pretty).unwrap().into_bytes());
    for (i, e) in seeds.iter().enumerate() {
        write(&dir, &format!("event-{i:02}.json"), e);
    }
    counts.push(("event_parse", seeds.len()));

    // certificate
    let dir = corpus.join("certificate");
    std::fs::create_dir_all(&dir).unwrap();
    let printable = |s: &str| DnValue::PrintableString(PrintableString::try_from(s).unwrap());
    let mut expired = Spec::new("expired", "sensor-00000000000e");
    (expired.not_before, expired.not_after) = (NOW - 400 * DAY, NOW - 30 * DAY);
    let mut future = Spec::new("not-yet-valid", "sensor-00000000000f");
    (future.not_before, future.not_after) = (NOW + 30 * DAY, NOW + 400 * DAY);
    let mut too_long = Spec::new("validity-too-long", "sensor-000000000010");
    too_long.not_after = NOW + 30 * 365 * DAY;
    let mut is_ca = Spec::new("device-is-ca", "sensor-000000000011");
    is_ca.is_ca = true;
    let specs = vec![
        Spec::new("sensor-p256", "sensor-0123456789ab"),
        Spec::new("sensor-p384", "sensor-0123456789ac").alg(Alg::P384),
        Spec::new("sensor-rsa2048", "sensor-0123456789ad").alg(Alg::Rsa2048),
        Spec::new("gateway-rsa3072", "gw-de-0001").alg(Alg::Rsa3072).with(DnType::StateOrProvinceName, "Berlin".into()),
        Spec::new("gateway-rsa2048-weak", "gw-de-0002").alg(Alg::Rsa2048),
        Spec::new("sensor-ou", "sensor-0123456789ae").with(DnType::OrganizationalUnitName, "batch-7".into()),
        Spec::new("sensor-printable", "sensor-0123456789af").with(DnType::CountryName, printable("DE")),
        Spec::new("sensor-bmp", "sensor-0123456789b0")
            .with(DnType::OrganizationalUnitName, DnValue::BmpString(BmpString::try_from("lot-ü").unwrap())),
        Spec::new("sensor-ia5", "sensor-0123456789b1")
            .with(DnType::OrganizationalUnitName, DnValue::Ia5String(Ia5String::try_from("lot-1").unwrap())),
        Spec::new("sensor-teletex", "sensor-0123456789b2")
            .with(DnType::OrganizationalUnitName, DnValue::TeletexString(TeletexString::try_from("lot-2").unwrap())),
        Spec::new("sensor-universal", "sensor-0123456789b3").with(
            DnType::OrganizationalUnitName,
            DnValue::UniversalString(UniversalString::try_from("lot-3").unwrap()),
        ),
        Spec::new("cn-mismatch", "sensor-XYZ"),
        Spec::new("cn-wildcard", "sensor-*"),
        Spec::new("cn-slash", "sensor-0123/456789"),
        Spec::new("two-cns", "sensor-0123456789b4").with(DnType::CommonName, "sensor-0123456789b5".into()),
        Spec::new("ou-forbidden", "sensor-0123456789b6").with(DnType::OrganizationalUnitName, "a\"b${x}#+".into()),
        Spec::new("ed25519", "sensor-0123456789b7").alg(Alg::Ed25519),
        Spec::new("p521", "sensor-0123456789b8").alg(Alg::P521),
        expired,
        future,
        too_long,
        is_ca,
    ];
    let mut n = 0;
    for (i, spec) in specs.iter().enumerate() {
        let der = spec.sign(&issuer, u8::try_from(i).unwrap());
        write(&dir, &format!("{}.pem", spec.name), to_pem(&der).as_bytes());
        write(&dir, &format!("{}.der", spec.name), &der);
        n += 2;
        if i == 0 {
            let corrupt = jitp_testkit::corrupt_signature(&der);
            write(&dir, "bad-signature.pem", to_pem(&corrupt).as_bytes());
            let sha1 = replace_all(&der, oid::ECDSA_SHA256, oid::ECDSA_SHA224);
            write(&dir, "ecdsa-sha224.pem", to_pem(&sha1).as_bytes());
            let p192 = replace_all(&der, oid::P256, oid::P192);
            write(&dir, "p192.pem", to_pem(&p192).as_bytes());
            let pem = to_pem(&der);
            write(&dir, "trailing.pem", format!("{pem}trailing").as_bytes());
            write(&dir, "two-blocks.pem", format!("{pem}{pem}").as_bytes());
            write(&dir, "crlf.pem", pem.replace('\n', "\r\n").as_bytes());
            n += 6;
        }
    }
    // The testkit's own fixtures: another CA (issuer mismatch), RSA surgery.
    let other = Ca::new("Other CA", Alg::Rsa2048);
    let foreign: Pem = other.issue(&Device::new("sensor-0123456789c0").alg(Alg::Rsa2048));
    write(&dir, "other-ca.pem", foreign.pem.as_bytes());
    write(&dir, "sha1-rsa.pem", to_pem(&replace_all(&foreign.der, oid::SHA256_RSA, oid::SHA1_RSA)).as_bytes());
    let tiny = other.issue(&Device {
        public_key: Some(jitp_testkit::rsa_public_key(1024)),
        ..Device::new("sensor-0123456789c1").alg(Alg::Rsa2048)
    });
    write(&dir, "rsa1024.pem", tiny.pem.as_bytes());
    write(&dir, "ca.pem", other.cert.pem.as_bytes());
    write(&dir, "private-key.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    write(&dir, "empty-block.pem", b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    n += 6;
    counts.push(("certificate", n));

    // render
    let dir = corpus.join("render");
    std::fs::create_dir_all(&dir).unwrap();
    let subject = |selector: u8, fields: &[(u8, &str)]| {
        let mut out = vec![selector];
        for (i, (field, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(0xFF);
            }
            out.push(*field);
            out.extend_from_slice(value.as_bytes());
        }
        out
    };
    let renders = [
        subject(0, &[(0, "sensor-0123456789ab"), (1, "Acme")]),
        subject(0, &[(0, "sensor-0123456789ab"), (1, "Acme"), (2, "batch-7")]),
        subject(2, &[(0, "gw-de-0001"), (1, "Acme"), (4, "Berlin")]),
        subject(1, &[(0, "sensor-0123456789ab"), (1, "Acme"), (2, "lot-1"), (3, "DE"), (4, "Berlin"), (5, "SN-1")]),
        subject(3, &[(0, "sensor-0123456789ab"), (1, "Acme"), (2, "lot-1"), (3, "DE"), (4, "Berlin"), (5, "SN-1")]),
        subject(1, &[(0, "dev"), (2, "a/b")]),
        subject(1, &[(0, "dev"), (4, "x*y")]),
        subject(1, &[(0, "dev"), (3, "${iot:ClientId}")]),
        subject(1, &[(0, "dev"), (5, "a\"b")]),
        subject(1, &[(0, "dev"), (1, "line\nbreak")]),
        subject(3, &[(0, "dev"), (1, "Ac#me")]),
        subject(0, &[(0, "sensor-0123456789ab"), (0, "sensor-0123456789ac")]),
    ];
    for (i, r) in renders.iter().enumerate() {
        write(&dir, &format!("subject-{i:02}"), r);
    }
    counts.push(("render", renders.len()));

    // crl: CRLs of a test CA (PEM and DER, empty and with entries, stale), and one signed with the fixed CA's key so
    // that the fuzzer starts where the signature verifies.
    let dir = corpus.join("crl");
    std::fs::create_dir_all(&dir).unwrap();
    let crl_ca = Ca::new("jitp seed CRL CA", Alg::P256);
    let listed: [&[u8]; 3] = [&[0x01], &[0x5a, 0x01, 0x02, 0x03], &[0x7f; 20]];
    let crls = [
        ("empty", crl_ca.crl(&[], NOW - DAY, NOW + 30 * DAY)),
        ("three", crl_ca.crl(&listed, NOW - DAY, NOW + 30 * DAY)),
        ("stale", crl_ca.crl(&listed[..1], NOW - 60 * DAY, NOW - 30 * DAY)),
        ("scoped", crl_ca.crl_with(&scoped_crl_spec(&listed))),
    ];
    let mut n = 0;
    for (name, file) in &crls {
        write(&dir, &format!("{name}.pem"), file.pem.as_bytes());
        write(&dir, &format!("{name}.der"), &file.der);
        n += 2;
    }
    let fixed_crl = rcgen::CertificateRevocationListParams {
        this_update: OffsetDateTime::from_unix_timestamp(NOW - DAY).unwrap(),
        next_update: OffsetDateTime::from_unix_timestamp(NOW + 30 * DAY).unwrap(),
        crl_number: rcgen::SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(&[0x42]),
            revocation_time: OffsetDateTime::from_unix_timestamp(NOW - DAY).unwrap(),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    write(&dir, "fixed-ca.der", fixed_crl.der());
    write(&dir, "fixed-ca.pem", fixed_crl.pem().unwrap().as_bytes());
    n += 2;
    counts.push(("crl", n));

    for (target, n) in counts {
        println!("{target}: {n} seeds in {}", corpus.join(target).display());
    }
}

/// A CRL with an issuingDistributionPoint of every part jitp reads (a relative name, onlyContainsUserCerts,
/// onlySomeReasons), a freshestCRL, and hold and removeFromCRL entries: the scope parser's seed.
fn scoped_crl_spec(listed: &[&[u8]]) -> jitp_testkit::CrlSpec {
    use jitp_testkit::crl_ext::{DpName, Idp, RawExtension};
    let mut spec = jitp_testkit::CrlSpec::new(listed);
    for (entry, reason) in spec
        .revoked
        .iter_mut()
        .zip([jitp_testkit::RevocationReason::CertificateHold, jitp_testkit::RevocationReason::RemoveFromCrl])
    {
        entry.reason = Some(reason);
    }
    let idp = Idp {
        name: Some(DpName::RelativeCn("partition 1".into())),
        only_user: true,
        only_some_reasons: Some(0b110),
        ..Idp::default()
    };
    spec.extensions = vec![RawExtension::idp(&idp), RawExtension::freshest_crl("http://crl.example/delta.crl")];
    spec
}
