//! The one adapter to the decision: every item of the lower crates the guard uses is imported here, so that a
//! path that moves is an edit of this file.
//!
//! What the guard runs is [`jitp_profile::judge::judge`], the certificate half of the provisioning decision (the
//! provisioning function's `jitp_core::decide` runs it, then the names and the policy): a profile lists the CA,
//! the CA's checks and validity, `cert::verify_device` (signature, algorithms, key usage, name constraints, weak
//! keys, validity with the clock skew), the subject rules select the profile, the profile's CRLs (revoked, on
//! hold, scope, stale under `crl_policy`), then its deny list, key floor and limits. The names and the policy are
//! not the guard's business: they say what the thing will be called and may do, not whether the certificate may
//! connect.
//!
//! The guard loads jitp.toml as jitp-profile's [`Config`] (the profiles, their CRLs and deny lists), not as the
//! workflow's `Rules`: it compiles no template and links no template engine. A template that does not compile
//! stops the provisioning function from starting, never a connect.

pub use jitp_pki::cert::{Certificate, MAX_PEM_BYTES};
pub use jitp_pki::ids::CaCertificateId;
pub use jitp_pki::reason::{Fault, ReasonCode, Rejection};
pub use jitp_pki::report::chain;
pub use jitp_pki::unix_time::{Clock, rfc3339, system_clock};
pub use jitp_profile::judge::{Refusal, RegisteredCa};
pub use jitp_profile::profile::{CaMatch, Config, Profile};
pub use jitp_registry::registry::{CaDescription, CaStatus, IotRegistry, Operation, RegistryError};

/// The certificate half of the provisioning decision passed: the profile that accepts the certificate.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'c> {
    /// The selected profile.
    pub profile: &'c Profile,
}

/// Judge the device certificate `device` against the registered CA `ca` and the profiles of `config` at `now`
/// (Unix seconds): the profile that accepts it, or the refusal, in the provisioning decision's order.
pub fn judge<'c>(
    config: &'c Config,
    device: &Certificate,
    ca: &RegisteredCa,
    now: i64,
) -> Result<Judged<'c>, Refusal<'c>> {
    jitp_profile::judge::judge(config, device, ca, now).map(|profile| Judged { profile })
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
        // The CN passes the profile's subject rules but not AWS IoT's thing-name alphabet: provisioning refuses
        // it (INVALID_THING_NAME), the guard has nothing against it.
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        dir.write_config(
            "[[profiles]]\nname = \"s\"\nca = [\"*\"]\ncommon_name = 'sensor .*'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n",
        );
        let config = Config::load(dir.config_path()).unwrap();
        let ca = Ca::new("jitp guard judge CA", Alg::P256);
        let ca_reg = RegisteredCa::new(&config, ca.id().parse().unwrap(), ca.cert.pem.as_bytes());
        let device = |d: &Device| Certificate::from_pem(ca.issue(d).pem.as_bytes()).unwrap();
        let judged = judge(&config, &device(&Device::new("sensor with spaces")), &ca_reg, NOW).unwrap();
        assert_eq!(judged.profile.name, "s");
        // An expired one is refused.
        let mut old = Device::new("sensor old");
        old.not_after = NOW - 86_400 * 2;
        old.not_before = NOW - 86_400 * 20;
        let refused = judge(&config, &device(&old), &ca_reg, NOW).unwrap_err();
        assert_eq!(refused.reason(), ReasonCode::CertExpired);
    }
}
