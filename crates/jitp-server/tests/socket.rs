#![cfg(test)]
//! The server over a real socket on port 0: with the memory registry, and with moto's server through
//! `jitp_aws::AwsRegistry` (skipped with a SKIP line when moto is not installed, unless CI requires it).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jitp_registry::event::CertificateStatus;
use jitp_registry::registry::IotRegistry;
use jitp_server::{AppState, Intake, Options, serve};
use jitp_testkit::{NOW, event_for_ids};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// A server on 127.0.0.1:0, stopped (gracefully) by [`Running::stop`].
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Running {
    async fn start(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { addr, stop, task, client }
    }

    async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            builder = builder.header("x-jitp-token", token);
        }
        let response = self.client.request(builder.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value =
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        (status, value)
    }

    async fn event(&self, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        self.request(Method::POST, "/v1/events", token, body.as_bytes().to_vec()).await
    }

    /// Graceful shutdown; the server must stop within a few seconds.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("shutdown in time").unwrap().unwrap();
    }
}

/// Send a 2 MB event the way a careless client does: the whole body, straight away, reading the answer
/// concurrently. The server answers 413 from the declared length without reading the body.
async fn post_two_megabytes(addr: SocketAddr) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let body = vec![b'{'; 2 * 1024 * 1024];
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nx-jitp-token: {TOKEN}\r\n{}: {}\r\nContent-Type: application/json\r\n\r\n",
        header::CONTENT_LENGTH,
        body.len()
    );
    let writer = tokio::spawn(async move {
        // The server may close before taking it all: a write error here is expected.
        let _ = write.write_all(head.as_bytes()).await;
        let _ = write.write_all(&body).await;
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line: {text:?}"))
}

#[tokio::test]
async fn memory_registry_over_a_socket() {
    let (registry, ca_id) = registry();
    let (id, event) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let server = Running::start(state(registry.clone(), Options::default())).await;

    // A wrong secret changes nothing.
    let before = registry.snapshot();
    let (status, body) = server.event(Some("not-the-secret-at-all"), &event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(registry.snapshot(), before);
    assert!(registry.call_counts().is_empty());

    let (status, body) = server.event(Some(TOKEN), &event).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("PROVISIONED")), "{body}");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));

    let (status, body) = server.event(Some(TOKEN), &event).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ALREADY_PROVISIONED")), "{body}");

    assert_eq!(post_two_megabytes(server.addr).await, 413);
    // The server is still serving after that.
    let (status, body) = server.request(Method::GET, "/healthz", None, Vec::new()).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("ok".into())));
    let (status, body) = server.request(Method::GET, "/metrics", None, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(text.contains("jitp_events_total{outcome=\"PROVISIONED\",reason=\"\"} 1"), "{text}");
    assert!(text.contains("jitp_http_refused_total{cause=\"too_large\"} 1"), "{text}");
    server.stop().await;
}

/// Over a real connection the peer address is known, and each confirmation keeps its own.
#[tokio::test]
async fn confirmations_over_a_socket_record_the_peer() {
    let (registry, _) = registry();
    let server = Running::start(state(registry, Options::default())).await;
    for tag in ["first", "second"] {
        let body = serde_json::json!({
            "arn": "arn:aws:iot:us-east-1:123456789012:ruledestination/http/8a4b4c4d-1111-2222-3333-444455556666",
            "confirmationToken": format!("AYADe{tag}"),
            "enableUrl": format!("https://iot.us-east-1.amazonaws.com/confirmdestination/AYADe{tag}"),
        });
        let (status, answer) = server.event(None, &body.to_string()).await;
        assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("recorded")), "{answer}");
    }
    let (status, v) = server.request(Method::GET, "/v1/confirmation", Some(TOKEN), Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let list = v["confirmations"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["confirmationToken"], "AYADefirst");
    for c in list {
        let peer: SocketAddr = c["origin"]["peer"].as_str().unwrap().parse().unwrap();
        assert!(peer.ip().is_loopback(), "{peer}");
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_events() {
    let (registry, ca_id) = with_registry(slow(Duration::from_millis(700)));
    let (id, event) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let server = Running::start(state(registry.clone(), Options::default())).await;
    let client = server.client.clone();
    let uri = format!("http://{}/v1/events", server.addr);
    let in_flight = tokio::spawn(async move {
        let request = Request::post(uri).header("x-jitp-token", TOKEN).body(Full::new(Bytes::from(event))).unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = server.addr;
    server.stop().await;
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("PROVISIONED")), "{body}");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
}

/// moto's server behind `jitp_aws::AwsRegistry`: the same flow as an IoT rule would drive it.
#[tokio::test]
async fn moto_registry_over_a_socket() {
    let Some(moto) = jitp_testkit::moto::Moto::start_with_aws_semantics().await else {
        println!("SKIP moto_registry_over_a_socket: moto_server is not installed");
        return;
    };
    let iot = moto.sdk();
    // The `sensors` profile creates things of type "sensor"; moto, like AWS, wants the type to exist.
    moto.create_thing_type("sensor").await;
    let ca_id = moto.register_ca(ca(), true).await;
    // moto's ids are not AWS's (it hashes the PEM text): the events carry whatever the registry says.
    let cert_id = moto.register_pending(&sensor("0123456789ab").pem, ca()).await.id;
    let event = event_for_ids(cert_id.as_str(), ca_id.as_str());

    let registry: Arc<dyn IotRegistry> = moto.registry.clone();
    let state =
        AppState::new(config(), registry, settings(), Intake::token(TOKEN).unwrap()).with_clock(Arc::new(|| NOW));
    let server = Running::start(state).await;

    let (status, body) = server.request(Method::GET, "/readyz", None, Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "moto is reachable: {body}");

    let (status, body) = server.event(Some("not-the-secret-at-all"), &event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(moto.status(&cert_id).await.as_str(), "PENDING_ACTIVATION");
    let things = iot.list_things().send().await.unwrap().things.unwrap_or_default();
    assert!(things.is_empty(), "a refused event creates nothing: {things:?}");

    let (status, body) = server.event(Some(TOKEN), &event).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("PROVISIONED")), "{body}");
    assert_eq!(body["thing_name"], "sensor-0123456789ab");
    assert_eq!(moto.status(&cert_id).await.as_str(), "ACTIVE");
    let thing = iot.describe_thing().thing_name("sensor-0123456789ab").send().await.unwrap();
    assert_eq!(thing.thing_type_name.as_deref(), Some("sensor"));
    let principals = iot.list_thing_principals().thing_name("sensor-0123456789ab").send().await.unwrap();
    assert_eq!(principals.principals.unwrap_or_default().len(), 1);

    let (status, body) = server.event(Some(TOKEN), &event).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ALREADY_PROVISIONED")), "{body}");

    let stranger_id = moto.register_pending(&stranger().pem, ca()).await.id;
    let (status, body) = server.event(Some(TOKEN), &event_for_ids(stranger_id.as_str(), ca_id.as_str())).await;
    assert_eq!((status, body["reason"].as_str()), (StatusCode::OK, Some("ISSUER_MISMATCH")), "{body}");
    assert_eq!(moto.status(&stranger_id).await.as_str(), "REVOKED");

    assert_eq!(post_two_megabytes(server.addr).await, 413);
    server.stop().await;
}
