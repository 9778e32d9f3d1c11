#![cfg(test)]
//! `jitp reconcile` on a file-backed embedded registry: exit codes, the text summary, the pinned JSON shape,
//! the registry file untouched by a plan; `--apply` (a canary, then the rest), a second apply, `--rollback`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW};

const AT: &str = "2026-01-01T00:00:00Z";
const DEVICES: [&str; 4] = ["sensor-000000000001", "sensor-000000000002", "sensor-000000000003", "gw-ab-0001"];

/// A registry file with DEVICES provisioned through the workflow under `dir`'s configuration.
async fn provisioned(dir: &ConfigDir, file: &Path) {
    let registry = Arc::new(MemoryRegistry::open(file).unwrap());
    let ca = Ca::new("CLI reconcile CA", Alg::P256);
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let provisioner = Provisioner::new(rules, registry.clone() as Arc<dyn IotRegistry>, Settings::default());
    for name in DEVICES {
        let id = registry.register_certificate(&ca.issue(&Device::new(name)).pem, &ca_id).unwrap();
        let event = jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str());
        let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
    }
    registry.save().unwrap();
}

fn reconcile(dir: &ConfigDir, file: &Path, extra: &[&str]) -> (i32, String, String) {
    let registry = format!("memory:{}", file.display());
    let out = Command::cargo_bin("jitp")
        .unwrap()
        .args(["reconcile", "--no-pacing", "--at", AT, "--registry", &registry, "--config"])
        .arg(dir.config_path())
        .args(extra)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

fn setup() -> (ConfigDir, tempfile::TempDir, PathBuf) {
    let dir = ConfigDir::shipped();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("registry.json");
    tokio::runtime::Runtime::new().unwrap().block_on(provisioned(&dir, &file));
    (dir, tmp, file)
}

#[test]
fn no_drift_exits_0_and_says_so() {
    let (dir, _tmp, file) = setup();
    let (code, out, err) = reconcile(&dir, &file, &["--plan"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 devices"), "{out}");
    assert!(out.contains("No drift."), "{out}");
}

#[test]
fn drift_exits_1_with_the_pinned_json_shape_and_the_file_is_untouched() {
    let (dir, _tmp, file) = setup();
    let template = dir.path().join("policies/sensor.json.tera");
    let v1 = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, v1.replace("/events/*\",", "/events/alarm\",")).unwrap();
    dir.edit_config(|toml| toml.replace("attributes = { site = ", "attributes = { tier = \"edge\", site = "));
    let before = std::fs::read(&file).unwrap();

    let (code, out, err) = reconcile(&dir, &file, &["--format", "json"]);
    assert_eq!(code, 1, "drift: {out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    // The shape scripts rely on (README: jitp reconcile).
    let top = [
        "at",
        "config",
        "drift",
        "counts",
        "policy_changes",
        "thing_changes",
        "would_reject",
        "retired",
        "unaccounted",
        "orphaned",
        "errors",
        "calls",
    ];
    assert_eq!(keys(&plan), top.into_iter().collect());
    let counts = [
        "devices",
        "unchanged",
        "policy_changes",
        "thing_changes",
        "would_reject",
        "retired",
        "unaccounted",
        "errors",
        "orphaned",
    ];
    assert_eq!(keys(&plan["counts"]), counts.into_iter().collect());
    assert_eq!(plan["at"], AT);
    assert_eq!(plan["drift"], true);
    assert_eq!(plan["counts"]["devices"], 4);
    assert_eq!(plan["counts"]["policy_changes"], 3);
    assert_eq!(plan["counts"]["thing_changes"], 1);
    assert_eq!(plan["counts"]["unchanged"], 0);
    let policy = &plan["policy_changes"][0];
    assert_eq!(keys(policy), ["access", "added", "devices", "examples", "missing", "removed"].into_iter().collect());
    // What it means: the devices lose the events they could publish besides the alarm, nothing else.
    assert_eq!(
        policy["access"],
        serde_json::json!({"gained": [], "lost": ["iot:Publish things/{{ thing_name }}/events/x"], "not_modelled": []})
    );
    assert_eq!(policy["devices"], 3);
    assert_eq!(policy["examples"].as_array().unwrap().len(), 3);
    assert_eq!(policy["added"][0]["Sid"], "PublishOwnTopics");
    let thing = &plan["thing_changes"][0];
    assert_eq!(keys(thing), ["attributes", "devices", "examples", "name", "thing_type"].into_iter().collect());
    assert_eq!(thing["attributes"]["tier"], serde_json::json!({"from": null, "to": "edge"}));
    assert_eq!(thing["examples"], serde_json::json!(["gw-ab-0001"]));
    assert_eq!(plan["calls"]["ListThings"], 16);
    assert_eq!(std::fs::read(&file).unwrap(), before, "the plan writes nothing");

    let (code, text, _) = reconcile(&dir, &file, &[]);
    assert_eq!(code, 1, "drift");
    assert!(text.contains("Policy changes"), "{text}");
    assert!(text.contains("3 devices, e.g. sensor-000000000001, sensor-000000000002, sensor-000000000003"), "{text}");
    assert!(text.contains("{{ thing_name }}/events/alarm"), "{text}");
    assert!(text.contains("    3 devices lose iot:Publish things/{{ thing_name }}/events/x\n"), "{text}");
    assert!(text.contains("attribute tier: (none) -> \"edge\""), "{text}");
    assert!(text.contains("Drift found."), "{text}");
}

#[test]
fn apply_a_canary_then_the_rest_converges_a_second_apply_changes_nothing_and_rollback_undoes_it() {
    let (dir, _tmp, file) = setup();
    let template = dir.path().join("policies/sensor.json.tera");
    let v1 = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, v1.replace("/events/*\",", "/events/alarm\",")).unwrap();

    let (code, out, err) = reconcile(&dir, &file, &["--apply", "--canary", "1", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let applied: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let top = ["mode", "at", "config", "converged", "counts", "changes", "reported", "errors", "calls"];
    assert_eq!(keys(&applied), top.into_iter().collect());
    assert_eq!((applied["mode"].as_str(), applied["converged"].as_bool()), (Some("apply"), Some(true)));
    assert_eq!((applied["counts"]["changed"].as_u64(), applied["counts"]["deferred"].as_u64()), (Some(1), Some(2)));
    assert_eq!(applied["changes"][0]["thing_name"], "sensor-000000000001", "the first by name");
    let lines: Vec<serde_json::Value> = err.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "one audit line per change: {err}");
    assert_eq!((lines[0]["eventType"].as_str(), lines[0]["trigger"].as_str()), (Some("jitp.reconcile"), Some("cli")));
    assert_eq!((lines[0]["from_version"].as_str(), lines[0]["to_version"].as_str()), (Some("1"), Some("2")));

    let (code, out, err) = reconcile(&dir, &file, &["--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("changed") && out.contains("Converged."), "{out}");
    assert_eq!(err.lines().count(), 2, "the other two sensors: {err}");
    let (code, out, _) = reconcile(&dir, &file, &["--plan"]);
    assert_eq!(code, 0, "no drift after the apply: {out}");

    let before = std::fs::read(&file).unwrap();
    let (code, out, err) = reconcile(&dir, &file, &["--apply", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.is_empty(), "{err}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["changes"], serde_json::json!([]));
    assert_eq!(std::fs::read(&file).unwrap(), before, "a second apply changes nothing");

    let (code, out, err) = reconcile(&dir, &file, &["--rollback"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(out.contains("jitp reconcile --rollback"), "{out}");
    let (code, _, _) = reconcile(&dir, &file, &["--plan"]);
    assert_eq!(code, 1, "rolled back: the plan shows the drift again");
}

#[test]
fn flags_that_need_apply_are_refused_and_a_missing_registry_is_an_error() {
    let (dir, _tmp, file) = setup();
    let (code, _, err) = reconcile(&dir, &file, &["--revoke"]);
    assert_eq!(code, 2, "clap: --revoke requires --apply: {err}");
    let (code, _, err) = reconcile(&dir, &file, &["--canary", "3"]);
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(err.contains("--apply"), "{err}");
    let (code, _, err) = reconcile(&dir, &file, &["--thing-group", "pilot"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = reconcile(&dir, &file, &["--apply", "--thing-group", "pilot", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let applied: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(applied["counts"]["devices"], 0, "nobody in the group");
    assert_eq!(applied["calls"]["ListThingsInThingGroup"], 1);
    let (code, _, err) = reconcile(&dir, &file, &["--apply", "--rollback"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = reconcile(&dir, Path::new("/nonexistent/registry.json"), &["--apply"]);
    assert_eq!(code, 2, "an error, not drift: {err}");
    assert!(err.contains("no such file"), "{err}");
}
