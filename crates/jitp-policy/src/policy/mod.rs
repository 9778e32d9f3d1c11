//! Policy documents: render from the security team's Tera templates, then lint.
//!
//! Templates are compiled once, at start-up. Each device's template values are gathered once, in its
//! [`DeviceContext`]. Values taken from a certificate are untrusted: the renderer's escape function refuses,
//! with INVALID_ATTRIBUTE, any printed value that carries a character that could widen a policy (see
//! [`FORBIDDEN`]), and `| safe` cannot switch that off. The rendered document must be JSON, version
//! 2012-10-17, within AWS's size limit, and pass [`lint`] before anything uses it.

pub mod branches;
mod context;
mod filters;
mod guard;
pub mod lint;

use std::path::Path;

use serde::Serialize;
use tera::{Kwargs, State, Tera};

use jitp_pki::ids::{PolicyName, shown};
use jitp_pki::reason::{Rejection, reject};
use jitp_profile::ConfigError;
use jitp_profile::profile::{Config, PolicyMode, line_of};

pub use context::{AwsContext, DeviceContext};
pub use guard::{FORBIDDEN, forbidden_reason};
pub use lint::{Finding, Report, Rule, Scope, Severity};

/// AWS IoT's policy document limit: 2048 characters, whitespace excluded.
pub const MAX_POLICY_CHARS: usize = 2048;

/// A filter that returns its input as an ordinary (escapable) string: installed under the names of Tera's
/// filters that would mark a value safe, so that no template can print an unchecked value.
fn not_safe(value: std::borrow::Cow<'_, str>, _: Kwargs, _: &State) -> String {
    value.into_owned()
}

/// A rendered, validated, linted policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedPolicy {
    /// The policy's name in AWS IoT.
    pub name: PolicyName,
    /// The document as sent to AWS IoT: compact JSON, keys in a stable order.
    pub document: String,
    /// Lint warnings (errors refuse the policy).
    pub warnings: Vec<Finding>,
}

impl RenderedPolicy {
    /// The document as a JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.document).unwrap_or(serde_json::Value::Null)
    }
}

/// The compiled templates of a configuration: built from a [`Config`] by `rules::Rules`, which holds both.
#[derive(Debug)]
pub struct Engine {
    /// Policy templates, with the guard escape function.
    policies: Tera,
    /// Thing-name and attribute expressions: printed raw, validated by their newtypes afterwards.
    names: Tera,
}

fn thing_name_template(profile: &str) -> String {
    format!("profile:{profile}:thing_name")
}

fn attribute_template(profile: &str, attribute: &str) -> String {
    format!("profile:{profile}:attribute:{attribute}")
}

impl Engine {
    /// Compile every template `config`'s profiles name (files relative to `config.path`); a syntax error names
    /// the file and line.
    pub fn compile(config: &Config) -> Result<Self, ConfigError> {
        let config_path = config.path.as_path();
        let dir = config_path.parent().unwrap_or(Path::new(""));
        let mut policies = Tera::new();
        policies.autoescape_on(vec![""]);
        policies.set_escape_fn(guard::escape);
        for name in ["safe", "escape", "escape_html", "escape_xml"] {
            policies.register_filter(name, not_safe);
        }
        filters::install(&mut policies);
        let mut names = Tera::new();
        names.autoescape_on(Vec::<&str>::new());
        filters::install(&mut names);
        for profile in &config.profiles {
            if !policies.contains_template(&profile.policy) {
                let file = dir.join(&profile.policy);
                let source =
                    std::fs::read_to_string(&file).map_err(|source| ConfigError::Io { path: file.clone(), source })?;
                policies.add_raw_template(&profile.policy, &source).map_err(|e| template_error(&file, &source, &e))?;
            }
            check_no_outer_whitespace(
                config_path,
                &format!("profiles.{}.thing_name", profile.name),
                &profile.thing_name,
            )?;
            names.add_raw_template(&thing_name_template(&profile.name), &profile.thing_name).map_err(|e| {
                ConfigError::config(
                    config_path,
                    None,
                    format!("profiles.{}.thing_name", profile.name),
                    tera_message(&e),
                )
            })?;
            for (attr, expr) in &profile.attributes {
                check_no_outer_whitespace(config_path, &format!("profiles.{}.attributes.{attr}", profile.name), expr)?;
                names.add_raw_template(&attribute_template(&profile.name, attr.as_str()), expr).map_err(|e| {
                    ConfigError::config(
                        config_path,
                        None,
                        format!("profiles.{}.attributes.{attr}", profile.name),
                        tera_message(&e),
                    )
                })?;
            }
        }
        Ok(Self { policies, names })
    }

    /// Render the thing-name expression of `device`'s profile (unvalidated text: the caller makes a ThingName
    /// of it). An expression that fails to render (an undefined field...) is the template's fault:
    /// POLICY_TEMPLATE_ERROR, which holds the device instead of revoking it.
    ///
    /// The text is returned exactly as rendered: nothing is trimmed or normalised, so a subject value with a
    /// stray space or a look-alike character cannot become another device's name (it fails validation).
    pub fn render_thing_name(&self, device: &DeviceContext<'_>) -> Result<String, Rejection> {
        let profile = device.profile();
        self.names.render(&thing_name_template(&profile.name), device.values()).map_err(|e| {
            reject!(
                PolicyTemplateError,
                "the thing_name expression of profile {} failed to render: {}",
                profile.name,
                tera_message(&e)
            )
        })
    }

    /// Render one attribute expression, exactly (see [`Engine::render_thing_name`]); it sees the thing name once
    /// [`DeviceContext::name`] has added it.
    pub fn render_attribute(&self, device: &DeviceContext<'_>, attribute: &str) -> Result<String, Rejection> {
        let profile = device.profile();
        self.names.render(&attribute_template(&profile.name, attribute), device.values()).map_err(|e| {
            reject!(
                PolicyTemplateError,
                "the attribute {attribute:?} expression of profile {} failed to render: {}",
                profile.name,
                tera_message(&e)
            )
        })
    }

    /// Render, check and lint the policy for one device, named ([`DeviceContext::name`], per-thing mode) and
    /// placed ([`DeviceContext::place`]).
    pub fn render_policy(&self, device: &DeviceContext<'_>) -> Result<RenderedPolicy, Rejection> {
        let (rendered, name, scope) = self.render_unchecked(device)?;
        finish(&rendered, name, scope, &device.profile().policy)
    }

    /// Render the policy text and name, without the size, JSON and lint checks.
    pub fn render_unchecked<'d>(
        &self,
        device: &'d DeviceContext<'_>,
    ) -> Result<(String, PolicyName, Scope<'d>), Rejection> {
        let profile = device.profile();
        let Some(aws) = device.aws() else {
            return Err(reject!(
                PolicyTemplateError,
                "policy template {} was rendered for a device that was not placed (DeviceContext::place)",
                profile.policy
            ));
        };
        let shared;
        let (ctx, name, scope) = match profile.policy_mode {
            PolicyMode::PerThing => {
                let Some(thing_name) = device.thing_name() else {
                    return Err(reject!(
                        PolicyTemplateError,
                        "policy template {} was rendered for a device that was not named (DeviceContext::name)",
                        profile.policy
                    ));
                };
                let name = policy_name(&profile.policy_prefix, thing_name.as_str())?;
                (device.values(), name, Scope::Thing(thing_name.as_str()))
            }
            PolicyMode::Shared => {
                // One document for every device: the template sees no device values, so it cannot depend on them.
                let stem = crate::naming::template_stem(&profile.policy);
                shared = context::shared_context(aws, profile);
                (&shared, policy_name(&profile.policy_prefix, stem)?, Scope::Shared)
            }
        };
        let rendered = self.policies.render(&profile.policy, ctx).map_err(|e| {
            if guard::refused(&e) {
                // Which subject values are refused was settled when the context was built.
                let fields = device.refused();
                reject!(
                    InvalidAttribute,
                    "a value printed into policy template {} is not allowed in a policy: {}",
                    profile.policy,
                    if fields.is_empty() {
                        "a computed value carries a forbidden character".to_owned()
                    } else {
                        fields.join("; ")
                    }
                )
            } else {
                reject!(
                    PolicyTemplateError,
                    "policy template {} failed to render: {}",
                    profile.policy,
                    tera_message(&e)
                )
            }
        })?;
        Ok((rendered, name, scope))
    }

    /// The names of the compiled policy templates (`jitp lint` reviews each).
    pub fn policy_template_names(&self) -> impl Iterator<Item = &str> {
        self.policies.get_template_names()
    }
}

/// Check size, JSON and version, lint, and canonicalise a rendered document: one parse serves them all.
pub fn finish(rendered: &str, name: PolicyName, scope: Scope<'_>, template: &str) -> Result<RenderedPolicy, Rejection> {
    check_size(rendered, template)?;
    judge(rendered, &lint::Document::parse(rendered), name, scope, template)
}

/// [`finish`] with the document already parsed from `rendered` (`jitp lint` also shows its findings).
pub fn finish_parsed(
    rendered: &str,
    document: &lint::Document,
    name: PolicyName,
    scope: Scope<'_>,
    template: &str,
) -> Result<RenderedPolicy, Rejection> {
    check_size(rendered, template)?;
    judge(rendered, document, name, scope, template)
}

/// Everything [`finish`] checks after the size.
fn judge(
    rendered: &str,
    document: &lint::Document,
    name: PolicyName,
    scope: Scope<'_>,
    template: &str,
) -> Result<RenderedPolicy, Rejection> {
    check_json(rendered, document, template)?;
    let report = lint::lint_document(document, scope);
    refuse_lint_errors(&report, template)?;
    let canonical = document.canonical().unwrap_or_default();
    Ok(RenderedPolicy { name, document: canonical, warnings: report.warnings().cloned().collect() })
}

fn check_size(rendered: &str, template: &str) -> Result<(), Rejection> {
    let size = rendered.chars().filter(|c| !c.is_whitespace()).count();
    if size > MAX_POLICY_CHARS {
        return Err(reject!(
            PolicyTooLarge,
            "the policy rendered from {template} is {size} characters without whitespace; AWS IoT allows {MAX_POLICY_CHARS}"
        ));
    }
    Ok(())
}

/// The document is JSON with `"Version": "2012-10-17"`, or the template is at fault (POLICY_TEMPLATE_ERROR).
fn check_json(rendered: &str, document: &lint::Document, template: &str) -> Result<(), Rejection> {
    let not_json = |e: &serde_json::Error| {
        reject!(PolicyTemplateError, "the policy rendered from {template} is not valid JSON: {e}")
    };
    let version_ok = if document.repeats_a_key() {
        // Rare (a broken template): JSON that repeats a key is judged as serde_json::Value reads it, the last of
        // two equal keys winning, as it always was; the lint then refuses it (invalid-document).
        let value: serde_json::Value = serde_json::from_str(rendered).map_err(|e| not_json(&e))?;
        value.get("Version").and_then(|v| v.as_str()) == Some(lint::POLICY_VERSION)
    } else if let Some(e) = document.error() {
        return Err(not_json(e));
    } else {
        document.version() == Some(lint::POLICY_VERSION)
    };
    if !version_ok {
        return Err(reject!(
            PolicyTemplateError,
            "the policy rendered from {template} must have \"Version\": \"2012-10-17\""
        ));
    }
    Ok(())
}

/// `prefix + name`, with `:` (legal in thing names, not in policy names) spelled `.` (illegal in thing names,
/// so the mapping cannot collide).
pub fn policy_name(prefix: &str, name: &str) -> Result<PolicyName, Rejection> {
    let candidate = format!("{prefix}{}", name.replace(':', "."));
    PolicyName::try_from(candidate.clone()).map_err(|_| {
        reject!(
            InvalidThingName,
            "the policy name {} would not be valid (1 to 128 of [A-Za-z0-9_+=,.@-])",
            shown(&candidate)
        )
    })
}

/// A thing_name or attribute expression may not begin or end with whitespace of its own: the rendered text is
/// used as it is (never trimmed, so that no subject value is trimmed either), and such whitespace would make
/// every name invalid. Whitespace inside `{{ }}` or `{% %}` is syntax and is fine.
fn check_no_outer_whitespace(config_path: &Path, key: &str, expr: &str) -> Result<(), ConfigError> {
    let bad =
        expr.chars().next().filter(|c| c.is_whitespace()).or_else(|| expr.chars().last().filter(|c| c.is_whitespace()));
    match bad {
        Some(c) => Err(ConfigError::config(
            config_path,
            None,
            key,
            format!(
                "the expression {} begins or ends with whitespace ({}); jitp uses the rendered text exactly as it is \
                 and never trims it: remove the whitespace",
                shown(expr),
                describe_char(c)
            ),
        )),
        None => Ok(()),
    }
}

/// `U+00A0 ('\u{a0}')`: a character named so that invisible ones show.
pub fn describe_char(c: char) -> String {
    format!("U+{:04X} {c:?}", u32::from(c))
}

fn tera_message(e: &tera::Error) -> String {
    jitp_pki::report::chain(e)
}

fn template_error(file: &Path, source: &str, e: &tera::Error) -> ConfigError {
    let message = tera_message(e);
    // Tera's report carries "name:line:col"; keep the line for the config error.
    let line = message.lines().find_map(|l| {
        l.trim().strip_prefix("-->").and_then(|rest| rest.rsplit(':').nth(1)).and_then(|n| n.trim().parse().ok())
    });
    let _ = line_of(source, 0);
    ConfigError::config(file, line, "template", message)
}

/// POLICY_TOO_PERMISSIVE naming the lint's first three errors, if the rendered policy has any.
fn refuse_lint_errors(report: &lint::Report, template: &str) -> Result<(), Rejection> {
    if !report.has_errors() {
        return Ok(());
    }
    let first: Vec<String> = report.errors().take(3).map(|f| format!("[{}] {}", f.rule, f.message)).collect();
    Err(reject!(PolicyTooPermissive, "the policy rendered from {template} is too permissive: {}", first.join("; ")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use jitp_pki::reason::ReasonCode;

    /// `finish` before the single parse: serde_json::Value for the JSON and Version checks and the canonical
    /// form, the lint parsing the text again. The one parse must decide exactly as it did.
    fn two_parses(
        rendered: &str,
        name: PolicyName,
        scope: Scope<'_>,
        template: &str,
    ) -> Result<RenderedPolicy, Rejection> {
        check_size(rendered, template)?;
        let value: serde_json::Value = serde_json::from_str(rendered)
            .map_err(|e| reject!(PolicyTemplateError, "the policy rendered from {template} is not valid JSON: {e}"))?;
        if value.get("Version").and_then(|v| v.as_str()) != Some("2012-10-17") {
            return Err(reject!(
                PolicyTemplateError,
                "the policy rendered from {template} must have \"Version\": \"2012-10-17\""
            ));
        }
        let report = lint::lint(rendered, scope);
        refuse_lint_errors(&report, template)?;
        let document = serde_json::to_string(&value).unwrap_or_default();
        Ok(RenderedPolicy { name, document, warnings: report.warnings().cloned().collect() })
    }

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

    fn documents() -> Vec<String> {
        let clean = format!(
            r#"{{ "Version": "2012-10-17", "Id": "x\u00e9\n",
  "Statement": [
    {{ "Sid": "c", "Effect": "Allow", "Action": "iot:Connect", "Resource": "{ARN}:client/dev-1",
       "Condition": {{ "Bool": {{ "iot:Connection.Thing.IsAttached": "true" }}, "NumericLessThan": {{ "n": [1, -2, 3.5, 1e2, 1E-7, 12345678901234567890, -0, 0.0, 1.5e300] }}, "Null": {{ "a": true, "b": false, "c": null }} }} }},
    {{ "Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": ["{ARN}:topic/things/dev-1/*"] }},
    {{ "Effect": "Deny", "Action": "iot:Publish", "Resource": "{ARN}:topic/things/dev-1/a/#" }}
  ]
}}"#
        );
        let mut out = vec![
            clean.clone(),
            clean.replacen(
                "\"Version\": \"2012-10-17\",",
                "\"Version\": \"2012-10-17\", \"Version\": \"2012-10-17\",",
                1,
            ),
            clean.replacen(
                "\"Version\": \"2012-10-17\",",
                "\"Version\": \"2012-10-17\", \"Version\": \"2008-10-17\",",
                1,
            ),
            clean.replacen(
                "\"Version\": \"2012-10-17\",",
                "\"Version\": \"2008-10-17\", \"Version\": \"2012-10-17\",",
                1,
            ),
            clean.replacen("\"Effect\": \"Deny\"", "\"Effect\": \"Deny\", \"Effect\": \"Allow\"", 1),
            clean.replacen("\"Effect\": \"Deny\"", "\"Effect\": \"Deny\", \"Eff\\u0065ct\": \"Deny\"", 1) + " trailing",
            clean.replacen("\"Version\": \"2012-10-17\",", "", 1),
            clean.replacen("\"2012-10-17\"", "20121017", 1),
            format!("{clean}{}", " ".repeat(40 * 1024)),
            format!("{}{clean}", "\n".repeat(40 * 1024)),
            "[]".to_owned(),
            "\"2012-10-17\"".to_owned(),
            "null".to_owned(),
            String::new(),
            "{\"Version\":\"2012-10-17\",\"Statement\":[]}".to_owned(),
            "{\"$serde_json::private::Number\":\"1\"}".to_owned(),
            r#"{"$serde_json::private::RawValue":"{\"Version\":\"2012-10-17\"}"}"#.to_owned(),
        ];
        let positions: Vec<usize> = clean.char_indices().map(|(i, _)| i).step_by(7).collect();
        for at in positions {
            for insert in ["*", "\"", "}", "]", ",", "/", "${", "#", "\\u0000", ":", "1", "\"Version\":\"2012-10-17\","]
            {
                let mut mutated = clean.clone();
                mutated.insert_str(at, insert);
                out.push(mutated);
            }
        }
        out
    }

    #[test]
    fn one_parse_decides_as_two_did() {
        let name = PolicyName::try_from("jitp-dev-1".to_owned()).unwrap();
        let mut accepted = 0;
        for document in documents() {
            for scope in [Scope::Thing("dev-1"), Scope::Shared] {
                let one = finish(&document, name.clone(), scope, "t.json.tera");
                if document.contains("$serde_json::private") {
                    // serde_json's own magic keys: with its `raw_value` or `arbitrary_precision` feature (which
                    // another crate of the workspace may switch on) the two-parse reference reads them as the value
                    // they wrap. The one parse does not use serde_json, so it refuses them the same way in every
                    // build; only that is checked.
                    assert_eq!(
                        one.map(|_| ()).map_err(|e| e.reason),
                        Err(ReasonCode::PolicyTemplateError),
                        "{document}"
                    );
                    continue;
                }
                let two = two_parses(&document, name.clone(), scope, "t.json.tera");
                assert_eq!(one, two, "{document}");
                accepted += usize::from(one.is_ok());
            }
        }
        assert!(accepted > 0, "some documents pass, so the canonical forms were compared");
    }
}
