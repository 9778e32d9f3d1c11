#![cfg(test)]
//! `jitp guard`: the connect guard's decision offline. stdout `{"decision", "reason", "message"}`, exit 0 allow,
//! 1 deny, 2 a usage or configuration error.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, CrlSpec, DAY, Device, NOW, RevocationReason, Revoked};
use serde_json::Value;

const AT: &str = "2026-01-01T00:00:00Z";

struct Setup {
    dir: ConfigDir,
    ca: Ca,
}

impl Setup {
    /// A profile `sensors` with the CRL `acme.crl` (revoking `sensor-00000000dead`, holding
    /// `sensor-00000000f00d`) and the deny list `denied.txt` (`sensor-0000000000dd`'s serial).
    fn new() -> Setup {
        let ca = Ca::new("jitp guard CLI CA", Alg::P256);
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        let crl = CrlSpec {
            revoked: vec![
                Revoked::serial(&Device::new("sensor-00000000dead").serial),
                Revoked {
                    reason: Some(RevocationReason::CertificateHold),
                    ..Revoked::serial(&Device::new("sensor-00000000f00d").serial)
                },
            ],
            ..CrlSpec::new(&[])
        };
        std::fs::write(dir.path().join("acme.crl"), ca.crl_with(&crl).pem).unwrap();
        let denied: String = Device::new("sensor-0000000000dd").serial.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.path().join("denied.txt"), format!("serial:{denied}\n")).unwrap();
        dir.write_config(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\ndeny_list = \"denied.txt\"\ncrl = [\"acme.crl\"]\n",
        );
        std::fs::write(dir.path().join("ca.pem"), &ca.cert.pem).unwrap();
        Setup { dir, ca }
    }

    fn cert(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn device(&self, device: &Device) -> PathBuf {
        let name = format!("{}-{}.pem", device.cn.as_deref().unwrap_or("none"), device.not_after);
        self.cert(&name, &self.ca.issue(device).pem)
    }

    /// `jitp guard --format json` at `AT` unless `extra` gives another `--at`.
    fn guard(&self, cert: &Path, extra: &[&str]) -> (i32, Value, String) {
        let out = Command::cargo_bin("jitp")
            .unwrap()
            .arg("guard")
            .arg("--config")
            .arg(self.dir.config_path())
            .arg("--ca")
            .arg(self.dir.path().join("ca.pem"))
            .arg("--cert")
            .arg(cert)
            .args(["--format", "json"])
            .args(if extra.contains(&"--at") { &[][..] } else { &["--at", AT][..] })
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn allow_and_every_refusal_with_its_code_and_exit_status() {
    let s = Setup::new();
    let mut expired = Device::new("sensor-0000000000e1");
    expired.not_after = NOW - 301;
    let mut within = Device::new("sensor-0000000000e2");
    within.not_after = NOW - 299;
    let other = Ca::new("jitp guard CLI other CA", Alg::P256);
    let cases = [
        ("valid", s.device(&Device::new("sensor-0000000000aa")), None),
        ("expired within the skew", s.device(&within), None),
        ("revoked", s.device(&Device::new("sensor-00000000dead")), Some("CERT_REVOKED")),
        ("on hold", s.device(&Device::new("sensor-00000000f00d")), Some("CERT_ON_HOLD")),
        ("denied", s.device(&Device::new("sensor-0000000000dd")), Some("CERT_DENIED")),
        ("expired", s.device(&expired), Some("CERT_EXPIRED")),
        ("out of profile", s.device(&Device::new("gw-xx-0001")), Some("SUBJECT_MISMATCH")),
        ("another CA", s.cert("other.pem", &other.issue(&Device::new("sensor-0000000000aa")).pem), Some("UNKNOWN_CA")),
        ("not a certificate", s.cert("junk.pem", "hello"), Some("MALFORMED_CERTIFICATE")),
        (
            "two certificates",
            s.cert("two.pem", &format!("{}{}", s.ca.cert.pem, s.ca.cert.pem)),
            Some("MALFORMED_CERTIFICATE"),
        ),
    ];
    for (name, cert, want) in cases {
        let (code, json, stderr) = s.guard(&cert, &[]);
        let keys: Vec<&String> = json.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["decision", "reason", "message"], "{name}: {json} {stderr}");
        match want {
            None => {
                assert_eq!(
                    (code, &json["decision"], &json["reason"]),
                    (0, &"allow".into(), &Value::Null),
                    "{name}: {json}"
                );
            }
            Some(reason) => {
                assert_eq!(
                    (code, &json["decision"], &json["reason"]),
                    (1, &"deny".into(), &reason.into()),
                    "{name}: {json}"
                );
            }
        }
    }
}

#[test]
fn at_moves_the_clock() {
    let s = Setup::new();
    let cert = s.device(&Device::new("sensor-0000000000aa"));
    // Device::new is valid from NOW - 1 day: two days earlier it is not yet valid.
    let (code, json, _) = s.guard(&cert, &["--at", "2025-12-30T00:00:00Z"]);
    assert_eq!((code, json["reason"].as_str()), (1, Some("CERT_NOT_YET_VALID")), "{json}");
    let late = time::OffsetDateTime::from_unix_timestamp(NOW + 400 * DAY).unwrap();
    let late = late.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (code, json, _) = s.guard(&cert, &["--at", &late]);
    assert_eq!((code, json["reason"].as_str()), (1, Some("CERT_EXPIRED")), "{json}");
}

#[test]
fn configuration_and_usage_errors_exit_2() {
    let s = Setup::new();
    let cert = s.device(&Device::new("sensor-0000000000aa"));
    // jitp.toml missing.
    let out = Command::cargo_bin("jitp")
        .unwrap()
        .args(["guard", "--config", "/nonexistent/jitp.toml", "--ca"])
        .arg(s.dir.path().join("ca.pem"))
        .arg("--cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // A CA file that is not a certificate.
    std::fs::write(s.dir.path().join("ca.pem"), "not a CA").unwrap();
    let (code, _, stderr) = s.guard(&cert, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--ca"), "{stderr}");
    // A bad --at.
    let (code, _, stderr) = s.guard(&cert, &["--at", "yesterday"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn text_format_says_allow_or_deny() {
    let s = Setup::new();
    let out = Command::cargo_bin("jitp")
        .unwrap()
        .arg("guard")
        .arg("--config")
        .arg(s.dir.config_path())
        .arg("--ca")
        .arg(s.dir.path().join("ca.pem"))
        .arg("--cert")
        .arg(s.device(&Device::new("sensor-00000000dead")))
        .args(["--at", AT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("DENY   CERT_REVOKED: "));
}
