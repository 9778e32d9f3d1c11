#![cfg(test)]
//! Every endpoint and error path, driven in-process with `tower::ServiceExt::oneshot`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use jitp_core::decide::check;
use jitp_core::review::{LintReport, crl_reports, lint_templates};
use jitp_core::rules::Rules;
use jitp_policy::policy::AwsContext;
use jitp_registry::event::CertificateStatus;
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_server::{AppState, Intake, Options, app};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{DAY, NOW, event_for_ids};
use serde_json::{Value, json};

fn event(body: &str) -> Request<Body> {
    post("/v1/events", Some(TOKEN), body.to_owned())
}

#[tokio::test]
async fn event_provisions_the_device() {
    let (registry, ca_id) = registry();
    let (id, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let app = app(state(registry.clone(), Options::default()));
    let a = send(&app, event(&body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let record = a.json();
    assert_eq!(record["outcome"], "PROVISIONED");
    assert_eq!(record["thing_name"], "sensor-0123456789ab");
    assert_eq!(record["policy_name"], "jitp-sensor-0123456789ab");
    assert_eq!(record["certificate_id"], id.as_str());
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));
    assert!(registry.violations().is_empty(), "{:?}", registry.violations());
}

#[tokio::test]
async fn replay_is_already_provisioned() {
    let (registry, ca_id) = registry();
    let (_, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let app = app(state(registry.clone(), Options::default()));
    assert_eq!(send(&app, event(&body)).await.json()["outcome"], "PROVISIONED");
    let before = registry.snapshot();
    let a = send(&app, event(&body)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["outcome"], "ALREADY_PROVISIONED");
    assert_eq!(
        a.json()["api_calls"],
        json!({ "DescribeCertificate": 1, "DescribeThing": 1, "ListAttachedPolicies": 1, "ListThingPrincipals": 1 }),
        "reads only: the certificate, then its ownership, attachment and policy"
    );
    assert_eq!(registry.snapshot(), before);
}

#[tokio::test]
async fn rejected_certificate_is_200_with_the_reason() {
    let (registry, ca_id) = registry();
    let (id, body) = pending(&registry, &ca_id, &stranger());
    let app = app(state(registry.clone(), Options::default()));
    let a = send(&app, event(&body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let record = a.json();
    assert_eq!(record["outcome"], "REJECTED");
    assert_eq!(record["reason"], "ISSUER_MISMATCH");
    assert_eq!(record["certificate_action"], "REVOKED");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    assert!(registry.thing_names().is_empty());
}

#[tokio::test]
async fn malformed_event_is_400_with_the_record() {
    let (registry, _) = registry();
    let app = app(state(registry.clone(), Options::default()));
    for body in ["{}", "not json", "", r#"{"certificateId":"AAAA"}"#] {
        let a = send(&app, event(body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        let v = a.json();
        assert_eq!(v["reason"], "MALFORMED_EVENT", "{v}");
        assert!(v["error"].as_str().unwrap().contains("not a certificate-registered event"), "{v}");
        assert_eq!(v["record"]["outcome"], "REJECTED");
        assert_eq!(v["record"]["reason"], "MALFORMED_EVENT");
    }
    assert!(registry.call_counts().is_empty(), "a malformed event must not reach the registry");
}

#[tokio::test]
async fn event_contradicting_the_registry_is_malformed() {
    let (registry, ca_id) = registry();
    let (id, _) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let app = app(state(registry.clone(), Options::default()));
    let forged = event_for_ids(id.as_str(), &"b".repeat(64));
    let a = send(&app, event(&forged)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.json()["reason"], "MALFORMED_EVENT");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
}

#[tokio::test]
async fn transient_failure_is_503_with_retry_after() {
    let (registry, ca_id) = with_registry(unavailable(1000));
    let (id, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let options = Options { retry_after: Duration::from_secs(7), ..Options::default() };
    let app = app(state(registry.clone(), options));
    let a = send(&app, event(&body)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert_eq!(a.headers.get(header::RETRY_AFTER).unwrap(), "7");
    let v = a.json();
    assert!(v["error"].as_str().unwrap().contains("deliver it again"), "{v}");
    assert_eq!(v["record"]["outcome"], "ERROR");
    assert!(v["record"]["retries"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_changes_nothing() {
    let (registry, ca_id) = registry();
    let (id, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let app = app(state(registry.clone(), Options::default()));
    let before = registry.snapshot();
    let wrong = format!("{TOKEN}x");
    for token in [None, Some(""), Some("wrong"), Some(&TOKEN[1..]), Some(wrong.as_str())] {
        let a = send(&app, post("/v1/events", token, body.clone())).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(a.json()["error"], "missing or wrong x-jitp-token header");
    }
    // A malformed body without the secret is a 401 too: strangers learn nothing about parsing.
    assert_eq!(send(&app, post("/v1/events", None, "{}")).await.status, StatusCode::UNAUTHORIZED);
    assert!(registry.call_counts().is_empty(), "{:?}", registry.call_counts());
    assert_eq!(registry.snapshot(), before);
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    let metrics = send(&app, get("/metrics", None)).await.text();
    assert!(metrics.contains("jitp_http_refused_total{cause=\"unauthorized\"} 6"), "{metrics}");
}

#[tokio::test]
async fn oversize_event_is_413() {
    let (registry, _) = registry();
    let app = app(state(registry.clone(), Options::default()));
    let big = vec![b' '; 2 * 1024 * 1024];
    // Declared length: refused before reading.
    let declared = Request::builder()
        .method(Method::POST)
        .uri("/v1/events")
        .header("x-jitp-token", TOKEN)
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    // No declared length: refused when the limit is crossed while reading.
    let undeclared = post("/v1/events", Some(TOKEN), big);
    let just_over = post("/v1/events", Some(TOKEN), vec![b' '; 16 * 1024 + 1]);
    for request in [declared, undeclared, just_over] {
        let a = send(&app, request).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
        assert_eq!(a.json()["error"], "the event is over the 16384-byte limit");
    }
    // At the limit it is read, and is a malformed event.
    let at_limit = send(&app, post("/v1/events", Some(TOKEN), vec![b' '; 16 * 1024])).await;
    assert_eq!(at_limit.status, StatusCode::BAD_REQUEST);
    assert!(registry.call_counts().is_empty());
}

#[tokio::test]
async fn without_intake_events_are_not_routed() {
    let (registry, ca_id) = registry();
    let (_, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let dyn_registry: Arc<dyn IotRegistry> = registry.clone();
    let state = AppState::new(config(), dyn_registry, settings(), Intake::Disabled).with_clock(Arc::new(|| NOW));
    assert!(!state.intake_enabled());
    let app = app(state);
    assert_eq!(send(&app, event(&body)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, get("/v1/confirmation", Some(TOKEN))).await.status, StatusCode::NOT_FOUND);
    assert!(registry.call_counts().is_empty());
    // Previews and lint still work.
    assert_eq!(send(&app, get("/v1/lint", None)).await.status, StatusCode::OK);
    let preview = json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem });
    assert_eq!(send(&app, post("/v1/preview", None, preview.to_string())).await.status, StatusCode::OK);
}

#[tokio::test]
async fn preview_is_exactly_jitp_check() {
    let (registry, _) = registry();
    let app = app(state(registry.clone(), Options::default()));
    let cert = sensor("00000000beef");
    let a = send(
        &app,
        post("/v1/preview", Some(TOKEN), json!({ "ca_pem": ca().cert.pem, "cert_pem": cert.pem }).to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let expected = check(&config(), ca().cert.pem.as_bytes(), cert.pem.as_bytes(), None, NOW, &AwsContext::default());
    assert_eq!(a.json(), serde_json::to_value(&expected).unwrap());
    assert_eq!(a.json()["decision"], "accept");
    assert_eq!(a.json()["thing_name"], "sensor-00000000beef");
    assert_eq!(a.json()["ca_id"], ca().id());
    assert!(registry.call_counts().is_empty(), "a preview has no side effects");
}

#[tokio::test]
async fn preview_rejections_are_200_with_the_decision() {
    let (registry, _) = registry();
    let app = app(state(registry, Options::default()));
    let preview = |body: Value| post("/v1/preview", Some(TOKEN), body.to_string());
    let a = send(&app, preview(json!({ "ca_pem": ca().cert.pem, "cert_pem": stranger().pem }))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["decision"], "reject");
    assert_eq!(a.json()["reason"], "ISSUER_MISMATCH");
    // `at` moves the clock: a year and a day later the certificate has expired.
    let later = time::OffsetDateTime::from_unix_timestamp(NOW + 367 * DAY).unwrap();
    let at = later.format(&time::format_description::well_known::Rfc3339).unwrap();
    let body = json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem, "at": at });
    let a = send(&app, preview(body)).await;
    assert_eq!((a.status, a.json()["reason"].clone()), (StatusCode::OK, json!("CERT_EXPIRED")), "{}", a.text());
    // An explicit ca_id is used as given: no profile problem with "*", and it shows in the answer.
    let other_id = "c".repeat(64);
    let body = json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem, "ca_id": other_id });
    let a = send(&app, preview(body)).await;
    assert_eq!((a.status, a.json()["ca_id"].clone()), (StatusCode::OK, json!(other_id)));
    // Not a certificate: a rejection, not a bad request.
    let a = send(&app, preview(json!({ "ca_pem": ca().cert.pem, "cert_pem": "hello" }))).await;
    assert_eq!((a.status, a.json()["reason"].clone()), (StatusCode::OK, json!("MALFORMED_CERTIFICATE")));
}

#[tokio::test]
async fn preview_bad_requests_are_400() {
    let (registry, _) = registry();
    let app = app(state(registry, Options::default()));
    let pem = ca().cert.pem.clone();
    let cases = [
        ("not json".to_owned(), "the body must be"),
        ("{}".to_owned(), "missing field `ca_pem`"),
        (json!({ "ca_pem": pem, "cert_pem": pem, "extra": 1 }).to_string(), "unknown field `extra`"),
        (json!({ "ca_pem": pem, "cert_pem": 5 }).to_string(), "invalid type"),
        (json!({ "ca_pem": pem, "cert_pem": pem, "ca_id": "ABC" }).to_string(), "ca_id:"),
        (json!({ "ca_pem": pem, "cert_pem": pem, "at": "yesterday" }).to_string(), "at: not an RFC 3339 time"),
    ];
    for (body, expected) in cases {
        let a = send(&app, post("/v1/preview", Some(TOKEN), body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let error = a.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(expected), "{body}: {error}");
    }
    let a = send(&app, post("/v1/preview", Some(TOKEN), vec![b' '; 64 * 1024 + 1])).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json()["error"], "the preview request is over the 65536-byte limit");
}

#[tokio::test]
async fn lint_is_exactly_jitp_lint() {
    let (registry, _) = registry();
    let app = app(state(registry, Options::default()));
    let a = send(&app, get("/v1/lint", Some(TOKEN))).await;
    assert_eq!(a.status, StatusCode::OK);
    let reports = lint_templates(&config(), &AwsContext::default());
    let ok = !reports.iter().any(|r| r.has_errors());
    assert_eq!(a.json(), json!({ "ok": ok, "templates": reports, "crls": [] }));
    assert_eq!(a.json()["ok"], true, "the repository's templates lint clean");
    assert_eq!(a.json()["templates"].as_array().map(Vec::len), Some(config().config().profiles.len()));
}

/// The CRLs a profile lists are in the report, judged fresh or stale as of the request: a CRL that goes past its
/// nextUpdate under a running server turns `ok` false (crl_policy = "enforce"), as `jitp lint` run then would.
#[tokio::test]
async fn lint_lists_the_crls_as_of_the_request() {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    let crl = ca().crl(&[b"\x01\x02"], NOW - DAY, NOW + DAY);
    std::fs::write(dir.path().join("crl/acme.crl"), &crl.der).unwrap();
    let text = "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\n\
                thing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n\
                crl = [\"crl/acme.crl\"]\n";
    let rules = Arc::new(Rules::load(dir.write_config(text)).unwrap());
    let (registry, _) = registry();
    let now = Arc::new(std::sync::atomic::AtomicI64::new(NOW));
    let clock = now.clone();
    let registry: Arc<dyn IotRegistry> = registry;
    let state = AppState::new(rules.clone(), registry, settings(), Intake::token(TOKEN).unwrap())
        .with_clock(Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)));
    let app = app(state);
    let expected = |at: i64| {
        serde_json::to_value(LintReport::new(lint_templates(&rules, &AwsContext::default()), crl_reports(&rules, at)))
            .unwrap()
    };

    let a = send(&app, get("/v1/lint", Some(TOKEN))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), expected(NOW), "the same report as jitp lint --format json");
    assert_eq!(a.json()["ok"], true);
    let listed = &a.json()["crls"][0];
    assert_eq!(
        (listed["file"].as_str(), listed["revoked"].as_u64(), listed["stale"].as_bool()),
        (Some("crl/acme.crl"), Some(1), Some(false))
    );

    now.store(NOW + 2 * DAY, std::sync::atomic::Ordering::SeqCst);
    let a = send(&app, get("/v1/lint", Some(TOKEN))).await;
    assert_eq!(a.json(), expected(NOW + 2 * DAY));
    assert_eq!((a.json()["ok"].as_bool(), a.json()["crls"][0]["stale"].as_bool()), (Some(false), Some(true)));
}

#[tokio::test]
async fn healthz_and_readyz() {
    let (registry, _) = registry();
    let app = app(state(registry.clone(), Options::default()));
    let a = send(&app, get("/healthz", None)).await;
    assert_eq!((a.status, a.text()), (StatusCode::OK, "ok".to_owned()));
    let a = send(&app, get("/readyz", None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json(), json!({ "status": "ready", "profiles": 2, "intake": true }));
    // A successful probe is reused for a while.
    send(&app, get("/readyz", None)).await;
    assert_eq!(registry.call_counts().get(&Operation::DescribeCertificate), Some(&1));
}

#[tokio::test]
async fn readyz_is_503_when_the_registry_is_unavailable() {
    let (registry, _) = with_registry(unavailable(2));
    let app = app(state(registry.clone(), Options::default()));
    let a = send(&app, get("/readyz", None)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["error"], "not ready: the registry is not reachable");
    assert!(!a.text().contains("injected"), "registry details stay in the log: {}", a.text());
    // Failures are not cached: the next probe fails (fault 2), then the registry is back.
    assert_eq!(send(&app, get("/readyz", None)).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, get("/readyz", None)).await.status, StatusCode::OK);
    // Health is about the process only.
    assert_eq!(send(&app, get("/healthz", None)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_events_calls_and_latency() {
    let (registry, ca_id) = registry();
    let (_, good) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let (_, bad) = pending(&registry, &ca_id, &stranger());
    let app = app(state(registry, Options::default()));
    send(&app, event(&good)).await;
    send(&app, event(&good)).await;
    send(&app, event(&bad)).await;
    send(&app, event("{}")).await;
    send(
        &app,
        post("/v1/preview", Some(TOKEN), json!({ "ca_pem": ca().cert.pem, "cert_pem": stranger().pem }).to_string()),
    )
    .await;
    let a = send(&app, get("/metrics", None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    let text = a.text();
    for line in [
        "# TYPE jitp_events_total counter",
        "jitp_events_total{outcome=\"PROVISIONED\",reason=\"\"} 1",
        "jitp_events_total{outcome=\"ALREADY_PROVISIONED\",reason=\"\"} 1",
        "jitp_events_total{outcome=\"REJECTED\",reason=\"ISSUER_MISMATCH\"} 1",
        "jitp_events_total{outcome=\"REJECTED\",reason=\"MALFORMED_EVENT\"} 1",
        "# TYPE jitp_api_calls_total counter",
        "jitp_api_calls_total{operation=\"DescribeCertificate\"} 3",
        "jitp_api_calls_total{operation=\"CreateThing\"} 1",
        "jitp_api_calls_total{operation=\"UpdateCertificate\"} 2",
        "# TYPE jitp_event_duration_seconds histogram",
        "jitp_event_duration_seconds_bucket{le=\"+Inf\"} 4",
        "jitp_event_duration_seconds_count 4",
        "jitp_previews_total{decision=\"reject\"} 1",
        "jitp_http_in_flight 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Every sample line is `name{labels} value` or `name value`, with a number.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[tokio::test]
async fn saturated_server_sheds_with_503() {
    let (registry, ca_id) = with_registry(slow(Duration::from_millis(500)));
    let (id, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let options = Options { max_concurrency: 1, ..Options::default() };
    let app = app(state(registry.clone(), options));
    let first = tokio::spawn({
        let (app, body) = (app.clone(), body.clone());
        async move { send(&app, event(&body)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = send(&app, get("/metrics", None)).await.text();
    assert!(metrics.contains("jitp_http_in_flight 1"), "{metrics}");
    let shed = send(&app, post("/v1/preview", Some(TOKEN), "{}")).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", shed.text());
    assert_eq!(shed.headers[header::RETRY_AFTER], "5");
    assert!(shed.json()["error"].as_str().unwrap().contains("retry later"));
    // Health and metrics are not behind the limit.
    assert_eq!(send(&app, get("/healthz", None)).await.status, StatusCode::OK);
    let first = first.await.unwrap();
    assert_eq!(first.json()["outcome"], "PROVISIONED");
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));
    let metrics = send(&app, get("/metrics", None)).await.text();
    assert!(metrics.contains("jitp_http_refused_total{cause=\"overloaded\"} 1"), "{metrics}");
}

/// The class behind `saturated_server_sheds_with_503`: rounds of a burst over the limit, events and previews at
/// once. Each round admits at most the limit (never more in flight), sheds the rest with 503 + Retry-After at once,
/// and gives every permit back (shed, answered or timed out), so the next round is admitted again; the shed
/// events provision when they are delivered again.
#[tokio::test]
async fn bursts_over_the_limit_admit_at_most_the_limit_and_give_every_permit_back() {
    let (registry, ca_id) = with_registry(slow(Duration::from_millis(150)));
    let limit = 3;
    let options = Options { max_concurrency: limit, ..Options::default() };
    let app = app(state(registry.clone(), options));
    for round in 0..4 {
        let bodies: Vec<(String, String)> = (0..8)
            .map(|i| {
                let (id, body) = pending(&registry, &ca_id, &sensor(&format!("{round:06x}{i:06x}")));
                (id.to_string(), body)
            })
            .collect();
        let answers = futures::future::join_all(bodies.iter().map(|(_, body)| send(&app, event(body)))).await;
        let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count();
        let shed: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE).collect();
        assert!((1..=limit).contains(&ok), "round {round}: {ok} admitted of 8 with a limit of {limit}");
        assert_eq!(ok + shed.len(), 8, "round {round}: every request is admitted or shed");
        for a in &shed {
            assert_eq!(a.headers[header::RETRY_AFTER], "5");
            assert!(a.json()["error"].as_str().unwrap().contains("retry later"), "{}", a.text());
        }
        let metrics = send(&app, get("/metrics", None)).await.text();
        assert!(metrics.contains("jitp_http_in_flight 0"), "round {round}: a permit was kept\n{metrics}");
        // Delivered again one at a time, the shed ones provision.
        for (id, body) in &bodies {
            let a = send(&app, event(body)).await;
            assert_eq!(a.status, StatusCode::OK, "{id}: {}", a.text());
        }
    }
    assert!(registry.violations().is_empty(), "{:?}", registry.violations());
}

#[tokio::test]
async fn slow_event_times_out_with_503_and_still_finishes() {
    let (registry, ca_id) = with_registry(slow(Duration::from_millis(600)));
    let (id, body) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let options = Options { request_timeout: Duration::from_millis(100), ..Options::default() };
    let state = state(registry.clone(), options);
    let app = app(state);
    let a = send(&app, event(&body)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert_eq!(a.headers[header::RETRY_AFTER], "5");
    assert!(a.json()["error"].as_str().unwrap().contains("took longer"), "{}", a.text());
    // The workflow was not cut in the middle: it converges in the background.
    for _ in 0..50 {
        if registry.certificate_status(&id) == Some(CertificateStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));
    // ...and is counted (and audited) although nobody was waiting for its answer.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = send(&app, get("/metrics", None)).await.text();
        if metrics.contains("jitp_events_total{outcome=\"PROVISIONED\",reason=\"\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.contains("jitp_events_total{outcome=\"PROVISIONED\",reason=\"\"} 1"), "{metrics}");
    assert!(metrics.contains("jitp_http_refused_total{cause=\"timeout\"} 1"), "{metrics}");
    // The platform's redelivery then finds it done.
    assert_eq!(send(&app, event(&body)).await.json()["outcome"], "ALREADY_PROVISIONED");
}

#[tokio::test]
async fn request_ids_are_set_or_echoed() {
    let (registry, _) = registry();
    let app = app(state(registry, Options::default()));
    let a = send(&app, get("/healthz", None)).await;
    let id = a.headers.get("x-request-id").expect("a request id").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let request = Request::builder().uri("/healthz").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
    assert_eq!(send(&app, request).await.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let (registry, _) = registry();
    let app = app(state(registry, Options::default()));
    let a = send(&app, get("/v2/anything", None)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json(), json!({ "error": "no such resource" }));
    assert_eq!(send(&app, get("/v1/events", Some(TOKEN))).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_audit_line_has_the_shape_every_binary_writes() {
    let (registry, ca_id) = registry();
    let (_, good) = pending(&registry, &ca_id, &sensor("0123456789ab"));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let captured = lines.clone();
    let sink: jitp_core::audit::Sink = Arc::new(move |line: &str| captured.lock().unwrap().push(line.to_owned()));
    let app = app(state(registry, Options::default()).with_audit_sink(sink));
    let mut request = event(&good);
    request.headers_mut().insert(jitp_server::REQUEST_ID_HEADER, "req-7".parse().unwrap());
    let a = send(&app, request).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "one audit line per event: {lines:?}");
    let line = jitp_testkit::audit_line::check(&lines[0]);
    assert_eq!(line["trigger"], "http");
    assert_eq!(line["requestId"], "req-7");
    assert_eq!(line["outcome"], "PROVISIONED");
}

/// New S3 CRLs swapped in (what `jitp serve`'s refresh task does): the next requests decide on them, the
/// workflow included, and `GET /v1/lint` lists the CRL in force under its `s3://` URI.
#[tokio::test]
async fn replaced_rules_are_the_next_requests_rules() {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let object: jitp_pki::ids::S3Object = "s3://acme-pki-crls/devices/acme.crl".parse().unwrap();
    let text = "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\n\
                thing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n\
                crl = [\"s3://acme-pki-crls/devices/acme.crl\"]\n";
    let objects = |serials: &[&[u8]]| {
        let crl = ca().crl(serials, NOW - DAY, NOW + 7 * DAY);
        jitp_profile::profile::CrlObjects::from([(object.clone(), Arc::<[u8]>::from(crl.der))])
    };
    let overrides = jitp_profile::profile::Overrides { crl_objects: objects(&[b"\x01\x02"]), ..Default::default() };
    let rules = Arc::new(Rules::load_with(dir.write_config(text), &overrides).unwrap());
    let (registry, ca_id) = registry();
    let device = jitp_testkit::Device::new("sensor-0123456789ab");
    let cert = ca().issue(&device);
    let (_, body) = pending(&registry, &ca_id, &cert);
    let dyn_registry: Arc<dyn IotRegistry> = registry.clone();
    let state = AppState::new(rules.clone(), dyn_registry, settings(), Intake::token(TOKEN).unwrap())
        .with_clock(Arc::new(|| NOW))
        .with_audit_sink(Arc::new(|_: &str| {}));
    let app = app(state.clone());
    let preview =
        || post("/v1/preview", Some(TOKEN), json!({ "ca_pem": ca().cert.pem, "cert_pem": cert.pem }).to_string());
    assert_eq!(send(&app, preview()).await.json()["decision"], "accept");
    let a = send(&app, get("/v1/lint", Some(TOKEN))).await;
    assert_eq!(
        (a.json()["crls"][0]["file"].as_str(), a.json()["crls"][0]["revoked"].as_u64()),
        (Some("s3://acme-pki-crls/devices/acme.crl"), Some(1))
    );

    let revoking = rules.with_crl_objects(&objects(&[b"\x01\x02", &device.serial])).unwrap();
    state.replace_rules(Arc::new(revoking)).unwrap();
    let a = send(&app, preview()).await;
    assert_eq!(a.json()["reason"], "CERT_REVOKED", "{}", a.text());
    let a = send(&app, get("/v1/lint", Some(TOKEN))).await;
    assert_eq!(a.json()["crls"][0]["revoked"].as_u64(), Some(2), "{}", a.text());
    assert_eq!(state.rules().config().profiles[0].crl[0].crl.revoked_count(), 2);
    let a = send(&app, event(&body)).await;
    assert_eq!(a.json()["reason"], "CERT_REVOKED", "the workflow decides on the new rules too: {}", a.text());

    // A CRL the cached CA did not issue is refused: the rules in force stay.
    let other = jitp_testkit::Ca::new("Other CA", jitp_testkit::Alg::P256);
    let foreign = jitp_profile::profile::CrlObjects::from([(
        object.clone(),
        Arc::<[u8]>::from(other.crl(&[], NOW - DAY, NOW + 7 * DAY).der),
    )]);
    let refused = state.rules().with_crl_objects(&foreign).unwrap();
    assert!(state.replace_rules(Arc::new(refused)).is_err());
    assert_eq!(state.rules().config().profiles[0].crl[0].crl.revoked_count(), 2);
}
