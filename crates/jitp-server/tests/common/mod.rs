//! Fixtures shared by the server's test suites: the repository's templates, a CA, devices, a memory registry.
#![allow(dead_code)] // each test file uses part of the common module

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use jitp_core::engine::Settings;
use jitp_core::rules::Rules;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_registry::memory::{Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_server::{AppState, Intake, Options};
use jitp_testkit::{Alg, Ca, Device, NOW, Pem, event_for_ids};
use serde_json::Value;
use tower::ServiceExt as _;

/// The intake secret of every test server.
pub(crate) const TOKEN: &str = "test-secret-0123456789abcdef";

/// The repository's templates/jitp.toml, loaded once per test binary.
pub(crate) fn config() -> Arc<Rules> {
    static CONFIG: OnceLock<Arc<Rules>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let path = jitp_testkit::repo_config_path();
            Arc::new(Rules::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .clone()
}

/// The device CA.
pub(crate) fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

/// A certificate the `sensors` profile accepts.
pub(crate) fn sensor(serial: &str) -> Pem {
    ca().issue(&Device::new(&format!("sensor-{serial}")))
}

/// A certificate no configuration accepts (another CA signed it: ISSUER_MISMATCH, the device's fault).
pub(crate) fn stranger() -> Pem {
    static OTHER: OnceLock<Ca> = OnceLock::new();
    OTHER.get_or_init(|| Ca::new("Someone Else's CA", Alg::P256)).issue(&Device::new("sensor-0000000000ff"))
}

/// Fast retries, so a transient failure gives up in well under a second.
pub(crate) fn settings() -> Settings {
    Settings {
        retry_deadline: Duration::from_millis(200),
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(20),
        ..Settings::default()
    }
}

/// A registry with the CA registered.
pub(crate) fn registry() -> (Arc<MemoryRegistry>, CaCertificateId) {
    with_registry(MemoryRegistry::new())
}

/// Same, over a registry with faults.
pub(crate) fn with_registry(registry: MemoryRegistry) -> (Arc<MemoryRegistry>, CaCertificateId) {
    let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
    (Arc::new(registry), ca_id)
}

/// Every DescribeCertificate call fails with a 503 (the first `n`).
pub(crate) fn unavailable(n: u64) -> MemoryRegistry {
    MemoryRegistry::new().with_faults((1..=n).map(|nth| Fault {
        op: Operation::DescribeCertificate,
        nth,
        kind: FaultKind::UnavailableBefore,
    }))
}

/// The first DescribeCertificate takes `d`.
pub(crate) fn slow(d: Duration) -> MemoryRegistry {
    MemoryRegistry::new().with_faults([Fault {
        op: Operation::DescribeCertificate,
        nth: 1,
        kind: FaultKind::Latency(d),
    }])
}

/// Register `cert` PENDING_ACTIVATION and return its id and event.
pub(crate) fn pending(registry: &MemoryRegistry, ca_id: &CaCertificateId, cert: &Pem) -> (CertificateId, String) {
    let id = registry.register_certificate(&cert.pem, ca_id).unwrap();
    let event = event_for_ids(id.as_str(), ca_id.as_str());
    (id, event)
}

/// A server state over `registry` with intake enabled, the clock pinned at NOW, and every audit line checked
/// against the shape all binaries write (then dropped).
pub(crate) fn state(registry: Arc<MemoryRegistry>, options: Options) -> AppState {
    let registry: Arc<dyn IotRegistry> = registry;
    AppState::new(config(), registry, settings(), Intake::token(TOKEN).unwrap())
        .with_options(options)
        .with_clock(Arc::new(|| NOW))
        .with_audit_sink(Arc::new(|line: &str| {
            jitp_testkit::audit_line::check(line);
        }))
}

/// A response, read whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request through the router.
pub(crate) async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body }
}

/// A POST with an optional `x-jitp-token`.
pub(crate) fn post(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder =
        Request::builder().method(Method::POST).uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header("x-jitp-token", token);
    }
    builder.body(body.into()).unwrap()
}

/// A GET with an optional `x-jitp-token`.
pub(crate) fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri(path);
    if let Some(token) = token {
        builder = builder.header("x-jitp-token", token);
    }
    builder.body(Body::empty()).unwrap()
}
