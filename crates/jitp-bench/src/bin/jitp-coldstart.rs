//! Lambda cold start: the release `jitp-lambda` binary against a local Lambda Runtime API (axum on
//! 127.0.0.1:0). Two figures:
//!
//! - init: time from spawning the process to its first `GET /runtime/invocation/next`, over `--runs` fresh
//!   processes (median, min, max), with `JITP_REGISTRY=memory`;
//! - peak RSS: `VmHWM` from `/proc/<pid>/status` after `--events` events, one invocation each, in two set-ups:
//!   `memory` (an empty embedded registry: every event is a CERT_NOT_FOUND rejection after one call) and
//!   `memory:FILE` (a registry file holding the CA and one pending certificate per event: every event provisions
//!   a device, and the function saves the file after each invocation, as that mode does).
//!
//! `cargo build --release -p jitp-lambda && cargo run --release -p jitp-bench --bin jitp-coldstart`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use jitp_bench::{median, sensor_cn, vm_hwm_kib};
use jitp_core::memory::MemoryRegistry;
use jitp_testkit::{Alg, Ca, DAY, Device, event_for_ids, repo_root};
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(about = "Cold start and peak RSS of the jitp-lambda binary against a local Lambda Runtime API")]
struct Args {
    /// The function binary.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Fresh processes for the init figure.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Events fed to one process for the RSS figure.
    #[arg(long, default_value_t = 1000)]
    events: usize,
}

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:jitp";

struct ApiState {
    first_next: Mutex<Option<Instant>>,
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    replies: mpsc::UnboundedSender<(String, bool)>,
}

struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<ApiState>,
    events: mpsc::UnboundedSender<(String, String)>,
    replies: mpsc::UnboundedReceiver<(String, bool)>,
    server: tokio::task::JoinHandle<()>,
}

async fn next(State(state): State<Arc<ApiState>>) -> axum::response::Response {
    state.first_next.lock().unwrap().get_or_insert_with(Instant::now);
    let Some((id, payload)) = state.pending.lock().await.recv().await else {
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
        payload,
    )
        .into_response()
}

async fn response(State(state): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, _: Bytes) -> StatusCode {
    let _ = state.replies.send((id, true));
    StatusCode::ACCEPTED
}

async fn error(State(state): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, _: Bytes) -> StatusCode {
    let _ = state.replies.send((id, false));
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<ApiState>>, _: Bytes) -> StatusCode {
    let _ = state.replies.send(("init".into(), false));
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    async fn start() -> Self {
        let (events, pending) = mpsc::unbounded_channel();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            first_next: Mutex::new(None),
            pending: tokio::sync::Mutex::new(pending),
            replies: reply_tx,
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
        Self { addr, state, events, replies, server }
    }

    /// One invocation; whether the function answered with a response (not an error).
    async fn invoke(&mut self, n: usize, payload: String) -> bool {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        self.events.send((id.clone(), payload)).unwrap();
        let (got, ok) = tokio::time::timeout(Duration::from_secs(60), self.replies.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply to invocation {n} within 60 s"))
            .unwrap();
        assert_eq!(got, id, "a reply to another invocation");
        ok
    }

    async fn wait_first_next(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = *self.state.first_next.lock().unwrap() {
                return Some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(binary: &PathBuf, api: &RuntimeApi, registry: &str) -> (Function, Instant) {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "jitp")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]0123456789abcdef")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/jitp")
        .env("AWS_REGION", "us-east-1")
        .env("JITP_CONFIG", jitp_testkit::repo_config_path())
        .env("JITP_REGISTRY", registry)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    (Function(child), started)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let binary = args.binary.clone().unwrap_or_else(|| repo_root().join("target/release/jitp-lambda"));
    if !binary.is_file() {
        eprintln!("{} not found: cargo build --release -p jitp-lambda", binary.display());
        return ExitCode::FAILURE;
    }
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!("binary {} ({:.1} MB)", binary.display(), size as f64 / 1e6);

    // Init: fresh process each time, to the first `next`.
    let mut inits = Vec::new();
    for _ in 0..args.runs {
        let api = RuntimeApi::start().await;
        let (function, started) = spawn(&binary, &api, "memory");
        let Some(first) = api.wait_first_next(Duration::from_secs(10)).await else {
            eprintln!("the function did not ask for an event within 10 s");
            return ExitCode::FAILURE;
        };
        inits.push(first.duration_since(started).as_secs_f64() * 1000.0);
        drop(function);
    }
    let runs: Vec<String> = inits.iter().map(|ms| format!("{ms:.1}")).collect();
    let (min, max) = inits.iter().fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let med = median(&mut inits).unwrap_or(0.0);
    println!(
        "init (process start to first /next), {} runs, JITP_REGISTRY=memory: median {med:.1} ms, min {min:.1}, max {max:.1}",
        args.runs
    );
    println!("  runs (ms): {}", runs.join(" "));

    // RSS after N events, both set-ups.
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let ca = Ca::new("jitp coldstart CA", Alg::P256);
    let pems: Vec<String> = (0..args.events as u64)
        .map(|i| {
            ca.issue(&Device { not_before: now - DAY, not_after: now + 365 * DAY, ..Device::new(&sensor_cn(i)) }).pem
        })
        .collect();
    let file = std::env::temp_dir().join(format!("jitp-coldstart-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mut events = Vec::with_capacity(pems.len());
    {
        let memory = MemoryRegistry::open(&file).unwrap();
        let ca_id = memory.register_ca(&ca.cert.pem, true).unwrap();
        for pem in &pems {
            let id = memory.register_certificate(pem, &ca_id).unwrap();
            events.push(event_for_ids(id.as_str(), ca_id.as_str()));
        }
        memory.save().unwrap();
    }
    for (label, registry) in [
        ("memory (empty: CERT_NOT_FOUND rejections)", "memory".to_owned()),
        ("memory:FILE (every event provisions; file saved per invocation)", format!("memory:{}", file.display())),
    ] {
        let mut api = RuntimeApi::start().await;
        let (function, _) = spawn(&binary, &api, &registry);
        let after_init = {
            api.wait_first_next(Duration::from_secs(10)).await;
            vm_hwm_kib(function.0.id()).unwrap_or(0)
        };
        let started = Instant::now();
        let mut answered = 0;
        for (n, event) in events.iter().enumerate() {
            if api.invoke(n + 1, event.clone()).await {
                answered += 1;
            }
        }
        let elapsed = started.elapsed();
        // The function is now blocked in its next `next`: its peak so far is the figure.
        let hwm = vm_hwm_kib(function.0.id()).unwrap_or(0);
        println!(
            "peak RSS (VmHWM), {label}: {:.1} MB after {} events ({answered} answered with a response, {:.2} ms per invocation); {:.1} MB after init",
            hwm as f64 / 1024.0,
            events.len(),
            elapsed.as_secs_f64() * 1000.0 / events.len().max(1) as f64,
            after_init as f64 / 1024.0
        );
        drop(function);
    }
    if let Ok(memory) = MemoryRegistry::open(&file) {
        let active = memory.policies().len();
        println!("  memory:FILE run left {active} policies in the registry file");
    }
    let _ = std::fs::remove_file(&file);
    ExitCode::SUCCESS
}
