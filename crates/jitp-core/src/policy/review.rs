//! `jitp lint` and `GET /v1/lint`: render every profile's template for a synthetic device and lint it, so the
//! security team sees problems before any device does.

use serde::Serialize;

use super::{AwsContext, DeviceContext, Finding, Severity};
use crate::cert::Subject;
use crate::profile::Config;
use crate::thing::ThingName;

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
    pub error: Option<crate::reason::Rejection>,
}

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
        self.error.is_some() || self.findings.iter().any(|f| f.finding.severity == Severity::Error)
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

/// Lint every profile's template in `config`.
pub fn lint_templates(config: &Config, aws: &AwsContext) -> Vec<TemplateReport> {
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
            };
            let Some(thing_name) = thing_name else {
                return report;
            };
            let device = DeviceContext {
                thing_name: &thing_name,
                aws,
                certificate_id: "0000000000000000000000000000000000000000000000000000000000000000",
                certificate_serial: "01",
                ca_id: "0000000000000000000000000000000000000000000000000000000000000000",
                subject: &subject,
                profile,
            };
            match config.engine().render_unchecked(&device) {
                Ok((text, name, scope)) => {
                    report.policy_name = Some(name.to_string());
                    let lint = super::lint::lint(&text, scope);
                    report.findings = lint
                        .findings
                        .into_iter()
                        .map(|f| LocatedFinding {
                            line: f.statement.and_then(|i| statement_line(&source, i)),
                            finding: f,
                        })
                        .collect();
                    if let Err(e) = super::finish(&text, name, scope, &profile.policy)
                        && e.reason != crate::reason::ReasonCode::PolicyTooPermissive
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
