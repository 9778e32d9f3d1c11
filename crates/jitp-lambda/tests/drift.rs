#![cfg(test)]
//! The drift report (`jitp-drift`): its handler called in-process over the embedded registry at the fixed clock
//! (a fleet provisioned, then its template narrowed: shards, then each shard's plan, then the summary give the
//! counts of one whole `Reconciler::plan`, and the EMF line carries them), bad events refused with a clear
//! error, and the real binary run under the fake Runtime API over a registry file.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitp_core::audit::Outcome;
use jitp_core::provision::Provisioner;
use jitp_core::reconcile::{Counts, Reconciler};
use jitp_core::rules::Rules;
use jitp_lambda::drift::{DriftError, DriftHandler, DriftResponse, DriftSettings, ShardReport, emf_line, summarize};
use jitp_pki::ids::S3Object;
use jitp_registry::memory::{Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::lambda::{Reply, RuntimeApi};
use jitp_testkit::{Alg, Ca, DAY, Device, NOW, event_for_ids, unix_now};
use jitp_wiring::crl::{CrlFetch, CrlRefresh, Fetched};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const SENSORS: usize = 12;
const NARROWED_FROM: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/*","#;
const NARROWED_TO: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/alarm","#;
const ACCOUNT: &str = "123456789012";

fn settings(dir: &ConfigDir, extra: &[(&str, &str)]) -> DriftSettings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("JITP_CONFIG".to_owned(), dir.config_path().display().to_string()),
        ("JITP_REGISTRY".to_owned(), "memory".to_owned()),
        ("JITP_AWS_ACCOUNT_ID".to_owned(), ACCOUNT.to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("JITP_AWS_PARTITION".to_owned(), "aws".to_owned()),
    ]);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    jitp_wiring::parse::from_vars(["jitp-drift"], env).unwrap()
}

/// The fleet's CA (one per test binary: a CRL must be signed by the CA the fleet's certificates name).
fn drift_ca() -> &'static Ca {
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    CA.get_or_init(|| Ca::new("Drift CA", Alg::P256))
}

/// Sensors and two gateways provisioned at `now` with the shipped configuration, then the sensor template
/// narrowed: every sensor has a policy change, the gateways none.
async fn fleet(registry: Arc<MemoryRegistry>, now: i64, valid: impl Fn(Device) -> Device) -> ConfigDir {
    let dir = ConfigDir::shipped();
    let settings = settings(&dir, &[]);
    let ca = drift_ca();
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let workflow = settings.common.workflow(settings.common.aws.context());
    let provisioner = Provisioner::new(rules, registry.clone() as Arc<dyn IotRegistry>, workflow);
    let names = (0..SENSORS).map(|i| format!("sensor-{i:012x}")).chain(["gw-ab-0001".into(), "gw-cd-0002".into()]);
    for name in names {
        let id = registry.register_certificate(&ca.issue(&valid(Device::new(&name))).pem, &ca_id).unwrap();
        let record = provisioner.handle_bytes(event_for_ids(id.as_str(), ca_id.as_str()).as_bytes(), now).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
    }
    let template = dir.path().join("policies/sensor.json.tera");
    let v1 = std::fs::read_to_string(&template).unwrap();
    assert!(v1.contains(NARROWED_FROM));
    std::fs::write(&template, v1.replace(NARROWED_FROM, NARROWED_TO)).unwrap();
    dir
}

struct Fixture {
    dir: ConfigDir,
    registry: Arc<MemoryRegistry>,
    handler: DriftHandler,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn fixture() -> Fixture {
    fixture_with(MemoryRegistry::new(), &[]).await
}

/// The fleet in `registry`, and a drift handler over it with the extra environment `vars`.
async fn fixture_with(registry: MemoryRegistry, vars: &[(&str, &str)]) -> Fixture {
    let registry = Arc::new(registry);
    let dir = fleet(registry.clone(), NOW, |d| d).await;
    // Unpaced: 256 ListThings at the quota's 10 a second would make the test wait 25 s for nothing it checks.
    let mut vars = vars.to_vec();
    vars.extend([("JITP_DRIFT_STACK", "jitp-test"), ("JITP_NO_PACING", "true")]);
    let settings = settings(&dir, &vars);
    let rules = Arc::new(settings.common.config.load().unwrap());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let handler = DriftHandler::with(
        rules,
        registry.clone() as Arc<dyn IotRegistry>,
        &settings,
        None,
        Arc::new(|| NOW),
        Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_owned())),
        CrlRefresh::none(),
    );
    Fixture { dir, registry, handler, lines }
}

impl Fixture {
    async fn invoke(&self, payload: Value) -> Result<DriftResponse, DriftError> {
        self.handler.handle(LambdaEvent::new(payload, Context::default())).await
    }

    /// The whole plan, made as `jitp reconcile --plan` makes it.
    async fn whole(&self) -> Counts {
        let settings = settings(&self.dir, &[]);
        let rules = Arc::new(Rules::load(self.dir.config_path()).unwrap());
        let workflow = settings.common.workflow(settings.common.aws.context());
        let reconciler = Reconciler::new(rules, self.registry.clone() as Arc<dyn IotRegistry>, workflow);
        reconciler.plan(NOW).await.unwrap().counts
    }
}

/// The EMF line's metric names and values, checked against the format: one `_aws` block naming them in the
/// namespace with the Stack dimension, each value a top-level number.
#[track_caller]
fn emf_metrics(line: &str, namespace: &str, stack: &str) -> HashMap<String, u64> {
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["_aws"]["Timestamp"], json!(NOW * 1000));
    let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0]["Namespace"], namespace);
    assert_eq!(directives[0]["Dimensions"], json!([["Stack"]]));
    assert_eq!(v["Stack"], stack);
    assert_eq!(v["eventType"], "jitp.drift");
    directives[0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["Unit"], "Count");
            let name = m["Name"].as_str().unwrap().to_owned();
            let value = v[&name].as_u64().unwrap_or_else(|| panic!("{name} has no value: {line}"));
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn shards_then_their_plans_then_the_summary_count_what_one_whole_plan_counts() {
    let f = fixture().await;
    let before = f.registry.snapshot();
    let DriftResponse::Shards { shards } = f.invoke(json!({"shards": 2})).await.unwrap() else { panic!("shards") };
    assert_eq!(shards.len(), 256);
    // The state machine's Map: each shard's report is the JSON the next state gets.
    let mut reports = Vec::new();
    for shard in &shards {
        let response = f.invoke(json!({ "shard": shard })).await.unwrap();
        reports.push(serde_json::to_value(&response).unwrap());
    }
    assert_eq!(f.registry.snapshot(), before, "the report is read-only");
    let DriftResponse::Summary(summary) = f.invoke(json!({ "summarize": reports })).await.unwrap() else {
        panic!("summary")
    };
    let whole = f.whole().await;
    assert_eq!(summary.counts, whole);
    assert_eq!(summary.shards, 256);
    assert_eq!((whole.devices, whole.policy_changes, whole.unchanged), (SENSORS as u64 + 2, SENSORS as u64, 2));
    assert_eq!(summary.drifted, SENSORS as u64);

    let lines = f.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "one EMF line per summary: {lines:?}");
    let metrics = emf_metrics(&lines[0], "jitp/Drift", "jitp-test");
    let want = HashMap::from([
        ("Devices", SENSORS as u64 + 2),
        ("DevicesUnchanged", 2),
        ("DevicesPolicyChange", SENSORS as u64),
        ("DevicesThingChange", 0),
        ("DevicesWouldReject", 0),
        ("DevicesRetired", 0),
        ("DevicesUnaccounted", 0),
        ("DevicesErrored", 0),
        ("DevicesDrifted", SENSORS as u64),
    ]);
    let want: HashMap<String, u64> = want.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(metrics, want);
}

#[tokio::test]
async fn a_shard_plan_reads_only_what_drift_actions_grant() {
    let f = fixture().await;
    let before = f.registry.call_counts();
    for shard in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"] {
        f.invoke(json!({ "shard": shard })).await.unwrap();
    }
    let after = f.registry.call_counts();
    let called: Vec<Operation> = Operation::ALL
        .iter()
        .copied()
        .filter(|op| after.get(op).copied().unwrap_or(0) > before.get(op).copied().unwrap_or(0))
        .collect();
    // Exactly the reads of a plan (crates/jitp-aws/tests/iam.rs checks drift_actions against these too).
    let reads = [
        Operation::DescribeCertificate,
        Operation::DescribeCACertificate,
        Operation::ListThingPrincipals,
        Operation::GetPolicy,
        Operation::ListAttachedPolicies,
        Operation::ListThings,
    ];
    let mut want: Vec<Operation> = Operation::ALL.iter().copied().filter(|op| reads.contains(op)).collect();
    want.sort();
    let mut called = called;
    called.sort();
    assert_eq!(called, want);
}

#[tokio::test]
async fn bad_events_get_a_clear_error_and_no_panic() {
    let f = fixture().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"plan": true}), "unknown variant `plan`"),
        (json!("shards"), "a drift event is"),
        (json!({}), "a drift event is"),
        (json!({"shards": 2, "shard": "3f"}), "a drift event is"),
        (json!({"shard": "3F"}), "lowercase hex"),
        (json!({"shard": "xyz"}), "lowercase hex"),
        (json!({"shard": "abcd"}), "1 to 3"),
        (json!({"shard": ""}), "1 to 3"),
        (json!({"shard": 3}), "a drift event is"),
        (json!({"shards": 0}), "shards: 0 digits"),
        (json!({"shards": 4}), "shards: 4 digits"),
        (json!({"shards": -1}), "a drift event is"),
        (json!({"summarize": []}), "no shard reports"),
        (json!({"summarize": [{"shard": "0"}]}), "missing field `counts`"),
        (json!({"summarize": [{"shard": "0", "counts": {"devices": "many"}, "drifted": 0}]}), "invalid type"),
        (json!({"summarize": "everything"}), "a drift event is"),
    ];
    for (event, want) in cases {
        let err = f.invoke(event.clone()).await.unwrap_err();
        assert_eq!(err.error_type(), "jitp.BadDriftEvent", "{event}: {err}");
        assert!(err.to_string().contains(want), "{event}: {err}");
    }
    assert!(f.lines.lock().unwrap().is_empty(), "no metric line for a bad event");
}

#[tokio::test]
async fn a_listing_that_keeps_failing_is_a_transient_error_the_state_machine_retries() {
    let throttled = (1..=1000).map(|nth| Fault { op: Operation::ListThings, nth, kind: FaultKind::ThrottleBefore });
    let f = fixture_with(MemoryRegistry::new().with_faults(throttled), &[("JITP_RETRY_DEADLINE_MS", "200")]).await;
    let err = f.invoke(json!({"shard": "3f"})).await.unwrap_err();
    // The Retry of every task in infra's state machine matches this errorType.
    assert_eq!(err.error_type(), "jitp.TransientFailure", "{err}");
    assert!(err.to_string().contains("ListThings"), "{err}");
    for template in ["infra/sam/template.yaml", "infra/cdk/lib/jitp-stack.ts"] {
        let text = std::fs::read_to_string(repo_file(template)).unwrap();
        assert!(text.contains("\"jitp.TransientFailure\"") || text.contains("'jitp.TransientFailure'"), "{template}");
    }
}

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[test]
fn the_metric_names_are_the_ones_infra_alarms_on() {
    let sam = std::fs::read_to_string(repo_file("infra/sam/template.yaml")).unwrap();
    let cdk = std::fs::read_to_string(repo_file("infra/cdk/lib/jitp-stack.ts")).unwrap();
    assert!(sam.contains(&format!("Namespace: {}", jitp_lambda::drift::DEFAULT_NAMESPACE)));
    assert!(cdk.contains(&format!("DRIFT_NAMESPACE = '{}'", jitp_lambda::drift::DEFAULT_NAMESPACE)));
    for alarmed in ["DevicesDrifted", "Devices"] {
        assert!(sam.contains(&format!("MetricName: {alarmed}\n")), "{alarmed}");
        assert!(cdk.contains(&format!("driftMetric('{alarmed}'")), "{alarmed}");
    }
    let summary = summarize(&[report("0", 1, 1)]).unwrap_err();
    assert!(summary.to_string().contains("missing"), "{summary}");
    let names: Vec<&str> = jitp_lambda::drift::metrics(&summarize(&all_reports()).unwrap()).map(|(n, _)| n).to_vec();
    assert!(names.contains(&"DevicesDrifted") && names.contains(&"Devices"), "{names:?}");
    assert!(sam.contains(&format!("Name: {}", jitp_lambda::drift::DIMENSION)));
}

#[test]
fn an_empty_setting_is_an_error_naming_its_variable() {
    for var in ["JITP_DRIFT_NAMESPACE", "JITP_DRIFT_STACK"] {
        let env = [(var.to_owned(), String::new())];
        let err = jitp_wiring::parse::from_vars::<DriftSettings, _, _, _>(["jitp-drift"], env).unwrap_err();
        assert!(err.to_string().contains(var), "{var}: {err}");
    }
    let defaults: DriftSettings =
        jitp_wiring::parse::from_vars(["jitp-drift"], Vec::<(String, String)>::new()).unwrap();
    assert_eq!((defaults.metric_namespace.as_str(), defaults.stack.as_str()), ("jitp/Drift", "jitp"));
}

fn all_reports() -> Vec<ShardReport> {
    "0123456789abcdef".chars().map(|c| report(&c.to_string(), 2, 1)).collect()
}

fn report(shard: &str, devices: u64, unchanged: u64) -> ShardReport {
    let counts = Counts { devices, unchanged, policy_changes: devices - unchanged, ..Counts::default() };
    ShardReport { shard: shard.parse().unwrap(), drifted: counts.drifted(), counts }
}

#[test]
fn a_summary_is_every_shard_of_one_length_exactly_once() {
    let all = all_reports();
    let summary = summarize(&all).unwrap();
    assert_eq!((summary.shards, summary.counts.devices, summary.drifted), (16, 32, 16));

    let mut twice = all.clone();
    twice[3] = report("0", 2, 1);
    assert!(summarize(&twice).unwrap_err().to_string().contains("shard 0 is reported twice"));
    let missing = &all[1..];
    assert!(summarize(missing).unwrap_err().to_string().contains("1 of the 16 shards of 1 digits are missing"));
    let mut mixed = all.clone();
    mixed[5] = report("50", 2, 1);
    assert!(summarize(&mixed).unwrap_err().to_string().contains("shard 50 is not of 1 digits"));

    let line = emf_line(&summary, "ns/x", "stack-a", NOW);
    let metrics = emf_metrics(&line, "ns/x", "stack-a");
    assert_eq!((metrics["Devices"], metrics["DevicesDrifted"], metrics["DevicesUnchanged"]), (32, 16, 16));
    assert!(!line.contains('\n'));
}

/// The real `jitp-drift` binary as Lambda runs it, over a registry file, with the system clock.
#[tokio::test]
async fn the_binary_plans_shards_and_writes_one_emf_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("registry.json");
    let registry = Arc::new(MemoryRegistry::open(&file).unwrap());
    let dir = fleet(registry.clone(), unix_now(), |d| d.valid_around(unix_now())).await;
    registry.save().unwrap();

    let api = RuntimeApi::start().await;
    let mut cmd = api.command(&PathBuf::from(env!("CARGO_BIN_EXE_jitp-drift")));
    cmd.env("RUST_LOG", "info")
        .env("JITP_CONFIG", dir.config_path())
        .env("JITP_REGISTRY", format!("memory:{}", file.display()))
        .env("JITP_DRIFT_STACK", "jitp-e2e")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = stdout.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });

    let shards = match api.invoke(json!({"shards": 1})).await {
        Reply::Response { body, .. } => body["shards"].as_array().unwrap().clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(shards.len(), 16);
    let mut reports = Vec::new();
    for shard in shards {
        match api.invoke(json!({ "shard": shard })).await {
            Reply::Response { body, .. } => reports.push(body),
            other => panic!("{other:?}"),
        }
    }
    let summary = match api.invoke(json!({ "summarize": reports })).await {
        Reply::Response { body, .. } => body,
        other => panic!("{other:?}"),
    };
    // The function ARN's account is the one the fleet was provisioned with: only the narrowed template drifts.
    assert_eq!(summary["counts"]["devices"], json!(SENSORS + 2), "{summary}");
    assert_eq!(summary["drifted"], json!(SENSORS), "{summary}");
    match api.invoke(json!({"shard": "0x"})).await {
        Reply::Error { error_type, body, .. } => {
            assert_eq!(error_type, "unhandled", "the runtime's header");
            assert_eq!(body["errorType"], "jitp.BadDriftEvent", "what the state machine's Retry matches: {body}");
            assert!(body.to_string().contains("lowercase hex"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let emf = loop {
        let found = stdout.lock().unwrap().iter().find(|l| l.contains("\"_aws\"")).cloned();
        match found {
            Some(line) => break line,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => panic!("no EMF line: {:?}", stdout.lock().unwrap()),
        }
    };
    let v: Value = serde_json::from_str(&emf).unwrap();
    assert_eq!((v["Stack"].as_str(), v["DevicesDrifted"].as_u64()), (Some("jitp-e2e"), Some(SENSORS as u64)));
    assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "jitp/Drift");
    let _ = child.kill();
    let _ = child.wait();
}

/// S3 as the CRL refresh sees it: one object whose ETag changes with each put, a 304 for a matching
/// If-None-Match (as S3 answers, and moto too: tests/README.md).
#[derive(Default)]
struct OneObject {
    current: Mutex<(Vec<u8>, u32)>,
}

impl OneObject {
    fn put(&self, bytes: Vec<u8>) {
        let mut current = self.current.lock().unwrap();
        *current = (bytes, current.1 + 1);
    }
}

#[async_trait::async_trait]
impl CrlFetch for OneObject {
    async fn fetch(&self, _: &S3Object, etag: Option<&str>) -> Result<Fetched, String> {
        let (bytes, version) = self.current.lock().unwrap().clone();
        let tag = format!("\"v{version}\"");
        if etag == Some(tag.as_str()) {
            return Ok(Fetched::Unchanged);
        }
        Ok(Fetched::Changed { bytes: Arc::from(bytes.as_slice()), etag: Some(tag) })
    }
}

/// The drift report decides with the S3 CRLs of its last refresh, as the provisioning function does: a CRL
/// published after its init reaches the next shard planned once the TTL has passed (that sensor is
/// DevicesWouldReject), without a redeploy, and the report still writes nothing.
#[tokio::test]
async fn a_crl_published_to_s3_reaches_the_next_shards_after_the_ttl() {
    let registry = Arc::new(MemoryRegistry::new());
    let dir = fleet(registry.clone(), NOW, |d| d).await;
    let path = dir.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let listed = "policy = \"policies/sensor.json.tera\"\n";
    assert!(text.contains(listed));
    std::fs::write(&path, text.replacen(listed, &format!("{listed}crl = [\"s3://acme-pki/drift.crl\"]\n"), 1)).unwrap();
    let s3 = Arc::new(OneObject::default());
    s3.put(drift_ca().crl(&[], NOW - DAY, NOW + 30 * DAY).der);

    let settings = settings(&dir, &[("JITP_NO_PACING", "true")]);
    // Long enough that 16 shards planned on a loaded 2-core machine stay within it (200 ms did not).
    let ttl = Duration::from_secs(3);
    let fetcher: Arc<dyn CrlFetch> = s3.clone();
    let (rules, crls) = jitp_wiring::crl::load(&settings.common.config, &path, Some(fetcher), ttl).await.unwrap();
    let handler = DriftHandler::with(
        Arc::new(rules),
        registry.clone() as Arc<dyn IotRegistry>,
        &settings,
        None,
        Arc::new(|| NOW),
        Arc::new(|_: &str| {}),
        crls,
    );
    let plan_all = || async {
        let mut total = Counts::default();
        for shard in 0..16 {
            let payload = json!({ "shard": format!("{shard:x}") });
            let DriftResponse::Shard(report) =
                handler.handle(LambdaEvent::new(payload, Context::default())).await.unwrap()
            else {
                panic!("a shard report")
            };
            total.add(&report.counts);
        }
        total
    };
    let before = registry.snapshot();
    assert_eq!(plan_all().await.would_reject, 0, "the CRL at init revokes nobody");

    let revoked = Device::new("sensor-000000000000").serial;
    s3.put(drift_ca().crl(&[revoked.as_slice()], NOW - DAY, NOW + 30 * DAY).der);
    assert_eq!(plan_all().await.would_reject, 0, "within the TTL the report keeps the CRL it holds");
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let after = plan_all().await;
    assert_eq!(after.would_reject, 1, "{after:?}");
    assert_eq!(handler.crl_refresh().rebuilds(), 1);
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    plan_all().await;
    assert_eq!(handler.crl_refresh().rebuilds(), 1, "an unchanged object (304) rebuilds nothing");
    assert_eq!(registry.snapshot(), before, "the report is read-only");
}
