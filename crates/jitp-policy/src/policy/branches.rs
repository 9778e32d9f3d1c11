//! Synthetic subjects for `jitp lint`: enough of them, per profile, to drive every branch a template can take
//! on a subject value, each rendered through the same code path as a real device (`jitp_core::decide`).
//!
//! What is enumerated (the coverage argument, also in `templates/README.md`):
//!
//! - The template sources (policy, thing_name, attributes) are scanned for the subject fields they read and
//!   for the string and integer literals written in the same `{{ }}` / `{% %}` tag as a subject field (or as
//!   `thing_name`, which is computed from the fields its expression reads). A template that passes subject
//!   values around (`set`, `for`, `include`, `extends`, components, `subject` used as a whole) makes every
//!   literal of the template count for every field: an over-approximation, never an under-one.
//! - Each field a template reads gets: absent (when the profile does not require it); a neutral value; a long
//!   value (the RFC 5280 upper bound for the attribute); a value carrying the characters the guard refuses;
//!   for each associated literal `L`: `L`, `Lx`, `xL`, `xLx`, ` L `, and `L` in ASCII upper and lower case
//!   (both outcomes of `==`, `!=`, `in`, `starting_with`, `ending_with`, `containing`, and of those after
//!   `lower`/`upper`/`trim`); for each integer literal `n`: strings of length `n-1`, `n`, `n+1` and the numbers
//!   `n-1`, `n`, `n+1` (comparisons of `length` or `int`). O, OU and C with an allow-list take exactly the
//!   listed values. The CN takes samples generated from the profile's `common_name` regex (shortest, longest,
//!   each alternative, each literal embedded where the regex allows it, refused characters where it allows
//!   them), kept only when the regex matches them.
//! - Every combination of those values over the fields read is rendered, up to [`MAX_SUBJECTS`]; a template
//!   whose combinations exceed it fails the lint (it cannot be proven safe).

use std::collections::{BTreeMap, BTreeSet};

use regex_syntax::hir::{Class, Hir, HirKind};

use jitp_pki::cert::Subject;
use jitp_profile::profile::Profile;

/// The most synthetic subjects rendered per profile. Each costs one render of the names and the policy
/// (tens of microseconds), so the bound keeps `jitp lint` and server start-up within about a second even
/// for a template at the limit.
pub const MAX_SUBJECTS: usize = 20_000;

/// The subject fields, by template name, with their X.509 attribute label and RFC 5280 upper bound.
pub const FIELDS: [(&str, &str, usize); 6] = [
    ("cn", "CN", 64),
    ("o", "O", 64),
    ("ou", "OU", 64),
    ("c", "C", 2),
    ("st", "ST", 128),
    ("serial_number", "serialNumber", 64),
];

const NEUTRAL: &str = "n3utral";
const HOSTILE: &str = "x*+#/$?\"\\";

/// What a scan of the template sources found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Fields read, with the literals associated with each.
    pub fields: BTreeMap<&'static str, Literals>,
}

/// Literals associated with one field.
#[derive(Debug, Default, Clone)]
pub struct Literals {
    /// String literals.
    pub strings: BTreeSet<String>,
    /// Integer literals.
    pub integers: BTreeSet<u64>,
}

struct Tag<'a> {
    text: &'a str,
    strings: Vec<String>,
    integers: Vec<u64>,
    /// The tag with its string literals blanked, for identifier scanning.
    code: String,
}

/// The `{{ }}` and `{% %}` tags of `source` (comments skipped), with their literals.
fn tags(source: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else if after.starts_with("{#") {
            match after.find("#}") {
                Some(end) => {
                    rest = &after[end + 2..];
                    continue;
                }
                None => break,
            }
        } else {
            rest = &after[1..];
            continue;
        };
        let body = &after[2..];
        let (text, next) = tag_body(body, close);
        out.push(literals(text));
        rest = next;
    }
    out
}

/// The body of a tag up to `close`, skipping closers inside string literals.
fn tag_body<'a>(body: &'a str, close: &str) -> (&'a str, &'a str) {
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if body[i..].starts_with(close) => return (&body[..i], &body[i + close.len()..]),
            None => {}
        }
    }
    (body, "")
}

fn literals(text: &str) -> Tag<'_> {
    let mut strings = Vec::new();
    let mut code = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut current = String::new();
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                strings.push(std::mem::take(&mut current));
                quote = None;
                code.push_str("\"\"");
            }
            Some(_) => current.push(c),
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => code.push(c),
        }
    }
    let mut integers = Vec::new();
    let mut digits = String::new();
    let mut prev_ident = false;
    for c in code.chars().chain([' ']) {
        if c.is_ascii_digit() && (!prev_ident || !digits.is_empty()) {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            if let Ok(n) = digits.parse::<u64>() {
                integers.push(n.min(4096));
            }
            digits.clear();
        }
        prev_ident = c.is_ascii_alphanumeric() || c == '_';
    }
    Tag { text, strings, integers, code }
}

/// What one tag reads: fields, whether it reads `thing_name`, whether it uses `subject` dynamically.
fn reads(code: &str) -> (BTreeSet<&'static str>, bool, bool) {
    let mut fields = BTreeSet::new();
    let mut dynamic = false;
    let bytes = code.as_bytes();
    let ident_at = |i: usize, word: &str| {
        code[i..].starts_with(word)
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'.'))
            && !code[i + word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut thing_name = false;
    for i in 0..code.len() {
        if !code.is_char_boundary(i) {
            continue;
        }
        if ident_at(i, "thing_name") {
            thing_name = true;
        }
        if ident_at(i, "subject") {
            let after = code[i + "subject".len()..].trim_start();
            let field = after
                .strip_prefix('.')
                .map(|a| a.trim_start().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or(""));
            match field.and_then(|f| FIELDS.iter().find(|(n, _, _)| *n == f)) {
                Some((name, _, _)) => {
                    fields.insert(*name);
                }
                // `subject.unknown` is undefined for every device; `subject[...]`, `subject | ...`, `in subject`:
                // any field.
                None if field.is_some() => {}
                None => dynamic = true,
            }
        }
    }
    (fields, thing_name, dynamic)
}

/// Scan a profile's thing_name expression, attribute expressions and policy template source.
pub fn scan(profile: &Profile, policy_source: &str) -> Scan {
    let mut scan = Scan::default();
    let all: BTreeSet<&'static str> = FIELDS.iter().map(|(n, _, _)| *n).collect();
    // Fields behind `thing_name` in the policy (and in attributes, which see it too).
    let mut name_fields = BTreeSet::new();
    let exprs: Vec<&str> = std::iter::once(profile.thing_name.as_str())
        .chain(profile.attributes.values().map(String::as_str))
        .chain([policy_source])
        .collect();
    for (i, source) in exprs.iter().enumerate() {
        let tags = tags(source);
        let mut global = false;
        let mut touched = BTreeSet::new();
        for tag in &tags {
            let (mut fields, via_name, dynamic) = reads(&tag.code);
            if dynamic {
                fields.extend(all.iter().copied());
            }
            if via_name && i > 0 {
                fields.extend(name_fields.iter().copied());
            }
            if i == 0 {
                name_fields.extend(fields.iter().copied());
            }
            let head = tag.text.trim_start_matches(['-', '+', '~', ' ', '\t', '\n', '\r']);
            let passes_values =
                ["set", "for", "include", "extends", "component", "import", "block", "macro", "filter", "with"]
                    .iter()
                    .any(|k| head.starts_with(k));
            if dynamic
                || (passes_values && !fields.is_empty())
                || head.starts_with("include")
                || head.starts_with("extends")
            {
                global = true;
            }
            for f in &fields {
                let entry = scan.fields.entry(f).or_default();
                entry.strings.extend(tag.strings.iter().filter(|s| !s.is_empty()).cloned());
                entry.integers.extend(tag.integers.iter().copied());
                touched.insert(*f);
            }
        }
        if global {
            // Values may flow from any tag to any other: every literal counts for every field read.
            let strings: Vec<String> = tags.iter().flat_map(|t| t.strings.iter().cloned()).collect();
            let integers: Vec<u64> = tags.iter().flat_map(|t| t.integers.iter().copied()).collect();
            let fields: Vec<&'static str> =
                if touched.is_empty() { all.iter().copied().collect() } else { touched.into_iter().collect() };
            for f in fields {
                let entry = scan.fields.entry(f).or_default();
                entry.strings.extend(strings.iter().filter(|s| !s.is_empty()).cloned());
                entry.integers.extend(integers.iter().copied());
            }
        }
    }
    scan
}

/// The candidate values of one field: `None` is absent.
fn candidates(field: &str, bound: usize, literals: &Literals, allow: Option<&[String]>) -> Vec<Option<String>> {
    if let Some(allowed) = allow {
        return allowed.iter().cloned().map(Some).collect();
    }
    let mut set: BTreeSet<String> = BTreeSet::new();
    set.insert(NEUTRAL.to_owned());
    set.insert("l".repeat(bound));
    set.insert(HOSTILE.to_owned());
    for l in &literals.strings {
        set.extend(literal_variants(l));
    }
    for n in &literals.integers {
        let n = usize::try_from(*n).unwrap_or(4096).min(4096);
        for m in [n.saturating_sub(1), n, n + 1] {
            if m > 0 {
                set.insert("a".repeat(m));
            }
            set.insert(m.to_string());
        }
    }
    let mut out: Vec<Option<String>> = set.into_iter().map(Some).collect();
    if field != "cn" {
        out.insert(0, None);
    }
    out
}

fn literal_variants(l: &str) -> [String; 7] {
    [
        l.to_owned(),
        format!("{l}x"),
        format!("x{l}"),
        format!("x{l}x"),
        format!(" {l} "),
        l.to_ascii_uppercase(),
        l.to_ascii_lowercase(),
    ]
}

/// The synthetic subjects for `profile`, or the number there would be when it exceeds [`MAX_SUBJECTS`].
pub fn subjects(profile: &Profile, scan: &Scan) -> Result<Vec<Subject>, usize> {
    let mut axes: Vec<(&'static str, Vec<Option<String>>)> = Vec::new();
    for (field, _, bound) in FIELDS {
        let allow = match field {
            "o" => profile.organization.as_deref(),
            "ou" => profile.organizational_unit.as_deref(),
            "c" => profile.country.as_deref(),
            _ => None,
        };
        let empty = Literals::default();
        let values = match (field, scan.fields.get(field)) {
            ("cn", lits) => cn_samples(profile, lits.unwrap_or(&empty)),
            (_, Some(lits)) => candidates(field, bound, lits, allow),
            // Not read by any template: one fixed value (the first allowed, or neutral).
            (_, None) => vec![Some(allow.and_then(|a| a.first().cloned()).unwrap_or_else(|| NEUTRAL.to_owned()))],
        };
        axes.push((field, values));
    }
    let total = axes.iter().try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len()).filter(|n| *n <= MAX_SUBJECTS));
    let Some(total) = total else {
        return Err(axes.iter().fold(1usize, |acc, (_, v)| acc.saturating_mul(v.len())));
    };
    let mut out = Vec::with_capacity(total);
    for mut index in 0..total {
        let mut subject = Subject::default();
        for (field, values) in &axes {
            let value = &values[index % values.len()];
            index /= values.len();
            if let Some(v) = value {
                let slot = match *field {
                    "cn" => &mut subject.cn,
                    "o" => &mut subject.o,
                    "ou" => &mut subject.ou,
                    "c" => &mut subject.c,
                    "st" => &mut subject.st,
                    _ => &mut subject.serial_number,
                };
                slot.push(v.clone());
            }
        }
        out.push(subject);
    }
    Ok(out)
}

/// `CN="gw-aa-0000", O="Acme" (no OU, ST)`: a synthetic subject for people.
pub fn describe(subject: &Subject) -> String {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for ((_, values), (_, label, _)) in subject.fields().into_iter().zip(FIELDS) {
        match values.first() {
            Some(v) => present.push(format!("{label}={}", jitp_pki::ids::shown(v))),
            None => absent.push(label),
        }
    }
    let mut out = present.join(", ");
    if !absent.is_empty() {
        out.push_str(&format!(" (no {})", absent.join(", ")));
    }
    out
}

/// CN samples that the profile's regex accepts.
fn cn_samples(profile: &Profile, literals: &Literals) -> Vec<Option<String>> {
    let mut found: BTreeSet<String> = BTreeSet::new();
    let pattern = profile.common_name.as_str();
    if let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(pattern) {
        let mut modes = vec![Mode::First, Mode::Last, Mode::Long, Mode::Hostile];
        modes.extend((0..4).map(Mode::Alt));
        let mut guides: Vec<String> = literals.strings.iter().flat_map(|l| literal_variants(l)).collect();
        guides.push(NEUTRAL.to_owned());
        for g in &guides {
            modes.push(Mode::Guided(g.chars().collect()));
        }
        for mode in modes {
            let mut g = Gen { mode, k: 0, out: String::new() };
            g.walk(&hir);
            found.insert(g.out);
        }
        for g in guides {
            found.insert(g);
        }
        found.insert(NEUTRAL.to_owned());
        found.insert(HOSTILE.to_owned());
    }
    found.into_iter().filter(|s| !s.is_empty() && profile.common_name.is_match(s)).map(Some).collect()
}

enum Mode {
    First,
    Last,
    Long,
    Hostile,
    Alt(usize),
    Guided(Vec<char>),
}

struct Gen {
    mode: Mode,
    /// How much of the guide has been written.
    k: usize,
    out: String,
}

const MAX_CN_SAMPLE: usize = 256;

impl Gen {
    fn walk(&mut self, hir: &Hir) {
        if self.out.len() > MAX_CN_SAMPLE {
            return;
        }
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(lit) => {
                for c in String::from_utf8_lossy(&lit.0).chars() {
                    self.push(c);
                }
            }
            HirKind::Class(class) => {
                let c = self.pick(class);
                if let Some(c) = c {
                    self.push(c);
                }
            }
            HirKind::Repetition(rep) => {
                let min = usize::try_from(rep.min).unwrap_or(0);
                let max = rep.max.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
                let want = match &self.mode {
                    Mode::First | Mode::Alt(_) => min,
                    Mode::Last | Mode::Hostile => min.max(1),
                    Mode::Long => min.max(32),
                    Mode::Guided(g) => min.max(g.len().saturating_sub(self.k)),
                };
                let n = max.map_or(want, |m| want.min(m)).max(min).min(MAX_CN_SAMPLE);
                for _ in 0..n {
                    self.walk(&rep.sub);
                }
            }
            HirKind::Capture(cap) => self.walk(&cap.sub),
            HirKind::Concat(subs) => subs.iter().for_each(|s| self.walk(s)),
            HirKind::Alternation(subs) => {
                let i = match &self.mode {
                    Mode::Alt(i) => i % subs.len(),
                    Mode::Last => subs.len() - 1,
                    Mode::Guided(g) => {
                        let next = g.get(self.k).copied();
                        subs.iter().position(|s| first_chars_allow(s, next)).unwrap_or(0)
                    }
                    _ => 0,
                };
                self.walk(&subs[i]);
            }
        }
    }

    fn push(&mut self, c: char) {
        if let Mode::Guided(g) = &self.mode {
            if g.get(self.k) == Some(&c) {
                self.k += 1;
            } else {
                self.k = usize::from(g.first() == Some(&c));
            }
        }
        self.out.push(c);
    }

    fn pick(&self, class: &Class) -> Option<char> {
        let contains = |c: char| match class {
            Class::Unicode(u) => u.ranges().iter().any(|r| r.start() <= c && c <= r.end()),
            Class::Bytes(b) => u8::try_from(c).is_ok_and(|c| b.ranges().iter().any(|r| r.start() <= c && c <= r.end())),
        };
        let first = match class {
            Class::Unicode(u) => u.ranges().first().map(|r| r.start()),
            Class::Bytes(b) => b.ranges().first().map(|r| char::from(r.start())),
        };
        let alnum = || ('0'..='9').chain('a'..='z').chain('A'..='Z').find(|c| contains(*c));
        let alnum_last = || ('0'..='9').chain('a'..='z').chain('A'..='Z').rev().find(|c| contains(*c));
        match &self.mode {
            Mode::Guided(g) => g
                .get(self.k)
                .copied()
                .filter(|c| contains(*c))
                .or_else(|| g.first().copied().filter(|c| contains(*c)))
                .or_else(alnum)
                .or(first),
            Mode::Hostile => HOSTILE.chars().chain([' ', '\u{a0}']).find(|c| contains(*c)).or_else(alnum).or(first),
            Mode::Last => alnum_last().or(first),
            _ => alnum().or(first),
        }
    }
}

/// Can `hir` start with `c` (roughly: used only to steer the guided sample)?
fn first_chars_allow(hir: &Hir, c: Option<char>) -> bool {
    let Some(c) = c else { return false };
    match hir.kind() {
        HirKind::Literal(lit) => String::from_utf8_lossy(&lit.0).starts_with(c),
        HirKind::Class(Class::Unicode(u)) => u.ranges().iter().any(|r| r.start() <= c && c <= r.end()),
        HirKind::Capture(cap) => first_chars_allow(&cap.sub, Some(c)),
        HirKind::Concat(subs) => subs.first().is_some_and(|s| first_chars_allow(s, Some(c))),
        HirKind::Repetition(rep) => first_chars_allow(&rep.sub, Some(c)),
        HirKind::Alternation(subs) => subs.iter().any(|s| first_chars_allow(s, Some(c))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_literals_are_found() {
        let t = tags(
            r#"a {{ subject.ou | default(value="x}}y") }} {# {{ subject.st }} #} {% if subject.c == 'US' and n > 10 %}"#,
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].strings, vec!["x}}y".to_owned()]);
        assert_eq!(t[1].strings, vec!["US".to_owned()]);
        assert_eq!(t[1].integers, vec![10]);
        assert_eq!(reads(&t[1].code).0.into_iter().collect::<Vec<_>>(), vec!["c"]);
        assert!(reads("k in subject").2);
        assert!(!reads("subject.cn").2);
    }
}
