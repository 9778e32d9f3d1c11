//! Tera builtin filters replaced so that no filter folds two different subject values together behind the
//! template author's back.
//!
//! A subject value is attacker-controlled, and the thing name derived from it is an identity: two subjects
//! may share a thing only when the security team's template says so. Some builtins are many-to-one on
//! purpose and visibly so (`truncate`, `replace`, `split`, `default`, `length`, `wordcount`): writing one is
//! the template's explicit choice, documented in `templates/README.md`. The traps are the ones whose
//! many-to-one-ness reaches past what the name promises:
//!
//! - `lower`, `upper`, `capitalize`, `title` use Unicode case mapping, which folds non-ASCII letters onto
//!   ASCII ones (KELVIN SIGN U+212A lowercases to `k`, LONG S U+017F uppercases to `S`, U+0131 to `I`,
//!   `ß` to `SS`, the ligature U+FB01 to `FI`). Here they map `A-Z`/`a-z` only; every other character is
//!   left as it is, so a non-ASCII value stays non-ASCII and the thing-name check rejects it.
//! - `trim`, `trim_start`, `trim_end` without `pat` strip Unicode whitespace (NO-BREAK SPACE, IDEOGRAPHIC
//!   SPACE...). Here they strip ASCII whitespace only (space, tab, CR, LF, FF); with `pat` they behave as
//!   Tera's.
//!
//! Tera 2 has no `slugify` (a template naming it fails to compile). Each replacement keeps Tera's safety
//! flag handling (`inherit_safety`), so it cannot turn an unchecked value into a safe one.

use tera::{Kwargs, State, StringInput, Tera, TeraResult, Value};

/// Install the replacements in `tera` under the builtin names. Both of the engine's instances get them.
pub(crate) fn install(tera: &mut Tera) {
    tera.register_filter("lower", lower);
    tera.register_filter("upper", upper);
    tera.register_filter("capitalize", capitalize);
    tera.register_filter("title", title);
    tera.register_filter("trim", trim);
    tera.register_filter("trim_start", trim_start);
    tera.register_filter("trim_end", trim_end);
}

fn lower(val: StringInput, _: Kwargs, _: &State) -> Value {
    let out = val.as_str().to_ascii_lowercase();
    val.inherit_safety(out)
}

fn upper(val: StringInput, _: Kwargs, _: &State) -> Value {
    let out = val.as_str().to_ascii_uppercase();
    val.inherit_safety(out)
}

/// ASCII-uppercase the first character, ASCII-lowercase the rest.
fn capitalize(val: StringInput, _: Kwargs, _: &State) -> Value {
    let s = val.as_str();
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
        out.push_str(&chars.as_str().to_ascii_lowercase());
    }
    val.inherit_safety(out)
}

/// ASCII-uppercase the first letter of each word, ASCII-lowercase the others (word boundaries as Tera's).
fn title(val: StringInput, _: Kwargs, _: &State) -> Value {
    let mut out = String::with_capacity(val.as_str().len());
    let mut start_of_word = true;
    for c in val.as_str().chars() {
        if c.is_ascii_punctuation() || c.is_whitespace() {
            out.push(c);
            if c != '\'' {
                start_of_word = true;
            }
        } else if start_of_word {
            out.push(c.to_ascii_uppercase());
            start_of_word = false;
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    val.inherit_safety(out)
}

fn trim(val: StringInput, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let s = val.as_str();
    let out = match kwargs.get::<&str>("pat")? {
        Some(pat) => s.trim_start_matches(pat).trim_end_matches(pat),
        None => s.trim_matches(|c: char| c.is_ascii_whitespace()),
    };
    Ok(val.inherit_safety(out.to_owned()))
}

fn trim_start(val: StringInput, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let s = val.as_str();
    let out = match kwargs.get::<&str>("pat")? {
        Some(pat) => s.trim_start_matches(pat),
        None => s.trim_start_matches(|c: char| c.is_ascii_whitespace()),
    };
    Ok(val.inherit_safety(out.to_owned()))
}

fn trim_end(val: StringInput, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let s = val.as_str();
    let out = match kwargs.get::<&str>("pat")? {
        Some(pat) => s.trim_end_matches(pat),
        None => s.trim_end_matches(|c: char| c.is_ascii_whitespace()),
    };
    Ok(val.inherit_safety(out.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn render(expr: &str, value: &str) -> String {
        let mut tera = Tera::new();
        install(&mut tera);
        tera.add_raw_template("t", expr).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("v", value);
        tera.render("t", &ctx).unwrap()
    }

    #[test]
    fn case_filters_map_ascii_only() {
        assert_eq!(render("{{ v | lower }}", "Sensor-AB"), "sensor-ab");
        assert_eq!(render("{{ v | upper }}", "sensor-ab"), "SENSOR-AB");
        // KELVIN SIGN, LONG S, dotted/dotless I, sharp s, ligature fi: left exactly as they are.
        for special in ["\u{212A}", "\u{017F}", "\u{0130}", "\u{0131}", "ß", "\u{FB01}"] {
            let v = format!("sensor-{special}");
            assert_eq!(render("{{ v | lower }}", &v), v.to_ascii_lowercase());
            assert_eq!(render("{{ v | upper }}", &v), v.to_ascii_uppercase());
            assert!(render("{{ v | capitalize }}", &v).contains(special));
            assert!(render("{{ v | title }}", &v).contains(special));
        }
        assert_eq!(render("{{ v | capitalize }}", "hELLO"), "Hello");
        assert_eq!(render("{{ v | title }}", "hello wORLD"), "Hello World");
    }

    #[test]
    fn trims_strip_ascii_whitespace_only() {
        assert_eq!(render("{{ v | trim }}", " a\t"), "a");
        for ws in ["\u{00A0}", "\u{3000}", "\u{2003}", "\u{FEFF}", "\u{0085}"] {
            let v = format!("{ws}a{ws}");
            assert_eq!(render("{{ v | trim }}", &v), v);
            assert_eq!(render("{{ v | trim_start }}", &v), v);
            assert_eq!(render("{{ v | trim_end }}", &v), v);
        }
        assert_eq!(render("{{ v | trim(pat='x') }}", "xax"), "a");
    }
}
