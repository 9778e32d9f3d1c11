#![cfg(test)]
//! The guard's init (`jitp_guard::build`, what its `main` runs) loads jitp.toml's profiles, not its templates: a
//! policy template that does not compile stops the provisioning function from starting (the security team's
//! mistake, held there), never the connects of devices already provisioned. A jitp.toml that does not parse, or a
//! profile's CRL that cannot be read, still fails the guard's init: those are what it checks.

use jitp_guard::{Guard, GuardSettings};
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, Device, unix_now};

const PROFILE: &str = "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n";

/// A registry file with `ca` registered ACTIVE, and the settings that open it.
fn settings_with(dir: &ConfigDir, ca: &Ca) -> GuardSettings {
    let registry = dir.path().join("registry.json");
    let memory = MemoryRegistry::open(&registry).unwrap();
    memory.register_ca(&ca.cert.pem, true).unwrap();
    memory.save().unwrap();
    let vars = [("JITP_REGISTRY".to_owned(), format!("memory:{}", registry.display()))];
    jitp_wiring::parse::from_vars(["jitp-guard"], vars).unwrap()
}

async fn init(dir: &ConfigDir, ca: &Ca) -> Result<Guard, jitp_guard::GuardError> {
    jitp_guard::build(&settings_with(dir, ca), &dir.config_path()).await
}

#[tokio::test]
async fn a_template_that_does_not_compile_never_stops_a_connect() {
    let ca = Ca::new("jitp guard init CA", Alg::P256);
    // The guard built by `build` decides at the system clock.
    let device = ca.issue(&Device::new("sensor-0000000000aa").valid_around(unix_now()));
    for (what, template) in [
        ("Tera syntax", "{\"Version\": \"2012-10-17\", \"Statement\": [{% if %}]}"),
        ("an unknown filter", "{\"Version\": \"2012-10-17\", \"Statement\": {{ subject.cn | no_such_filter }}}"),
        ("an unclosed block", "{\"Version\": \"2012-10-17\", \"Statement\": [{% for ou in subject.ou %}]}"),
    ] {
        let dir = ConfigDir::new();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/sensor.json.tera"), template).unwrap();
        dir.write_config(PROFILE);
        // The provisioning side refuses this configuration at load.
        assert!(jitp_core::rules::Rules::load(dir.config_path()).is_err(), "{what}: the workflow refuses it");
        let guard = init(&dir, &ca).await.unwrap_or_else(|e| panic!("{what}: the guard's init failed: {e}"));
        let answer = guard.answer(&connect(&[&device.pem]), "r");
        assert!(answer.is_authenticated, "{what}: a valid device is let in");
    }
}

#[tokio::test]
async fn what_the_guard_checks_still_fails_its_init() {
    let ca = Ca::new("jitp guard init CA", Alg::P256);
    for (what, config) in [
        ("jitp.toml that does not parse", "[[profiles]\n".to_owned()),
        ("a CRL file that is missing", format!("{PROFILE}crl = [\"missing.crl\"]\n")),
        ("a deny list that is missing", format!("{PROFILE}deny_list = \"missing.txt\"\n")),
    ] {
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        dir.write_config(&config);
        assert!(init(&dir, &ca).await.is_err(), "{what}");
    }
    // The same profile, sound: the guard starts and lets a valid device in.
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    dir.write_config(PROFILE);
    let guard = init(&dir, &ca).await.unwrap();
    let device = ca.issue(&Device::new("sensor-0000000000aa").valid_around(unix_now()));
    assert!(guard.answer(&connect(&[&device.pem]), "r").is_authenticated);
}
