#![cfg(test)]
//! The built `jitp` binary: stdout JSON and exit codes.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

fn jitp() -> Command {
    let mut cmd = Command::cargo_bin("jitp").unwrap();
    cmd.current_dir(jitp_testkit::repo_root());
    cmd
}

const AT: &str = "2026-01-01T00:00:00Z";

fn write_pair(dir: &Path, ca: &Ca, device: &Device) -> (PathBuf, PathBuf) {
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("device.pem");
    std::fs::write(&ca_path, &ca.cert.pem).unwrap();
    std::fs::write(&cert_path, ca.issue(device).pem).unwrap();
    (ca_path, cert_path)
}

fn check_json(ca: &Path, cert: &Path) -> (i32, serde_json::Value) {
    let out = jitp()
        .args(["check", "--format", "json", "--at", AT, "--ca"])
        .arg(ca)
        .arg("--cert")
        .arg(cert)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn check_accepts_and_prints_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &Device::new("sensor-0123456789ab"));
    let (code, json) = check_json(&ca_path, &cert_path);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["decision"], "accept");
    assert_eq!(json["reason"], serde_json::Value::Null);
    assert_eq!(json["profile"], "sensors");
    assert_eq!(json["thing_name"], "sensor-0123456789ab");
    assert_eq!(json["policy_name"], "jitp-sensor-0123456789ab");
    assert_eq!(json["policy"]["Version"], "2012-10-17");
    assert_eq!(json["ca_id"], ca.id());
}

#[test]
fn check_rejects_with_reason_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let mut expired = Device::new("sensor-0123456789ab");
    expired.not_before = NOW - 30 * DAY;
    expired.not_after = NOW - DAY;
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &expired);
    let (code, json) = check_json(&ca_path, &cert_path);
    assert_eq!(code, 1);
    assert_eq!(json["decision"], "reject");
    assert_eq!(json["reason"], "CERT_EXPIRED");
    assert_eq!(json["fault"], "device");
    assert!(json["message"].as_str().unwrap().contains("expired"));
}

#[test]
fn check_survives_garbage_and_huge_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let (ca_path, _) = write_pair(dir.path(), &ca, &Device::new("sensor-0123456789ab"));
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![0xffu8; 10 * 1024 * 1024]).unwrap();
    let (code, json) = check_json(&ca_path, &huge);
    assert_eq!((code, json["reason"].as_str()), (1, Some("MALFORMED_CERTIFICATE")));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (code, json) = check_json(&ca_path, &empty);
    assert_eq!((code, json["reason"].as_str()), (1, Some("MALFORMED_CERTIFICATE")));
}

#[test]
fn usage_and_config_errors_exit_2() {
    jitp().args(["check", "--ca", "/nonexistent", "--cert", "/nonexistent"]).assert().code(2);
    jitp().args(["check", "--config", "/nonexistent.toml", "--ca", "x", "--cert", "y"]).assert().code(2);
    jitp().args(["check", "--at", "yesterday", "--ca", "x", "--cert", "y"]).assert().code(2);
    let dir = ConfigDir::new();
    let config = dir.write_config("[[profiles]]\nname = \"x\"\nsurprise = 1\n");
    let out = jitp().args(["lint", "--config"]).arg(config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jitp.toml:") && stderr.contains("surprise"), "names file, line and key: {stderr}");
}

#[test]
fn a_configuration_error_says_each_fact_once() {
    let dir = ConfigDir::new();
    let config = dir.write_config(
        "[[profiles]]\nname = \"p\"\nca = [\"*\"]\ncommon_name = '(('\nthing_name = \"x\"\npolicy = \"p.tera\"\n",
    );
    let path = config.display().to_string();
    for args in [vec!["lint", "--config"], vec!["check", "--ca", "x", "--cert", "y", "--config"]] {
        let out = jitp().args(&args).arg(&config).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches(&path).count(), 1, "{args:?}: the path once: {stderr}");
        assert_eq!(stderr.matches("profiles[0].common_name").count(), 1, "{args:?}: the key once: {stderr}");
        assert_eq!(stderr.matches("unclosed group").count(), 1, "{args:?}: the message once: {stderr}");
    }
    let out = jitp().args(["lint", "--config", "/nonexistent/jitp.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("/nonexistent/jitp.toml").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

/// `jitp ... | head`: a reader that closes the pipe ends the command at once, without a panic or a message.
#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &Device::new("sensor-0123456789ab"));
    let (ca_arg, cert_arg) = (ca_path.display().to_string(), cert_path.display().to_string());
    let commands: [Vec<&str>; 4] = [
        vec!["check", "--at", AT, "--ca", &ca_arg, "--cert", &cert_arg],
        vec!["check", "--format", "json", "--at", AT, "--ca", &ca_arg, "--cert", &cert_arg],
        vec!["render", "--at", AT, "--ca", &ca_arg, "--cert", &cert_arg],
        vec!["lint"],
    ];
    for args in commands {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("jitp"))
            .current_dir(jitp_testkit::repo_root())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line is written
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: quiet: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: as a tool SIGPIPE ended");
    }
}

#[test]
fn lint_passes_on_shipped_templates_and_fails_on_permissive_ones() {
    jitp().args(["lint", "--config", "templates/jitp.toml"]).assert().code(0);
    let dir = ConfigDir::new();
    dir.write_policy(
        "open.json.tera",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
    );
    let config = dir.write_config(
        "[[profiles]]\nname = \"open\"\nca = [\"*\"]\ncommon_name = '.*'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/open.json.tera\"\n",
    );
    let out = jitp().args(["lint", "--format", "json", "--config"]).arg(config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> =
        json["templates"][0]["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
    assert!(rules.contains(&"allow-wildcard-action") && rules.contains(&"allow-wildcard-resource"), "{rules:?}");
}

#[test]
fn lint_fails_on_a_branch_only_some_subjects_take_naming_line_and_subject() {
    let dir = ConfigDir::new();
    dir.write_policy(
        "ops.json.tera",
        "{\"Version\":\"2012-10-17\",\"Statement\":[\n{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\
         \"Resource\":\"arn:aws:iot:us-east-1:123456789012:client/{{ thing_name }}\"}\n\
         {% if subject.ou == \"ops\" %},\n{\"Effect\":\"Allow\",\"Action\":\"iot:Subscribe\",\
         \"Resource\":\"arn:aws:iot:us-east-1:123456789012:topicfilter/#\"}{% endif %}]}\n",
    );
    let config = dir.write_config(
        "[[profiles]]\nname = \"ops\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9]{4}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/ops.json.tera\"\n",
    );
    let out = jitp().args(["lint", "--config"]).arg(config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("policies/ops.json.tera:4: error[branch]: POLICY_TOO_PERMISSIVE"), "{stdout}");
    assert!(stdout.contains("subject: CN=") && stdout.contains("OU=\"ops\""), "{stdout}");
}

#[test]
fn render_prints_only_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &Device::new("sensor-0123456789ab"));
    let out = jitp().args(["render", "--at", AT, "--ca"]).arg(&ca_path).arg("--cert").arg(&cert_path).output().unwrap();
    assert!(out.status.success());
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
}

#[test]
fn register_then_provision_twice_with_a_persistent_registry() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate valid now: provision decides at the real clock.
    let ca = Ca::new("CLI CA", Alg::P256);
    let mut device = Device::new("sensor-0123456789ab");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    device.not_before = now - DAY;
    device.not_after = now + 30 * DAY;
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &device);
    let registry = format!("memory:{}", dir.path().join("registry.json").display());
    let out = jitp()
        .args(["register", "--registry", &registry, "--ca"])
        .arg(&ca_path)
        .arg("--cert")
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, &out.stdout).unwrap();
    let first = jitp().args(["provision", "--registry", &registry, "--event"]).arg(&event_path).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stdout));
    let record = jitp_testkit::audit_line::check(String::from_utf8_lossy(&first.stdout).trim_end());
    assert_eq!(record["outcome"], "PROVISIONED");
    assert_eq!(record["trigger"], "cli");
    let second = jitp().args(["provision", "--registry", &registry, "--event"]).arg(&event_path).output().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(record["outcome"], "ALREADY_PROVISIONED");
    // A new process: the certificate, its CA (cached per process), then ownership, attachment and policy.
    assert_eq!(record["api_call_count"], 5);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"nope\":1}").unwrap();
    let out = jitp().args(["provision", "--event"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["reason"], "MALFORMED_EVENT");
}

#[test]
fn demo_runs_offline() {
    let out = jitp().args(["demo", "--devices", "12", "--bad", "6"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PROVISIONED") && stdout.contains("DUPLICATE_THING"), "{stdout}");
}

/// A profile's CRL as the security team sees it: `jitp lint` lists it (a stale one under the default
/// `crl_policy = "enforce"` fails the lint), `jitp check` rejects a revoked device with CERT_REVOKED and shows
/// the CRL's status against the CA.
#[test]
fn lint_and_check_show_a_profiles_crl() {
    let ca = Ca::new("CLI CA", Alg::P256);
    let revoked = Device::new("sensor-0123456789ab");
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    std::fs::write(dir.path().join("crl/acme.crl"), ca.crl(&[&revoked.serial], NOW - DAY, NOW + 7 * DAY).pem).unwrap();
    let config = dir.write_config(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"crl/acme.crl\"]\n",
    );
    let lint = |at: &str| jitp().args(["lint", "--at", at, "--config"]).arg(&config).output().unwrap();
    let out = lint(AT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("crl/acme.crl: ok: CRL of CN=CLI CA") && stdout.contains("1 revoked"), "{stdout}");
    let out = lint("2026-02-01T00:00:00Z");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("crl/acme.crl: error[crl]: stale"), "{stdout}");

    let pair = tempfile::tempdir().unwrap();
    let (ca_path, cert_path) = write_pair(pair.path(), &ca, &revoked);
    let check = |cert: &Path, format: &str| {
        jitp()
            .args(["check", "--format", format, "--at", AT, "--config"])
            .arg(&config)
            .arg("--ca")
            .arg(&ca_path)
            .arg("--cert")
            .arg(cert)
            .output()
            .unwrap()
    };
    let out = check(&cert_path, "json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["reason"], "CERT_REVOKED", "{json}");
    assert_eq!(json["crls"][0]["status"], "valid", "{json}");
    let other = pair.path().join("other.pem");
    std::fs::write(&other, ca.issue(&Device::new("sensor-00000000ffff")).pem).unwrap();
    let out = check(&other, "text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("crl             crl/acme.crl: valid (1 revoked"), "{stdout}");
}

/// `jitp lint` says what each CRL covers, counts its holds and removeFromCRL entries, and fails on a CRL that
/// advertises delta CRLs under `crl_policy = "enforce"` (only warns under `"warn"`).
#[test]
fn lint_shows_a_crls_scope_holds_and_deltas() {
    use jitp_testkit::crl_ext::{DpName, Idp, RawExtension};
    use jitp_testkit::{CrlSpec, RevocationReason, Revoked};
    let ca = Ca::new("CLI CA", Alg::P256);
    let mut spec = CrlSpec::new(&[]);
    for (cn, reason) in [
        ("sensor-000000000001", RevocationReason::CertificateHold),
        ("sensor-000000000002", RevocationReason::RemoveFromCrl),
    ] {
        spec.revoked.push(Revoked { serial: Device::new(cn).serial, at: NOW - DAY, reason: Some(reason) });
    }
    spec.extensions = vec![
        RawExtension::idp(&Idp { name: Some(DpName::Uris(vec!["http://crl.cli/a.crl".into()])), ..Idp::default() }),
        RawExtension::freshest_crl("http://crl.cli/delta.crl"),
    ];
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    std::fs::write(dir.path().join("crl/a.crl"), ca.crl_with(&spec).pem).unwrap();
    let config = |policy: &str| {
        dir.write_config(&format!(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"crl/a.crl\"]\ncrl_policy = \"{policy}\"\n"
        ))
    };
    let lint = |path: &Path| jitp().args(["lint", "--at", AT, "--config"]).arg(path).output().unwrap();
    let out = lint(&config("enforce"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for needle in [
        "covers: only certificates whose cRLDistributionPoints names \"http://crl.cli/a.crl\"",
        "crl/a.crl: error[crl-delta]: it advertises delta CRLs (freshestCRL: \"http://crl.cli/delta.crl\")",
        "note[crl-hold]: 1 certificate(s) on hold",
        "warning[crl-remove]: 1 removeFromCRL",
    ] {
        assert!(stdout.contains(needle), "{needle} in {stdout}");
    }
    assert!(!stdout.contains("crl/a.crl: ok"), "{stdout}");
    let out = lint(&config("warn"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("warning[crl-delta]") && stdout.contains("used without them"), "{stdout}");
}

/// A profile whose CRL is an S3 object, and the directory holding a local copy of it (`crl/acme.crl`).
fn s3_crl_config(ca: &Ca, revoked: &Device, next_update: i64) -> (ConfigDir, PathBuf, PathBuf) {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    let local = dir.path().join("crl/acme.crl");
    std::fs::write(&local, ca.crl(&[&revoked.serial], NOW - DAY, next_update).pem).unwrap();
    let config = dir.write_config(&format!(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"{S3_CRL}\"]\n"
    ));
    (dir, config, local)
}

const S3_CRL: &str = "s3://acme-pki-crls/devices/acme.crl";

/// A new CRL previewed before it is published: `--crl-object URI=PATH` stands in for the S3 object, and the
/// lint names the URI (fresh: ok with its revoked count; stale under `enforce`: the lint fails).
#[test]
fn lint_previews_an_s3_crl_from_a_local_file() {
    let ca = Ca::new("CLI CA", Alg::P256);
    let revoked = Device::new("sensor-0123456789ab");
    let (_dir, config, local) = s3_crl_config(&ca, &revoked, NOW + 7 * DAY);
    let object = format!("{S3_CRL}={}", local.display());
    let lint = |at: &str, format: &str| {
        jitp()
            .args(["lint", "--offline", "--at", at, "--format", format, "--crl-object", &object, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = lint(AT, "text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{S3_CRL}: ok: CRL of CN=CLI CA")) && stdout.contains("1 revoked"), "{stdout}");
    let out = lint(AT, "json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["crls"][0]["file"].as_str(), json["crls"][0]["revoked"].as_u64()), (Some(S3_CRL), Some(1)));
    assert_eq!(json["crls"][0]["stale"], false, "{json}");
    let out = lint("2026-02-01T00:00:00Z", "text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{S3_CRL}: error[crl]: stale")), "{stdout}");
}

/// `--crl-object` for an object jitp.toml does not list, or a malformed URI, is refused naming the flag and
/// the value; `--offline` without a local copy names the object that needs one.
#[test]
fn lint_refuses_unknown_or_missing_s3_crls() {
    let ca = Ca::new("CLI CA", Alg::P256);
    let (_dir, config, local) = s3_crl_config(&ca, &Device::new("sensor-0123456789ab"), NOW + 7 * DAY);
    let lint = |extra: &[String]| {
        let out = jitp().arg("lint").args(extra).arg("--config").arg(&config).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let other = format!("s3://acme-pki-crls/other.crl={}", local.display());
    let (code, stderr) = lint(&["--offline".into(), "--crl-object".into(), other.clone()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--crl-object") && stderr.contains(&other) && stderr.contains(S3_CRL), "{stderr}");
    let (code, stderr) =
        lint(&["--crl-object".into(), format!("S3://acme-pki-crls/devices/acme.crl={}", local.display())]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--crl-object") && stderr.contains("lowercase"), "{stderr}");
    let (code, stderr) = lint(&["--crl-object".into(), S3_CRL.into()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--crl-object") && stderr.contains("PATH"), "{stderr}");
    let given = format!("{S3_CRL}={}", local.display());
    let (code, stderr) = lint(&["--crl-object".into(), given.clone(), "--crl-object".into(), given]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--crl-object") && stderr.contains("given twice"), "{stderr}");
    let (code, stderr) = lint(&["--offline".into()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(S3_CRL) && stderr.contains("--offline") && stderr.contains("--crl-object"), "{stderr}");
    let (code, stderr) = lint(&["--offline".into(), "--crl-object".into(), format!("{S3_CRL}=/nonexistent.crl")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(S3_CRL) && stderr.contains("/nonexistent.crl"), "{stderr}");
    let (code, stderr) = lint(&["--offline".into(), "--crl-object".into(), format!("{S3_CRL}={}", config.display())]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--crl-object {S3_CRL}={}: ", config.display())), "names flag and path: {stderr}");
}

/// `jitp check` with the CRL given locally rejects a device it revokes.
#[test]
fn check_rejects_a_device_revoked_by_a_local_copy_of_an_s3_crl() {
    let ca = Ca::new("CLI CA", Alg::P256);
    let revoked = Device::new("sensor-0123456789ab");
    let (_dir, config, local) = s3_crl_config(&ca, &revoked, NOW + 7 * DAY);
    let pair = tempfile::tempdir().unwrap();
    let (ca_path, cert_path) = write_pair(pair.path(), &ca, &revoked);
    let out = jitp()
        .args(["check", "--offline", "--format", "json", "--at", AT, "--crl-object"])
        .arg(format!("{S3_CRL}={}", local.display()))
        .arg("--config")
        .arg(&config)
        .arg("--ca")
        .arg(&ca_path)
        .arg("--cert")
        .arg(&cert_path)
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["reason"], "CERT_REVOKED", "{json}");
    assert_eq!(json["crls"][0]["file"], S3_CRL, "{json}");
}

/// Without `--crl-object` the S3 CRL is fetched from S3 (moto's, at `--endpoint-url`); a missing object is an
/// error naming the URI and the cause. Skipped when moto is not installed.
#[test]
fn lint_fetches_an_s3_crl_from_s3() {
    let Some(moto) = jitp_testkit::moto::MotoServer::start() else { return };
    let ca = Ca::new("CLI CA", Alg::P256);
    let (_dir, config, _) = s3_crl_config(&ca, &Device::new("sensor-0123456789ab"), NOW + 7 * DAY);
    let lint = || {
        jitp()
            .args(["lint", "--at", AT, "--region", "us-east-1", "--endpoint-url", &moto.endpoint, "--config"])
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let out = lint();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(S3_CRL) && stderr.contains("--crl-object"), "{stderr}");
    assert_eq!(s3_put(&moto, "/acme-pki-crls", ""), 200);
    let pem = ca.crl(&[&Device::new("sensor-0123456789ab").serial], NOW - DAY, NOW + 7 * DAY).pem;
    assert_eq!(s3_put(&moto, "/acme-pki-crls/devices/acme.crl", &pem), 200);
    let out = lint();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{S3_CRL}: ok: CRL of CN=CLI CA")) && stdout.contains("1 revoked"), "{stdout}");
}

/// A path-style S3 PUT to moto as the account (moto checks no signature, but refuses an anonymous overwrite of
/// an object): its status.
fn s3_put(moto: &jitp_testkit::moto::MotoServer, path: &str, body: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(moto.addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let auth =
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        moto.addr,
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Kills the `jitp serve` it holds when dropped, so that a failed assertion leaves no server behind.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on 127.0.0.1:`port`: (status, body), or None if nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response.split_once("\r\n\r\n")?.1.to_owned()))
}

/// `jitp serve` fetches the S3 CRLs at start and again every `--crl-refresh-seconds`: a CRL published while it
/// runs shows in `GET /v1/lint` within the period. Over moto's S3 (IoT on the same endpoint); skipped without
/// moto. Takes the setting's 10 s floor.
#[test]
fn serve_refreshes_an_s3_crl() {
    let Some(moto) = jitp_testkit::moto::MotoServer::start() else { return };
    let ca = Ca::new("CLI CA", Alg::P256);
    let first = Device::new("sensor-0123456789ab");
    let (_dir, config, _) = s3_crl_config(&ca, &first, NOW + 7 * DAY);
    assert_eq!(s3_put(&moto, "/acme-pki-crls", ""), 200);
    // The fixtures' clock is 2026-01-01: nextUpdate far enough ahead to be fresh at the real clock too.
    let crl = |serials: &[&[u8]]| ca.crl(serials, NOW - DAY, NOW + 3650 * DAY).pem;
    assert_eq!(s3_put(&moto, "/acme-pki-crls/devices/acme.crl", &crl(&[&first.serial])), 200);
    let port = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
    let _server = Server(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("jitp"))
            .args(["serve", "--no-intake", "--registry", "aws", "--region", "us-east-1", "--crl-refresh-seconds", "10"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--endpoint-url", &moto.endpoint, "--config"])
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let revoked = || {
        let (status, body) = http_get(port, "/v1/lint")?;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["crls"][0]["file"], S3_CRL, "{json}");
        json["crls"][0]["revoked"].as_u64()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        seen = revoked();
    }
    assert_eq!(seen, Some(1), "the CRL fetched at start");
    let second = Device::new("sensor-00000000ffff");
    let pem = crl(&[&first.serial, &second.serial]);
    assert_eq!(s3_put(&moto, "/acme-pki-crls/devices/acme.crl", &pem), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    while seen != Some(2) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        seen = revoked();
    }
    assert_eq!(seen, Some(2), "the CRL published while it runs, within the refresh period");
}

fn explain_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = jitp().arg("explain").args(args).args(["--format", "json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn explain_answers_for_a_device_as_provisioning_renders_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CLI CA", Alg::P256);
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &Device::new("sensor-0123456789ab"));
    let (ca_arg, cert_arg) = (ca_path.to_str().unwrap(), cert_path.to_str().unwrap());
    let device = ["--at", AT, "--ca", ca_arg, "--cert", cert_arg];
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--action", "iot:Publish", "--topic", "things/sensor-0123456789ab/telemetry"], 0, "ALLOWED"),
        (&["--action", "iot:Connect"], 0, "ALLOWED"),
        (&["--action", "iot:Connect", "--client-id", "sensor-ffffffffffff"], 1, "IMPLICIT_DENY"),
        (&["--action", "iot:Subscribe", "--topic", "things/sensor-ffffffffffff/commands/#"], 1, "IMPLICIT_DENY"),
        (&["--action", "iot:Subscribe", "--topic", "#"], 1, "IMPLICIT_DENY"),
        (&["--action", "iot:Receive", "--topic", "things/sensor-0123456789ab/commands/reboot"], 0, "ALLOWED"),
    ];
    for (args, code, decision) in cases {
        let (got, json) = explain_json(&[&device[..], args].concat());
        assert_eq!((got, json["decision"].as_str()), (code, Some(decision)), "{args:?}: {json}");
        assert_eq!(json["device"]["thing_name"], "sensor-0123456789ab");
    }
    let (_, json) = explain_json(
        &[&device[..], &["--action", "iot:Publish", "--topic", "things/sensor-0123456789ab/telemetry"]].concat(),
    );
    assert_eq!(json["statement"]["sid"], "PublishOwnTopics");
    assert_eq!(json["resource"], "arn:aws:iot:us-east-1:123456789012:topic/things/sensor-0123456789ab/telemetry");

    // A refused certificate gets no policy: denied, with the reason.
    let mut expired = Device::new("sensor-0123456789ab");
    expired.not_before = NOW - 30 * DAY;
    expired.not_after = NOW - DAY;
    let (ca_path, cert_path) = write_pair(dir.path(), &ca, &expired);
    let (code, json) = explain_json(&[
        "--at",
        AT,
        "--ca",
        ca_path.to_str().unwrap(),
        "--cert",
        cert_path.to_str().unwrap(),
        "--action",
        "iot:Connect",
    ]);
    assert_eq!((code, json["decision"].as_str()), (1, Some("IMPLICIT_DENY")), "{json}");
    assert_eq!(json["refused"]["reason"], "CERT_EXPIRED");
}

#[test]
fn explain_answers_for_any_policy_document() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*"},
            {"Sid": "Org", "Effect": "Deny", "Action": "iot:Publish", "Resource": "*",
             "Condition": {"StringNotEquals": {"iot:Certificate.Subject.Organization": "Acme"}}}]}"#,
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let arn = "arn:aws:iot:us-east-1:123456789012:topic/t1/x";
    let base = ["--policy", p, "--action", "iot:Publish", "--resource", arn, "--client-id", "t1", "--thing-name", "t1"];
    let (code, json) =
        explain_json(&[&base[..], &["--thing-attached", "--subject-field", "Organization=Acme"]].concat());
    assert_eq!((code, json["decision"].as_str()), (0, Some("ALLOWED")), "{json}");
    assert_eq!(json["variables"][0]["value"], "t1");
    let (code, json) =
        explain_json(&[&base[..], &["--thing-attached", "--subject-field", "Organization=Other"]].concat());
    assert_eq!(
        (code, json["decision"].as_str(), json["statement"]["sid"].as_str()),
        (1, Some("EXPLICIT_DENY"), Some("Org"))
    );
    // Not attached: the thing variable does not resolve; the subject not given: the Deny cannot be decided.
    let (code, json) = explain_json(&base);
    assert_eq!((code, json["decision"].as_str()), (1, Some("NOT_MODELLED")), "{json}");
    assert_eq!(json["denied_either_way"], true);
    // Usage errors: 2.
    jitp()
        .args(["explain", "--policy", p, "--action", "iot:Publish", "--topic", "a/+", "--client-id", "c"])
        .assert()
        .code(2);
    jitp()
        .args(["explain", "--policy", p, "--action", "iot:Nothing", "--topic", "a", "--client-id", "c"])
        .assert()
        .code(2);
    jitp().args(["explain", "--policy", p, "--action", "iot:Publish", "--topic", "a"]).assert().code(2);
    jitp()
        .args(["explain", "--policy", "/nonexistent", "--action", "iot:Publish", "--topic", "a", "--client-id", "c"])
        .assert()
        .code(2);
    jitp()
        .args([
            "explain",
            "--policy",
            p,
            "--action",
            "iot:Publish",
            "--topic",
            "a",
            "--client-id",
            "c",
            "--subject-field",
            "O=Acme",
        ])
        .assert()
        .code(2);
}

#[test]
fn lint_runs_the_policy_tests_beside_the_templates() {
    // A change the lint rules accept (still scoped to the thing) that the security team's tests refuse.
    let dir = ConfigDir::shipped();
    let sensor = std::fs::read_to_string(dir.path().join("policies/sensor.json.tera")).unwrap();
    dir.write_policy(
        "sensor.json.tera",
        &sensor.replace("topic/things/{{ thing_name }}/events/*", "topic/things/{{ thing_name }}/*"),
    );
    let out = jitp().args(["lint", "--config"]).arg(dir.config_path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("policies/sensor.tests.toml:19: error[policy-test]: may not iot:Publish things/{{ thing_name }}/commands/reboot: iot:Publish arn:aws:iot:us-east-1:123456789012:topic/things/sensor-")
            && stdout.contains("is ALLOWED, decided by statement #1 \"PublishOwnTopics\""),
        "{stdout}"
    );
    // The deciding statement's line: statement #1 is the template's second "Effect".
    let line = sensor.lines().enumerate().filter(|(_, l)| l.contains("\"Effect\"")).nth(1).map(|(n, _)| n + 1).unwrap();
    assert!(
        stdout.contains(&format!("policies/sensor.json.tera:{line}")) && stdout.contains("    subject: CN=\"sensor-"),
        "{stdout}"
    );
    // The JSON report carries them, and the shipped templates pass theirs.
    let out = jitp().args(["lint", "--format", "json", "--config"]).arg(dir.config_path()).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["templates"][0]["policy_tests"][0]["line"], 19, "{json}");
    let out = jitp().args(["lint", "--format", "json", "--config", "templates/jitp.toml"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert!(json["templates"][0]["policy_checks"].as_u64().unwrap() > 100, "{json}");
    // A broken tests file is a lint error naming its line.
    std::fs::write(dir.path().join("policies/gateway.tests.toml"), "allow = [\"iot:Publsh x\"]\n").unwrap();
    let out = jitp().args(["lint", "--config"]).arg(dir.config_path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("policies/gateway.tests.toml:1: error[policy-test]: \"iot:Publsh x\": unknown action"),
        "{stdout}"
    );
}
