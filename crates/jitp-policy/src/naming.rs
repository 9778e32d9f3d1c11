//! Which policy names a profile can give its devices, and the configurations in which two profiles could give
//! one name to two devices.
//!
//! A per-thing policy is named `policy_prefix + thing name` (`:` spelled `.`), a shared one `policy_prefix +
//! template stem`. Two different (profile, thing) pairs that get one policy name share one AWS policy whose
//! default version is whichever document was written last: one device's permissions become another's. So
//! [`check`] refuses, at load, every pair of profiles that can give two different things one policy name (one
//! thing name is one identity, guarded by the ownership claim, so the same name from two profiles is not such a
//! pair).
//!
//! The set of thing names a profile can produce is a regular language when its `thing_name` is the CN with
//! literal text around it (`{{ subject.cn }}`, `sensor-{{ subject.cn }}`): the literal text, the profile's
//! common_name regex, intersected with what a thing name may be (1 to 128 of `[A-Za-z0-9:_-]`). Any other
//! expression is taken to produce every thing name (an over-approximation: it can only refuse more). Whether
//! two such languages meet is decided exactly by a breadth-first search of the product of their DFAs
//! (regex-automata), bounded; a search too large to finish counts as "they may meet".

use std::collections::{HashSet, VecDeque};
use std::path::Path;

use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

use jitp_profile::ConfigError;
use jitp_profile::profile::{Config, OnDuplicate, PolicyMode, Profile};
use jitp_registry::thing::ThingName;

/// The thing-name alphabet: the only bytes a search needs to try.
const THING_BYTES: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_-";
/// Every thing name.
const ANY_THING: &str = "[A-Za-z0-9:_-]{1,128}";
/// States of a product search before it gives up and assumes the languages meet.
const MAX_PRODUCT_STATES: usize = 200_000;
/// Bytes one DFA may take: common_name regexes are small; a huge one is refused as "may meet".
const MAX_DFA_BYTES: usize = 8 << 20;

/// The thing names a profile can produce, as a regex over the whole name (unanchored text; anchored by users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThingLanguage {
    /// The regex, e.g. `(?:sensor-)(?:[0-9a-f]{12})`.
    pub pattern: String,
    /// The expression is the CN with literal text around it (else every thing name is assumed).
    pub exact: bool,
}

/// The language of `profile`'s thing names.
pub(crate) fn thing_language(profile: &Profile) -> ThingLanguage {
    let any = ThingLanguage { pattern: ANY_THING.to_owned(), exact: false };
    let expr = profile.thing_name.as_str();
    let Some((before, rest)) = expr.split_once("{{") else {
        // No expression at all: every device gets this one name.
        return if expr.contains("{%") || expr.contains("{#") {
            any
        } else {
            ThingLanguage { pattern: regex_syntax::escape(expr), exact: true }
        };
    };
    let Some((inner, after)) = rest.split_once("}}") else { return any };
    let literal = |s: &str| !s.contains('{') && !s.contains('}');
    if inner.trim() != "subject.cn" || !literal(before) || !literal(after) {
        return any;
    }
    let cn = profile.common_name_source();
    let pattern = format!("(?:{})(?:{cn})(?:{})", regex_syntax::escape(before), regex_syntax::escape(after));
    ThingLanguage { pattern, exact: true }
}

/// AWS IoT's limit on a policy name.
const MAX_POLICY_NAME: usize = 128;

/// Refuse a configuration whose policy names AWS would refuse (a per-thing name over 128 characters) or two
/// devices could share ([`check`]), reading its templates beside `config.path`.
pub fn check_config(config: &Config) -> Result<(), ConfigError> {
    for profile in &config.profiles {
        check_policy_name_length(&config.path, profile)?;
    }
    let dir = config.path.parent().map(Path::to_path_buf).unwrap_or_default();
    check(&config.profiles, |rel| std::fs::read_to_string(dir.join(rel)).ok())
        .map_err(|message| ConfigError::config(&config.path, None, "profiles", message))
}

/// Refuse what AWS would refuse for the profile's longest possible name: a per-thing policy name over 128.
fn check_policy_name_length(config_path: &Path, profile: &Profile) -> Result<(), ConfigError> {
    if profile.policy_mode != PolicyMode::PerThing {
        return Ok(());
    }
    let language = thing_language(profile);
    // A CN pattern without an upper bound (`.*`) is not checked here, as before: the thing name's own limit
    // (128) still applies to each device.
    let bounded = regex_syntax::parse(profile.common_name_source()).ok().and_then(|h| h.properties().maximum_len());
    if !language.exact || bounded.is_none() {
        return Ok(());
    }
    // Counted in the thing-name characters that can reach the name, not in the UTF-8 bytes the regex alone
    // could match (`.{1,123}` is at most 123 characters of a thing name, though 492 bytes of text).
    let Some(longest) = longest_thing_name(&language.pattern) else { return Ok(()) };
    let total = profile.policy_prefix.len() + longest;
    if total > MAX_POLICY_NAME {
        // The literal text around the CN in thing_name takes its share of the 128 characters too.
        let around = profile
            .thing_name
            .split_once("{{")
            .map_or(0, |(before, rest)| before.len() + rest.split_once("}}").map_or(0, |(_, after)| after.len()));
        let room = MAX_POLICY_NAME.saturating_sub(profile.policy_prefix.len() + around);
        let fix = if room == 0 {
            "shorten the prefix or the text around the CN in thing_name".to_owned()
        } else {
            format!(
                "bound common_name to at most {room} characters (e.g. [A-Za-z0-9_-]{{1,{room}}}) or shorten the prefix"
            )
        };
        return Err(ConfigError::config(
            config_path,
            None,
            format!("profiles.{}.policy_prefix", profile.name),
            format!(
                "thing names of profile {:?} can be {longest} characters long, so its policy names ({:?} + thing name) can be {total}; AWS IoT allows {MAX_POLICY_NAME}: {fix}",
                profile.name, profile.policy_prefix,
            ),
        ));
    }
    Ok(())
}

/// Why two profiles could share a policy name, in a sentence naming both.
/// `source` reads a policy template by its path relative to jitp.toml.
pub(crate) fn check(profiles: &[Profile], source: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    for p in profiles {
        if let Some(why) = rotation_needs_one_document(p, &source) {
            return Err(why);
        }
    }
    for (i, a) in profiles.iter().enumerate() {
        for b in &profiles[i + 1..] {
            if let Some(why) = collision(a, b, &source) {
                return Err(why);
            }
        }
    }
    Ok(())
}

/// The shared policy name of a profile in shared mode (`prefix + template stem`).
pub fn shared_name(profile: &Profile) -> String {
    format!("{}{}", profile.policy_prefix, template_stem(&profile.policy))
}

/// A policy template's file stem (`policies/sensor.v2.json.tera` → `sensor`): the shared policy's name after
/// the prefix. The renderer and the collision check both name shared policies with it.
pub(crate) fn template_stem(policy: &str) -> &str {
    let file = policy.rsplit('/').next().unwrap_or(policy);
    file.split('.').next().unwrap_or(file)
}

/// With `on_duplicate = "rotate"` a thing's per-thing policy can be written by a certificate that has just lost
/// the thing to a newer one (its event was in flight). That is harmless only if every certificate of the thing
/// writes the same document: the template may read the thing name, `aws` and the profile, not the subject, the
/// certificate or the CA. A template that cannot be read counts as reading them.
fn rotation_needs_one_document(p: &Profile, source: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if p.on_duplicate != OnDuplicate::Rotate || p.policy_mode != PolicyMode::PerThing {
        return None;
    }
    let text = source(&p.policy).unwrap_or_else(|| "subject".to_owned());
    let reads = ["subject", "certificate", "ca."].into_iter().find(|v| text.contains(v))?;
    Some(format!(
        "profile {:?} has on_duplicate = \"rotate\" and per-thing policies, but its template {} reads {reads:?}: during a rotation the outgoing certificate may write the thing's policy after the incoming one, so the document must depend on the thing alone (thing_name, aws, profile); use shared mode, on_duplicate = \"reject\", or a template without device values",
        p.name, p.policy
    ))
}

fn collision(a: &Profile, b: &Profile, source: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let names = |p: &Profile| match p.policy_mode {
        PolicyMode::PerThing => format!("per-thing policies {}<thing name>", p.policy_prefix),
        PolicyMode::Shared => format!("shared policy {}", shared_name(p)),
    };
    let meet = match (a.policy_mode, b.policy_mode) {
        (PolicyMode::Shared, PolicyMode::Shared) => {
            shared_name(a) == shared_name(b) && (a.policy != b.policy || mentions_profile(source(&a.policy)))
        }
        (PolicyMode::Shared, PolicyMode::PerThing) => per_thing_has(b, &shared_name(a)),
        (PolicyMode::PerThing, PolicyMode::Shared) => per_thing_has(a, &shared_name(b)),
        (PolicyMode::PerThing, PolicyMode::PerThing) => {
            per_thing_meet(a, b) || (rotating(a, b) && same_names_differ(a, b, source))
        }
    };
    meet.then(|| {
        format!(
            "profiles {:?} ({}) and {:?} ({}) can give two different devices the same policy name, so one device would get the other's permissions; give them policy prefixes neither of which starts the other, or common_name patterns that cannot produce each other's names",
            a.name,
            names(a),
            b.name,
            names(b)
        )
    })
}

/// Either profile lets a newer certificate take a thing over (from a certificate of the other profile).
fn rotating(a: &Profile, b: &Profile) -> bool {
    a.on_duplicate == OnDuplicate::Rotate || b.on_duplicate == OnDuplicate::Rotate
}

/// Same prefix, overlapping thing names, and documents that can differ: in rotate mode the thing (and so its
/// policy name) can pass from one profile's certificate to the other's, and a late write of the outgoing one's
/// document would stand.
fn same_names_differ(a: &Profile, b: &Profile, source: &dyn Fn(&str) -> Option<String>) -> bool {
    a.policy_prefix == b.policy_prefix
        && (a.policy != b.policy || mentions_profile(source(&a.policy)))
        && meet(&[&thing_language(a).pattern, ANY_THING, &thing_language(b).pattern])
}

/// A shared template that reads the profile (its name) renders differently per profile; unreadable counts as yes.
fn mentions_profile(template: Option<String>) -> bool {
    template.is_none_or(|s| s.contains("profile"))
}

/// Can per-thing profile `p` produce policy name `name`?
fn per_thing_has(p: &Profile, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(&p.policy_prefix) else { return false };
    let Some(thing) = unmap(rest) else { return false };
    meet(&[&thing_language(p).pattern, ANY_THING, &regex_syntax::escape(&thing)])
}

/// Can two per-thing profiles give two different things one policy name? `pa + f(ta) == pb + f(tb)` needs one
/// prefix to start the other; with `pb = pa + d`, it needs `ta = f⁻¹(d) + tb` (`f` spells `:` as `.`, and is
/// injective). With one prefix (`d` empty) that means `ta == tb`: one thing, whose single owner is settled by the
/// ownership claim before any policy is written (see `provision`), so the policy follows the thing's one
/// identity and no second device ever writes it. Profiles that share a prefix (selected by O, say) are fine.
fn per_thing_meet(a: &Profile, b: &Profile) -> bool {
    let (short, long) = if a.policy_prefix.len() <= b.policy_prefix.len() { (a, b) } else { (b, a) };
    let Some(d) = long.policy_prefix.strip_prefix(&short.policy_prefix) else { return false };
    if d.is_empty() {
        return false;
    }
    let Some(d) = unmap(d) else { return false };
    let long_shifted = format!("(?:{})(?:{})", regex_syntax::escape(&d), thing_language(long).pattern);
    meet(&[&thing_language(short).pattern, ANY_THING, &long_shifted])
}

/// Policy-name text back to thing-name text (`.` was `:`), or `None` if no thing name spells it.
fn unmap(policy_text: &str) -> Option<String> {
    let thing = policy_text.replace('.', ":");
    thing.bytes().all(|b| THING_BYTES.contains(&b)).then_some(thing)
}

/// The DFA of `pattern` matched whole, within the bounds; `None` if it cannot be built within them.
fn whole_match_dfa(pattern: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .dfa_size_limit(Some(MAX_DFA_BYTES))
                .determinize_size_limit(Some(MAX_DFA_BYTES)),
        )
        .build(&format!("^(?:{pattern})$"))
        .ok()
}

/// The length of the longest thing name (1 to 128 thing-name bytes) that `pattern` matches whole, `None` if
/// it matches none. What the regex could match beyond thing-name characters (`.` matches 4-byte characters)
/// never reaches a thing name, so it does not count. A pattern too large to compile within the bounds, or a
/// search too large to finish, answers the longest thing name (128): an over-approximation, refusing more.
pub(crate) fn longest_thing_name(pattern: &str) -> Option<usize> {
    let Some(dfa) = whole_match_dfa(pattern) else { return Some(ThingName::MAX_LEN) };
    let Ok(start) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
        return Some(ThingName::MAX_LEN);
    };
    let mut layer: HashSet<StateID> = HashSet::from([start]);
    let mut longest = None;
    for len in 0..=ThingName::MAX_LEN {
        if len > 0 && layer.iter().any(|s| dfa.is_match_state(dfa.next_eoi_state(*s))) {
            longest = Some(len);
        }
        if len == ThingName::MAX_LEN {
            break;
        }
        let mut next = HashSet::new();
        for state in &layer {
            for byte in THING_BYTES {
                let to = dfa.next_state(*state, *byte);
                if !dfa.is_dead_state(to) && !dfa.is_quit_state(to) {
                    next.insert(to);
                }
            }
        }
        if next.len() > MAX_PRODUCT_STATES {
            return Some(ThingName::MAX_LEN);
        }
        if next.is_empty() {
            break;
        }
        layer = next;
    }
    longest
}

/// Is there a string, made of thing-name bytes, that every pattern matches whole? A pattern that cannot be
/// compiled to a DFA within the bounds, or a search that does not finish, answers yes.
pub(crate) fn meet(patterns: &[&str]) -> bool {
    let mut dfas = Vec::new();
    for p in patterns {
        match whole_match_dfa(p) {
            Some(dfa) => dfas.push(dfa),
            None => return true,
        }
    }
    let anchored = start::Config::new().anchored(Anchored::Yes);
    let mut first = Vec::new();
    for dfa in &dfas {
        match dfa.start_state(&anchored) {
            Ok(s) => first.push(s),
            Err(_) => return true,
        }
    }
    let mut seen: HashSet<Vec<StateID>> = HashSet::from([first.clone()]);
    let mut queue = VecDeque::from([first]);
    while let Some(states) = queue.pop_front() {
        let accepts = dfas.iter().zip(&states).all(|(dfa, s)| dfa.is_match_state(dfa.next_eoi_state(*s)));
        if accepts {
            return true;
        }
        for byte in THING_BYTES {
            let next: Vec<StateID> = dfas.iter().zip(&states).map(|(dfa, s)| dfa.next_state(*s, *byte)).collect();
            if dfas.iter().zip(&next).any(|(dfa, s)| dfa.is_dead_state(*s) || dfa.is_quit_state(*s)) {
                continue;
            }
            if seen.insert(next.clone()) {
                if seen.len() > MAX_PRODUCT_STATES {
                    return true;
                }
                queue.push_back(next);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meet_decides_intersection() {
        assert!(meet(&["gw-[a-z]{2}", ANY_THING]));
        assert!(!meet(&["gw-[a-z]{2}", "sensor-[0-9]+"]));
        assert!(meet(&["(?:gw-)(?:ab12)", "gw-.*"]));
        assert!(!meet(&["a{129}", ANY_THING]), "longer than a thing name");
        assert!(!meet(&["caf\u{e9}", ANY_THING]), "not thing-name bytes");
        assert!(meet(&["(?i)K", "k"]));
        assert!(!meet(&["\u{212a}", ANY_THING]), "KELVIN SIGN is no thing-name byte");
        assert!(meet(&["x|xy", "xy"]), "all matches, not leftmost-first");
    }

    #[test]
    fn longest_thing_name_counts_what_can_reach_a_thing_name() {
        assert_eq!(longest_thing_name(".{1,123}"), Some(123), "4-byte characters never reach a thing name");
        assert_eq!(longest_thing_name("(?:sensor-)(?:.{1,123})"), Some(128), "capped at a thing name's 128");
        assert_eq!(longest_thing_name("[a-z]{3}|caf\u{e9}-long-name"), Some(3));
        assert_eq!(longest_thing_name(".*"), Some(128));
        assert_eq!(longest_thing_name("\u{e9}+"), None);
        assert_eq!(longest_thing_name("a{129}"), None);
        assert_eq!(longest_thing_name("x|xy"), Some(2));
    }

    #[test]
    fn unmap_spells_dots_as_colons_and_refuses_the_rest() {
        assert_eq!(unmap("a.b").as_deref(), Some("a:b"));
        assert_eq!(unmap("a+b"), None);
        assert_eq!(unmap("").as_deref(), Some(""));
    }
}
