//! A fake Lambda Runtime API on a loopback port, to run the real `jitp-lambda` binary as Lambda does: the
//! function asks `GET /runtime/invocation/next` for an event and posts its `response` or `error` (or, failing
//! init, `init/error`); the test queues events with [`RuntimeApi::invoke`] and gets back what it posted.
//! [`RuntimeApi::command`] is the function's process with the environment Lambda gives it and nothing of the
//! developer's AWS set-up.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::repo_config_path;

/// The function's ARN in every invocation (its account and region make the policy context).
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:jitp";
/// Bound on one invocation seen from the test (a transient failure spends its retry budget first).
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The function's memory size, as infra deploys it (the runtime only reports it).
pub const MEMORY_SIZE_MB: u32 = 256;

/// What the function posted back for an invocation (or for its init).
#[derive(Debug, Clone)]
pub enum Reply {
    /// `POST /runtime/invocation/{id}/response`.
    Response {
        /// The invocation's request id.
        id: String,
        /// The response body (a JSON string if it was not JSON).
        body: Value,
    },
    /// `POST /runtime/invocation/{id}/error`.
    Error {
        /// The invocation's request id.
        id: String,
        /// The `Lambda-Runtime-Function-Error-Type` header.
        error_type: String,
        /// The error body.
        body: Value,
    },
    /// `POST /runtime/init/error`.
    InitError {
        /// The error body.
        body: Value,
    },
}

struct ApiState {
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    replies: mpsc::UnboundedSender<Reply>,
    first_next: OnceLock<Instant>,
}

/// A fake Lambda Runtime API on 127.0.0.1, stopped on drop.
pub struct RuntimeApi {
    /// Where it listens: the function's `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
    state: Arc<ApiState>,
    events: mpsc::UnboundedSender<(String, Value)>,
    replies: tokio::sync::Mutex<mpsc::UnboundedReceiver<Reply>>,
    server: tokio::task::JoinHandle<()>,
    invocations: Mutex<u32>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").field("addr", &self.addr).finish_non_exhaustive()
    }
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
    /// Serve on a free loopback port (inside a Tokio runtime).
    pub async fn start() -> RuntimeApi {
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
        RuntimeApi {
            addr,
            state,
            events,
            replies: tokio::sync::Mutex::new(replies),
            server,
            invocations: Mutex::new(0),
        }
    }

    /// Queue one invocation (request ids `00000000-0000-4000-8000-000000000001`, `…02`, … in order) and wait
    /// for what the function posts back for it; panics after [`INVOKE_TIMEOUT`], or on a reply to another one.
    pub async fn invoke(&self, payload: Value) -> Reply {
        let id = {
            let mut n = self.invocations.lock().unwrap();
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

    /// When the function first asked for an event (the end of its init), if it has.
    pub fn first_next(&self) -> Option<Instant> {
        self.state.first_next.get().copied()
    }

    /// Wait up to `within` for the function's first `next`.
    pub async fn wait_first_next(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self.first_next() {
                return Some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// A reply already posted and not yet taken, if any.
    pub async fn try_reply(&self) -> Option<Reply> {
        self.replies.lock().await.try_recv().ok()
    }

    /// The function `binary` as Lambda starts it against this API: a clean environment with Lambda's variables
    /// (us-east-1, [`MEMORY_SIZE_MB`]), `JITP_CONFIG` the repository's `templates/jitp.toml`, no AWS config or
    /// credentials files and no instance metadata; stdin closed. Add the test's own variables and stdout/stderr.
    pub fn command(&self, binary: &Path) -> Command {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "jitp")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/jitp")
            .env("AWS_REGION", "us-east-1")
            .env("JITP_CONFIG", repo_config_path())
            // Nothing from the developer's AWS setup, no instance metadata lookups.
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A Lambda binary running against a [`RuntimeApi`], its stdout and stderr captured line by line; killed on drop.
#[derive(Debug)]
pub struct Function {
    child: std::process::Child,
    binary: std::path::PathBuf,
    started: Instant,
    stdout: Arc<std::sync::Mutex<Vec<String>>>,
    stderr: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The binary a test runs: the path in the variable `var` if set (another build, e.g. `cargo lambda build
/// --release`'s), else `built` (the test's `env!("CARGO_BIN_EXE_...")`).
pub fn binary(var: &str, built: &str) -> std::path::PathBuf {
    std::env::var_os(var).filter(|p| !p.is_empty()).map_or_else(|| built.into(), std::path::PathBuf::from)
}

fn capture(stream: impl std::io::Read + Send + 'static) -> Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead as _;
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Function {
    /// Start `binary` against `api` ([`RuntimeApi::command`]'s environment, `RUST_LOG=info`) plus `vars`.
    pub fn start(api: &RuntimeApi, binary: &Path, vars: &[(&str, String)]) -> Function {
        let mut cmd = api.command(binary);
        cmd.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Function { child, binary: binary.to_owned(), started, stdout, stderr }
    }

    /// Peak resident set size so far, kB (Linux's VmHWM).
    pub fn vm_hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// stdout and stderr so far, for an assertion's message.
    pub fn logs(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout().join("\n"), self.stderr.lock().unwrap().join("\n"))
    }

    /// The stdout lines that are JSON objects with this `eventType` (`jitp.provision`, `jitp.guard`), waiting up
    /// to 5 s for `expected` of them (stdout drains on its own thread).
    pub fn lines(&self, event_type: &str, expected: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = self
                .stdout()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["eventType"] == event_type)
                .collect();
            if lines.len() >= expected || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait up to `within` for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Print the figures BENCHMARKS.md collects: the binary's size, its init time (process start to the first
    /// `next` request) and its peak RSS, under `name [label]`.
    pub fn report(&self, api: &RuntimeApi, name: &str, label: &str) {
        let init = api.first_next().map(|t| t.duration_since(self.started));
        let init_ms = init.map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "n/a".into());
        let size = std::fs::metadata(&self.binary).map(|m| m.len() / 1024).unwrap_or_default();
        println!("{name} [{label}] binary: {} ({size} KiB)", self.binary.display());
        println!("{name} [{label}] init: {init_ms} ms (process start to first /next request)");
        println!("{name} [{label}] peak RSS (VmHWM): {} kB", self.vm_hwm_kb());
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
