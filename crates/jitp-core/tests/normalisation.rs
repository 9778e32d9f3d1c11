#![cfg(test)]
//! Issue 12 item 3: a subject value that reaches a thing name, an attribute or a policy is used exactly as it
//! is, or the certificate is rejected. No trimming, no case folding of non-ASCII onto ASCII, no other
//! normalisation: two different subjects never get one thing name unless the template says so explicitly.

use std::sync::OnceLock;

use jitp_core::decide::{CheckReport, check};
use jitp_core::rules::Rules;
use jitp_pki::reason::ReasonCode;
use jitp_policy::policy::AwsContext;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, Dn, NOW};
use proptest::prelude::*;

/// A configuration directory with a copy of the sensor template.
fn config_dir() -> ConfigDir {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    dir
}

/// Write `toml` (profiles only) beside a copy of the sensor template and load it.
fn load(toml: &str) -> Result<Rules, jitp_profile::ConfigError> {
    let dir = config_dir();
    Rules::load(dir.write_config(toml))
}

fn profile(name: &str, thing_name: &str, extra: &str) -> String {
    format!(
        "[[profiles]]\nname = \"{name}\"\nca = [\"*\"]\ncommon_name = '(?is).+'\norganization = [\"{name}\"]\n\
         thing_name = \"{thing_name}\"\npolicy = \"policies/sensor.json.tera\"\n{extra}\n"
    )
}

/// One profile per thing_name expression under test, selected by the subject's O.
const EXPRESSIONS: &[(&str, &str)] = &[
    ("ident", "{{ subject.cn }}"),
    ("lower", "{{ subject.cn | lower }}"),
    ("upper", "{{ subject.cn | upper }}"),
    ("capitalize", "{{ subject.cn | capitalize }}"),
    ("serial", "{{ subject.serial_number }}"),
];

fn config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| {
        let mut text = String::new();
        for (name, expr) in EXPRESSIONS {
            text.push_str(&profile(name, expr, "attributes = { unit = \"{{ subject.ou | default(value='none') }}\" }"));
        }
        load(&text).unwrap()
    })
}

fn ca() -> &'static Ca {
    static C: OnceLock<Ca> = OnceLock::new();
    C.get_or_init(|| Ca::new("Normalisation CA", Alg::P256))
}

/// A device whose O selects `profile`, with `cn` and, when given, serialNumber and OU.
fn device(profile: &str, cn: &str, serial: Option<&str>, ou: Option<&str>) -> Device {
    let mut d = Device::new(cn);
    d.extra = vec![(Dn::OrganizationName, profile.into())];
    if let Some(s) = serial {
        d.extra.push((Dn::CustomDnType(vec![2, 5, 4, 5]), s.into()));
    }
    if let Some(ou) = ou {
        d.extra.push((Dn::OrganizationalUnitName, ou.into()));
    }
    d
}

fn run_on(config: &Rules, d: &Device) -> CheckReport {
    check(config, ca().cert.pem.as_bytes(), ca().issue(d).pem.as_bytes(), None, NOW, &AwsContext::default())
}

fn run(d: &Device) -> CheckReport {
    run_on(config(), d)
}

#[track_caller]
fn assert_rejected(report: &CheckReport, code: ReasonCode, mentions: &[&str]) {
    assert_eq!(report.reason, Some(code), "{}", report.message);
    for m in mentions {
        assert!(report.message.contains(m), "message should mention {m:?}: {}", report.message);
    }
}

#[test]
fn a_cn_with_stray_whitespace_is_rejected_naming_the_field_and_character() {
    let clean = run(&device("ident", "sensor-1", None, None));
    assert_eq!(clean.thing_name.as_deref(), Some("sensor-1"), "{}", clean.message);
    for (cn, code_point) in [
        ("sensor-1 ", "U+0020"),
        ("\u{00A0}sensor-1", "U+00A0"),
        ("sensor\t-1", "U+0009"),
        ("sensor-1\u{3000}", "U+3000"),
        ("sensor-1\n", "U+000A"),
    ] {
        let r = run(&device("ident", cn, None, None));
        assert_rejected(&r, ReasonCode::InvalidThingName, &["subject.cn", code_point]);
    }
}

#[test]
fn a_serial_number_with_a_trailing_space_is_rejected() {
    let r = run(&device("serial", "any", Some("M-000123 "), None));
    assert_rejected(&r, ReasonCode::InvalidThingName, &["subject.serial_number", "\"M-000123 \"", "U+0020"]);
    let r = run(&device("serial", "any", Some("M-000123"), None));
    assert_eq!(r.thing_name.as_deref(), Some("M-000123"), "{}", r.message);
}

#[test]
fn an_attribute_value_is_not_trimmed_either() {
    let r = run(&device("ident", "sensor-1", None, Some("ops ")));
    assert_rejected(&r, ReasonCode::InvalidAttribute, &["subject.ou", "U+0020"]);
    let r = run(&device("ident", "sensor-1", None, Some("ops")));
    assert_eq!(r.attributes.get(&"unit".parse().unwrap()).map(|v| v.as_str()), Some("ops"), "{}", r.message);
}

#[test]
fn case_filters_never_fold_non_ascii_onto_ascii() {
    // `(?i)` in common_name lets these through the regex; the thing name must still not be another device's.
    assert_eq!(run(&device("lower", "Sensor-K", None, None)).thing_name.as_deref(), Some("sensor-k"));
    for (profile, cn) in [
        ("lower", "sensor-\u{212A}"),    // KELVIN SIGN: Unicode lowercase is 'k'
        ("lower", "sensor-\u{0130}"),    // LATIN CAPITAL I WITH DOT: Unicode lowercase is "i\u{307}"
        ("lower", "SENSOR-\u{212B}"),    // ANGSTROM SIGN: Unicode lowercase is U+00E5
        ("upper", "sensor-\u{017F}"),    // LONG S: Unicode uppercase is 'S'
        ("upper", "sensor-\u{0131}"),    // DOTLESS I: Unicode uppercase is 'I'
        ("upper", "stra\u{00DF}e"),      // sharp s: Unicode uppercase is "SS"
        ("upper", "\u{FB01}lter"),       // ligature fi: Unicode uppercase is "FI"
        ("capitalize", "\u{017F}ensor"), // LONG S first: Unicode uppercase is 'S'
        ("capitalize", "x\u{212A}"),     // KELVIN SIGN after the first: Unicode lowercase is 'k'
    ] {
        let r = run(&device(profile, cn, None, None));
        assert_rejected(&r, ReasonCode::InvalidThingName, &["subject.cn"]);
    }
}

#[test]
fn the_policy_engine_has_the_same_ascii_only_filters() {
    let dir = config_dir();
    dir.write_policy(
        "unit.json.tera",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",
"Resource":"arn:aws:iot:us-east-1:123456789012:topic/things/{{ thing_name }}/{{ subject.ou | upper }}{{ subject.ou | trim }}"}]}"#,
    );
    let path = dir.write_config(
        &profile("ident", "{{ subject.cn }}", "").replace("policies/sensor.json.tera", "policies/unit.json.tera"),
    );
    let config = Rules::load(&path).unwrap();
    let ou = "\u{3000}\u{017F}x";
    let r = run_on(&config, &device("ident", "sensor-1", None, Some(ou)));
    assert!(r.accepted(), "{}", r.message);
    let policy = r.policy.unwrap().to_string();
    assert!(policy.contains("/\u{3000}\u{017F}X\u{3000}\u{017F}x"), "{policy}");
}

#[test]
fn config_load_refuses_expressions_with_their_own_outer_whitespace() {
    for expr in [" {{ subject.cn }}", "{{ subject.cn }} ", "{{ subject.cn }}\\n", "\\t{{ subject.cn }}"] {
        let err = load(&profile("p", expr, "")).unwrap_err().to_string();
        assert!(err.contains("thing_name") && err.contains("whitespace"), "{err}");
    }
    let err = load(&profile("p", "{{ subject.cn }}", "attributes = { a = \"{{ subject.ou }} \" }")).unwrap_err();
    assert!(err.to_string().contains("attributes.a"), "{err}");
    // Whitespace inside the tag is syntax, not text, and is fine; so is `{{- -}}`.
    load(&profile("p", "{{subject.cn}}", "attributes = { a = \"{{- subject.cn -}}\" }")).unwrap();
}

#[test]
fn slugify_does_not_exist() {
    let err = load(&profile("p", "{{ subject.cn | slugify }}", "")).unwrap_err().to_string();
    assert!(err.contains("slugify"), "{err}");
}

#[test]
fn the_shipped_configuration_still_accepts_its_devices() {
    let config = Rules::load(jitp_testkit::repo_config_path()).unwrap();
    let r = run_on(&config, &Device::new("sensor-0123456789ab"));
    assert_eq!(r.thing_name.as_deref(), Some("sensor-0123456789ab"), "{}", r.message);
}

/// Characters a hostile subject would use to impersonate another device.
const TRICKY: &[char] = &[
    // Every Unicode White_Space character, plus the invisible format characters people mistake for them.
    '\t', '\n', '\u{0B}', '\u{0C}', '\r', ' ', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}',
    '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}', '\u{2028}',
    '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}', '\u{180E}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}',
    // Case-mapping specials.
    '\u{212A}', '\u{212B}', '\u{017F}', '\u{0130}', '\u{0131}', 'ß', '\u{1E9E}', '\u{FB00}', '\u{FB01}', '\u{FB02}',
    '\u{FB03}', '\u{FB04}', '\u{FB05}', '\u{FB06}', '\u{01C5}', '\u{1FBE}',
    // Confusables: Cyrillic, Greek, fullwidth, combining.
    '\u{0430}', '\u{0435}', '\u{043E}', '\u{0455}', '\u{03BF}', '\u{0391}', '\u{FF21}', '\u{FF10}', '\u{FF0D}',
    '\u{2010}', '\u{2011}', '\u{0301}', '\u{0307}',
];

fn subject_value() -> impl Strategy<Value = String> {
    let ascii = prop::sample::select(b"abkKsSiIAZ019-_:".iter().map(|b| char::from(*b)).collect::<Vec<_>>());
    let tricky = prop::sample::select(TRICKY.to_vec());
    prop::collection::vec(prop_oneof![3 => ascii, 1 => tricky], 1..10).prop_map(|v| v.into_iter().collect())
}

/// The thing name the expression must give `value` when it accepts it: a fixed function, injective except
/// for the ASCII case folding the template asked for.
fn expected(profile: &str, value: &str) -> String {
    match profile {
        "lower" => value.to_ascii_lowercase(),
        "upper" => value.to_ascii_uppercase(),
        "capitalize" => {
            let mut c = value.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()).unwrap_or_default()
        }
        _ => value.to_owned(),
    }
}

/// May two different values share a thing name under this expression? Only by the explicit ASCII folding.
fn may_collide(profile: &str, a: &str, b: &str) -> bool {
    match profile {
        "lower" | "upper" | "capitalize" => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Either the decision rejects, or the thing name is byte-identical to the expression's ASCII-only
    /// function of the value; and two different accepted values never share a name unless they differ only
    /// in ASCII case under a case filter.
    #[test]
    fn accepted_subjects_never_share_a_thing_name_implicitly(
        which in 0..EXPRESSIONS.len(),
        values in prop::collection::vec(subject_value(), 2..5),
    ) {
        let (profile, _) = EXPRESSIONS[which];
        // Each value plus what a normalising engine would have folded it onto, so collisions are looked for
        // where they would happen.
        let mut values: Vec<String> = values
            .iter()
            .flat_map(|v| {
                [
                    v.clone(),
                    v.to_lowercase(),
                    v.to_uppercase(),
                    v.trim().to_owned(),
                    format!("{v} "),
                    v.replace('k', "\u{212A}").replace('s', "\u{017F}"),
                ]
            })
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        let mut accepted: Vec<(String, String)> = Vec::new();
        for value in &values {
            let d = if profile == "serial" {
                device(profile, "cn", Some(value), None)
            } else {
                device(profile, value, None, None)
            };
            let r = run(&d);
            match &r.thing_name {
                Some(name) => {
                    prop_assert_eq!(name, &expected(profile, value), "{:?} under {}", value, profile);
                    prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b)));
                    accepted.push((value.clone(), name.clone()));
                }
                None => prop_assert!(
                    matches!(r.reason, Some(ReasonCode::InvalidThingName)),
                    "{:?} under {}: {:?} {}", value, profile, r.reason, r.message
                ),
            }
        }
        for (i, (a, name_a)) in accepted.iter().enumerate() {
            for (b, name_b) in &accepted[i + 1..] {
                if a != b && name_a == name_b {
                    prop_assert!(may_collide(profile, a, b), "{:?} and {:?} both became {} under {}", a, b, name_a, profile);
                }
            }
        }
    }
}
