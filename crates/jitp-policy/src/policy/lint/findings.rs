//! What a lint reports: findings, the report, and the sink that collects them within their caps.

use std::fmt;

use serde::Serialize;

use super::rules::{Rule, Severity};

/// Findings kept per severity. Capped separately so that a flood of warnings can never push the
/// errors out of a report: a document with an error always reports at least one.
pub const MAX_FINDINGS_PER_SEVERITY: usize = 100;

/// One problem found in a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule; serialises as its stable id, e.g. `"allow-wildcard-action"`.
    pub rule: Rule,
    /// The rule's severity, repeated here for consumers of the JSON form.
    pub severity: Severity,
    /// 0-based index into `Statement` (`None` for document-level findings).
    pub statement: Option<usize>,
    /// The offending action, as written.
    pub action: Option<String>,
    /// The offending resource, as written.
    pub resource: Option<String>,
    /// One human sentence naming the offending value (values are quoted and escaped).
    pub message: String,
    /// One-line fix hint.
    pub hint: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.rule)?;
        if let Some(index) = self.statement {
            write!(f, " statement {index}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of linting one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Findings in document order.
    pub findings: Vec<Finding>,
    /// Findings not recorded because [`MAX_FINDINGS_PER_SEVERITY`] was reached for their severity
    /// (counted without removing repeats).
    pub omitted: usize,
}

impl Report {
    /// Whether any finding is an error: the policy must not be used.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Whether there is nothing to report at all.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.omitted == 0
    }

    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }

    /// The warning findings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Warning)
    }
}

#[derive(Debug, Default)]
pub(super) struct Sink {
    findings: Vec<Finding>,
    errors: usize,
    warnings: usize,
    omitted: usize,
}

impl Sink {
    pub(super) fn push(
        &mut self,
        rule: Rule,
        statement: Option<usize>,
        action: Option<&str>,
        resource: Option<&str>,
        message: impl FnOnce() -> String,
    ) {
        // Past the cap nothing is compared any more, so the work per pair stays constant.
        let full = match rule.severity() {
            Severity::Error => self.errors,
            Severity::Warning => self.warnings,
        } >= MAX_FINDINGS_PER_SEVERITY;
        if full {
            self.omitted += 1;
            return;
        }
        let same_place = |f: &Finding| {
            f.rule == rule
                && f.statement == statement
                && f.action.as_deref() == action
                && f.resource.as_deref() == resource
        };
        // One finding per rule and place: a wildcard action expands to several data-plane actions that
        // would otherwise repeat it. Document errors differ by message, so they are kept apart.
        if rule != Rule::InvalidDocument && self.findings.iter().any(same_place) {
            return;
        }
        let message = message();
        if rule == Rule::InvalidDocument && self.findings.iter().any(|f| same_place(f) && f.message == message) {
            return;
        }
        let count = match rule.severity() {
            Severity::Error => &mut self.errors,
            Severity::Warning => &mut self.warnings,
        };
        *count += 1;
        self.findings.push(Finding {
            rule,
            severity: rule.severity(),
            statement,
            action: action.map(str::to_owned),
            resource: resource.map(str::to_owned),
            message,
            hint: rule.hint(),
        });
    }

    pub(super) fn invalid(&mut self, statement: Option<usize>, message: String) {
        self.push(Rule::InvalidDocument, statement, None, None, || message);
    }

    /// Reports a statement-level document error and yields `None`, for early returns.
    pub(super) fn invalid_none<T>(&mut self, index: usize, message: String) -> Option<T> {
        self.invalid(Some(index), message);
        None
    }

    pub(super) fn invalid_action(&mut self, index: usize, raw: &str) {
        self.push(Rule::InvalidDocument, Some(index), Some(raw), None, || {
            format!("action {} is not of the form service:Action", quoted(raw))
        });
    }

    pub(super) fn finish(mut self) -> Report {
        // Receive on a pair already reported as unscoped (e.g. through `iot:*`) adds nothing.
        let unscoped: Vec<(Option<usize>, Option<String>, Option<String>)> = self
            .findings
            .iter()
            .filter(|f| f.rule == Rule::UnscopedTopicAccess)
            .map(|f| (f.statement, f.action.clone(), f.resource.clone()))
            .collect();
        self.findings.retain(|f| {
            f.rule != Rule::BroadReceive
                || !unscoped.iter().any(|(s, a, r)| *s == f.statement && *a == f.action && *r == f.resource)
        });
        Report { findings: self.findings, omitted: self.omitted }
    }
}

/// Quotes an untrusted value for a message: escaped (no control characters reach logs) and shortened.
pub(super) fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 120;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}
