#![cfg(test)]
//! Key quality before activation (`cert::rsa_weakness`): RSA moduli built to have each weakness (ROCA's
//! structure, a small factor, factors close together, a square), real ones (ROCA's own test moduli), and good
//! keys (`openssl genrsa`, aws-lc), each against the verdict of independent implementations; then the same keys
//! in certificates through `decide`, the workflow and reconcile.
//!
//! `data/weak_rsa/moduli.txt` holds 91 moduli with jitp's verdict; `weak_moduli.py check` derives the same verdicts
//! from roca-detect 1.2.12 (both its detectors) and badkeys 0.0.21 (roca, smallfactors, fermat) with jitp's bounds:
//! 91 agree, 0 mismatches (see data/weak_rsa/README.md).

use std::sync::{Arc, OnceLock};

use jitp_core::audit::Outcome;
use jitp_core::decide::{CheckReport, check};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::reconcile::Reconciler;
use jitp_core::rules::Rules;
use jitp_pki::cert::{FERMAT_ROUNDS, MIN_CHECKED_BITS, RsaWeakness, SMALL_FACTOR_BOUND, rsa_weakness};
use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::{IotRegistry, ThingSpec};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW, corrupt_signature, rsa_key_with_modulus, to_pem};
use num_bigint::BigUint;
use proptest::prelude::*;

const CN: &str = "sensor-0123456789ab";
const E: &[u8] = &[0x01, 0x00, 0x01];

/// One line of the fixture: the verdict, where the modulus comes from, the modulus.
struct Case {
    verdict: String,
    source: String,
    modulus: Vec<u8>,
}

fn fixture() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let text = include_str!("data/weak_rsa/moduli.txt");
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut parts = l.split_whitespace();
                let (verdict, source, hex) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                let hex = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex.to_owned() };
                Case { verdict: verdict.into(), source: source.into(), modulus: hex::decode(hex).unwrap() }
            })
            .collect()
    })
}

/// The first fixture modulus with this verdict and a source containing `source`.
fn modulus(verdict: &str, source: &str) -> &'static [u8] {
    &fixture().iter().find(|c| c.verdict == verdict && c.source.contains(source)).unwrap().modulus
}

/// The fixture's notation for a verdict.
fn notation(weakness: Option<RsaWeakness>) -> String {
    match weakness {
        None => "none".into(),
        Some(RsaWeakness::Roca) => "roca".into(),
        Some(RsaWeakness::SmallFactor { prime }) => format!("small_factor:{prime}"),
        Some(RsaWeakness::CloseFactors { round, .. }) => format!("close_factors:{round}"),
        Some(other) => format!("{other:?}"),
    }
}

#[test]
fn every_fixture_modulus_gets_the_verdict_of_the_independent_implementations() {
    let mut counts = std::collections::BTreeMap::new();
    for case in fixture() {
        assert_eq!(notation(rsa_weakness(&case.modulus)), case.verdict, "{}", case.source);
        *counts.entry(case.verdict.split(':').next().unwrap().to_owned()).or_insert(0) += 1;
    }
    // What the fixture covers, so that a truncated file fails here.
    let expected = [("close_factors", 7), ("none", 56), ("roca", 19), ("small_factor", 9)];
    assert_eq!(counts, expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
}

#[test]
fn close_factors_report_their_round_and_distance() {
    let found = |source| rsa_weakness(modulus("close_factors:1", source));
    let Some(RsaWeakness::CloseFactors { round: 1, difference_bits }) = found("round-1-2048") else { panic!() };
    assert!((2..=520).contains(&difference_bits), "{difference_bits}");
    let square = rsa_weakness(modulus("close_factors:0", "square"));
    assert_eq!(square, Some(RsaWeakness::CloseFactors { round: 0, difference_bits: 0 }));
    assert!(square.unwrap().to_string().contains("perfect square"));
    // Round 100 is the last Fermat tries; the pair at round 101 is not looked for (as badkeys).
    assert_eq!(FERMAT_ROUNDS, 100);
    assert!(matches!(
        rsa_weakness(modulus("close_factors:100", "round-100")),
        Some(RsaWeakness::CloseFactors { round: 100, .. })
    ));
    assert_eq!(rsa_weakness(modulus("none", "round-101")), None);
}

// ---- the classes, as property tests with oracles written independently of the detector ----

fn big(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

/// Trial division, the naive way: the smallest odd prime below the bound dividing `n`.
fn smallest_factor(n: &BigUint) -> Option<u32> {
    (3..SMALL_FACTOR_BOUND).step_by(2).find(|d| (n % *d).bits() == 0)
}

/// Fermat's method, the naive way: the first `a` from ceil(sqrt(n)) with `a² - n` a square, within the rounds.
fn naive_fermat(n: &BigUint) -> Option<u32> {
    let root = n.sqrt();
    if &root * &root == *n {
        return Some(0);
    }
    (1..=FERMAT_ROUNDS).find(|round| {
        let a = &root + round;
        let b2 = &a * &a - n;
        let b = b2.sqrt();
        &b * &b == b2
    })
}

/// Infineon RSALib's M for each key size: the primorial of the first 39, 71, 126 or 225 primes.
fn primorial(count: usize) -> BigUint {
    let mut m = BigUint::from(1u32);
    let mut found = 0;
    let mut n = 2u32;
    while found < count {
        if (2..n).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d)) {
            m *= n;
            found += 1;
        }
        n += 1;
    }
    m
}

fn primorials() -> &'static [BigUint; 4] {
    static M: OnceLock<[BigUint; 4]> = OnceLock::new();
    M.get_or_init(|| [primorial(39), primorial(71), primorial(126), primorial(225)])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// p = k·M + (65537^a mod M), q likewise (the structure, primes or not: the test sees only N). Every such
    /// modulus is ROCA, unless a prime above M's and below the bound divides it (then that factor is reported).
    #[test]
    fn roca_structured_moduli_are_found(
        which in 0usize..4,
        a in any::<u64>(),
        b in any::<u64>(),
        k1 in prop::collection::vec(any::<u8>(), 1..16),
        k2 in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let m = &primorials()[which];
        let g = BigUint::from(65_537u32);
        let p = big(&k1) * m + g.modpow(&BigUint::from(a), m);
        let q = big(&k2) * m + g.modpow(&BigUint::from(b), m);
        let n = &p * &q;
        prop_assume!((MIN_CHECKED_BITS as u64..=8192).contains(&n.bits()));
        let expected = match smallest_factor(&n) {
            Some(prime) => Some(RsaWeakness::SmallFactor { prime }),
            None => Some(RsaWeakness::Roca),
        };
        prop_assert_eq!(rsa_weakness(&n.to_bytes_be()), expected);
    }

    /// A random odd number of any size jitp examines: a small factor exactly when trial division finds one, and
    /// otherwise nothing (ROCA's structure by chance: 2^-155; factors within 100 Fermat rounds: less still).
    #[test]
    fn random_moduli_are_judged_by_their_factors(bytes in prop::collection::vec(any::<u8>(), 32..=1024)) {
        let mut bytes = bytes;
        bytes[0] |= 0x80;
        *bytes.last_mut().unwrap() |= 1;
        let n = big(&bytes);
        let expected = smallest_factor(&n).map(|prime| RsaWeakness::SmallFactor { prime });
        prop_assert_eq!(rsa_weakness(&bytes), expected);
    }

    /// p and q = p + 2g, neither with a small factor, with g from 0 to a few rounds past the last one Fermat
    /// tries: the detector reports the round the naive method finds, and nothing past the last round.
    #[test]
    fn close_factors_are_found_at_the_naive_round(
        p in prop::collection::vec(any::<u8>(), 32..=256),
        rounds in 0u32..130,
        jitter in 0u32..1000,
    ) {
        let mut p = big(&p);
        p.set_bit(p.bits().max(256) - 1, true);
        p.set_bit(0, true);
        // round - 1 ≈ g² / (2·a) with a = p + g: g ≈ √(2·p·rounds).
        let g = (BigUint::from(2u32) * &p * rounds).sqrt() + jitter;
        while smallest_factor(&p).is_some() || smallest_factor(&(&p + (&g << 1u32))).is_some() {
            p += 2u32;
        }
        let n = &p * (&p + (&g << 1u32));
        let expected = naive_fermat(&n)
            .map(|round| match round {
                0 => RsaWeakness::CloseFactors { round, difference_bits: 0 },
                _ => RsaWeakness::CloseFactors { round, difference_bits: (&g << 1u32).bits() },
            });
        prop_assert_eq!(rsa_weakness(&n.to_bytes_be()), expected);
    }
}

/// The test kit's stand-in moduli (of keys no test signs with) have no weakness, at every size tests use.
#[test]
fn the_test_kits_stand_in_moduli_are_sound() {
    for bits in [1024, 2048, 2056, 3072, 4096, 8192] {
        let key = jitp_testkit::rsa_public_key(bits);
        let spki = key.bytes;
        // RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }; n is the first INTEGER.
        let n = first_integer(&spki);
        assert_eq!(rsa_weakness(n), None, "{bits}");
    }
}

/// The content of the first INTEGER inside the outer SEQUENCE of `der` (long lengths of up to two bytes).
fn first_integer(der: &[u8]) -> &[u8] {
    fn header(der: &[u8]) -> (usize, usize) {
        match der[1] {
            l if l < 0x80 => (2, l as usize),
            0x81 => (3, der[2] as usize),
            _ => (4, (der[2] as usize) << 8 | der[3] as usize),
        }
    }
    let (outer, _) = header(der);
    let inner = &der[outer..];
    let (start, len) = header(inner);
    &inner[start..start + len]
}

// ---- good keys: zero false positives ----

fn fresh_rsa(size: aws_lc_rs::rsa::KeySize) -> Vec<u8> {
    use aws_lc_rs::signature::KeyPair as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(size).unwrap();
    first_integer(key.public_key().as_ref()).to_vec()
}

/// Freshly generated keys (aws-lc, which device stacks and AWS's own key generation resemble) pass. A handful per
/// run in CI, different every run; `good_keys_at_scale` runs thousands (release build, `--ignored`).
#[test]
fn freshly_generated_keys_pass() {
    use aws_lc_rs::rsa::KeySize;
    for size in [KeySize::Rsa2048, KeySize::Rsa2048, KeySize::Rsa2048, KeySize::Rsa2048, KeySize::Rsa3072] {
        let n = fresh_rsa(size);
        assert_eq!(rsa_weakness(&n), None, "{}", hex::encode(&n));
    }
}

/// `cargo test --release -p jitp-core --test weak_keys -- --ignored --nocapture good_keys_at_scale`; the count from
/// JITP_GOOD_KEYS (default 2000 RSA-2048, plus a tenth as many RSA-4096).
#[test]
#[ignore = "minutes: thousands of RSA key generations"]
fn good_keys_at_scale() {
    use aws_lc_rs::rsa::KeySize;
    let count: usize = std::env::var("JITP_GOOD_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut flagged = Vec::new();
    for (size, n) in [(KeySize::Rsa2048, count), (KeySize::Rsa4096, count / 10)] {
        for _ in 0..n {
            let modulus = fresh_rsa(size);
            if let Some(w) = rsa_weakness(&modulus) {
                flagged.push((hex::encode(&modulus), w));
            }
        }
    }
    println!("{} RSA-2048 and {} RSA-4096 keys: {} flagged", count, count / 10, flagged.len());
    assert!(flagged.is_empty(), "{flagged:?}");
}

// ---- in certificates: decide ----

fn repo_config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn ca() -> &'static Ca {
    static C: OnceLock<Ca> = OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn device_with(modulus: &[u8]) -> Device {
    device_with_cn(CN, modulus)
}

fn run(ca_pem: &str, cert_pem: &str) -> CheckReport {
    check(repo_config(), ca_pem.as_bytes(), cert_pem.as_bytes(), None, NOW, &AwsContext::default())
}

#[track_caller]
fn assert_refused(report: &CheckReport, reason: ReasonCode, needles: &[&str]) {
    assert_eq!(report.reason, Some(reason), "{}", report.message);
    for needle in needles {
        assert!(report.message.contains(needle), "{:?} does not contain {needle:?}", report.message);
    }
}

#[test]
fn a_device_with_each_weakness_is_weak_key_and_a_good_one_is_accepted() {
    let cases: [(&[u8], &[&str]); 6] = [
        (modulus("roca", "generated-roca-2048"), &["CVE-2017-15361", "Infineon"]),
        (modulus("roca", "crocs-muni-roca-mod03"), &["CVE-2017-15361"]),
        (modulus("roca", "generated-roca-4096"), &["ROCA"]),
        (modulus("small_factor:3", "2048"), &["divisible by 3"]),
        (modulus("close_factors:1", "round-1-2048"), &["Fermat", "1 round", "CVE-2022-26320"]),
        (modulus("close_factors:0", "square"), &["perfect square"]),
    ];
    for (n, needles) in cases {
        let report = run(&ca().cert.pem, &ca().issue(&device_with(n)).pem);
        assert_refused(&report, ReasonCode::WeakKey, needles);
        assert_eq!(ReasonCode::WeakKey.fault(), Fault::Device);
    }
    for case in fixture().iter().filter(|c| c.source.starts_with("openssl-genrsa")) {
        let report = run(&ca().cert.pem, &ca().issue(&device_with(&case.modulus)).pem);
        assert!(report.accepted(), "{}: {}", case.source, report.message);
    }
}

/// WEAK_KEY comes after the signature (a forger's certificate is SIGNATURE_INVALID, not the CA's device's weak
/// key) and before the validity window and the profile's size floor (a compromised key is the most specific thing
/// to say of an expired certificate or of a 1024-bit one).
#[test]
fn where_weak_key_comes_in_the_order() {
    let roca = modulus("roca", "generated-roca-2048");
    let forged = to_pem(&corrupt_signature(&ca().issue(&device_with(roca)).der));
    assert_refused(&run(&ca().cert.pem, &forged), ReasonCode::SignatureInvalid, &[]);

    let mut expired = device_with(roca);
    (expired.not_before, expired.not_after) = (NOW - 20 * DAY, NOW - 10 * DAY);
    assert_refused(&run(&ca().cert.pem, &ca().issue(&expired).pem), ReasonCode::WeakKey, &["CVE-2017-15361"]);

    let small = modulus("roca", "generated-roca-1024");
    assert_refused(&run(&ca().cert.pem, &ca().issue(&device_with(small)).pem), ReasonCode::WeakKey, &["ROCA"]);

    // A bad exponent is said first: INVALID_PUBLIC_KEY is checked before the signature.
    let mut bad_exponent = Device::new(CN);
    bad_exponent.public_key = Some(rsa_key_with_modulus(roca, &[0x03]));
    assert_refused(&run(&ca().cert.pem, &ca().issue(&bad_exponent).pem), ReasonCode::InvalidPublicKey, &[]);
}

fn weak_ca(n: &[u8]) -> String {
    Ca::with_public_key_for_tests(rsa_key_with_modulus(n, E))
}

/// The registered CA's key is the operator's: CA_INVALID (HELD), never the device's WEAK_KEY.
#[test]
fn a_registered_ca_with_a_weak_key_is_ca_invalid() {
    for (n, needle) in [
        (modulus("roca", "generated-roca-2048"), "CVE-2017-15361"),
        (modulus("small_factor:167", "2048"), "divisible by 167"),
        (modulus("close_factors:2", "round-2-2048"), "2 rounds"),
    ] {
        let report = run(&weak_ca(n), &ca().issue(&Device::new(CN)).pem);
        assert_refused(&report, ReasonCode::CaInvalid, &["registered CA's key", needle]);
        assert_eq!(ReasonCode::CaInvalid.fault(), Fault::Operator);
    }
    let good = modulus("none", "openssl-genrsa-2048");
    let ca_pem = weak_ca(good);
    let ca = jitp_pki::cert::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    assert!(jitp_pki::cert::TrustedCa::check(ca).is_ok(), "a good key passes");
}

// ---- the workflow: refused before activation ----

struct World {
    registry: Arc<MemoryRegistry>,
    provisioner: Provisioner,
}

impl World {
    fn new() -> Self {
        let registry = Arc::new(MemoryRegistry::new());
        let rules = Arc::new(Rules::load(jitp_testkit::repo_config_path()).unwrap());
        let settings = Settings { retry_base: std::time::Duration::from_millis(1), ..Settings::default() };
        let provisioner = Provisioner::new(rules, registry.clone() as Arc<dyn IotRegistry>, settings);
        Self { registry, provisioner }
    }

    async fn provision(
        &self,
        ca_pem: &str,
        cert_pem: &str,
    ) -> (jitp_pki::ids::CertificateId, jitp_core::audit::AuditRecord) {
        let ca_id = self.registry.register_ca(ca_pem, true).unwrap();
        let id = self.registry.register_certificate(cert_pem, &ca_id).unwrap();
        let event = jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str());
        (id.clone(), self.provisioner.handle_bytes(event.as_bytes(), NOW).await)
    }
}

#[tokio::test]
async fn the_workflow_refuses_a_weak_device_key_before_activation() {
    let world = World::new();
    for source in ["generated-roca-2048", "crocs-muni-roca-mod09"] {
        let pem = ca().issue(&device_with(modulus("roca", source))).pem;
        let (id, record) = world.provision(&ca().cert.pem, &pem).await;
        assert_eq!(
            (record.outcome, record.reason),
            (Outcome::Rejected, Some(ReasonCode::WeakKey)),
            "{}",
            record.message
        );
        assert!(record.message.contains("CVE-2017-15361"), "{}", record.message);
        // The repository's profile revokes a device's fault; whatever it says, the certificate is never ACTIVE.
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    }
    assert!(world.registry.thing_names().is_empty());
    assert!(world.registry.policies().is_empty());
}

#[tokio::test]
async fn a_weak_ca_key_holds_its_devices_pending() {
    let world = World::new();
    let ca_pem = weak_ca(modulus("roca", "generated-roca-2048"));
    let (id, record) = world.provision(&ca_pem, &ca().issue(&Device::new(CN)).pem).await;
    assert_eq!((record.outcome, record.reason), (Outcome::Held, Some(ReasonCode::CaInvalid)), "{}", record.message);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
}

// ---- reconcile: ACTIVE devices whose keys fail today ----

#[tokio::test]
async fn reconcile_reports_active_devices_with_weak_keys() {
    let dir = ConfigDir::shipped();
    let registry = Arc::new(MemoryRegistry::new());
    let ca = Ca::new("Reconcile CA", Alg::P256);
    let ca_id: CaCertificateId = registry.register_ca(&ca.cert.pem, true).unwrap();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let settings = Settings::default();
    let provisioner = Provisioner::new(rules.clone(), registry.clone() as Arc<dyn IotRegistry>, settings.clone());
    // One good device, provisioned by the workflow.
    let good = registry.register_certificate(&ca.issue(&Device::new(CN)).pem, &ca_id).unwrap();
    let record =
        provisioner.handle_bytes(jitp_testkit::event_for_ids(good.as_str(), ca_id.as_str()).as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    // Two devices activated before jitp looked at key quality (as a thing, its attribute, the attachment, ACTIVE).
    let weak = [("sensor-00000000000a", "generated-roca-2048"), ("sensor-00000000000b", "round-1-2048")];
    for (name, source) in weak {
        let n = fixture().iter().find(|c| c.source.contains(source)).unwrap();
        let pem = ca.issue(&device_with_cn(name, &n.modulus)).pem;
        let id = registry.register_certificate(&pem, &ca_id).unwrap();
        let attributes = std::collections::BTreeMap::from([("jitp_certificate".to_owned(), id.to_string())]);
        let thing = ThingSpec { name: name.parse().unwrap(), thing_type: None, attributes };
        registry.create_thing(&thing).await.unwrap();
        registry.attach_thing_principal(&thing.name, &registry.certificate_arn(&id), true).await.unwrap();
        // Its jitp policy attached, as the workflow leaves it: reconcile acts only on what it can prove is jitp's.
        let policy = format!("jitp-{name}").parse().unwrap();
        registry.create_policy(&policy, r#"{"Version":"2012-10-17","Statement":[]}"#).await.unwrap();
        registry.attach_policy(&policy, &registry.certificate_arn(&id)).await.unwrap();
        registry.update_certificate(&id, CertificateStatus::Active).await.unwrap();
    }
    let plan = Reconciler::new(rules, registry.clone() as Arc<dyn IotRegistry>, settings).plan(NOW).await.unwrap();
    assert_eq!((plan.counts.devices, plan.counts.unchanged, plan.counts.would_reject), (3, 1, 2), "{plan:#?}");
    assert_eq!(plan.would_reject.len(), 1, "one group: {plan:#?}");
    assert_eq!(plan.would_reject[0].change.reason, ReasonCode::WeakKey);
    let examples: Vec<&str> = plan.would_reject[0].examples.iter().map(String::as_str).collect();
    assert_eq!(examples, ["sensor-00000000000a", "sensor-00000000000b"]);
}

fn device_with_cn(cn: &str, modulus: &[u8]) -> Device {
    let mut device = Device::new(cn);
    device.public_key = Some(rsa_key_with_modulus(modulus, E));
    device
}
