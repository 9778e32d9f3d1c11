#![cfg(test)]
//! Configurations that would silently share a policy between devices, or that AWS would refuse on every event,
//! are refused at load with an error naming both profiles; the rest load.

use std::path::Path;

use jitp_core::rules::Rules;
use jitp_profile::profile::Overrides;
use jitp_testkit::config_dir::ConfigDir;
use proptest::prelude::*;

/// A directory with the shipped sensor template under several names.
fn dir() -> ConfigDir {
    let dir = ConfigDir::new();
    for name in ["sensor.json.tera", "sensor.v2.json.tera", "gateway.json.tera", "other.json.tera"] {
        dir.copy_policy("sensor.json.tera", name);
    }
    dir
}

/// A profile table; `extra` lines go inside it.
fn profile(name: &str, cn: &str, extra: &str) -> String {
    format!(
        "[[profiles]]\nname = \"{name}\"\nca = [\"*\"]\ncommon_name = '{cn}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\nthing_type = \"t\"\n{extra}\n"
    )
}

fn load(dir: &Path, toml: &str) -> Result<Rules, String> {
    Rules::from_str_at(toml, &dir.join("jitp.toml"), &Overrides::default()).map_err(|e| e.to_string())
}

#[track_caller]
fn refused(toml: &str, needles: &[&str]) {
    let d = dir();
    match load(d.path(), toml) {
        Ok(_) => panic!("loaded, but must be refused:\n{toml}"),
        Err(e) => {
            for n in needles {
                assert!(e.contains(n), "{e:?} should mention {n:?}");
            }
        }
    }
}

#[track_caller]
fn loads(toml: &str) {
    let d = dir();
    if let Err(e) = load(d.path(), toml) {
        panic!("must load: {e}\n{toml}");
    }
}

#[test]
fn prefixes_that_overlap_through_the_cn_are_refused() {
    // The measured case: jitp- + gw-ab12 == jitp-gw- + ab12.
    let toml = profile("a", "gw-[a-z0-9]{4}", "policy_prefix = \"jitp-\"")
        + &profile("b", "[a-z0-9]{4}", "policy_prefix = \"jitp-gw-\"");
    refused(&toml, &["\"a\"", "\"b\"", "same policy name"]);
    // Same, the other way round in file order.
    let toml = profile("b", "[a-z0-9]{4}", "policy_prefix = \"jitp-gw-\"")
        + &profile("a", "gw-[a-z0-9]{4}", "policy_prefix = \"jitp-\"");
    refused(&toml, &["\"a\"", "\"b\""]);
    // `:` in a thing name is `.` in its policy name: p- + a:b == p-a. + b.
    let toml = profile("a", "a:b", "policy_prefix = \"p-\"") + &profile("b", "b", "policy_prefix = \"p-a.\"");
    refused(&toml, &["\"a\"", "\"b\""]);
}

#[test]
fn prefixes_that_cannot_meet_load() {
    // jitp-gw- + anything vs jitp- + sensor-…: a sensor name never starts with gw-.
    loads(
        &(profile("a", "sensor-[0-9a-f]{12}", "policy_prefix = \"jitp-\"")
            + &profile("b", "[a-z0-9]{4}", "policy_prefix = \"jitp-gw-\"")),
    );
    // `+` is in no thing name, so jitp+ never equals jitp-…
    loads(
        &(profile("a", "[a-z+]{1,8}", "policy_prefix = \"jitp+\"")
            + &profile("b", "[a-z]{1,8}", "policy_prefix = \"jitp-\"")),
    );
    // The shipped shape: one prefix, disjoint CN patterns.
    loads(&(profile("s", "sensor-[0-9a-f]{12}", "") + &profile("g", "gw-[a-z]{2}-[0-9]{4}", "")));
}

/// With one prefix, two profiles meet only on one thing name: one thing, one owner (the ownership claim runs
/// before any policy is written), so the second device is DUPLICATE_THING and never writes the policy.
#[test]
fn one_prefix_and_overlapping_names_load() {
    loads(&(profile("a", "dev-[0-9]{2}", "") + &profile("b", "dev-.*", "")));
    let odd = profile("a", "dev-[0-9]{2}", "").replace("{{ subject.cn }}", "{{ subject.serial_number }}");
    loads(&(odd.clone() + &profile("b", "x", "")));
    // A thing name jitp cannot bound (not the CN) is taken to be any name: against another prefix it meets.
    refused(&(odd + &profile("b", "x", "policy_prefix = \"jitp-x\"")), &["\"a\"", "\"b\""]);
}

#[test]
fn shared_policies_with_one_name_and_different_documents_are_refused() {
    let shared = |name: &str, policy: &str| {
        profile(name, &format!("{name}-[0-9]{{4}}"), "policy_mode = \"shared\"")
            .replace("policies/sensor.json.tera", policy)
    };
    // sensor.json.tera and sensor.v2.json.tera both make jitp-sensor.
    refused(
        &(shared("a", "policies/sensor.json.tera") + &shared("b", "policies/sensor.v2.json.tera")),
        &["\"a\"", "\"b\"", "jitp-sensor"],
    );
    // One template, one document: one shared policy is what shared mode means.
    loads(&(shared("a", "policies/sensor.json.tera") + &shared("b", "policies/sensor.json.tera")));
    loads(&(shared("a", "policies/sensor.json.tera") + &shared("b", "policies/other.json.tera")));
    // A per-thing profile whose thing could be named "sensor" meets the shared policy jitp-sensor.
    refused(&(shared("a", "policies/sensor.json.tera") + &profile("b", "sens.r", "")), &["\"a\"", "\"b\""]);
    loads(&(shared("a", "policies/sensor.json.tera") + &profile("b", "gw-[0-9]{4}", "")));
}

#[test]
fn what_aws_would_refuse_on_every_event_is_refused_at_load() {
    // A 60-character prefix and CNs of up to 69 characters: policy names of up to 129.
    let prefix = format!("policy_prefix = \"{}\"", "p".repeat(60));
    refused(
        &profile("a", &format!("{}[a-z]{{1,11}}", "c".repeat(58)), &prefix),
        &["69 characters", "129", "allows 128"],
    );
    loads(&profile("a", &format!("{}[a-z]{{1,10}}", "c".repeat(58)), &prefix));
    // Attributes: 3 without a thing type, jitp's own included; 50 with one.
    let untyped = |n: usize| {
        let attrs: Vec<String> = (0..n).map(|i| format!("a{i} = \"x\"")).collect();
        profile("a", "x", &format!("attributes = {{ {} }}", attrs.join(", "))).replace("thing_type = \"t\"\n", "")
    };
    loads(&untyped(2));
    refused(&untyped(3), &["3 attributes", "jitp_certificate", "allows 3"]);
    let typed: Vec<String> = (0..50).map(|i| format!("a{i} = \"x\"")).collect();
    refused(&profile("a", "x", &format!("attributes = {{ {} }}", typed.join(", "))), &["allows 50"]);
    refused(&profile("a", "x", "attributes = { jitp_certificate = \"{{ subject.cn }}\" }"), &["jitp's own attribute"]);
}

/// The policy-name bound counts the characters that can reach a thing name (not the UTF-8 bytes a `.` could
/// match), and its advice, followed, loads: for every prefix length and text around the CN.
#[test]
fn the_policy_name_advice_works_when_followed() {
    for (prefix, around) in [("jitp-", ""), ("jitp-", "site1-"), ("a-much-longer-prefix-", "x:"), ("p", "")] {
        let with = |cn: &str| {
            profile("a", cn, &format!("policy_prefix = \"{prefix}\""))
                .replace("{{ subject.cn }}", &format!("{around}{{{{ subject.cn }}}}"))
        };
        let room = 128 - prefix.len() - around.len();
        for too_long in [
            format!(".{{1,{}}}", room + 1),
            format!("[A-Za-z0-9]{{{}}}", room + 1),
            format!(".{{{},{}}}", room + 1, room + 5),
        ] {
            let d = dir();
            let err = load(d.path(), &with(&too_long)).err().unwrap_or_default();
            assert!(err.contains(&format!("at most {room} characters")), "{too_long}: {err}");
            // The advice, followed.
            assert!(load(d.path(), &with(&format!(".{{1,{room}}}"))).is_ok(), "{prefix} {around}: .{{1,{room}}}");
            assert!(load(d.path(), &with(&format!("[A-Za-z0-9_-]{{1,{room}}}"))).is_ok());
        }
    }
    // Characters that can never be in a thing name do not count: a CN of `é` plus 123 others fits.
    loads(&profile("a", "\u{e9}?[a-z]{1,123}", ""));
}

/// In rotate mode an outgoing certificate may write the thing's policy after the incoming one: the document must
/// be the same whichever certificate writes it.
#[test]
fn rotation_needs_a_policy_that_depends_on_the_thing_alone() {
    let d = dir();
    let reads_subject = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/{{ thing_name }}-{{ subject.ou | default(value='x') }}"}]}"#;
    std::fs::write(d.path().join("policies/other.json.tera"), reads_subject).unwrap();
    let rotate = "on_duplicate = \"rotate\"";
    let toml = profile("a", "x", rotate).replace("sensor.json.tera", "other.json.tera");
    assert!(load(d.path(), &toml).is_err_and(|e| e.contains("rotate") && e.contains("subject")));
    assert!(load(d.path(), &toml.replace(rotate, "")).is_ok(), "reject mode may read the subject");
    loads(&profile("a", "x", rotate));
    // Same prefix, overlapping names, different templates: the thing can pass between the profiles.
    let two = profile("a", "dev-[0-9]", rotate)
        + &profile("b", "dev-.*", rotate).replace("sensor.json.tera", "gateway.json.tera");
    refused(&two, &["\"a\"", "\"b\""]);
    loads(&(profile("a", "dev-[0-9]", rotate) + &profile("b", "dev-.*", rotate)));
}

#[test]
fn a_cn_pattern_must_be_a_regex_on_its_own() {
    // `a)|(.*` would close jitp's anchoring group: ^(?:a)|(.*)$ matches anything.
    for bad in ["a)|(.*", "a)", "(a", "a)(?:b"] {
        refused(&profile("a", bad, ""), &["common_name", "on its own"]);
    }
}

proptest! {
    /// Over literal CNs and prefixes from a tiny alphabet the answer is known exactly: two different things get
    /// one policy name iff prefix_a + f(cn_a) == prefix_b + f(cn_b) (f spells `:` as `.`) with different
    /// prefixes (one prefix and one name is one thing). The loader must refuse exactly then.
    #[test]
    fn the_collision_check_is_exact_on_literals(
        pa in "[a.-]{0,3}", pb in "[a.-]{0,3}", ca in "[a:-]{1,3}", cb in "[a:-]{1,3}",
    ) {
        let f = |s: &str| s.replace(':', ".");
        let collide = pa != pb && format!("{pa}{}", f(&ca)) == format!("{pb}{}", f(&cb));
        let esc = |s: &str| s.replace('.', "\\.").replace('-', "\\-");
        let toml = profile("a", &esc(&ca), &format!("policy_prefix = \"{pa}\""))
            + &profile("b", &esc(&cb), &format!("policy_prefix = \"{pb}\""));
        let d = dir();
        let result = load(d.path(), &toml);
        prop_assert_eq!(result.is_err(), collide, "{:?}", result.err());
    }
}
