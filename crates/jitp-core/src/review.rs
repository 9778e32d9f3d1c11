//! `jitp lint` and `GET /v1/lint`: render every profile's template for a synthetic device and lint it, then
//! render the names and the policy for every synthetic subject of [`jitp_policy::policy::branches`] through the same
//! code path as a real device, so that a branch that is too wide, or fails to render, for some subject the
//! profile accepts is found before any device takes it.
//!
//! Above [`crate::decide`], whose code path it shares: the templates, the configuration and the decision are
//! all below it.

use serde::Serialize;

use crate::decide::render_names;
use crate::rules::Rules;
use jitp_pki::cert::Subject;
use jitp_pki::reason::{ReasonCode, Rejection};
use jitp_pki::unix_time::rfc3339;
use jitp_policy::policy::branches::{self, MAX_SUBJECTS};
use jitp_policy::policy::{self, AwsContext, DeviceContext, Finding, Severity};
use jitp_profile::judge::subject_accepted;
use jitp_profile::profile::{CrlPolicy, Profile};
use jitp_registry::thing::ThingName;

const ZERO_ID: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The lint result of one profile's template.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateReport {
    /// The profile.
    pub profile: String,
    /// The template file, relative to the config.
    pub template: String,
    /// The policy name the synthetic device would get.
    pub policy_name: Option<String>,
    /// Lint findings, with the template line of their statement when it can be found.
    pub findings: Vec<LocatedFinding>,
    /// A rendering failure (reason code and message), if the template did not render.
    pub error: Option<jitp_pki::reason::Rejection>,
    /// How many synthetic subjects were rendered.
    pub subjects: usize,
    /// Subjects the profile accepts for which a template renders too wide, too large, or not at all.
    pub branches: Vec<BranchFinding>,
    /// Policy tests (the template's tests file and the built-in ones) that failed, first subject each.
    pub policy_tests: Vec<crate::policy_tests::PolicyTestFinding>,
    /// How many policy-test checks ran (over every synthetic subject).
    pub policy_checks: usize,
}

/// A subject the profile accepts, for which a template fails: the template's fault, found at lint time.
#[derive(Debug, Clone, Serialize)]
pub struct BranchFinding {
    /// The file at fault: the policy template, or the config for a thing_name/attribute expression.
    pub file: String,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// What a device with this subject would get.
    pub reason: ReasonCode,
    /// Why.
    pub message: String,
    /// The subject that triggers it, e.g. `CN="gw-aa-0000", O="Acme" (no OU, ST)`.
    pub subject: String,
}

/// At most this many branch findings per template: the first of each kind is what the author needs.
pub const MAX_BRANCH_FINDINGS: usize = 20;

/// A finding plus where in the template it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct LocatedFinding {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// 1-based line of the statement in the template, when found.
    pub line: Option<usize>,
}

impl TemplateReport {
    /// Errors make `jitp lint` fail.
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
            || !self.branches.is_empty()
            || !self.policy_tests.is_empty()
            || self.findings.iter().any(|f| f.finding.severity == Severity::Error)
    }
}

/// What `jitp lint` shows of one CRL a profile lists. Without the registered CA (it comes from the registry)
/// lint cannot check the CRL's issuer key; `jitp check --ca` and the workflow do (see [`crate::decide`]).
#[derive(Debug, Clone, Serialize)]
pub struct CrlReport {
    /// The profile.
    pub profile: String,
    /// The file as written in `crl = [...]`.
    pub file: String,
    /// The CRL's issuer, RFC 4514.
    pub issuer: String,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: String,
    /// The profile's `crl_policy`.
    pub policy: CrlPolicy,
    /// Is it past its nextUpdate at the lint time? Under `enforce` the profile's devices would be held: a lint
    /// error; under `warn` a warning.
    pub stale: bool,
    /// Which devices it covers (its issuingDistributionPoint), in a phrase: a device no listed CRL covers is
    /// held under `enforce` (CRL_SCOPE_MISMATCH).
    pub scope: String,
    /// The delta CRLs it advertises (freshestCRL), which jitp does not read: under `enforce` the devices it
    /// covers are held (a lint error), under `warn` it is used as it is (a warning).
    pub freshest_crl: Option<String>,
    /// How many entries are certificateHold (suspensions: those devices are held, not revoked).
    pub on_hold: usize,
    /// How many entries are removeFromCRL (allowed by RFC 5280 only in delta CRLs; read as not revoked).
    pub removed_from_crl: usize,
}

impl CrlReport {
    /// A stale CRL, or one advertising delta CRLs, under `crl_policy = "enforce"` makes `jitp lint` fail.
    pub fn has_errors(&self) -> bool {
        (self.stale || self.freshest_crl.is_some()) && self.policy == CrlPolicy::Enforce
    }
}

/// Every CRL of every profile of `rules`, as of `now`.
pub fn crl_reports(rules: &Rules, now: i64) -> Vec<CrlReport> {
    let config = rules.config();
    config
        .profiles
        .iter()
        .flat_map(|profile| {
            profile.crl.iter().map(move |listed| CrlReport {
                profile: profile.name.clone(),
                file: listed.file.clone(),
                issuer: listed.crl.issuer().to_owned(),
                revoked: listed.crl.revoked_count(),
                this_update: rfc3339(listed.crl.this_update()),
                next_update: rfc3339(listed.crl.next_update()),
                policy: profile.crl_policy,
                stale: listed.crl.expired_at(now),
                scope: listed.crl.scope().describe(),
                freshest_crl: listed.crl.freshest_crl().map(str::to_owned),
                on_hold: listed.crl.on_hold_count(),
                removed_from_crl: listed.crl.removed_count(),
            })
        })
        .collect()
}

/// What `jitp lint --format json` prints and `GET /v1/lint` answers: every template's report and every CRL's,
/// and whether any of them fails the lint.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// No template and no CRL has an error.
    pub ok: bool,
    /// One per profile, in the configuration's order.
    pub templates: Vec<TemplateReport>,
    /// One per CRL file, profile by profile.
    pub crls: Vec<CrlReport>,
}

impl LintReport {
    /// The report of `templates` (from [`lint_templates`]) and `crls` (from [`crl_reports`]).
    pub fn new(templates: Vec<TemplateReport>, crls: Vec<CrlReport>) -> Self {
        let ok = !templates.iter().any(TemplateReport::has_errors) && !crls.iter().any(CrlReport::has_errors);
        Self { ok, templates, crls }
    }
}

/// The synthetic device `jitp lint` renders templates for.
pub fn synthetic_subject(organization: Option<&str>) -> Subject {
    Subject {
        cn: vec!["example-device".into()],
        o: vec![organization.unwrap_or("Example").into()],
        ou: vec!["example-unit".into()],
        c: vec!["US".into()],
        st: vec!["example-state".into()],
        serial_number: vec!["0001".into()],
    }
}

/// Lint every profile's template in `rules`.
pub fn lint_templates(rules: &Rules, aws: &AwsContext) -> Vec<TemplateReport> {
    let config = rules.config();
    config
        .profiles
        .iter()
        .map(|profile| {
            let subject = synthetic_subject(profile.organization.as_ref().and_then(|o| o.first()).map(String::as_str));
            let thing_name = ThingName::try_from("example-thing".to_owned()).ok();
            let source = std::fs::read_to_string(
                config.path.parent().unwrap_or(std::path::Path::new(".")).join(&profile.policy),
            )
            .unwrap_or_default();
            let mut report = TemplateReport {
                profile: profile.name.clone(),
                template: profile.policy.clone(),
                policy_name: None,
                findings: Vec::new(),
                error: None,
                subjects: 0,
                branches: Vec::new(),
                policy_tests: Vec::new(),
                policy_checks: 0,
            };
            branches(rules, profile, aws, &source, &mut report);
            let Some(thing_name) = thing_name else {
                return report;
            };
            let mut device = DeviceContext::new(profile, &subject, ZERO_ID, "01", ZERO_ID);
            device.name(thing_name);
            device.place(aws);
            match rules.templates().render_unchecked(&device) {
                Ok((text, name, scope)) => {
                    report.policy_name = Some(name.to_string());
                    let document = policy::lint::Document::parse(&text);
                    let mut lint = policy::lint::lint_document(&document, scope);
                    // The connect guard on: iot:Connect only on the guarded domain (policy/lint/domain.rs).
                    if let Some(guard) = &rules.config().guard {
                        lint.findings.extend(policy::lint::lint_guard_domain(&document, &guard.domain_name).findings);
                    }
                    report.findings = lint
                        .findings
                        .into_iter()
                        .map(|f| LocatedFinding {
                            line: f.statement.and_then(|i| statement_line(&source, i)),
                            finding: f,
                        })
                        .collect();
                    if let Err(e) = policy::finish_parsed(&text, &document, name, scope, &profile.policy)
                        && e.reason != jitp_pki::reason::ReasonCode::PolicyTooPermissive
                    {
                        report.error = Some(e);
                    }
                }
                Err(e) => report.error = Some(e),
            }
            report
        })
        .collect()
}

/// The line of the `index`-th `"Effect"` key in a template: where statement `index` is written.
fn statement_line(source: &str, index: usize) -> Option<usize> {
    source.lines().enumerate().filter(|(_, l)| l.contains("\"Effect\"")).nth(index).map(|(n, _)| n + 1)
}

/// Render every synthetic subject of `profile` and record the ones a template fails for.
fn branches(rules: &Rules, profile: &Profile, aws: &AwsContext, source: &str, report: &mut TemplateReport) {
    let config_file = rules.config().path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let scan = branches::scan(profile, source);
    let subjects = match branches::subjects(profile, &scan) {
        Ok(s) => s,
        Err(n) => {
            report.branches.push(BranchFinding {
                file: profile.policy.clone(),
                line: None,
                reason: ReasonCode::PolicyTemplateError,
                message: format!(
                    "the templates of profile {} read subject values in {n} combinations, over the {MAX_SUBJECTS} \
                     jitp lint can check; they cannot be proven safe: branch on fewer fields or literals",
                    profile.name
                ),
                subject: String::new(),
            });
            return;
        }
    };
    let mut seen = std::collections::HashSet::new();
    let config_dir = rules.config().path.parent().unwrap_or(std::path::Path::new("."));
    let suite =
        crate::policy_tests::Suite::load(config_dir, &profile.policy).map_err(|f| report.policy_tests.push(*f)).ok();
    let mut tests_seen = std::collections::HashSet::new();
    for subject in &subjects {
        if subject_accepted(profile, subject).is_err() {
            continue;
        }
        report.subjects += 1;
        let mut rendered = None;
        let Some((file, line, rejection)) = failure(rules, profile, aws, source, subject, &config_file, &mut rendered)
        else {
            // The policy renders for this subject: run the policy tests on it.
            if let (Some(suite), Some((text, thing_name))) = (&suite, rendered) {
                report.policy_checks += crate::policy_tests::run(
                    suite,
                    &text,
                    &thing_name,
                    aws,
                    &branches::describe(subject),
                    &|i| statement_line(source, i),
                    &mut report.policy_tests,
                    &mut tests_seen,
                );
                report.policy_tests.truncate(MAX_BRANCH_FINDINGS);
            }
            continue;
        };
        let key = (file.clone(), line, rejection.reason, first_words(&rejection.message));
        if report.branches.len() < MAX_BRANCH_FINDINGS && seen.insert(key) {
            report.branches.push(BranchFinding {
                file,
                line,
                reason: rejection.reason,
                message: rejection.message,
                subject: branches::describe(subject),
            });
        }
    }
}

/// The template failure one accepted subject meets, if any: `(file, line, rejection)`. Rejections that are
/// the device's fault for a value that earns them (a refused character, an invalid name from a hostile or
/// long value) are the guard working, not a failure.
fn failure(
    rules: &Rules,
    profile: &Profile,
    aws: &AwsContext,
    source: &str,
    subject: &Subject,
    config_file: &str,
    rendered: &mut Option<(String, String)>,
) -> Option<(String, Option<usize>, Rejection)> {
    let mut device = DeviceContext::new(profile, subject, ZERO_ID, "01", ZERO_ID);
    match render_names(rules, &mut device) {
        Ok(_) => {}
        Err(e)
            if matches!(e.reason, ReasonCode::InvalidThingName | ReasonCode::InvalidAttribute) && !benign(subject) =>
        {
            return None;
        }
        Err(e) => return Some((config_file.to_owned(), None, e)),
    }
    device.place(aws);
    let (rejection, line) = match rules.templates().render_unchecked(&device) {
        Err(e) => (e, None),
        Ok((text, name, scope)) => match policy::finish(&text, name, scope, &profile.policy) {
            Ok(_) => {
                *rendered = device.thing_name().map(|t| (text, t.to_string()));
                return None;
            }
            Err(e) => {
                // A failure only (rare): the lint again, for the line of its first error.
                let line = policy::lint::lint(&text, scope)
                    .errors()
                    .find_map(|f| f.statement)
                    .and_then(|i| statement_line(source, i));
                (e, line)
            }
        },
    };
    if rejection.reason == ReasonCode::InvalidAttribute && !device.refused().is_empty() {
        return None;
    }
    let line = line.or_else(|| tera_line(&rejection.message));
    Some((profile.policy.clone(), line, rejection))
}

/// Every value short and of thing-name characters: a subject whose names must be valid.
fn benign(subject: &Subject) -> bool {
    subject.fields().iter().all(|(_, values)| {
        values.iter().all(|v| v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    })
}

/// The line in a Tera error report (`--> name:line:col`).
fn tera_line(message: &str) -> Option<usize> {
    message.split("-->").nth(1).and_then(|rest| {
        let loc = rest.split_whitespace().next()?;
        loc.rsplit(':').nth(1)?.parse().ok()
    })
}

/// The message without the quoted values, to tell kinds of failure apart.
fn first_words(message: &str) -> String {
    message.split(['"', '(']).next().unwrap_or(message).chars().take(120).collect()
}
