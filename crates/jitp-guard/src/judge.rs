//! The one adapter to the provisioning decision: every jitp-core decision item the guard uses is imported here,
//! so that the switch to `jitp_profile::judge` (issue 22's split) is an edit of this file.
//!
//! What the guard needs is the certificate half of `jitp_core::decide::decide`, everything up to and including
//! the profile's own checks: the certificate parses, a profile lists the CA, the CA's checks and validity,
//! `cert::verify_device` (signature, algorithms, key usage, name constraints, weak keys, validity with the clock
//! skew), the subject rules select the profile, the profile's CRLs (revoked, on hold, scope, stale under
//! `crl_policy`), then its deny list, key floor and limits. Until `jitp_profile::judge` is on main this calls
//! the whole `decide` and ignores its last stage (the thing name, the attributes and the policy): a refusal there
//! is a provisioning matter (the names AWS IoT will give the thing, the policy it will attach), not a
//! certificate one, and `judge` stops before it. The stop-gap's cost: every connect also renders the profile's
//! names and policy with Tera and lints the policy, work the answer throws away (measured in BENCHMARKS.md), and
//! the crate links Tera.

use jitp_core::decide::{self, Input};
use jitp_core::policy::AwsContext;

// The jitp-core items the rest of the crate uses, re-exported from here so that their new paths after the split
// are written once.
pub use jitp_core::audit::{Sink, stdout};
pub use jitp_core::cert::{Certificate, MAX_PEM_BYTES};
pub use jitp_core::decide::{Refusal, RegisteredCa};
pub use jitp_core::error::chain;
pub use jitp_core::ids::CaCertificateId;
pub use jitp_core::profile::{CaMatch, Config, Profile};
pub use jitp_core::reason::{Fault, ReasonCode, Rejection};
pub use jitp_core::registry::{CaDescription, CaStatus, IotRegistry, Operation, RegistryError};
pub use jitp_core::rules::Rules;
pub use jitp_core::unix_time::{Clock, rfc3339, system_clock};

/// The certificate half of the provisioning decision passed: the profile that accepts the certificate.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'c> {
    /// The selected profile.
    pub profile: &'c Profile,
}

/// The reasons of `decide`'s last stage (names and policy), which `judge` does not reach.
const PROVISIONING_ONLY: [ReasonCode; 5] = [
    ReasonCode::InvalidThingName,
    ReasonCode::InvalidAttribute,
    ReasonCode::PolicyTemplateError,
    ReasonCode::PolicyTooPermissive,
    ReasonCode::PolicyTooLarge,
];

/// Judge the device certificate `certificate_pem` against the registered CA `ca` and the profiles of `rules`
/// at `now` (Unix seconds): the profile that accepts it, or the refusal, in `decide`'s order.
pub fn judge<'c>(
    rules: &'c Rules,
    certificate_pem: &[u8],
    ca: &RegisteredCa,
    now: i64,
) -> Result<Judged<'c>, Refusal<'c>> {
    // The policy context only places the policy this adapter discards.
    let aws = AwsContext::default();
    let input = Input { certificate_pem, ca, now, aws: &aws };
    match decide::decide(rules, &input) {
        Ok(verdict) => Ok(Judged { profile: verdict.profile }),
        Err(Refusal { rejection, profile: Some(profile) }) if PROVISIONING_ONLY.contains(&rejection.reason) => {
            Ok(Judged { profile })
        }
        Err(refusal) => Err(refusal),
    }
}

/// The configuration `rules` was loaded from.
pub fn config(rules: &Rules) -> &Config {
    rules.config()
}

/// The CA `id` registered with `pem`, checked for the profiles of `config` (see [`RegisteredCa::new`]).
pub fn registered_ca(config: &Config, id: CaCertificateId, pem: &[u8]) -> RegisteredCa {
    RegisteredCa::new(config, id, pem)
}

#[cfg(test)]
mod tests {
    use jitp_testkit::config_dir::ConfigDir;
    use jitp_testkit::{Alg, Ca, Device, NOW};

    use super::*;

    #[test]
    fn a_name_the_policy_refuses_is_no_reason_to_refuse_a_connect() {
        // The CN passes the profile's subject rules but not AWS IoT's thing-name alphabet.
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        dir.write_config(
            "[[profiles]]\nname = \"s\"\nca = [\"*\"]\ncommon_name = 'sensor .*'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n",
        );
        let rules = Rules::load(dir.config_path()).unwrap();
        let ca = Ca::new("jitp guard judge CA", Alg::P256);
        let ca_reg = RegisteredCa::new(rules.config(), ca.id().parse().unwrap(), ca.cert.pem.as_bytes());
        let cert = ca.issue(&Device::new("sensor with spaces"));
        let full = decide::decide(
            &rules,
            &Input { certificate_pem: cert.pem.as_bytes(), ca: &ca_reg, now: NOW, aws: &AwsContext::default() },
        );
        assert_eq!(full.unwrap_err().reason(), ReasonCode::InvalidThingName);
        let judged = judge(&rules, cert.pem.as_bytes(), &ca_reg, NOW).unwrap();
        assert_eq!(judged.profile.name, "s");
        // An expired one is still refused.
        let mut old = Device::new("sensor old");
        old.not_after = NOW - 86_400 * 2;
        old.not_before = NOW - 86_400 * 20;
        let refused = judge(&rules, ca.issue(&old).pem.as_bytes(), &ca_reg, NOW).unwrap_err();
        assert_eq!(refused.reason(), ReasonCode::CertExpired);
    }
}
