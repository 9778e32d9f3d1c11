//! moto's server, an emulator that speaks AWS IoT's HTTP API, started per test on a free loopback port.
//!
//! The binary comes from `JITP_MOTO_SERVER`, else `<repo>/.venv/moto/bin/moto_server` (made by
//! `scripts/setup-moto.sh`). Without it, [`MotoServer::start`] returns `None` and prints a SKIP line, so a
//! plain `cargo test` works on a machine without Python; with `CI` or `JITP_REQUIRE_MOTO` set it panics
//! instead, so CI cannot pass by skipping. Where moto differs from AWS, see `tests/README.md`.
//!
//! [`MotoServer::start_with_aws_semantics`] starts the same server through `tests/moto_aws_semantics.py`,
//! which reproduces AWS IoT's documented CreateThing, UpdateThing `expectedVersion` and EXCLUSIVE_THING
//! behaviour: the workflow's ownership guarantee rests on them, and plain moto deviates on all three.
//!
//! With the `aws` feature, [`Moto`] is such a server with jitp's `AwsRegistry` over it, and the SDK calls that
//! set moto up as AWS IoT's auto-registration leaves an account (a CA, PENDING_ACTIVATION certificates).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "aws")]
mod iot;
#[cfg(feature = "aws")]
pub use iot::{Moto, REGION, Registered};

/// The environment variable naming the moto_server binary.
pub const SERVER_ENV: &str = "JITP_MOTO_SERVER";
/// Where `scripts/setup-moto.sh` installs it, relative to the repository root.
pub const VENV_SERVER: &str = ".venv/moto/bin/moto_server";
/// The launcher that patches moto to AWS's semantics, relative to the repository root.
pub const AWS_SEMANTICS_LAUNCHER: &str = "tests/moto_aws_semantics.py";
/// How long moto may take to answer its first request (a cold Python start imports a lot).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running moto server, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`: the endpoint URL to give the SDK.
    pub endpoint: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Where moto's own log goes (one temporary file per server, removed with it).
    pub log: PathBuf,
    child: Child,
    _log_file: tempfile::NamedTempFile,
}

fn required() -> bool {
    ["CI", "JITP_REQUIRE_MOTO"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "0" | "false")))
}

/// The moto_server binary, or why there is none.
pub fn find_server() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{SERVER_ENV}={} is not a file (run scripts/setup-moto.sh)", path.display()))
        };
    }
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
        std::env::current_dir().ok(),
    ];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| start.ancestors().map(|dir| dir.join(VENV_SERVER)).find(|p| p.is_file()))
        .ok_or_else(|| {
            format!("moto_server not found: set {SERVER_ENV}, or run scripts/setup-moto.sh to create {VENV_SERVER}")
        })
}

/// `[python, launcher]`: the interpreter beside `moto_server` (the venv's) and the repository's launcher.
fn aws_semantics_command(moto_server: &Path) -> Result<Vec<PathBuf>, String> {
    let python = moto_server.with_file_name("python");
    if !python.is_file() {
        return Err(format!("no python beside {} for the AWS-semantics launcher", moto_server.display()));
    }
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(AWS_SEMANTICS_LAUNCHER))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{AWS_SEMANTICS_LAUNCHER} not found above {}", env!("CARGO_MANIFEST_DIR")))?;
    Ok(vec![python, launcher])
}

fn free_port() -> std::io::Result<u16> {
    // Bind port 0, read the port, release it for moto. Another process could take it in between; `start`
    // retries with a new port if moto fails to come up.
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

impl MotoServer {
    /// Start a server, or `None` (after a SKIP line on stderr) if moto is not installed and not required.
    ///
    /// Panics if moto is required but missing, or installed but does not come up.
    pub fn start() -> Option<MotoServer> {
        Self::start_as(false)
    }

    /// Like [`MotoServer::start`], with moto patched to AWS IoT's documented behaviour where moto deviates on
    /// what jitp's guarantees rest on (see `tests/moto_aws_semantics.py`): the launcher runs under the Python
    /// of moto's own virtual environment, found beside the moto_server binary.
    pub fn start_with_aws_semantics() -> Option<MotoServer> {
        Self::start_as(true)
    }

    fn start_as(aws_semantics: bool) -> Option<MotoServer> {
        let binary = match find_server() {
            Ok(binary) => binary,
            Err(msg) => {
                if required() {
                    panic!("{msg}; CI or JITP_REQUIRE_MOTO is set, so the moto suites may not be skipped");
                }
                eprintln!("SKIP: {msg}");
                return None;
            }
        };
        let program = if aws_semantics {
            match aws_semantics_command(&binary) {
                Ok(program) => program,
                Err(msg) => panic!("{msg}"),
            }
        } else {
            vec![binary.clone()]
        };
        let mut last = String::new();
        for _ in 0..3 {
            match Self::spawn(&program) {
                Ok(server) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("moto_server {} did not start: {last}", binary.display());
    }

    fn spawn(program: &[PathBuf]) -> Result<MotoServer, String> {
        let (binary, leading) = program.split_first().ok_or("no program")?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let log_file = tempfile::Builder::new()
            .prefix(&format!("jitp-moto-{port}-"))
            .suffix(".log")
            .tempfile()
            .map_err(|e| format!("no log file: {e}"))?;
        let log = log_file.path().to_owned();
        let log_out = log_file.as_file().try_clone().map_err(|e| e.to_string())?;
        let log_err = log_file.as_file().try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args(leading)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut server = MotoServer { endpoint: format!("http://{addr}"), addr, log, child, _log_file: log_file };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}; log:\n{}", self.log_tail()));
            }
            if matches!(self.request("GET", "/moto-api/", ""), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer within {READY_TIMEOUT:?}; log:\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Forget every resource (`POST /moto-api/reset`), to reuse one server across cases.
    pub fn reset(&self) {
        match self.request("POST", "/moto-api/reset", "") {
            Ok((200, _)) => {}
            other => panic!("moto reset failed: {other:?}"),
        }
    }

    /// One HTTP/1.1 request to the server over a fresh connection: (status, body).
    pub fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:.80}")))?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
