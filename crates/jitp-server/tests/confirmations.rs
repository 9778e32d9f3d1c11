#![cfg(test)]
//! Topic rule destination confirmations: every one kept (up to the bound) with where it came from, none replaced,
//! none acted on, and the bound holding under many, concurrent, malformed and huge posts.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use jitp_server::{DEFAULT_MAX_CONFIRMATIONS, MAX_ORIGIN_VALUE, Options, app};
use serde_json::{Value, json};

const AWS_ARN: &str = "arn:aws:iot:us-east-1:123456789012:ruledestination/http/8a4b4c4d-1111-2222-3333-444455556666";
const FORGED_ARN: &str = "arn:aws:iot:us-east-1:999999999999:ruledestination/http/00000000-0000-0000-0000-000000000000";

/// A confirmation with AWS's shape; `tag` makes its token and URL unique.
fn confirmation(arn: &str, tag: &str) -> String {
    json!({
        "arn": arn,
        "confirmationToken": format!("AYADe{tag}"),
        "enableUrl": format!("https://iot.us-east-1.amazonaws.com/confirmdestination/AYADe{tag}"),
    })
    .to_string()
}

fn app_with(options: Options) -> (Router, std::sync::Arc<jitp_registry::memory::MemoryRegistry>) {
    let (registry, _) = registry();
    (app(state(registry.clone(), options)), registry)
}

async fn read_back(app: &Router) -> Value {
    let a = send(app, get("/v1/confirmation", Some(TOKEN))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()
}

#[track_caller]
fn tokens(v: &Value) -> Vec<String> {
    v["confirmations"].as_array().unwrap().iter().map(|c| c["confirmationToken"].as_str().unwrap().into()).collect()
}

#[tokio::test]
async fn a_confirmation_is_recorded_not_acted_on() {
    let (app, registry) = app_with(Options::default());
    assert_eq!(send(&app, get("/v1/confirmation", Some(TOKEN))).await.status, StatusCode::NOT_FOUND);
    // AWS sends it without the action's headers.
    let a = send(&app, post("/v1/events", None, confirmation(AWS_ARN, "aws"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["status"], "recorded");
    assert_eq!(a.json()["seq"], 1);
    assert!(registry.call_counts().is_empty(), "a confirmation never reaches the registry");
    // Reading it back needs the secret.
    assert_eq!(send(&app, get("/v1/confirmation", None)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, get("/v1/confirmation", Some("nope"))).await.status, StatusCode::UNAUTHORIZED);
    let v = read_back(&app).await;
    assert!(v["note"].as_str().unwrap().contains("Confirm only the one whose arn is the topic rule destination"));
    assert_eq!((v["limit"].as_u64(), v["received"].as_u64(), v["dropped"].as_u64()), (Some(64), Some(1), Some(0)));
    let c = &v["confirmations"][0];
    assert_eq!(c["seq"], 1);
    assert_eq!(c["arn"], AWS_ARN);
    assert_eq!(c["confirmationToken"], "AYADeaws");
    assert_eq!(c["enableUrl"], "https://iot.us-east-1.amazonaws.com/confirmdestination/AYADeaws");
    assert_eq!(c["token_verified"], false);
    assert_eq!(c["received_at"], "2026-01-01T00:00:00Z");
    assert_eq!(c["origin"], json!({ "peer": null, "headers": {} }), "in-process: no peer");
    assert!(
        c["confirm_with"].as_str().unwrap().contains("confirm-topic-rule-destination --confirmation-token 'AYADeaws'")
    );
    let metrics = send(&app, get("/metrics", None)).await.text();
    assert!(metrics.contains("jitp_destination_confirmations_total 1"), "{metrics}");
    assert!(metrics.contains("jitp_destination_confirmations_dropped_total 0"), "{metrics}");
}

/// The attack of issue 12: a stranger posts a confirmation after AWS's. Both are kept, AWS's first; neither
/// replaces the other; a repeat of the same message is kept again (it is another arrival).
#[tokio::test]
async fn a_later_confirmation_never_hides_an_earlier_one() {
    let (app, _) = app_with(Options::default());
    for (body, token) in [
        (confirmation(AWS_ARN, "aws"), None),
        (confirmation(FORGED_ARN, "evil"), None),
        (confirmation(AWS_ARN, "aws"), None),
        (confirmation(AWS_ARN, "mine"), Some(TOKEN)),
    ] {
        assert_eq!(send(&app, post("/v1/events", token, body)).await.status, StatusCode::OK);
    }
    let v = read_back(&app).await;
    assert_eq!(tokens(&v), ["AYADeaws", "AYADeevil", "AYADeaws", "AYADemine"]);
    let list = v["confirmations"].as_array().unwrap();
    assert_eq!(list.iter().map(|c| c["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(list[1]["arn"], FORGED_ARN);
    assert_eq!(
        list.iter().map(|c| c["token_verified"].as_bool().unwrap()).collect::<Vec<_>>(),
        [false, false, false, true]
    );
}

#[tokio::test]
async fn many_confirmations_are_kept_in_order_up_to_the_default_bound() {
    let (app, _) = app_with(Options::default());
    let n = DEFAULT_MAX_CONFIRMATIONS + 10;
    for i in 0..n {
        let a = send(&app, post("/v1/events", None, confirmation(AWS_ARN, &format!("n{i:03}")))).await;
        assert_eq!(a.status, StatusCode::OK);
        let expected = if i < DEFAULT_MAX_CONFIRMATIONS { "recorded" } else { "dropped" };
        assert_eq!(a.json()["status"], expected, "#{i}");
        assert_eq!(a.json()["seq"], i + 1);
    }
    let v = read_back(&app).await;
    let expected: Vec<String> = (0..DEFAULT_MAX_CONFIRMATIONS).map(|i| format!("AYADen{i:03}")).collect();
    assert_eq!(tokens(&v), expected, "the first ones, oldest first");
    assert_eq!(v["received"], n);
    assert_eq!(v["kept"], DEFAULT_MAX_CONFIRMATIONS);
    assert_eq!(v["dropped"], 10);
    let metrics = send(&app, get("/metrics", None)).await.text();
    assert!(metrics.contains(&format!("jitp_destination_confirmations_total {n}")), "{metrics}");
    assert!(metrics.contains("jitp_destination_confirmations_dropped_total 10"), "{metrics}");
}

/// Past the bound, the kept ones stay exactly as they were: an attacker who fills the store cannot push out what
/// came before, and the count shows the flood.
#[tokio::test]
async fn over_the_bound_later_ones_are_counted_not_kept() {
    let (app, _) = app_with(Options { max_confirmations: 2, ..Options::default() });
    send(&app, post("/v1/events", None, confirmation(AWS_ARN, "aws"))).await;
    let before = read_back(&app).await["confirmations"][0].clone();
    for i in 0..20 {
        send(&app, post("/v1/events", None, confirmation(FORGED_ARN, &format!("evil{i}")))).await;
    }
    let v = read_back(&app).await;
    assert_eq!(tokens(&v), ["AYADeaws", "AYADeevil0"]);
    assert_eq!(v["confirmations"][0], before, "unchanged");
    assert_eq!((v["limit"].as_u64(), v["received"].as_u64(), v["dropped"].as_u64()), (Some(2), Some(21), Some(19)));
    assert!(v["note"].as_str().unwrap().contains("If dropped is above 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_confirmations_are_each_kept_once_with_distinct_seqs() {
    for round in 0..5 {
        let limit = 40;
        let (app, _) = app_with(Options { max_confirmations: limit, ..Options::default() });
        let posts = 100;
        let tasks: Vec<_> = (0..posts)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    let a = send(&app, post("/v1/events", None, confirmation(AWS_ARN, &format!("c{i}")))).await;
                    assert_eq!(a.status, StatusCode::OK);
                    (a.json()["status"].as_str().unwrap().to_owned(), a.json()["seq"].as_u64().unwrap())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let seqs: BTreeSet<u64> = answers.iter().map(|(_, seq)| *seq).collect();
        assert_eq!(seqs, (1..=posts).collect(), "round {round}: every arrival numbered once");
        let recorded: BTreeSet<u64> = answers.iter().filter(|(s, _)| s == "recorded").map(|(_, seq)| *seq).collect();
        assert_eq!(
            recorded,
            (1..=limit as u64).collect(),
            "round {round}: the first {limit} arrivals are the kept ones"
        );
        let v = read_back(&app).await;
        let kept: Vec<u64> =
            v["confirmations"].as_array().unwrap().iter().map(|c| c["seq"].as_u64().unwrap()).collect();
        assert_eq!(kept, (1..=limit as u64).collect::<Vec<_>>(), "round {round}: oldest first");
        assert_eq!(tokens(&v).into_iter().collect::<BTreeSet<_>>().len(), limit, "round {round}: no duplicates");
        assert_eq!((v["received"].as_u64(), v["dropped"].as_u64()), (Some(posts), Some(posts - limit as u64)));
    }
}

#[tokio::test]
async fn malformed_confirmations_are_not_kept() {
    let (app, registry) = app_with(Options::default());
    let url = "https://iot.us-east-1.amazonaws.com/confirmdestination/x";
    let malformed = [
        json!({ "arn": AWS_ARN, "confirmationToken": "t", "enableUrl": "https://evil.example/confirmdestination/t" }),
        json!({ "arn": "arn:aws:s3:::bucket", "confirmationToken": "t", "enableUrl": url }),
        json!({ "arn": AWS_ARN, "confirmationToken": "a'; rm -rf ~; '", "enableUrl": url }),
        json!({ "arn": AWS_ARN, "confirmationToken": "", "enableUrl": url }),
        json!({ "arn": AWS_ARN, "confirmationToken": 7, "enableUrl": url }),
        json!({ "confirmationToken": "t" }),
    ];
    for body in &malformed {
        // A stranger learns nothing: 401 as for any unauthenticated event.
        let a = send(&app, post("/v1/events", None, body.to_string())).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{body}");
        // With the secret, the reason.
        let a = send(&app, post("/v1/events", Some(TOKEN), body.to_string())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            a.json()["error"].as_str().unwrap().starts_with("not a topic rule destination confirmation"),
            "{}",
            a.text()
        );
    }
    // Not JSON, or JSON without confirmationToken, is an (unauthenticated) event, not a confirmation.
    for body in ["{\"confirmationToken\"", "confirmationToken", "{\"arn\": \"x\"}"] {
        assert_eq!(send(&app, post("/v1/events", None, body)).await.status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(send(&app, get("/v1/confirmation", Some(TOKEN))).await.status, StatusCode::NOT_FOUND, "none kept");
    assert!(registry.call_counts().is_empty());
}

#[tokio::test]
async fn huge_confirmations_are_refused_before_being_read() {
    let (app, _) = app_with(Options::default());
    // A body over the event limit: 413, whatever it claims to be.
    let pad = "A".repeat(16 * 1024);
    let huge = json!({ "arn": AWS_ARN, "confirmationToken": pad, "enableUrl": "https://iot.us-east-1.amazonaws.com/confirmdestination/x" });
    assert_eq!(send(&app, post("/v1/events", None, huge.to_string())).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Under the body limit but a field over its own bound (token 4096): not AWS's shape, not kept.
    let long_token = json!({ "arn": AWS_ARN, "confirmationToken": "A".repeat(4097), "enableUrl": "https://iot.us-east-1.amazonaws.com/confirmdestination/x" });
    assert_eq!(send(&app, post("/v1/events", None, long_token.to_string())).await.status, StatusCode::UNAUTHORIZED);
    let long_url = json!({ "arn": AWS_ARN, "confirmationToken": "t", "enableUrl": format!("https://iot.us-east-1.amazonaws.com/confirmdestination/{}", "x".repeat(8200)) });
    assert_eq!(send(&app, post("/v1/events", None, long_url.to_string())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, get("/v1/confirmation", Some(TOKEN))).await.status, StatusCode::NOT_FOUND);
    // Huge origin headers are cut to MAX_ORIGIN_VALUE bytes (and marked), so a kept entry stays small.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "1".repeat(10_000))
        .body(confirmation(AWS_ARN, "big").into())
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
    let v = read_back(&app).await;
    let xff = v["confirmations"][0]["origin"]["headers"]["x-forwarded-for"].as_str().unwrap();
    assert_eq!(xff.len(), MAX_ORIGIN_VALUE + 3);
    assert!(xff.ends_with("..."));
}

#[tokio::test]
async fn each_confirmation_records_its_peer_and_forwarding_headers() {
    let (app, _) = app_with(Options::default());
    let peer: SocketAddr = "203.0.113.7:41234".parse().unwrap();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-for", "10.0.0.2")
        .header("forwarded", "for=198.51.100.1;proto=https")
        .header(header::USER_AGENT, "AWS-IoT-Rules")
        .header("x-not-an-origin-header", "ignored")
        .body(confirmation(AWS_ARN, "aws").into())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
    let origin = read_back(&app).await["confirmations"][0]["origin"].clone();
    assert_eq!(
        origin,
        json!({
            "peer": "203.0.113.7:41234",
            "headers": {
                "forwarded": "for=198.51.100.1;proto=https",
                "user-agent": "AWS-IoT-Rules",
                "x-forwarded-for": "198.51.100.1, 10.0.0.2",
            },
        })
    );
}
