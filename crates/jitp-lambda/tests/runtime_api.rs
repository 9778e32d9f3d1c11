#![cfg(test)]
//! The real `jitp-lambda` binary against a Lambda Runtime API served by the test, as Lambda runs it: the
//! `next` / `response` / `error` loop over HTTP, configuration from the environment, audit lines on stdout.
//!
//! Registries: the embedded one read from a file (always runs), moto's server (skipped without moto, see
//! `jitp_testkit::moto`), and an endpoint nobody listens on (the transient path). The init time (process start to
//! the first `next` request) and the peak RSS (VmHWM) are printed for the benchmarks; `JITP_LAMBDA_BIN` runs
//! another build of the binary (e.g. `target/lambda/jitp-lambda/bootstrap` from `cargo lambda build --release`).

use std::path::PathBuf;
use std::time::Duration;

use jitp_pki::ids::CertificateId;
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::events::sqs;
use jitp_testkit::lambda::{Function, Reply, RuntimeApi};
use jitp_testkit::{Alg, Ca, Device, event_for_ids, unix_now};
use serde_json::{Value, json};

/// The binary under test: `JITP_LAMBDA_BIN`, else the one cargo built for this test.
fn binary() -> PathBuf {
    jitp_testkit::lambda::binary("JITP_LAMBDA_BIN", env!("CARGO_BIN_EXE_jitp-lambda"))
}

/// Start it against `api` with `vars`.
fn start(api: &RuntimeApi, vars: &[(&str, String)]) -> Function {
    Function::start(api, &binary(), vars)
}

/// A device certificate valid around the real clock: the binary uses the system clock.
fn device_now(cn: &str) -> Device {
    Device::new(cn).valid_around(unix_now())
}

#[track_caller]
fn response_body(reply: &Reply) -> &Value {
    match reply {
        Reply::Response { body, .. } => body,
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_provisions_over_the_runtime_api_with_the_embedded_registry() {
    // A registry file holding the CA and two pending device certificates, as AWS IoT would after auto-registration.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let ca = Ca::new("jitp lambda runtime CA", Alg::P256);
    let (a, b): (CertificateId, CertificateId);
    {
        let memory = MemoryRegistry::open(&file).unwrap();
        let ca_id = memory.register_ca(&ca.cert.pem, true).unwrap();
        a = memory.register_certificate(&ca.issue(&device_now("sensor-0000000000aa")).pem, &ca_id).unwrap();
        b = memory.register_certificate(&ca.issue(&device_now("sensor-0000000000bb")).pem, &ca_id).unwrap();
        memory.save().unwrap();
    }
    let event = |id: &CertificateId| event_for_ids(id.as_str(), &ca.id());

    let api = RuntimeApi::start().await;
    let function = start(&api, &[("JITP_REGISTRY", format!("memory:{}", file.display()))]);

    let reply = api.invoke(serde_json::from_str(&event(&a)).unwrap()).await;
    assert_eq!(response_body(&reply)["outcome"], "PROVISIONED", "{reply:?}\n{}", function.logs());

    let batch = sqs(&[("m-good", &event(&b)), ("m-poison", "{\"certificateId\": 42}")]);
    let reply = api.invoke(batch).await;
    assert_eq!(response_body(&reply), &json!({"batchItemFailures": []}), "{}", function.logs());

    let reply = api.invoke(json!({"hello": "world"})).await;
    assert_eq!(response_body(&reply)["reason"], "MALFORMED_EVENT", "a malformed event is not retried");

    let reply = api.invoke(serde_json::from_str(&event(&a)).unwrap()).await;
    assert_eq!(response_body(&reply)["outcome"], "ALREADY_PROVISIONED");

    function.report(&api, "jitp-lambda", "memory registry");

    // One audit line per event, each a JSON object with the verdict at the top level and the request id.
    let lines = function.lines("jitp.provision", 5);
    let summary: Vec<(String, String)> = lines
        .iter()
        .map(|l| (l["outcome"].as_str().unwrap().to_owned(), l["requestId"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(lines.len(), 5, "{summary:?}\n{}", function.logs());
    assert_eq!(lines[0]["outcome"], "PROVISIONED");
    assert_eq!(lines[0]["requestId"], "00000000-0000-4000-8000-000000000001");
    assert_eq!(lines[0]["thing_name"], "sensor-0000000000aa");
    let poison = lines.iter().find(|l| l["messageId"] == "m-poison").unwrap();
    assert_eq!(poison["reason"], "MALFORMED_EVENT");
    // Everything on stdout is JSON (Lambda's JSON log format), and no PEM leaks into it.
    for line in function.stdout() {
        assert!(serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object()), "not a JSON line: {line}");
        assert!(!line.contains("BEGIN CERTIFICATE"), "{line}");
    }
    drop(function);

    // The function saved the registry after each invocation.
    let memory = MemoryRegistry::open(&file).unwrap();
    assert_eq!(memory.certificate_status(&a), Some(CertificateStatus::Active));
    assert_eq!(memory.certificate_status(&b), Some(CertificateStatus::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_go_to_the_error_endpoint_and_into_batch_item_failures() {
    // AWS IoT unreachable: an endpoint on a port nobody listens on.
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap();
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        &[
            ("JITP_REGISTRY", "aws".into()),
            ("JITP_AWS_ENDPOINT_URL", format!("http://{closed}")),
            ("JITP_RETRY_DEADLINE_MS", "100".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
    );
    let ca = Ca::new("jitp lambda unreachable CA", Alg::P256);
    let cert = ca.issue(&device_now("sensor-0000000000cc"));
    let event = event_for_ids(&cert.id(), &ca.id());

    let reply = api.invoke(serde_json::from_str(&event).unwrap()).await;
    let Reply::Error { error_type, body, .. } = &reply else { panic!("expected an error, got {reply:?}") };
    assert_eq!(error_type, "unhandled", "the runtime's header");
    assert_eq!(body["errorType"], "jitp.TransientFailure", "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains(&cert.id()), "{body}");

    let reply = api.invoke(sqs(&[("m-transient", &event), ("m-poison", "not json")])).await;
    assert_eq!(
        response_body(&reply),
        &json!({"batchItemFailures": [{"itemIdentifier": "m-transient"}]}),
        "{}",
        function.logs()
    );
    let lines = function.lines("jitp.provision", 3);
    assert_eq!(lines.len(), 3, "{}", function.logs());
    assert!(lines.iter().filter(|l| l["outcome"] == "ERROR").count() == 2);
    function.report(&api, "jitp-lambda", "unreachable registry");
}

/// moto's server as AWS IoT: register a CA and device certificates with the SDK, as auto-registration would.
mod moto {
    use aws_sdk_iot::types::CertificateStatus as SdkStatus;
    use jitp_pki::ids::CaCertificateId;

    use super::*;

    struct Moto {
        moto: jitp_testkit::moto::Moto,
        ca: Ca,
        ca_id: CaCertificateId,
    }

    impl Moto {
        async fn start() -> Option<Moto> {
            let moto = jitp_testkit::moto::Moto::start_with_aws_semantics().await?;
            // The profile's thing type must exist, in AWS (infra creates it) as in moto.
            moto.create_thing_type("sensor").await;
            let ca = Ca::new("jitp lambda moto CA", Alg::P256);
            let ca_id = moto.register_ca(&ca, true).await;
            Some(Moto { moto, ca, ca_id })
        }

        fn sdk(&self) -> &aws_sdk_iot::Client {
            self.moto.sdk()
        }

        /// Register a PENDING_ACTIVATION device certificate; its id and event.
        async fn device(&self, device: &Device) -> (CertificateId, Value) {
            let id = self.moto.register_pending(&self.ca.issue(device).pem, &self.ca).await.id;
            let event = serde_json::from_str(&event_for_ids(id.as_str(), self.ca_id.as_str())).unwrap();
            (id, event)
        }

        async fn status(&self, id: &CertificateId) -> SdkStatus {
            self.moto.status(id).await
        }

        fn vars(&self) -> Vec<(&'static str, String)> {
            vec![
                ("JITP_REGISTRY", "aws".into()),
                ("JITP_AWS_ENDPOINT_URL", self.moto.server.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ]
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_binary_provisions_end_to_end_against_moto() {
        let Some(moto) = Moto::start().await else { return };
        let (a, event_a) = moto.device(&device_now("sensor-00000000a0a0")).await;
        let (b, event_b) = moto.device(&device_now("sensor-00000000b0b0")).await;
        // Expired a month ago: a refusal no configuration could turn into an acceptance (the device's fault).
        let expired = {
            let mut d = Device::new("sensor-00000000c0c0");
            d.not_before = unix_now() - 400 * 86_400;
            d.not_after = unix_now() - 30 * 86_400;
            d
        };
        let (c, event_c) = moto.device(&expired).await;

        let api = RuntimeApi::start().await;
        let function = start(&api, &moto.vars());

        let reply = api.invoke(event_a.clone()).await;
        let body = response_body(&reply);
        assert_eq!(body["outcome"], "PROVISIONED", "{body}\n{}", function.logs());
        assert_eq!(moto.status(&a).await, SdkStatus::Active);
        let thing = moto.sdk().describe_thing().thing_name("sensor-00000000a0a0").send().await.unwrap();
        assert_eq!(thing.thing_type_name(), Some("sensor"));
        assert_eq!(thing.attributes().unwrap().get("jitp_certificate").map(String::as_str), Some(a.as_str()));
        let arn = moto.sdk().describe_certificate().certificate_id(a.as_str()).send().await.unwrap();
        let arn = arn.certificate_description().unwrap().certificate_arn().unwrap().to_owned();
        let policies = moto.sdk().list_attached_policies().target(&arn).send().await.unwrap();
        let names: Vec<&str> = policies.policies().iter().filter_map(|p| p.policy_name()).collect();
        assert_eq!(names, ["jitp-sensor-00000000a0a0"]);

        // A replay is a no-op; a rejection is final (revoked) and still a success for Lambda.
        assert_eq!(response_body(&api.invoke(event_a).await)["outcome"], "ALREADY_PROVISIONED");
        let reply = api.invoke(event_c).await;
        assert_eq!(response_body(&reply)["reason"], "CERT_EXPIRED", "{reply:?}");
        assert_eq!(moto.status(&c).await, SdkStatus::Revoked);

        // An SQS batch: the good message is provisioned, the poison one dropped, nothing reported.
        let reply = api.invoke(sqs(&[("m-good", &event_b.to_string()), ("m-poison", "[]")])).await;
        assert_eq!(response_body(&reply), &json!({"batchItemFailures": []}), "{}", function.logs());
        assert_eq!(moto.status(&b).await, SdkStatus::Active);

        function.report(&api, "jitp-lambda", "moto");
        let lines = function.lines("jitp.provision", 5);
        let outcomes: Vec<&str> = lines.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes.len(), 5, "{outcomes:?}");
        assert_eq!(&outcomes[..3], ["PROVISIONED", "ALREADY_PROVISIONED", "REJECTED"]);
        // The 6 calls of a first provisioning plus the CA's description, cached for the next events.
        assert_eq!(lines[0]["api_call_count"], 7, "{}", lines[0]);
        assert_eq!(lines[1]["api_call_count"], 4, "a replay: the certificate, then ownership, attachment, policy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_fails_init_before_the_first_event() {
    let api = RuntimeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/jitp.toml");
    let mut function = start(&api, &[("JITP_CONFIG", missing.display().to_string())]);
    let status = function.wait_exit(Duration::from_secs(20)).expect("the function should exit");
    assert!(!status.success());
    assert!(api.first_next().is_none(), "it asked for an event");
    // Exiting is how init fails: Lambda reports Runtime.ExitError with the log's last lines.
    if let Some(Reply::InitError { body }) = api.try_reply().await {
        panic!("unexpected init error report {body}");
    }
    let logs = function.logs();
    let error = function
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line\n{logs}"));
    assert!(error["error"].as_str().unwrap().contains(&missing.display().to_string()), "{error}");

    let mut function = start(&api, &[("JITP_POLICY_MODE", "per_thing".into())]);
    let status = function.wait_exit(Duration::from_secs(20)).expect("the function should exit");
    assert!(!status.success());
    assert!(function.logs().contains("JITP_POLICY_MODE"), "{}", function.logs());
}
