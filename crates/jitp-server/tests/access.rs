#![cfg(test)]
//! Who may read the account's policies: `POST /v1/preview` and `GET /v1/lint` need the intake secret when intake
//! is on, unless the operator made them public; without intake there is no secret and they are open.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use common::*;
use jitp_registry::registry::IotRegistry;
use jitp_server::{AppState, Intake, Options, app};
use jitp_testkit::NOW;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Intake on (JITP_HTTP_TOKEN), previews protected: the default.
    TokenOn,
    /// `--no-intake`: no secret exists.
    TokenOff,
    /// Intake on with `--public-previews`.
    OptedOut,
}

#[derive(Debug, Clone, Copy)]
enum Presented {
    Right,
    Wrong,
    Missing,
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Preview,
    Lint,
    Explain,
}

fn server(mode: Mode) -> Router {
    let (registry, _) = registry();
    let registry: Arc<dyn IotRegistry> = registry;
    let (intake, public_previews) = match mode {
        Mode::TokenOn => (Intake::token(TOKEN).unwrap(), false),
        Mode::TokenOff => (Intake::Disabled, false),
        Mode::OptedOut => (Intake::token(TOKEN).unwrap(), true),
    };
    let options = Options { public_previews, ..Options::default() };
    app(AppState::new(config(), registry, settings(), intake).with_options(options).with_clock(Arc::new(|| NOW)))
}

#[tokio::test]
async fn previews_and_lint_need_the_token_when_intake_is_on() {
    use Endpoint::*;
    use Mode::*;
    use Presented::*;
    const OK: StatusCode = StatusCode::OK;
    const NO: StatusCode = StatusCode::UNAUTHORIZED;
    #[rustfmt::skip]
    let table = [
        // endpoint, mode,     presented, expected
        (Preview, TokenOn,  Right,   OK),
        (Preview, TokenOn,  Wrong,   NO),
        (Preview, TokenOn,  Missing, NO),
        (Preview, TokenOff, Right,   OK),
        (Preview, TokenOff, Wrong,   OK),
        (Preview, TokenOff, Missing, OK),
        (Preview, OptedOut, Right,   OK),
        (Preview, OptedOut, Wrong,   OK),
        (Preview, OptedOut, Missing, OK),
        (Lint,    TokenOn,  Right,   OK),
        (Lint,    TokenOn,  Wrong,   NO),
        (Lint,    TokenOn,  Missing, NO),
        (Lint,    TokenOff, Right,   OK),
        (Lint,    TokenOff, Wrong,   OK),
        (Lint,    TokenOff, Missing, OK),
        (Lint,    OptedOut, Right,   OK),
        (Lint,    OptedOut, Wrong,   OK),
        (Lint,    OptedOut, Missing, OK),
        (Explain, TokenOn,  Right,   OK),
        (Explain, TokenOn,  Wrong,   NO),
        (Explain, TokenOn,  Missing, NO),
        (Explain, TokenOff, Missing, OK),
        (Explain, OptedOut, Missing, OK),
    ];
    let preview = json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem }).to_string();
    let explain = json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem,
                          "query": { "action": "iot:Connect" } })
    .to_string();
    for (endpoint, mode, presented, expected) in table {
        let app = server(mode);
        let token = match presented {
            Right => Some(TOKEN),
            Wrong => Some("not-the-secret-at-all-0000"),
            Missing => None,
        };
        let request = match endpoint {
            Preview => post("/v1/preview", token, preview.clone()),
            Lint => get("/v1/lint", token),
            Explain => post("/v1/explain", token, explain.clone()),
        };
        let a = send(&app, request).await;
        let case = format!("{endpoint:?} {mode:?} {presented:?}");
        assert_eq!(a.status, expected, "{case}: {}", a.text());
        if expected == NO {
            // Nothing of the policies, and the same answer as for an event without the secret.
            assert_eq!(a.json(), json!({ "error": "missing or wrong x-jitp-token header" }), "{case}");
            let metrics = send(&app, get("/metrics", None)).await.text();
            assert!(metrics.contains("jitp_http_refused_total{cause=\"unauthorized\"} 1"), "{case}: {metrics}");
        } else {
            let v = a.json();
            let shape_ok = match endpoint {
                Preview | Explain => v.get("decision").is_some(),
                Lint => v.get("templates").is_some(),
            };
            assert!(shape_ok, "{case}: {v}");
        }
    }
}

/// The secret is checked before the body is read: a stranger's malformed or oversize preview is a 401, not a
/// 400 or 413 that would tell them anything about the endpoint.
#[tokio::test]
async fn a_strangers_preview_is_401_whatever_the_body() {
    let app = server(Mode::TokenOn);
    for body in [String::new(), "{".into(), "x".repeat(64 * 1024 + 1)] {
        assert_eq!(send(&app, post("/v1/preview", None, body.clone())).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(send(&app, post("/v1/explain", None, body)).await.status, StatusCode::UNAUTHORIZED);
    }
}

/// `POST /v1/explain` answers as `jitp explain`: the device's policy rendered from the loaded templates, or any
/// document; a malformed body, query or policy is a 400 naming what is wrong.
#[tokio::test]
async fn explain_answers_for_a_device_or_a_policy() {
    let app = server(Mode::TokenOn);
    let device = |query: serde_json::Value| {
        json!({ "ca_pem": ca().cert.pem, "cert_pem": sensor("0123456789ab").pem, "query": query }).to_string()
    };
    let cases = [
        (json!({ "action": "iot:Publish", "topic": "things/sensor-0123456789ab/telemetry" }), "ALLOWED"),
        (json!({ "action": "iot:Subscribe", "topic": "things/sensor-ffffffffffff/commands/#" }), "IMPLICIT_DENY"),
        (json!({ "action": "iot:Connect", "client_id": "sensor-ffffffffffff" }), "IMPLICIT_DENY"),
    ];
    for (query, decision) in cases {
        let a = send(&app, post("/v1/explain", Some(TOKEN), device(query.clone()))).await;
        assert_eq!(a.status, StatusCode::OK, "{query}: {}", a.text());
        assert_eq!(a.json()["decision"], decision, "{query}: {}", a.text());
    }
    let policy = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "iot:Connect",
        "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}" }] });
    let body = json!({ "policy": policy, "query": { "action": "iot:Connect", "client_id": "c1" } }).to_string();
    let a = send(&app, post("/v1/explain", Some(TOKEN), body)).await;
    assert_eq!((a.status, a.json()["decision"].clone()), (StatusCode::OK, json!("ALLOWED")), "{}", a.text());
    for bad in [
        json!({ "query": { "action": "iot:Connect", "client_id": "c1" } }),
        json!({ "policy": policy, "query": { "action": "iot:Nope", "client_id": "c1" } }),
        json!({ "policy": policy, "query": { "action": "iot:Publish", "topic": "a/#", "client_id": "c1" } }),
        json!({ "policy": { "Statement": [] }, "query": { "action": "iot:Connect", "client_id": "c1" } }),
        json!({ "policy": policy, "query": { "action": "iot:Connect", "client_id": "c1", "extra": 1 } }),
    ] {
        let a = send(&app, post("/v1/explain", Some(TOKEN), bad.to_string())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text());
    }
}
