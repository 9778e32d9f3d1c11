//! The audit line's shape, pinned once for the Lambda, the server and the CLI: each crate's test captures a
//! line its binary wrote and checks it here, so that the three cannot drift apart (and CloudWatch metric
//! filters such as `{ $.outcome = "REJECTED" }`, which infra/ installs, match every deployment).

use serde_json::{Map, Value};

/// The keys every audit line has, in order: `level`, the record's fields, then `trigger`.
pub const KEYS: &[&str] = &[
    "level",
    "timestamp",
    "eventType",
    "outcome",
    "status",
    "reason",
    "fault",
    "message",
    "certificate_id",
    "ca_certificate_id",
    "ca_source",
    "thing_name",
    "policy_name",
    "policy_version",
    "profile",
    "certificate_action",
    "api_calls",
    "api_call_count",
    "retries",
    "quota_wait_ms",
    "duration_ms",
    "trigger",
];

/// Keys a line has only when they apply.
pub const OPTIONAL_KEYS: &[&str] = &["replaced_certificates", "failed_operation", "requestId", "messageId"];

/// The fields the metric filters in infra/ read; each must be a top-level string.
pub const FILTERED: &[&str] = &["outcome", "reason"];

/// Check that `line` is one audit line of the pinned shape; returns the object.
pub fn check(line: &str) -> Map<String, Value> {
    assert!(!line.contains('\n'), "an audit line is one line: {line:?}");
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        panic!("an audit line is a JSON object: {line:?}");
    };
    let required: Vec<&str> = map.keys().map(String::as_str).filter(|k| !OPTIONAL_KEYS.contains(k)).collect();
    assert_eq!(required, KEYS, "the audit line's keys: {line}");
    for key in map.keys() {
        assert!(KEYS.contains(&key.as_str()) || OPTIONAL_KEYS.contains(&key.as_str()), "unknown key {key}: {line}");
    }
    assert_eq!(map["eventType"], "jitp.provision", "{line}");
    assert!(matches!(map["trigger"].as_str(), Some("direct" | "sqs" | "http" | "cli" | "demo")), "{line}");
    assert!(matches!(map["level"].as_str(), Some("INFO" | "WARN")), "{line}");
    assert!(map["outcome"].is_string(), "{line}");
    assert!(map["reason"].is_string() || map["reason"].is_null(), "{line}");
    assert!(!line.contains("BEGIN CERTIFICATE"), "an audit line never holds a certificate: {line}");
    map
}
