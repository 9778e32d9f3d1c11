#![cfg(test)]
//! The guard function's role comes from `infra/iam-actions.json`'s `guard_actions`: exactly the registry calls the
//! guard makes (recorded at init and on a refresh, against the embedded registry), each on the resource types
//! the provisioning or drift roles are granted it on. A connect makes none.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use jitp_guard::judge::Config;
use jitp_guard::{CaSet, Guard, GuardSettings};
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, Device, NOW, repo_config_path};
use serde_json::Value;

fn iam_list() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/iam-actions.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn guard_actions_are_exactly_the_calls_of_init_and_refresh_and_a_connect_makes_none() {
    let ca = Ca::new("jitp guard iam CA", Alg::P256);
    let memory = Arc::new(MemoryRegistry::new());
    memory.register_ca(&ca.cert.pem, true).unwrap();
    let config = Config::load(repo_config_path()).unwrap();
    let cas = CaSet::load(memory.as_ref(), &config).await.unwrap();
    let settings: GuardSettings =
        jitp_wiring::parse::from_vars(["jitp-guard"], Vec::<(String, String)>::new()).unwrap();
    let guard = Guard::builder(Arc::new(config), cas, memory.clone(), &settings)
        .clock(Arc::new(|| NOW))
        .sink(Arc::new(|_: &str| {}))
        .ca_refresh(std::time::Duration::ZERO)
        .build();
    guard.refresh().await;
    let before = memory.call_counts();
    let called: BTreeSet<String> = before.keys().map(|op| op.iam_action().to_owned()).collect();
    let listed: BTreeSet<String> = iam_list()["guard_actions"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(called, listed, "infra/iam-actions.json guard_actions vs the guard's calls");
    // A connect on the warm path (a guard whose refresh is not due): no registry call.
    let quiet =
        Guard::builder(guard.snapshot().config.clone(), (*guard.snapshot().cas).clone(), memory.clone(), &settings)
            .clock(Arc::new(|| NOW))
            .sink(Arc::new(|_: &str| {}))
            .build();
    for _ in 0..10 {
        assert!(quiet.answer(&connect(&[&ca.issue(&Device::new("sensor-0000000000aa")).pem]), "r").is_authenticated);
    }
    assert_eq!(memory.call_counts(), before, "a connect calls nothing");
    // The same resource types as the provisioning or drift role's grant of the same action.
    let list = iam_list();
    for (action, scoped) in list["guard_actions"].as_object().unwrap() {
        let elsewhere = list["actions"].get(action).or_else(|| list["operator_actions"].get(action));
        assert_eq!(Some(scoped), elsewhere, "{action}");
    }
}
