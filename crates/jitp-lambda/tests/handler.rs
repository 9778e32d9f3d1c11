#![cfg(test)]
//! The handler called in-process with hand-built `LambdaEvent`s over the embedded registry, at the fixed clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitp_core::audit::Outcome;
use jitp_lambda::{Handler, HandlerError, LambdaSettings, Response};
use jitp_pki::ReasonCode;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::{Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::sqs;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW, event_for_ids, repo_config_path};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};

struct Fixture {
    memory: Arc<MemoryRegistry>,
    handler: Handler,
    lines: Arc<Mutex<Vec<Value>>>,
    ca: Ca,
    ca_id: CaCertificateId,
}

impl Fixture {
    /// A handler over `memory` with the repository's templates; `vars` are extra environment variables.
    fn new(memory: MemoryRegistry, vars: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        env.insert("JITP_CONFIG".into(), repo_config_path().display().to_string());
        env.entry("JITP_REGISTRY".into()).or_insert_with(|| "memory".into());
        let settings: LambdaSettings = jitp_wiring::parse::from_vars(["jitp-lambda"], env).unwrap();
        let config = Arc::new(settings.common.config.load().unwrap());
        let memory = Arc::new(memory);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let handler = Handler::builder(config, memory.clone(), &settings)
            .clock(Arc::new(|| NOW))
            .sink(Arc::new(move |line: &str| {
                assert!(!line.contains('\n') && !line.contains("BEGIN CERTIFICATE"), "{line}");
                sink_lines.lock().unwrap().push(Value::Object(jitp_testkit::audit_line::check(line)));
            }))
            .build();
        let ca = Ca::new("jitp lambda test CA", Alg::P256);
        let ca_id = memory.register_ca(&ca.cert.pem, true).unwrap();
        Self { memory, handler, lines, ca, ca_id }
    }

    /// Register a device certificate (PENDING_ACTIVATION) and return its id and event.
    fn device(&self, device: &Device) -> (CertificateId, Value) {
        let cert = self.ca.issue(device);
        let id = self.memory.register_certificate(&cert.pem, &self.ca_id).unwrap();
        let event = serde_json::from_str(&event_for_ids(id.as_str(), self.ca_id.as_str())).unwrap();
        (id, event)
    }

    fn status(&self, id: &CertificateId) -> Option<CertificateStatus> {
        self.memory.certificate_status(id)
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    async fn invoke(&self, payload: Value) -> Result<Response, HandlerError> {
        let mut ctx = Context::default();
        ctx.request_id = "req-1".into();
        self.handler.handle(LambdaEvent::new(payload, ctx)).await
    }
}

fn direct(response: Result<Response, HandlerError>) -> jitp_core::audit::AuditRecord {
    match response {
        Ok(Response::Direct(record)) => *record,
        other => panic!("expected a direct response, got {other:?}"),
    }
}

fn batch_failures(response: Result<Response, HandlerError>) -> Vec<String> {
    match response {
        Ok(Response::Batch(batch)) => batch.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
        other => panic!("expected a batch response, got {other:?}"),
    }
}

/// Transient failures give up at once, so one fault is one ERROR.
const NO_RETRY: (&str, &str) = ("JITP_RETRY_DEADLINE_MS", "0");
/// With no time to wait, a call queued behind another for its quota slot is handed back too; these registries
/// enforce no quotas, so the tests that want exactly their injected failure send calls unpaced.
const UNPACED: (&str, &str) = ("JITP_NO_PACING", "true");

/// A certificate no configuration accepts (expired: CERT_EXPIRED, the device's fault): `on_reject` applies.
fn expired(cn: &str) -> Device {
    let mut device = Device::new(cn);
    device.not_before = NOW - 20 * DAY;
    device.not_after = NOW - 10 * DAY;
    device
}

fn unavailable(op: Operation, nth: u64) -> Fault {
    Fault { op, nth, kind: FaultKind::UnavailableBefore }
}

#[tokio::test]
async fn a_direct_event_provisions_and_a_replay_is_already_provisioned() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    let (id, event) = f.device(&Device::new("sensor-0123456789ab"));
    let record = direct(f.invoke(event.clone()).await);
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(record.thing_name.as_deref(), Some("sensor-0123456789ab"));
    assert_eq!(f.status(&id), Some(CertificateStatus::Active));
    let record = direct(f.invoke(event).await);
    assert_eq!(record.outcome, Outcome::AlreadyProvisioned);

    let lines = f.lines();
    assert_eq!(lines.len(), 2, "one audit line per event");
    assert_eq!(lines[0]["outcome"], "PROVISIONED");
    assert_eq!(lines[0]["requestId"], "req-1");
    assert_eq!(lines[0]["trigger"], "direct");
    assert_eq!(lines[0]["certificate_id"], id.to_string());
    assert_eq!(lines[1]["outcome"], "ALREADY_PROVISIONED");
}

#[tokio::test]
async fn a_rejection_is_final_and_returns_success() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    let (id, event) = f.device(&expired("sensor-0123456789ab"));
    let record = direct(f.invoke(event).await);
    assert_eq!(record.outcome, Outcome::Rejected);
    assert_eq!(record.reason, Some(ReasonCode::CertExpired));
    assert_eq!(f.status(&id), Some(CertificateStatus::Revoked), "on_reject = revoke in templates/jitp.toml");
    let line = &f.lines()[0];
    assert_eq!(line["outcome"], "REJECTED");
    assert_eq!(line["reason"], "CERT_EXPIRED");
    assert_eq!(line["certificate_action"], "REVOKED");
}

#[tokio::test]
async fn on_reject_can_be_overridden_by_the_environment() {
    let f = Fixture::new(MemoryRegistry::new(), &[("JITP_ON_REJECT", "deactivate")]);
    let (id, event) = f.device(&expired("sensor-0123456789ab"));
    assert_eq!(direct(f.invoke(event).await).outcome, Outcome::Rejected);
    assert_eq!(f.status(&id), Some(CertificateStatus::Inactive));
}

/// The profile's own rules (no profile's subject rules match: SUBJECT_MISMATCH) are never final: the certificate
/// stays PENDING and the direct event fails, so that it waits for the fixed profile.
#[tokio::test]
async fn a_profile_fault_is_held_whatever_on_reject_says() {
    let f = Fixture::new(MemoryRegistry::new(), &[("JITP_ON_REJECT", "revoke")]);
    let (id, event) = f.device(&Device::new("printer-0123456789ab"));
    let err = f.invoke(event).await.unwrap_err();
    assert!(err.to_string().contains("SUBJECT_MISMATCH"), "{err}");
    assert_eq!(f.status(&id), Some(CertificateStatus::PendingActivation));
    let line = &f.lines()[0];
    assert_eq!((line["outcome"].as_str(), line["fault"].as_str()), (Some("HELD"), Some("profile")));
    assert_eq!(line["certificate_action"], "LEFT_PENDING");
}

#[tokio::test]
async fn a_malformed_direct_event_is_logged_and_returns_success() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    for payload in [
        json!({"hello": "world"}),
        json!("a string"),
        json!(null),
        json!({"Records": []}),
        json!({"Records": [{"eventSource": "aws:s3"}]}),
    ] {
        let record = direct(f.invoke(payload.clone()).await);
        assert_eq!(record.outcome, Outcome::Rejected, "{payload}");
        assert_eq!(record.reason, Some(ReasonCode::MalformedEvent), "{payload}");
    }
    let lines = f.lines();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l["reason"] == "MALFORMED_EVENT" && l["outcome"] == "REJECTED"));
    assert_eq!(f.memory.call_counts().values().sum::<u64>(), 0, "a malformed event touches nothing");
}

#[tokio::test]
async fn a_transient_failure_of_a_direct_event_is_an_error_so_lambda_retries() {
    let f = Fixture::new(
        MemoryRegistry::new().with_faults([unavailable(Operation::DescribeCertificate, 1)]),
        &[NO_RETRY, UNPACED],
    );
    let (id, event) = f.device(&Device::new("sensor-0123456789ab"));
    let err = f.invoke(event.clone()).await.unwrap_err();
    assert!(matches!(&err, HandlerError::Transient { certificate, .. } if *certificate == id.to_string()), "{err}");
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "jitp.TransientFailure");
    assert!(diagnostic.error_message.contains("DescribeCertificate"), "{}", diagnostic.error_message);
    assert_eq!(f.status(&id), Some(CertificateStatus::PendingActivation));
    assert_eq!(f.lines()[0]["outcome"], "ERROR");
    assert_eq!(f.lines()[0]["level"], "WARN");

    // Lambda's retry converges.
    assert_eq!(direct(f.invoke(event).await).outcome, Outcome::Provisioned);
    assert_eq!(f.status(&id), Some(CertificateStatus::Active));
}

/// An operator's mistake (here: the CA deactivated) holds the device: a direct event fails so that Lambda keeps
/// it, an SQS message is reported as a batch item failure, and the certificate stays PENDING (that the same event
/// then provisions the device once fixed is `operator_mistakes_hold_the_device_pending_until_fixed` in jitp-core).
#[tokio::test]
async fn an_operator_mistake_is_held_and_handed_back_never_revoked() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    f.memory.set_ca_status(&f.ca_id, jitp_registry::registry::CaStatus::Inactive);
    let (id, event) = f.device(&Device::new("sensor-0123456789ab"));
    let err = f.invoke(event.clone()).await.unwrap_err();
    assert!(matches!(&err, HandlerError::Held { reason, .. } if reason == "CA_NOT_ACTIVE"), "{err}");
    assert_eq!(Diagnostic::from(err).error_type, "jitp.HeldForOperator");
    let body = event.to_string();
    assert_eq!(batch_failures(f.invoke(sqs(&[("m-1", &body)])).await), ["m-1"]);
    for line in f.lines() {
        assert_eq!((line["outcome"].as_str(), line["fault"].as_str()), (Some("HELD"), Some("operator")), "{line}");
        assert_eq!(line["certificate_action"], "LEFT_PENDING");
        assert_eq!(line["level"], "WARN");
    }
    assert_eq!(f.status(&id), Some(CertificateStatus::PendingActivation));
}

#[tokio::test]
async fn the_workflow_retries_within_its_budget_before_giving_up() {
    // The default budget rides out a single 5xx: the platform never sees it.
    let f = Fixture::new(MemoryRegistry::new().with_faults([unavailable(Operation::CreateThing, 1)]), &[]);
    let (id, event) = f.device(&Device::new("sensor-0123456789ab"));
    let record = direct(f.invoke(event).await);
    assert_eq!(record.outcome, Outcome::Provisioned);
    assert_eq!(record.retries, 1);
    assert_eq!(f.status(&id), Some(CertificateStatus::Active));
}

#[tokio::test]
async fn an_sqs_batch_reports_only_its_transient_failures() {
    let f = Fixture::new(
        MemoryRegistry::new().with_faults([unavailable(Operation::DescribeCertificate, 2)]),
        &[NO_RETRY, UNPACED],
    );
    let (a, event_a) = f.device(&Device::new("sensor-00000000000a"));
    let (b, event_b) = f.device(&Device::new("sensor-00000000000b"));
    let (c, event_c) = f.device(&expired("sensor-00000000000c"));
    let (ea, eb, ec) = (event_a.to_string(), event_b.to_string(), event_c.to_string());
    let payload = sqs(&[("m-a", &ea), ("m-b", &eb), ("m-c", &ec), ("m-poison", "not json"), ("m-empty", "")]);
    let failures = batch_failures(f.invoke(payload).await);

    // Which record met the fault depends on scheduling: the audit lines say.
    let lines = f.lines();
    assert_eq!(lines.len(), 5, "one audit line per message");
    let errored: Vec<String> =
        lines.iter().filter(|l| l["outcome"] == "ERROR").map(|l| l["messageId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(errored.len(), 1, "{lines:?}");
    assert_eq!(failures, errored, "exactly the transient failure is reported");
    assert!(!failures.contains(&"m-poison".to_owned()) && !failures.contains(&"m-empty".to_owned()));
    let by_message: HashMap<&str, &Value> = lines.iter().map(|l| (l["messageId"].as_str().unwrap(), l)).collect();
    assert_eq!(by_message["m-poison"]["reason"], "MALFORMED_EVENT");
    assert_eq!(by_message["m-empty"]["reason"], "MALFORMED_EVENT");
    assert!(lines.iter().all(|l| l["trigger"] == "sqs" && l["requestId"] == "req-1"));

    // The queue redelivers the failed message alone; everything converges.
    let redelivered = match failures[0].as_str() {
        "m-a" => &ea,
        "m-b" => &eb,
        "m-c" => &ec,
        other => panic!("unexpected failure {other}"),
    };
    assert!(batch_failures(f.invoke(sqs(&[(&failures[0], redelivered)])).await).is_empty());
    assert_eq!(f.status(&a), Some(CertificateStatus::Active));
    assert_eq!(f.status(&b), Some(CertificateStatus::Active));
    assert_eq!(f.status(&c), Some(CertificateStatus::Revoked));
}

#[tokio::test]
async fn a_transient_failure_without_a_message_id_fails_the_whole_batch() {
    let f = Fixture::new(
        MemoryRegistry::new().with_faults([unavailable(Operation::DescribeCertificate, 1)]),
        &[NO_RETRY, UNPACED],
    );
    let (_, event) = f.device(&Device::new("sensor-0123456789ab"));
    let mut payload = sqs(&[("m-1", &event.to_string())]);
    payload["Records"][0].as_object_mut().unwrap().remove("messageId");
    let err = f.invoke(payload).await.unwrap_err();
    assert_eq!(err, HandlerError::UnreportableBatch(1));
}

#[tokio::test]
async fn a_batch_that_is_not_really_from_sqs_fails_whole() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    let payload = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": 42}]});
    let err = f.invoke(payload).await.unwrap_err();
    assert!(matches!(err, HandlerError::MalformedBatch(_)), "{err}");
    assert_eq!(Diagnostic::from(err).error_type, "jitp.MalformedBatch");
}

#[tokio::test]
async fn sqs_records_run_concurrently_up_to_the_bound() {
    let delay = Duration::from_millis(150);
    let faults = (1..=4).map(|nth| Fault { op: Operation::DescribeCertificate, nth, kind: FaultKind::Latency(delay) });
    let f = Fixture::new(MemoryRegistry::new().with_faults(faults), &[("JITP_SQS_CONCURRENCY", "2")]);
    let events: Vec<String> =
        (0..4).map(|i| f.device(&Device::new(&format!("sensor-00000000000{i}"))).1.to_string()).collect();
    let ids: Vec<String> = (0..4).map(|i| format!("m-{i}")).collect();
    let records: Vec<(&str, &str)> = ids.iter().map(String::as_str).zip(events.iter().map(String::as_str)).collect();
    let started = Instant::now();
    assert!(batch_failures(f.invoke(sqs(&records)).await).is_empty());
    let elapsed = started.elapsed();
    // 4 delayed calls, 2 at a time: at least two rounds (unbounded concurrency would take one).
    assert!(elapsed >= delay * 2, "{elapsed:?}");
    assert!(f.lines().iter().all(|l| l["outcome"] == "PROVISIONED"));
}

#[tokio::test]
async fn the_policy_context_comes_from_the_function_arn() {
    let f = Fixture::new(MemoryRegistry::new(), &[]);
    let (_, event) = f.device(&Device::new("sensor-0123456789ab"));
    let mut ctx = Context::default();
    ctx.invoked_function_arn = "arn:aws:lambda:eu-west-1:210987654321:function:jitp".into();
    let record = direct(f.handler.handle(LambdaEvent::new(event, ctx)).await);
    assert_eq!(record.outcome, Outcome::Provisioned);
    let name: PolicyName = record.policy_name.unwrap().parse().unwrap();
    let policy = f.memory.get_policy(&name).await.unwrap();
    assert!(
        policy.document.contains("arn:aws:iot:eu-west-1:210987654321:client/sensor-0123456789ab"),
        "{}",
        policy.document
    );
}

#[tokio::test]
async fn the_configured_account_wins_over_the_function_arn() {
    let f = Fixture::new(
        MemoryRegistry::new(),
        &[("JITP_AWS_ACCOUNT_ID", "111122223333"), ("AWS_REGION", "us-west-2"), ("JITP_AWS_PARTITION", "aws")],
    );
    let (_, event) = f.device(&Device::new("sensor-0123456789ab"));
    let mut ctx = Context::default();
    ctx.invoked_function_arn = "arn:aws:lambda:eu-west-1:210987654321:function:jitp".into();
    let record = direct(f.handler.handle(LambdaEvent::new(event, ctx)).await);
    let name: PolicyName = record.policy_name.unwrap().parse().unwrap();
    let policy = f.memory.get_policy(&name).await.unwrap();
    assert!(policy.document.contains("arn:aws:iot:us-west-2:111122223333:"), "{}", policy.document);
}

#[tokio::test]
async fn build_fails_on_a_bad_configuration() {
    let dir = ConfigDir::new();
    let bad = dir.write_config("[[profiles]]\nname = \"x\"\nca = [\"*\"]\ncommon_name = '(unclosed'\n");
    let cases = [
        vec![("JITP_CONFIG", bad.display().to_string())],
        vec![("JITP_CONFIG", "/nonexistent/jitp.toml".to_owned())],
        vec![
            ("JITP_CONFIG", repo_config_path().display().to_string()),
            ("JITP_POLICY_PREFIX", "bad prefix*".to_owned()),
        ],
    ];
    for vars in cases {
        let env: HashMap<&str, String> = vars.iter().cloned().chain([("JITP_REGISTRY", "memory".to_owned())]).collect();
        let settings: LambdaSettings = jitp_wiring::parse::from_vars(["jitp-lambda"], env).unwrap();
        let err = jitp_lambda::build(&settings, &settings.common.config.path(None, None)).await.unwrap_err();
        assert!(err.to_string().starts_with("configuration "), "{err}");
    }
}
