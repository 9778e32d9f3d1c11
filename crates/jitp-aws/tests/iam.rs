#![cfg(test)]
//! The function role's AWS IoT actions come from one list, `infra/iam-actions.json`. This test ties it to the
//! Rust code: the list is exactly `Operation::ALL` mapped through `Operation::iam_action`, and the adapter calls
//! the SDK for exactly those operations. (infra/tests/check_templates.py ties it to the SAM and CDK templates.)
//! Its `drift_actions`, the drift report's read-only role, are exactly the operations a plan calls.

use std::collections::BTreeSet;
use std::path::PathBuf;

use std::sync::Arc;

use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::reconcile::{Reconciler, Shard};
use jitp_core::rules::Rules;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW, event_for_ids};
use serde_json::Value;

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn iam_list() -> Value {
    let path = repo_file("infra/iam-actions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The function's actions and the operator's (`jitp reconcile` only), together.
fn listed_actions() -> BTreeSet<String> {
    let list = iam_list();
    let function = list["actions"].as_object().expect("actions is an object").keys();
    let operator = list["operator_actions"].as_object().expect("operator_actions is an object").keys();
    let function: BTreeSet<String> = function.cloned().collect();
    let operator: BTreeSet<String> = operator.cloned().collect();
    assert!(function.is_disjoint(&operator), "an action is both the function's and the operator's");
    function.union(&operator).cloned().collect()
}

#[test]
fn iam_actions_json_is_exactly_operation_all() {
    let code: BTreeSet<String> = Operation::ALL.iter().map(|op| op.iam_action().to_owned()).collect();
    assert_eq!(code.len(), Operation::ALL.len(), "two operations share an IAM action");
    let json = listed_actions();
    let extra: Vec<_> = json.difference(&code).collect();
    let missing: Vec<_> = code.difference(&json).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "infra/iam-actions.json differs from Operation::ALL: in the JSON only {extra:?}, in the code only {missing:?}"
    );
}

#[test]
fn every_action_names_known_resource_types() {
    let list = iam_list();
    let types: BTreeSet<&str> = list["resources"].as_object().unwrap().keys().map(String::as_str).collect();
    let both = list["actions"].as_object().unwrap().iter().chain(list["operator_actions"].as_object().unwrap());
    for (action, scoped) in both {
        let scoped: Vec<&str> = scoped.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert!(!scoped.is_empty(), "{action}: no resource type");
        if scoped.contains(&"*") {
            assert_eq!(scoped, ["*"], "{action}: '*' alongside narrower types grants everything anyway");
        }
        for t in scoped.iter().filter(|t| **t != "*") {
            assert!(types.contains(t), "{action}: resource type {t} is not in resources");
        }
    }
    assert!(!listed_actions().contains("iot:ListPrincipalThings"), "nothing calls ListPrincipalThings");
}

/// The SDK methods `src/lib.rs` calls on its client (`client.describe_certificate()` and the like).
fn sdk_calls(source: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("client") {
        rest = &rest[at + "client".len()..];
        let after = rest.trim_start();
        let Some(method) = after.strip_prefix('.') else { continue };
        let name: String = method.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        if !name.is_empty() && method[name.len()..].starts_with("()") {
            calls.insert(name);
        }
    }
    calls
}

#[test]
fn the_adapter_calls_exactly_the_listed_operations() {
    let path = repo_file("crates/jitp-aws/src/lib.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    let called: BTreeSet<String> = sdk_calls(&source).into_iter().map(|m| m.replace('_', "")).collect();
    // describe_ca_certificate is DescribeCACertificate: compare without case and underscores.
    let listed: BTreeSet<String> =
        listed_actions().iter().map(|a| a.trim_start_matches("iot:").to_ascii_lowercase()).collect();
    assert_eq!(called, listed, "SDK calls in src/lib.rs vs infra/iam-actions.json");
}

fn drift_actions() -> BTreeSet<String> {
    iam_list()["drift_actions"].as_object().expect("drift_actions is an object").keys().cloned().collect()
}

/// The operations a plan (and a shard plan) calls over a provisioned fleet whose template changed since.
async fn plan_operations() -> BTreeSet<String> {
    let dir = ConfigDir::shipped();
    let registry = Arc::new(MemoryRegistry::new());
    let ca = Ca::new("IAM CA", Alg::P256);
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let provisioner = Provisioner::new(rules, registry.clone() as Arc<dyn IotRegistry>, Settings::default());
    for name in ["sensor-000000000001", "sensor-000000000002", "gw-ab-0001"] {
        let id = registry.register_certificate(&ca.issue(&Device::new(name)).pem, &ca_id).unwrap();
        let record = provisioner.handle_bytes(event_for_ids(id.as_str(), ca_id.as_str()).as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
    }
    let template = dir.path().join("policies/sensor.json.tera");
    let v1 = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, v1.replace("/events/*", "/events/alarm")).unwrap();
    let before = registry.call_counts();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let reconciler = Reconciler::new(rules, registry.clone() as Arc<dyn IotRegistry>, Settings::default());
    let plan = reconciler.plan(NOW).await.unwrap();
    assert!(plan.drift && plan.errors.is_empty(), "{plan:?}");
    for shard in Shard::all(2) {
        reconciler.plan_shard(&shard, NOW).await.unwrap();
    }
    let after = registry.call_counts();
    Operation::ALL
        .iter()
        .filter(|op| after.get(op).copied().unwrap_or(0) > before.get(op).copied().unwrap_or(0))
        .map(|op| op.iam_action().to_owned())
        .collect()
}

#[tokio::test]
async fn drift_actions_are_exactly_the_calls_a_plan_makes_and_all_reads() {
    let called = plan_operations().await;
    assert_eq!(drift_actions(), called, "infra/iam-actions.json drift_actions vs the calls a plan made");
    // The plan's code names no other operation (a path the fleet above did not take would show here): reconcile.rs
    // and the engine's CA cache it describes CAs through.
    let source = ["crates/jitp-core/src/reconcile.rs", "crates/jitp-core/src/engine/ca_cache.rs"]
        .map(|file| std::fs::read_to_string(repo_file(file)).unwrap())
        .join("\n");
    let named: BTreeSet<String> = Operation::ALL
        .iter()
        .filter(|op| source.contains(&format!("Operation::{op:?}")))
        .map(|op| op.iam_action().to_owned())
        .collect();
    assert_eq!(
        named, called,
        "operations named in reconcile.rs and engine/ca_cache.rs (the plan; apply is reconcile/apply.rs)"
    );
    for action in &called {
        let verb = action.trim_start_matches("iot:");
        assert!(
            ["Describe", "List", "Get"].iter().any(|read| verb.starts_with(read)),
            "{action} is not a read: the drift role is read-only"
        );
    }
}

#[test]
fn drift_actions_are_granted_on_the_same_resource_types_as_elsewhere() {
    let list = iam_list();
    let drift = list["drift_actions"].as_object().unwrap();
    for (action, scoped) in drift {
        let elsewhere = list["actions"].get(action).or_else(|| list["operator_actions"].get(action));
        assert_eq!(Some(scoped), elsewhere, "{action}: the drift role's resource types differ from its other grant");
    }
}
