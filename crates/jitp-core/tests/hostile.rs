#![cfg(test)]
//! No input panics the decision: random bytes, and valid certificates with random bytes changed.

use std::sync::OnceLock;

use jitp_core::decide::check;
use jitp_core::rules::Rules;
use jitp_policy::policy::AwsContext;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW, to_pem};
use proptest::prelude::*;

fn config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn fixture() -> &'static (Ca, Vec<u8>) {
    static F: OnceLock<(Ca, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let ca = Ca::new("Hostile CA", Alg::P256);
        let der = ca.issue(&Device::new("sensor-0123456789ab")).der;
        (ca, der)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (ca, _) = fixture();
        let report = check(config(), ca.cert.pem.as_bytes(), &bytes, None, NOW, &AwsContext::default());
        prop_assert!(!report.accepted());
        let wrapped = to_pem(&bytes);
        let report = check(config(), ca.cert.pem.as_bytes(), wrapped.as_bytes(), None, NOW, &AwsContext::default());
        prop_assert!(!report.accepted());
    }

    #[test]
    fn mutated_certificates_never_panic_and_never_pass_with_a_changed_signature_scope(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let (ca, der) = fixture();
        let mut mutated = der.clone();
        for (at, byte) in &edits {
            let i = at.index(mutated.len());
            mutated[i] = *byte;
        }
        let report = check(config(), ca.cert.pem.as_bytes(), to_pem(&mutated).as_bytes(), None, NOW, &AwsContext::default());
        if mutated != *der && report.accepted() {
            // Only bytes outside the signed part may change without detection (e.g. unused bits), and then the
            // decision must be the original one.
            prop_assert_eq!(report.thing_name.as_deref(), Some("sensor-0123456789ab"));
        }
    }

    #[test]
    fn mutated_ca_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let (ca, der) = fixture();
        let mut ca_der = ca.cert.der.clone();
        for (at, byte) in &edits {
            let i = at.index(ca_der.len());
            ca_der[i] = *byte;
        }
        let _ = check(config(), to_pem(&ca_der).as_bytes(), to_pem(der).as_bytes(), None, NOW, &AwsContext::default());
    }
}

#[test]
fn template_syntax_errors_name_file_and_line() {
    let dir = ConfigDir::new();
    dir.write_policy("p.json.tera", "{\n  \"Version\": \"2012-10-17\",\n  \"x\": \"{{ thing_name \"\n}\n");
    let path = dir.write_config(
        "[[profiles]]\nname = \"p\"\nca = [\"*\"]\ncommon_name = '.*'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/p.json.tera\"\n",
    );
    let err = Rules::load(path).unwrap_err().to_string();
    assert!(err.contains("p.json.tera"), "{err}");
    assert!(err.contains(":3"), "names line 3: {err}");
}

#[test]
fn config_errors_name_file_key_and_line() {
    let dir = ConfigDir::new();
    dir.write_policy("p.json.tera", "{}");
    let cases = [
        ("common_name = '(unclosed'", "common_name", "regex"),
        ("common_name = '.*'\nmin_rsa_bits = 1024", "min_rsa_bits", "2048"),
        ("common_name = '.*'\nca_chain = [\"missing.pem\"]", "missing.pem", ""),
        ("common_name = '.*'\nthing_groups = [\"a b\"]", "thing_groups", "valid"),
    ];
    for (extra, needle, also) in cases {
        let text = format!(
            "[[profiles]]\nname = \"p\"\nca = [\"*\"]\n{extra}\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/p.json.tera\"\n"
        );
        let err = Rules::load(dir.write_config(&text)).unwrap_err().to_string();
        assert!(err.contains("jitp.toml") || err.contains("missing.pem"), "{err}");
        assert!(err.contains(needle) && err.contains(also), "{extra}: {err}");
    }
    let path = dir.write_config("[[profiles]]\nname = \"p\"\nca = [\"nothex\"]\ncommon_name = '.*'\nthing_name = \"x\"\npolicy = \"policies/p.json.tera\"\n");
    let err = Rules::load(path).unwrap_err().to_string();
    assert!(err.contains("jitp.toml:3") && err.contains("profiles[0].ca"), "{err}");
}
