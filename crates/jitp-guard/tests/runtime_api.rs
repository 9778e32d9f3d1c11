#![cfg(test)]
//! The real `jitp-guard` binary against a Lambda Runtime API served by the test, as Lambda runs it: AWS's custom
//! client certificate validation events in, `{"isAuthenticated": bool}` out, configuration from the environment
//! (`JITP_REGISTRY=memory:FILE` for the registered CAs), one record line per refusal on stdout.
//!
//! The binary decides at the system clock, so the certificates and CRLs here are made around it. The init time
//! (process start to the first `next` request) and the peak RSS (VmHWM) are printed for BENCHMARKS.md;
//! `JITP_GUARD_BIN` runs another build of the binary (e.g. `target/release/jitp-guard`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::lambda::{Function, Reply, RuntimeApi};
use jitp_testkit::{Alg, Ca, CrlSpec, DAY, Device, RevocationReason, Revoked, unix_now};
use serde_json::{Value, json};

/// The binary under test: `JITP_GUARD_BIN`, else the one cargo built for this test.
fn binary() -> PathBuf {
    jitp_testkit::lambda::binary("JITP_GUARD_BIN", env!("CARGO_BIN_EXE_jitp-guard"))
}

/// Start it against `api` with `vars`, named as the stacks name the guard function.
fn start(api: &RuntimeApi, vars: &[(&str, String)]) -> Function {
    let mut all = vec![("AWS_LAMBDA_FUNCTION_NAME", "jitp-guard".to_owned())];
    all.extend(vars.iter().map(|(k, v)| (*k, v.clone())));
    Function::start(api, &binary(), &all)
}

/// A world around the real clock: a CA registered ACTIVE in a registry file, a jitp.toml whose profile lists
/// the CRL file `acme.crl` and the deny list `denied.txt`.
struct World {
    dir: ConfigDir,
    ca: Ca,
    registry: PathBuf,
    now: i64,
}

const CN: &str = "sensor-0000000000aa";

impl World {
    fn new(crl: &CrlSpec, deny: &str, crl_policy: &str) -> World {
        let now = unix_now();
        let ca = Ca::new("jitp guard runtime CA", Alg::P256);
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        std::fs::write(dir.path().join("acme.crl"), ca.crl_with(crl).pem).unwrap();
        std::fs::write(dir.path().join("denied.txt"), deny).unwrap();
        dir.write_config(&format!(
            "[defaults]\nclock_skew_seconds = 300\n\n[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ndeny_list = \"denied.txt\"\ncrl = [\"acme.crl\"]\ncrl_policy = \"{crl_policy}\"\n"
        ));
        let registry = dir.path().join("registry.json");
        let memory = MemoryRegistry::open(&registry).unwrap();
        memory.register_ca(&ca.cert.pem, true).unwrap();
        memory.save().unwrap();
        World { dir, ca, registry, now }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JITP_CONFIG", self.dir.config_path().display().to_string()),
            ("JITP_REGISTRY", format!("memory:{}", self.registry.display())),
        ]
    }

    fn device(&self, cn: &str) -> Device {
        Device::new(cn).valid_around(self.now)
    }

    fn crl(now: i64, revoked: Vec<Revoked>) -> CrlSpec {
        CrlSpec { revoked, this_update: now - DAY, next_update: now + 7 * DAY, ..CrlSpec::new(&[]) }
    }
}

#[track_caller]
fn authenticated(reply: &Reply) -> bool {
    match reply {
        Reply::Response { body, .. } => {
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only isAuthenticated: {body}");
            body["isAuthenticated"].as_bool().unwrap_or_else(|| panic!("no isAuthenticated boolean: {body}"))
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_aws_events_over_the_runtime_api() {
    let now = unix_now();
    let entry = |cn: &str, reason| Revoked { reason, at: now - DAY, ..Revoked::serial(&Device::new(cn).serial) };
    let crl = World::crl(
        now,
        vec![entry("sensor-00000000dead", None), entry("sensor-00000000f00d", Some(RevocationReason::CertificateHold))],
    );
    let denied = Device::new("sensor-0000000000dd");
    let deny = format!("serial:{}\n", denied.serial.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let world = World::new(&crl, &deny, "enforce");
    let api = RuntimeApi::start().await;
    let function = start(&api, &world.vars());

    let ca = &world.ca;
    let mut within_skew = world.device("sensor-0000000000e1");
    within_skew.not_after = now - 60;
    let mut past_skew = world.device("sensor-0000000000e2");
    past_skew.not_after = now - 3600;
    let other = Ca::new("jitp guard runtime other CA", Alg::P256);
    let cases: Vec<(&str, Value, bool, Option<&str>)> = vec![
        ("valid", connect(&[&ca.issue(&world.device(CN)).pem]), true, None),
        ("valid, with its CA in the chain", connect(&[&ca.issue(&world.device(CN)).pem, &ca.cert.pem]), true, None),
        ("expired within the skew", connect(&[&ca.issue(&within_skew).pem]), true, None),
        ("revoked", connect(&[&ca.issue(&world.device("sensor-00000000dead")).pem]), false, Some("CERT_REVOKED")),
        ("on hold", connect(&[&ca.issue(&world.device("sensor-00000000f00d")).pem]), false, Some("CERT_ON_HOLD")),
        ("denied", connect(&[&ca.issue(&denied.clone().valid_around(now)).pem]), false, Some("CERT_DENIED")),
        ("expired past the skew", connect(&[&ca.issue(&past_skew).pem]), false, Some("CERT_EXPIRED")),
        ("another CA", connect(&[&other.issue(&world.device(CN)).pem, &other.cert.pem]), false, Some("UNKNOWN_CA")),
        ("out of profile", connect(&[&ca.issue(&world.device("gw-xx-0001")).pem]), false, Some("SUBJECT_MISMATCH")),
        ("no chain", json!({"principalId": "x", "serverName": "iot.example.com"}), false, Some("MALFORMED_EVENT")),
        ("not an object", json!(["hello"]), false, Some("MALFORMED_EVENT")),
        ("a chain of garbage", connect(&["hello"]), false, Some("MALFORMED_CERTIFICATE")),
        (
            "a truncated certificate",
            connect(&[&ca.issue(&world.device(CN)).pem[..300]]),
            false,
            Some("MALFORMED_CERTIFICATE"),
        ),
    ];
    for (name, event, want, _) in &cases {
        let reply = api.invoke(event.clone()).await;
        assert_eq!(authenticated(&reply), *want, "{name}\n{}", function.logs());
    }
    function.report(&api, "jitp-guard", "memory registry, file CRL");

    // One record per refusal, in order, with the reason code.
    let expected: Vec<&str> = cases.iter().filter_map(|c| c.3).collect();
    let refusals = function.lines("jitp.guard", expected.len());
    let reasons: Vec<&str> = refusals.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, expected, "{}", function.logs());
    assert!(refusals.iter().all(|l| l["enforced"] == true && l["requestId"].as_str().is_some_and(|r| !r.is_empty())));
    // Everything on stdout is JSON, and no PEM leaks into it.
    for line in function.stdout() {
        assert!(serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object()), "not a JSON line: {line}");
        assert!(!line.contains("BEGIN CERTIFICATE"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_crl_refuses_under_enforce_and_allows_under_warn() {
    let now = unix_now();
    let stale = CrlSpec { this_update: now - 10 * DAY, next_update: now - DAY, ..CrlSpec::new(&[]) };
    for (policy, want) in [("enforce", false), ("warn", true)] {
        let world = World::new(&stale, "# none\n", policy);
        let api = RuntimeApi::start().await;
        let function = start(&api, &world.vars());
        let reply = api.invoke(connect(&[&world.ca.issue(&world.device(CN)).pem])).await;
        assert_eq!(authenticated(&reply), want, "{policy}\n{}", function.logs());
        if !want {
            let refusal = &function.lines("jitp.guard", 1)[0];
            assert_eq!(refusal["reason"], "CA_INVALID");
            assert!(refusal["message"].as_str().unwrap().contains("stale"), "{refusal}");
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !function.logs().contains("CRL ignored") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(function.logs().contains("CRL ignored"), "warn says so\n{}", function.logs());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_mode_answers_yes_and_records_the_refusal() {
    let now = unix_now();
    let crl =
        World::crl(now, vec![Revoked { at: now - DAY, ..Revoked::serial(&Device::new("sensor-00000000dead").serial) }]);
    let world = World::new(&crl, "# none\n", "enforce");
    let api = RuntimeApi::start().await;
    let mut vars = world.vars();
    vars.push(("JITP_GUARD_MODE", "report".into()));
    let function = start(&api, &vars);
    let reply = api.invoke(connect(&[&world.ca.issue(&world.device("sensor-00000000dead")).pem])).await;
    assert!(authenticated(&reply), "{}", function.logs());
    let refusal = &function.lines("jitp.guard", 1)[0];
    assert_eq!((refusal["reason"].as_str(), refusal["enforced"].as_bool()), (Some("CERT_REVOKED"), Some(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_or_registry_fails_init_before_the_first_connect() {
    let api = RuntimeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/jitp.toml");
    let garbage = dir.path().join("registry.json");
    std::fs::write(&garbage, "not a registry").unwrap();
    for (vars, says) in [
        (
            vec![("JITP_CONFIG", missing.display().to_string()), ("JITP_REGISTRY", "memory".to_owned())],
            missing.display().to_string(),
        ),
        (vec![("JITP_GUARD_MODE", "audit".to_owned())], "JITP_GUARD_MODE".to_owned()),
        (vec![("JITP_REGISTRY", format!("memory:{}", garbage.display()))], garbage.display().to_string()),
    ] {
        let mut function = start(&api, &vars);
        let status = function.wait_exit(Duration::from_secs(20)).expect("the function should exit");
        assert!(!status.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !function.logs().contains(&says) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(function.logs().contains(&says), "{says}\n{}", function.logs());
    }
    assert!(api.first_next().is_none(), "it asked for an event");
}

/// The figures BENCHMARKS.md reports: init (process start to the first `next`) and peak RSS after 1,000 connects,
/// with the shipped configuration (templates/jitp.toml) and one registered CA. Run against the release binary
/// with `JITP_GUARD_BIN=target/release/jitp-guard cargo test -p jitp-guard --test runtime_api -- --nocapture
/// shipped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_configuration_init_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.json");
    let ca = Ca::new("jitp guard shipped CA", Alg::P256);
    let memory = MemoryRegistry::open(&registry).unwrap();
    memory.register_ca(&ca.cert.pem, true).unwrap();
    memory.save().unwrap();
    let api = RuntimeApi::start().await;
    let function = start(&api, &[("JITP_REGISTRY", format!("memory:{}", registry.display()))]);
    let now = unix_now();
    let events: Vec<Value> = (0..50u32)
        .map(|i| connect(&[&ca.issue(&Device::new(&format!("sensor-{i:012x}")).valid_around(now)).pem]))
        .collect();
    for i in 0..1000 {
        let reply = api.invoke(events[i % events.len()].clone()).await;
        assert!(authenticated(&reply), "{}", function.logs());
    }
    function.report(&api, "jitp-guard", "shipped jitp.toml, 1000 connects");
}
