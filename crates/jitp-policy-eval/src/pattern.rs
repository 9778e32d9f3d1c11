//! Strings with wildcards and policy variables (resources, condition values), and how they match.
//!
//! AWS's documentation allows two readings of a wildcard, so every match is made under both:
//! - **narrow**: IAM's rule for resource ARNs: `*` and `?` stay within a colon-delimited segment, except a `*`
//!   that ends a segment (followed by `:` or the end), which "can expand to match beyond the colon boundaries";
//!   a variable's value is literal text; a variable AWS leaves unsubstituted matches nothing.
//! - **wide**: AWS IoT's own words, "`*` represents any combination of characters": wildcards cross colons; a
//!   `*` or `?` in a variable's value acts as a wildcard; an unsubstituted variable stays as its `${...}` text
//!   (what AWS says of certificate variables).
//!
//! Narrow is contained in wide. A match under narrow is a match; no match under wide is no match; anything
//! between is [`Tri::Unknown`]: the evaluator says so rather than guess. Thing names may contain `:`, so this
//! matters for jitp's own topics.

use crate::context::Context;
use crate::variables::{Resolution, Variable};

/// Three-valued (Kleene) logic: a statement part that matches, does not, or cannot be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    pub(crate) fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Unknown,
        }
    }

    pub(crate) fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::No, Tri::No) => Tri::No,
            _ => Tri::Unknown,
        }
    }

    pub(crate) fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Unknown => Tri::Unknown,
        }
    }

    pub(crate) fn from_readings(narrow: bool, wide: bool) -> Tri {
        match (narrow, wide) {
            (true, _) => Tri::Yes,
            (false, false) => Tri::No,
            (false, true) => Tri::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `*`; `segment_final`: followed by `:` or the end of the pattern.
    Star {
        segment_final: bool,
    },
    /// `?`
    Any,
    /// `${name}`; `text` is the whole `${...}` as written.
    Var {
        var: Variable,
        text: String,
    },
}

/// A resource, action or condition value, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    pieces: Vec<Piece>,
    /// Whether `*` and `?` are wildcards here (and so, under the wide reading, in a variable's value).
    wildcards: bool,
    /// Whether a segment-final `*` may cross colons under the narrow reading (resources: yes; ARN conditions,
    /// "each of the six colon-delimited components is checked separately": no).
    final_star_crosses: bool,
}

/// A step of the matcher.
#[derive(Debug, Clone, Copy)]
enum Atom<'a> {
    Lit(&'a str),
    Star { cross: bool },
    Any { colon: bool },
}

/// AWS IoT's sequences for characters that are otherwise special (IAM's `${*}`, `${?}`, `${$}`).
fn escaped(name: &str) -> Option<&'static str> {
    match name {
        "*" => Some("*"),
        "?" => Some("?"),
        "$" => Some("$"),
        _ => None,
    }
}

impl Pattern {
    /// Parses `source`. `wildcards`: whether `*` and `?` are wildcards (resources, `StringLike`, ARN conditions)
    /// or plain characters (`StringEquals`). Variables are parsed in both.
    pub(crate) fn parse(source: &str, wildcards: bool, final_star_crosses: bool) -> Pattern {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${") {
                flush(&mut pieces, &mut text);
                let Some(end) = after.find('}') else {
                    // An unterminated `${`: what AWS IoT makes of it is not documented.
                    pieces.push(Piece::Var {
                        var: Variable::Unmodelled("an unterminated \"${\"".to_owned()),
                        text: rest.to_owned(),
                    });
                    break;
                };
                let name = &after[..end];
                let whole = &rest[..end + 3];
                rest = &after[end + 1..];
                match escaped(name) {
                    Some(lit) => text.push_str(lit),
                    None => pieces.push(Piece::Var { var: Variable::parse(name), text: whole.to_owned() }),
                }
                continue;
            }
            // AWS IoT's page writes the special characters as `$(*)`, `$(?)`, `$($)` where IAM writes `${*}`...;
            // which one AWS IoT reads is not documented: such a pattern is never answered.
            if let Some(odd) = ["$(*)", "$(?)", "$($)"].into_iter().find(|o| rest.starts_with(o)) {
                flush(&mut pieces, &mut text);
                pieces.push(Piece::Var {
                    var: Variable::Unmodelled(format!(
                        "{odd} is AWS IoT's spelling of IAM's ${{{}}}; whether AWS IoT reads it is not documented",
                        &odd[2..3]
                    )),
                    text: odd.to_owned(),
                });
                rest = &rest[odd.len()..];
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if wildcards => {
                    flush(&mut pieces, &mut text);
                    let segment_final = rest.is_empty() || rest.starts_with(':');
                    pieces.push(Piece::Star { segment_final });
                }
                '?' if wildcards => {
                    flush(&mut pieces, &mut text);
                    pieces.push(Piece::Any);
                }
                other => text.push(other),
            }
        }
        flush(&mut pieces, &mut text);
        Pattern { source: source.to_owned(), pieces, wildcards, final_star_crosses }
    }

    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The variables the pattern names, as written (`${iot:ClientId}`) and parsed.
    pub(crate) fn variables(&self) -> impl Iterator<Item = (&str, &Variable)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var { var, text } => Some((text.as_str(), var)),
            _ => None,
        })
    }

    /// Whether the pattern matches `text` for this connection; `why` receives the reason of an Unknown.
    pub(crate) fn matches(&self, text: &str, ctx: &Context, why: &mut Vec<String>) -> Tri {
        let mut narrow: Vec<Atom<'_>> = Vec::with_capacity(self.pieces.len());
        let mut wide_differs = false;
        let mut narrow_fails = false;
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => narrow.push(Atom::Lit(t)),
                Piece::Star { segment_final } => {
                    let cross = *segment_final && self.final_star_crosses;
                    wide_differs |= !cross;
                    narrow.push(Atom::Star { cross });
                }
                Piece::Any => {
                    wide_differs = true;
                    narrow.push(Atom::Any { colon: false });
                }
                Piece::Var { var, text: written } => match var.resolve(ctx) {
                    Resolution::One(v) => {
                        wide_differs |= v.contains(['*', '?']) && self.wildcards;
                        narrow.push(Atom::Lit(v));
                    }
                    Resolution::Absent(_) => {
                        narrow_fails = true;
                        wide_differs = true;
                    }
                    Resolution::Many(_) => {
                        why.push(format!(
                            "{written} holds several values; AWS does not document substituting it into a string"
                        ));
                        return Tri::Unknown;
                    }
                    Resolution::Unknown(reason) => {
                        why.push(format!("{written}: {reason}"));
                        return Tri::Unknown;
                    }
                },
            }
        }
        if !narrow_fails && run(&narrow, text) {
            return Tri::Yes;
        }
        if !wide_differs {
            return Tri::No;
        }
        // The wide reading: every wildcard crosses colons, variable values' wildcards are wildcards, and an
        // unsubstituted variable is its own text.
        let mut wide: Vec<Atom<'_>> = Vec::with_capacity(self.pieces.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => wide.push(Atom::Lit(t)),
                Piece::Star { .. } => wide.push(Atom::Star { cross: true }),
                Piece::Any => wide.push(Atom::Any { colon: true }),
                Piece::Var { var, text: written } => match var.resolve(ctx) {
                    Resolution::One(v) if self.wildcards => push_wild(&mut wide, v),
                    Resolution::One(v) => wide.push(Atom::Lit(v)),
                    _ => wide.push(Atom::Lit(written)),
                },
            }
        }
        let tri = Tri::from_readings(false, run(&wide, text));
        if tri == Tri::Unknown {
            why.push(format!(
                "{:?} matches {:?} only if a wildcard crosses a ':' or a variable's value or text acts as a pattern, \
                 which AWS does not document",
                crate::error::shorten(&self.source),
                crate::error::shorten(text)
            ));
        }
        tri
    }
}

fn flush(pieces: &mut Vec<Piece>, text: &mut String) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text)));
    }
}

/// A variable's value under the wide reading: its `*` and `?` become wildcards.
fn push_wild<'a>(atoms: &mut Vec<Atom<'a>>, value: &'a str) {
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if c == '*' || c == '?' {
            if start < i {
                atoms.push(Atom::Lit(&value[start..i]));
            }
            atoms.push(if c == '*' { Atom::Star { cross: true } } else { Atom::Any { colon: true } });
            start = i + 1;
        }
    }
    if start < value.len() {
        atoms.push(Atom::Lit(&value[start..]));
    }
}

/// Matches `atoms` against the whole of `text`: the set of positions the atoms so far can end at, advanced atom
/// by atom (an NFA), so the cost is bounded by atoms × length whatever the pattern (no backtracking blow-up).
fn run(atoms: &[Atom<'_>], text: &str) -> bool {
    // Literal-only patterns, the common case, compare in place.
    if atoms.iter().all(|a| matches!(a, Atom::Lit(_))) {
        let mut rest = text;
        for atom in atoms {
            if let Atom::Lit(l) = atom {
                match rest.strip_prefix(l) {
                    Some(r) => rest = r,
                    None => return false,
                }
            }
        }
        return rest.is_empty();
    }
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut cur = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    cur[0] = true;
    for atom in atoms {
        next.iter_mut().for_each(|b| *b = false);
        let mut any = false;
        match *atom {
            Atom::Lit(l) => {
                for p in 0..=n {
                    if cur[p] && bytes[p..].starts_with(l.as_bytes()) {
                        next[p + l.len()] = true;
                        any = true;
                    }
                }
            }
            Atom::Star { cross } => {
                let mut reach = false;
                for p in 0..=n {
                    reach |= cur[p];
                    if reach && text.is_char_boundary(p) {
                        next[p] = true;
                        any = true;
                    }
                    // A star that may not cross a colon cannot consume the colon at p.
                    if !cross && p < n && bytes[p] == b':' {
                        reach = false;
                    }
                }
            }
            Atom::Any { colon } => {
                for p in 0..n {
                    if cur[p]
                        && let Some(c) = text[p..].chars().next()
                        && (colon || c != ':')
                    {
                        next[p + c.len_utf8()] = true;
                        any = true;
                    }
                }
            }
        }
        if !any {
            return false;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur[n]
}

/// IAM's case-insensitive match of action names (`iot:Publish`, `iot:*`, `*`): no variables, every wildcard
/// crosses everything.
pub(crate) fn action_matches(pattern_lower: &str, action_lower: &str) -> bool {
    let mut atoms = Vec::new();
    push_wild(&mut atoms, pattern_lower);
    run(&atoms, action_lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> Tri {
        let ctx = Context::new("client-1");
        Pattern::parse(pattern, true, true).matches(text, &ctx, &mut Vec::new())
    }

    #[test]
    fn iam_wildcards_and_literal_mqtt_wildcards() {
        assert_eq!(m("topic/a/*", "topic/a/b/c"), Tri::Yes);
        assert_eq!(m("topic/a/*", "topic/a/"), Tri::Yes);
        assert_eq!(m("topic/a/*", "topic/a"), Tri::No);
        assert_eq!(m("topic/a/?", "topic/a/b"), Tri::Yes);
        assert_eq!(m("topic/a/?", "topic/a/bc"), Tri::No);
        assert_eq!(m("topic/a/?", "topic/a/é"), Tri::Yes, "? is one character, not one byte");
        assert_eq!(m("topicfilter/some/+/topic", "topicfilter/some/+/topic"), Tri::Yes);
        assert_eq!(m("topicfilter/some/+/topic", "topicfilter/some/x/topic"), Tri::No);
        assert_eq!(m("topicfilter/a/#", "topicfilter/a/b"), Tri::No);
        assert_eq!(m("topicfilter/*", "topicfilter/#"), Tri::Yes);
        assert_eq!(m("*", "arn:aws:iot:us-east-1:1:topic/x:y"), Tri::Yes);
        assert_eq!(m("topic/${iot:ClientId}/*", "topic/client-1/x"), Tri::Yes);
        assert_eq!(m("topic/${iot:ClientId}", "topic/client-2"), Tri::No);
        assert_eq!(m("topic/${*}", "topic/*"), Tri::Yes);
        assert_eq!(m("topic/${*}", "topic/x"), Tri::No);
    }

    #[test]
    fn colons_inside_a_segment_are_not_answered() {
        // A thing name with a colon: the trailing star is segment-final, so both readings agree.
        assert_eq!(m("arn:aws:iot:r:1:topic/things/a:b/*", "arn:aws:iot:r:1:topic/things/a:b/x"), Tri::Yes);
        // A mid-segment star over a colon: IAM's segment rule says no, AWS IoT's words say yes.
        assert_eq!(m("arn:aws:iot:r:1:topic/a*/x", "arn:aws:iot:r:1:topic/a:b/x"), Tri::Unknown);
        assert_eq!(m("arn:aws:iot:r:1:topic/a?b", "arn:aws:iot:r:1:topic/a:b"), Tri::Unknown);
        assert_eq!(m("arn:aws:iot:*:1:topic/x", "arn:aws:iot:us-east-1:1:topic/x"), Tri::Yes);
    }

    #[test]
    fn wildcard_values_and_unsubstituted_variables_are_not_answered() {
        let ctx = Context::new("*");
        let p = Pattern::parse("topic/${iot:ClientId}", true, true);
        assert_eq!(p.matches("topic/*", &ctx, &mut Vec::new()), Tri::Yes);
        assert_eq!(p.matches("topic/x", &ctx, &mut Vec::new()), Tri::Unknown);
        let p = Pattern::parse("topic/${iot:Connection.Thing.ThingName}", true, true);
        assert_eq!(p.matches("topic/x", &ctx, &mut Vec::new()), Tri::No);
        assert_eq!(p.matches("topic/${iot:Connection.Thing.ThingName}", &ctx, &mut Vec::new()), Tri::Unknown);
    }

    #[test]
    fn many_stars_cost_no_more_than_the_text() {
        let pattern = "*a".repeat(200);
        let text = "a".repeat(199);
        assert_eq!(m(&pattern, &text), Tri::No);
    }

    #[test]
    fn actions_match_without_case() {
        assert!(action_matches("iot:*", "iot:publish"));
        assert!(action_matches("*", "iot:connect"));
        assert!(action_matches("iot:publish", "iot:publish"));
        assert!(!action_matches("iot:publish", "iot:retainpublish"));
        assert!(action_matches("iot:*publish", "iot:retainpublish"));
    }
}
