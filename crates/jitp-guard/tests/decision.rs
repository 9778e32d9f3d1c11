#![cfg(test)]
//! The guard's decision for the class of certificates, through the handler as Lambda calls it (AWS's event
//! shape, a fixed clock, the embedded registry): every allow path and every refusal path, the record of each
//! refusal, the CA's status and the CRLs' refreshes, and report-only mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitp_guard::judge::{CaCertificateId, Config};
use jitp_guard::{CaSet, Guard, GuardSettings, Mode};
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::CaStatus;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, CaSpec, CrlSpec, DAY, Device, NOW, RevocationReason, Revoked};
use serde_json::{Value, json};

const CN: &str = "sensor-0000000000aa";

struct World {
    dir: ConfigDir,
    ca: Ca,
    memory: Arc<MemoryRegistry>,
    ca_id: CaCertificateId,
    lines: Arc<Mutex<Vec<String>>>,
}

impl World {
    /// A profile `sensors` over any CA, with the CRL file `acme.crl` (a CRL from `crl`, or none), the deny list
    /// `denied.txt` (`deny`), and `extra` profile lines; the CA registered ACTIVE in the embedded registry.
    fn new(crl: Option<&CrlSpec>, deny: &str, extra: &str) -> World {
        let ca = Ca::new("jitp guard CA", Alg::P256);
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        std::fs::write(dir.path().join("denied.txt"), deny).unwrap();
        let crl_line = match crl {
            Some(spec) => {
                std::fs::write(dir.path().join("acme.crl"), ca.crl_with(spec).pem).unwrap();
                "crl = [\"acme.crl\"]"
            }
            None => "",
        };
        dir.write_config(&format!(
            "[defaults]\nclock_skew_seconds = 300\n\n[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\nmax_validity_days = 400\ndeny_list = \"denied.txt\"\n{crl_line}\n{extra}\n"
        ));
        let memory = Arc::new(MemoryRegistry::new());
        let ca_id = memory.register_ca(&ca.cert.pem, true).unwrap();
        World { dir, ca, memory, ca_id, lines: Arc::default() }
    }

    fn plain() -> World {
        World::new(None, "# none\n", "")
    }

    async fn guard_with(&self, mode: Mode, ca_refresh: Duration) -> Guard {
        let config = Config::load(self.dir.config_path()).unwrap();
        let cas = CaSet::load(self.memory.as_ref(), &config).await.unwrap();
        let settings: GuardSettings =
            jitp_wiring::parse::from_vars(["jitp-guard"], Vec::<(String, String)>::new()).unwrap();
        let lines = self.lines.clone();
        Guard::builder(Arc::new(config), cas, self.memory.clone(), &settings)
            .clock(Arc::new(|| NOW))
            .sink(Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned())))
            .mode(mode)
            .ca_refresh(ca_refresh)
            .build()
    }

    async fn guard(&self) -> Guard {
        self.guard_with(Mode::Enforce, Duration::from_secs(3600)).await
    }

    fn refusals(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["eventType"] == "jitp.guard")
            .collect()
    }
}

/// The answer and, for a refusal, its reason code (from the record line the refusal wrote).
fn ask(guard: &Guard, world: &World, chain: &[&str]) -> (bool, Option<String>) {
    let before = world.refusals().len();
    let answer = guard.answer(&connect(chain), "req-1");
    let refusals = world.refusals();
    let reason = (refusals.len() > before).then(|| refusals[refusals.len() - 1]["reason"].as_str().unwrap().to_owned());
    assert_eq!(answer.is_authenticated, reason.is_none(), "an allow writes no line, a refusal one: {reason:?}");
    (answer.is_authenticated, reason)
}

fn expiring(cn: &str, not_after: i64) -> Device {
    let mut d = Device::new(cn);
    d.not_before = not_after - 100 * DAY;
    d.not_after = not_after;
    d
}

fn starting(cn: &str, not_before: i64) -> Device {
    let mut d = Device::new(cn);
    d.not_before = not_before;
    d.not_after = not_before + 100 * DAY;
    d
}

#[tokio::test]
async fn valid_devices_connect_and_every_refusal_has_its_code() {
    let crl = CrlSpec {
        revoked: vec![
            Revoked::serial(&Device::new("sensor-00000000dead").serial),
            Revoked {
                reason: Some(RevocationReason::CertificateHold),
                ..Revoked::serial(&Device::new("sensor-00000000f00d").serial)
            },
            // removeFromCRL lifts nothing it did not hold: the device is not revoked.
            Revoked {
                reason: Some(RevocationReason::RemoveFromCrl),
                ..Revoked::serial(&Device::new("sensor-00000000beef").serial)
            },
        ],
        ..CrlSpec::new(&[])
    };
    let denied = Device::new("sensor-0000000000dd");
    let world = World::new(Some(&crl), &format!("serial:{}\n", hex(&denied.serial)), "");
    let guard = world.guard().await;
    let ca = &world.ca;
    let other = Ca::new("jitp guard other CA", Alg::P256);
    // An impostor CA with the registered CA's subject and its own key.
    let impostor = Ca::build(&CaSpec::new("jitp guard CA", Alg::P256), None);
    let mut long_lived = Device::new("sensor-0000000000e5");
    long_lived.not_after = NOW + 500 * DAY;
    let mut is_ca = Device::new("sensor-0000000000ca");
    is_ca.is_ca = true;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("valid", ca.issue(&Device::new(CN)).pem, None),
        ("valid RSA", ca.issue(&Device::new("sensor-0000000000a2").alg(Alg::Rsa2048)).pem, None),
        ("valid P-384", ca.issue(&Device::new("sensor-0000000000a3").alg(Alg::P384)).pem, None),
        ("removeFromCRL entry", ca.issue(&Device::new("sensor-00000000beef")).pem, None),
        ("expired within the skew", ca.issue(&expiring("sensor-0000000000e1", NOW - 200)).pem, None),
        ("not yet valid within the skew", ca.issue(&starting("sensor-0000000000e2", NOW + 200)).pem, None),
        ("revoked", ca.issue(&Device::new("sensor-00000000dead")).pem, Some("CERT_REVOKED")),
        ("on hold", ca.issue(&Device::new("sensor-00000000f00d")).pem, Some("CERT_ON_HOLD")),
        ("denied", ca.issue(&denied).pem, Some("CERT_DENIED")),
        ("expired past the skew", ca.issue(&expiring("sensor-0000000000e3", NOW - 301)).pem, Some("CERT_EXPIRED")),
        (
            "not yet valid past the skew",
            ca.issue(&starting("sensor-0000000000e4", NOW + 301)).pem,
            Some("CERT_NOT_YET_VALID"),
        ),
        ("another CA", other.issue(&Device::new(CN)).pem, Some("UNKNOWN_CA")),
        ("an impostor with the CA's name", impostor.issue(&Device::new(CN)).pem, Some("SIGNATURE_INVALID")),
        ("out of profile: CN", ca.issue(&Device::new("gw-xx-0001")).pem, Some("SUBJECT_MISMATCH")),
        ("out of profile: lifetime", ca.issue(&long_lived).pem, Some("VALIDITY_TOO_LONG")),
        ("a CA certificate as the device's", ca.issue(&is_ca).pem, Some("DEVICE_CERT_IS_CA")),
        ("Ed25519", ca.issue(&Device::new("sensor-0000000000ed").alg(Alg::Ed25519)).pem, Some("UNSUPPORTED_ALGORITHM")),
    ];
    let mut seen = Vec::new();
    for (name, pem, want) in &cases {
        let (allowed, reason) = ask(&guard, &world, &[pem]);
        assert_eq!(reason.as_deref(), *want, "{name}");
        assert_eq!(allowed, want.is_none(), "{name}");
        seen.push(*name);
    }
    // One record per refusal, naming the device, the reason and what decided it; no line for an allow.
    let refusals = world.refusals();
    assert_eq!(refusals.len(), cases.iter().filter(|c| c.2.is_some()).count());
    let revoked = refusals.iter().find(|r| r["reason"] == "CERT_REVOKED").unwrap();
    assert_eq!(revoked["serial"], hex(&Device::new("sensor-00000000dead").serial));
    assert_eq!(revoked["ca_id"], world.ca_id.as_str());
    assert_eq!(revoked["profile"], "sensors");
    assert_eq!(revoked["enforced"], true);
    assert_eq!(revoked["server_name"], jitp_testkit::events::GUARDED_DOMAIN);
    assert!(revoked["message"].as_str().unwrap().contains("acme.crl"), "{revoked}");
    let denied_line = refusals.iter().find(|r| r["reason"] == "CERT_DENIED").unwrap();
    assert!(denied_line["message"].as_str().unwrap().contains("deny list"), "{denied_line}");
    // The allows are counted, in one line when asked.
    guard.flush_counts();
    let counts: Value = serde_json::from_str(world.lines.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(counts["Allowed"], cases.iter().filter(|c| c.2.is_none()).count());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().trim_start_matches('0').to_owned()
}

#[tokio::test]
async fn the_chain_a_device_presents_is_never_trusted() {
    let world = World::plain();
    let guard = world.guard().await;
    // A device of an unregistered CA presents that CA (and the registered one) in its chain: still unknown.
    let rogue = Ca::new("jitp guard rogue CA", Alg::P256);
    let device = rogue.issue(&Device::new(CN)).pem;
    assert_eq!(ask(&guard, &world, &[&device, &rogue.cert.pem]).1.as_deref(), Some("UNKNOWN_CA"));
    assert_eq!(ask(&guard, &world, &[&device, &world.ca.cert.pem]).1.as_deref(), Some("UNKNOWN_CA"));
    // A registered device with its CA in the chain, PEM or base64 DER: allowed; the chain's order is the TLS one.
    let good = world.ca.issue(&Device::new(CN)).pem;
    let b64: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(ask(&guard, &world, &[&good, &world.ca.cert.pem]), (true, None));
    assert_eq!(ask(&guard, &world, &[&b64]), (true, None));
    // The CA first: the CA is not a device certificate.
    assert!(!ask(&guard, &world, &[&world.ca.cert.pem, &good]).0);
}

#[tokio::test]
async fn malformed_events_are_refused_and_recorded() {
    let world = World::plain();
    let guard = world.guard().await;
    let good = world.ca.issue(&Device::new(CN)).pem;
    let events = [
        json!(null),
        json!({}),
        json!({"clientCertificateChain": []}),
        json!({"clientCertificateChain": [good, 1]}),
        json!({"clientCertificateChain": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]}),
        json!({"clientCertificateChain": [good], "serverName": ["x"]}),
    ];
    for event in &events {
        assert!(!guard.answer(event, "r").is_authenticated, "{event}");
    }
    let reasons: Vec<String> = world.refusals().iter().map(|r| r["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        reasons,
        [
            "MALFORMED_EVENT",
            "MALFORMED_EVENT",
            "MALFORMED_EVENT",
            "MALFORMED_EVENT",
            "MALFORMED_CERTIFICATE",
            "MALFORMED_EVENT"
        ]
    );
}

#[tokio::test]
async fn report_only_mode_lets_refusals_through_and_records_them() {
    let crl = CrlSpec::new(&[&Device::new("sensor-00000000dead").serial]);
    let world = World::new(Some(&crl), "# none\n", "");
    let guard = world.guard_with(Mode::Report, Duration::from_secs(3600)).await;
    let revoked = world.ca.issue(&Device::new("sensor-00000000dead")).pem;
    assert!(guard.answer(&connect(&[&revoked]), "r").is_authenticated);
    assert!(guard.answer(&json!({}), "r").is_authenticated, "report-only lets even a malformed event through");
    let refusals = world.refusals();
    assert_eq!(refusals.len(), 2);
    assert!(refusals.iter().all(|r| r["enforced"] == false && r["decision"] == "deny"));
    guard.flush_counts();
    let counts: Value = serde_json::from_str(world.lines.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!((counts["Allowed"].as_u64(), counts["AllowedReportOnly"].as_u64()), (Some(0), Some(2)));
}

#[tokio::test]
async fn a_stale_crl_follows_crl_policy() {
    let stale = CrlSpec { this_update: NOW - 10 * DAY, next_update: NOW - DAY, ..CrlSpec::new(&[]) };
    let device = |world: &World| world.ca.issue(&Device::new(CN)).pem;
    let world = World::new(Some(&stale), "# none\n", "crl_policy = \"enforce\"");
    let guard = world.guard().await;
    let (allowed, reason) = ask(&guard, &world, &[&device(&world)]);
    assert_eq!((allowed, reason.as_deref()), (false, Some("CA_INVALID")));
    assert!(world.refusals()[0]["message"].as_str().unwrap().contains("stale"));

    let world = World::new(Some(&stale), "# none\n", "crl_policy = \"warn\"");
    let guard = world.guard().await;
    let log = jitp_testkit::captured_log::CapturedLog::default();
    let answer = {
        let _log = tracing::subscriber::set_default(log.subscriber());
        ask(&guard, &world, &[&device(&world)])
    };
    assert_eq!(answer, (true, None));
    assert_eq!(log.count("CRL ignored"), 1, "warn says so");
}

#[tokio::test]
async fn a_ca_deactivated_in_aws_iot_reaches_the_guard_at_its_next_refresh() {
    let world = World::plain();
    let guard = world.guard_with(Mode::Enforce, Duration::ZERO).await;
    let device = world.ca.issue(&Device::new(CN)).pem;
    assert_eq!(ask(&guard, &world, &[&device]), (true, None));
    world.memory.set_ca_status(&world.ca_id, CaStatus::Inactive);
    guard.refresh().await;
    assert_eq!(ask(&guard, &world, &[&device]).1.as_deref(), Some("CA_NOT_ACTIVE"));
    world.memory.set_ca_status(&world.ca_id, CaStatus::Active);
    guard.refresh().await;
    assert_eq!(ask(&guard, &world, &[&device]), (true, None));
    // A CA registered after the guard started is learnt at the refresh too.
    let later = Ca::new("jitp guard later CA", Alg::P256);
    let late_device = later.issue(&Device::new(CN)).pem;
    assert_eq!(ask(&guard, &world, &[&late_device]).1.as_deref(), Some("UNKNOWN_CA"));
    world.memory.register_ca(&later.cert.pem, true).unwrap();
    guard.refresh().await;
    assert_eq!(ask(&guard, &world, &[&late_device]), (true, None));
}

#[tokio::test]
async fn a_failed_ca_refresh_keeps_the_last_good_cas() {
    let world = World::plain();
    let guard = world.guard_with(Mode::Enforce, Duration::ZERO).await;
    let device = world.ca.issue(&Device::new(CN)).pem;
    // The init listed the CAs once: the refresh's listing fails.
    world.memory.add_faults([jitp_registry::memory::Fault {
        op: jitp_registry::registry::Operation::ListCACertificates,
        nth: 2,
        kind: jitp_registry::memory::FaultKind::UnavailableBefore,
    }]);
    guard.refresh().await;
    assert_eq!(guard.snapshot().cas.len(), 1);
    assert_eq!(ask(&guard, &world, &[&device]), (true, None));
}

#[tokio::test]
async fn two_registered_cas_with_one_subject_each_vouch_for_their_own_devices() {
    // A CA re-keyed under the same name (a rotation): both registered, each device verified against its own.
    let world = World::plain();
    let rekeyed = Ca::build(&CaSpec::new("jitp guard CA", Alg::P384), None);
    world.memory.register_ca(&rekeyed.cert.pem, true).unwrap();
    let guard = world.guard().await;
    assert_eq!(guard.snapshot().cas.len(), 2);
    assert_eq!(ask(&guard, &world, &[&world.ca.issue(&Device::new(CN)).pem]), (true, None));
    assert_eq!(ask(&guard, &world, &[&rekeyed.issue(&Device::new(CN)).pem]), (true, None));
    // The old CA deactivated: its devices are CA_NOT_ACTIVE, the new one's still connect.
    world.memory.set_ca_status(&world.ca_id, CaStatus::Inactive);
    let guard = world.guard().await;
    assert_eq!(ask(&guard, &world, &[&world.ca.issue(&Device::new(CN)).pem]).1.as_deref(), Some("CA_NOT_ACTIVE"));
    assert_eq!(ask(&guard, &world, &[&rekeyed.issue(&Device::new(CN)).pem]), (true, None));
}

#[tokio::test]
async fn a_profile_listing_ca_ids_describes_only_those() {
    let world = World::plain();
    let other = Ca::new("jitp guard unlisted CA", Alg::P256);
    world.memory.register_ca(&other.cert.pem, true).unwrap();
    world.dir.edit_config(|c| c.replace("ca = [\"*\"]", &format!("ca = [\"{}\"]", world.ca_id)));
    let guard = world.guard().await;
    assert_eq!(guard.snapshot().cas.len(), 1, "only the listed CA");
    assert_eq!(ask(&guard, &world, &[&world.ca.issue(&Device::new(CN)).pem]), (true, None));
    assert_eq!(ask(&guard, &world, &[&other.issue(&Device::new(CN)).pem]).1.as_deref(), Some("UNKNOWN_CA"));
}

#[tokio::test]
async fn many_connects_at_once_all_get_an_answer() {
    let world = World::plain();
    let guard = world.guard().await;
    let good = world.ca.issue(&Device::new(CN)).pem;
    let allowed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (guard, good, allowed) = (guard.clone(), good.clone(), allowed.clone());
            tokio::spawn(async move {
                if guard.answer(&connect(&[&good]), "r").is_authenticated {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 64);
}
