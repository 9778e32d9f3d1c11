#![cfg(test)]
//! The real `jitp-lambda` binary against a Lambda Runtime API served by the test, as Lambda runs it: the
//! `next` / `response` / `error` loop over HTTP, configuration from the environment, audit lines on stdout.
//!
//! Registries: the embedded one read from a file (always runs), moto's server (skipped without moto, see
//! `jitp_testkit::moto`), and an endpoint nobody listens on (the transient path). The init time (process start to
//! the first `next` request) and the peak RSS (VmHWM) are printed for the benchmarks; `JITP_LAMBDA_BIN` runs
//! another build of the binary (e.g. `target/lambda/jitp-lambda/bootstrap` from `cargo lambda build --release`).

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jitp_core::event::CertificateStatus;
use jitp_core::ids::CertificateId;
use jitp_core::memory::MemoryRegistry;
use jitp_testkit::{Alg, Ca, DAY, Device, event_for_ids};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:jitp";
/// Bound on one invocation seen from the test (a transient failure spends its retry budget first).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the function posted back for an invocation (or for its init).
#[derive(Debug, Clone)]
enum Reply {
    Response { id: String, body: Value },
    Error { id: String, error_type: String, body: Value },
    InitError { body: Value },
}

struct ApiState {
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    replies: mpsc::UnboundedSender<Reply>,
    first_next: OnceLock<Instant>,
}

/// A fake Lambda Runtime API on a loopback port.
struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<ApiState>,
    events: mpsc::UnboundedSender<(String, Value)>,
    replies: tokio::sync::Mutex<mpsc::UnboundedReceiver<Reply>>,
    server: tokio::task::JoinHandle<()>,
    next_id: Mutex<u32>,
}

async fn next(State(state): State<Arc<ApiState>>) -> axum::response::Response {
    let _ = state.first_next.set(Instant::now());
    let event = state.pending.lock().await.recv().await;
    let Some((id, payload)) = event else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 60_000;
    (
        [
            ("Lambda-Runtime-Aws-Request-Id", id),
            ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN.to_owned()),
            ("Lambda-Runtime-Trace-Id", "Root=1-6929a000-0123456789abcdef01234567;Sampled=0".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ],
        payload.to_string(),
    )
        .into_response()
}

fn json_body(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(state): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let _ = state.replies.send(Reply::Response { id, body: json_body(&body) });
    StatusCode::ACCEPTED
}

async fn error(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error_type =
        headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let _ = state.replies.send(Reply::Error { id, error_type, body: json_body(&body) });
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    let _ = state.replies.send(Reply::InitError { body: json_body(&body) });
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let (events, pending) = mpsc::unbounded_channel();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            pending: tokio::sync::Mutex::new(pending),
            replies: reply_tx,
            first_next: OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi { addr, state, events, replies: tokio::sync::Mutex::new(replies), server, next_id: Mutex::new(0) }
    }

    /// Queue one invocation and wait for what the function posts back for it.
    async fn invoke(&self, payload: Value) -> Reply {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("00000000-0000-4000-8000-{:012}", *n)
        };
        self.events.send((id.clone(), payload)).unwrap();
        let reply = tokio::time::timeout(INVOKE_TIMEOUT, self.replies.lock().await.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply to invocation {id} within {INVOKE_TIMEOUT:?}"))
            .unwrap();
        match &reply {
            Reply::Response { id: got, .. } | Reply::Error { id: got, .. } => assert_eq!(*got, id, "{reply:?}"),
            Reply::InitError { .. } => {}
        }
        reply
    }

    fn first_next(&self) -> Option<Instant> {
        self.state.first_next.get().copied()
    }

    /// A reply already posted, if any.
    async fn try_reply(&self) -> Option<Reply> {
        self.replies.lock().await.try_recv().ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The binary, running; killed on drop.
struct Function {
    child: Child,
    started: Instant,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn capture(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary under test: `JITP_LAMBDA_BIN`, else the one cargo built for this test.
fn binary() -> PathBuf {
    std::env::var_os("JITP_LAMBDA_BIN")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_jitp-lambda")), PathBuf::from)
}

impl Function {
    /// Start `jitp-lambda` against `api` with a clean environment plus `vars`.
    fn start(api: &RuntimeApi, vars: &[(&str, String)]) -> Function {
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "jitp")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/jitp")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "info")
            .env("JITP_CONFIG", repo_root().join("templates/jitp.toml"))
            // Nothing from the developer's AWS setup, no instance metadata lookups.
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Function { child, started, stdout, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far, kB.
    fn vm_hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn logs(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout().join("\n"), self.stderr.lock().unwrap().join("\n"))
    }

    /// The audit lines (JSON objects with `eventType: jitp.provision`), waiting briefly for stdout to drain.
    fn audit_lines(&self, expected: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = self
                .stdout()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["eventType"] == "jitp.provision")
                .collect();
            if lines.len() >= expected || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to exit on its own.
    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Print the figures the benchmark issue collects.
    fn report(&self, api: &RuntimeApi, label: &str) {
        let init = api.first_next().map(|t| t.duration_since(self.started));
        let init_ms = init.map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "n/a".into());
        let bin = binary();
        let size = std::fs::metadata(&bin).map(|m| m.len() / 1024).unwrap_or_default();
        println!("jitp-lambda [{label}] binary: {} ({size} KiB)", bin.display());
        println!("jitp-lambda [{label}] init: {init_ms} ms (process start to first /next request)");
        println!("jitp-lambda [{label}] peak RSS (VmHWM): {} kB", self.vm_hwm_kb());
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unix seconds now: the binary uses the system clock, so its certificates must be valid now.
fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A device certificate valid around the real clock.
fn device_now(cn: &str) -> Device {
    let now = unix_now();
    Device { not_before: now - DAY, not_after: now + 365 * DAY, ..Device::new(cn) }
}

fn sqs(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jitp-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[track_caller]
fn response_body(reply: &Reply) -> &Value {
    match reply {
        Reply::Response { body, .. } => body,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("jitp-lambda-{}-{name}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_provisions_over_the_runtime_api_with_the_embedded_registry() {
    // A registry file holding the CA and two pending device certificates, as AWS IoT would after auto-registration.
    let file = temp_path("registry.json");
    let _ = std::fs::remove_file(&file);
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
    let function = Function::start(&api, &[("JITP_REGISTRY", format!("memory:{}", file.display()))]);

    let reply = api.invoke(serde_json::from_str(&event(&a)).unwrap()).await;
    assert_eq!(response_body(&reply)["outcome"], "PROVISIONED", "{reply:?}\n{}", function.logs());

    let batch = sqs(&[("m-good", &event(&b)), ("m-poison", "{\"certificateId\": 42}")]);
    let reply = api.invoke(batch).await;
    assert_eq!(response_body(&reply), &json!({"batchItemFailures": []}), "{}", function.logs());

    let reply = api.invoke(json!({"hello": "world"})).await;
    assert_eq!(response_body(&reply)["reason"], "MALFORMED_EVENT", "a malformed event is not retried");

    let reply = api.invoke(serde_json::from_str(&event(&a)).unwrap()).await;
    assert_eq!(response_body(&reply)["outcome"], "ALREADY_PROVISIONED");

    function.report(&api, "memory registry");

    // One audit line per event, each a JSON object with the verdict at the top level and the request id.
    let lines = function.audit_lines(5);
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
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_go_to_the_error_endpoint_and_into_batch_item_failures() {
    // AWS IoT unreachable: an endpoint on a port nobody listens on.
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap();
    let api = RuntimeApi::start().await;
    let function = Function::start(
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
    let lines = function.audit_lines(3);
    assert_eq!(lines.len(), 3, "{}", function.logs());
    assert!(lines.iter().filter(|l| l["outcome"] == "ERROR").count() == 2);
    function.report(&api, "unreachable registry");
}

/// moto's server as AWS IoT: register a CA and device certificates with the SDK, as auto-registration would.
mod moto {
    use aws_sdk_iot::types::CertificateStatus as SdkStatus;
    use jitp_testkit::moto::MotoServer;

    use super::*;

    struct Moto {
        server: MotoServer,
        client: aws_sdk_iot::Client,
        ca: Ca,
        ca_id: String,
    }

    impl Moto {
        async fn start() -> Option<Moto> {
            let server = MotoServer::start_with_aws_semantics()?;
            let registry = jitp_aws::AwsRegistry::builder()
                .endpoint_url(&server.endpoint)
                .region("us-east-1")
                .static_credentials("testing", "testing")
                // moto loads its IoT backend on the first request (seconds on a busy machine), and the SDK makes one
                // attempt per call: give that attempt time.
                .attempt_timeout(jitp_testkit::moto::READY_TIMEOUT)
                .operation_timeout(jitp_testkit::moto::READY_TIMEOUT)
                .build()
                .await;
            let client = registry.client().clone();
            // The profile's thing type must exist, in AWS (infra creates it) as in moto.
            client.create_thing_type().thing_type_name("sensor").send().await.unwrap();
            let ca = Ca::new("jitp lambda moto CA", Alg::P256);
            let registered =
                client.register_ca_certificate().ca_certificate(&ca.cert.pem).set_as_active(true).send().await.unwrap();
            let ca_id = registered.certificate_id().unwrap().to_owned();
            Some(Moto { server, client, ca, ca_id })
        }

        /// Register a PENDING_ACTIVATION device certificate; its id and event.
        async fn device(&self, device: &Device) -> (String, Value) {
            let cert = self.ca.issue(device);
            let registered = self
                .client
                .register_certificate()
                .certificate_pem(&cert.pem)
                .ca_certificate_pem(&self.ca.cert.pem)
                .status(SdkStatus::PendingActivation)
                .send()
                .await
                .unwrap();
            let id = registered.certificate_id().unwrap().to_owned();
            let event = serde_json::from_str(&event_for_ids(&id, &self.ca_id)).unwrap();
            (id, event)
        }

        async fn status(&self, id: &str) -> SdkStatus {
            let described = self.client.describe_certificate().certificate_id(id).send().await.unwrap();
            described.certificate_description().unwrap().status().unwrap().clone()
        }

        fn vars(&self) -> Vec<(&'static str, String)> {
            vec![
                ("JITP_REGISTRY", "aws".into()),
                ("JITP_AWS_ENDPOINT_URL", self.server.endpoint.clone()),
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
        let (c, event_c) = moto.device(&device_now("printer-00000000c0c0")).await;

        let api = RuntimeApi::start().await;
        let function = Function::start(&api, &moto.vars());

        let reply = api.invoke(event_a.clone()).await;
        let body = response_body(&reply);
        assert_eq!(body["outcome"], "PROVISIONED", "{body}\n{}", function.logs());
        assert_eq!(moto.status(&a).await, SdkStatus::Active);
        let thing = moto.client.describe_thing().thing_name("sensor-00000000a0a0").send().await.unwrap();
        assert_eq!(thing.thing_type_name(), Some("sensor"));
        assert_eq!(thing.attributes().unwrap().get("jitp_certificate").map(String::as_str), Some(a.as_str()));
        let arn = moto.client.describe_certificate().certificate_id(&a).send().await.unwrap();
        let arn = arn.certificate_description().unwrap().certificate_arn().unwrap().to_owned();
        let policies = moto.client.list_attached_policies().target(&arn).send().await.unwrap();
        let names: Vec<&str> = policies.policies().iter().filter_map(|p| p.policy_name()).collect();
        assert_eq!(names, ["jitp-sensor-00000000a0a0"]);

        // A replay is a no-op; a rejection is final (revoked) and still a success for Lambda.
        assert_eq!(response_body(&api.invoke(event_a).await)["outcome"], "ALREADY_PROVISIONED");
        let reply = api.invoke(event_c).await;
        assert_eq!(response_body(&reply)["reason"], "SUBJECT_MISMATCH", "{reply:?}");
        assert_eq!(moto.status(&c).await, SdkStatus::Revoked);

        // An SQS batch: the good message is provisioned, the poison one dropped, nothing reported.
        let reply = api.invoke(sqs(&[("m-good", &event_b.to_string()), ("m-poison", "[]")])).await;
        assert_eq!(response_body(&reply), &json!({"batchItemFailures": []}), "{}", function.logs());
        assert_eq!(moto.status(&b).await, SdkStatus::Active);

        function.report(&api, "moto");
        let lines = function.audit_lines(5);
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
    let missing = temp_path("missing/jitp.toml");
    let mut function = Function::start(&api, &[("JITP_CONFIG", missing.display().to_string())]);
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

    let mut function = Function::start(&api, &[("JITP_POLICY_MODE", "per_thing".into())]);
    let status = function.wait_exit(Duration::from_secs(20)).expect("the function should exit");
    assert!(!status.success());
    assert!(function.logs().contains("JITP_POLICY_MODE"), "{}", function.logs());
}
