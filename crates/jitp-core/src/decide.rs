//! The pure decision: certificate + CA + profiles + now -> a [`Verdict`] or a [`Refusal`].
//!
//! `jitp check`, the HTTP preview and the provisioning workflow all call [`decide`]: one code path, so what
//! the security team previews is what devices get.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use jitp_pki::cert::{self, Certificate, CrlCheck, DeviceCheck, KeyKind, Subject, TrustedCa};
use jitp_pki::ids::{CaCertificateId, CertificateId, shown};
use jitp_policy::policy::{AwsContext, DeviceContext, RenderedPolicy};
use jitp_profile::profile::{Config, CrlPolicy, OnDuplicate, PolicyMode, Profile, ProfileCrl};
use jitp_pki::reason::{Fault, ReasonCode, Rejection, reject};
use crate::rules::Rules;
use jitp_registry::thing::{AttributeName, AttributeValue, ThingName};
use jitp_pki::unix_time::rfc3339;

/// What to decide about.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The device certificate, PEM.
    pub certificate_pem: &'a [u8],
    /// The registered CA, checked (see [`RegisteredCa`]).
    pub ca: &'a RegisteredCa,
    /// The decision time, Unix seconds.
    pub now: i64,
    /// The template context's `aws.*`.
    pub aws: &'a AwsContext,
}

/// Yes: which profile, which thing, which policy.
#[derive(Debug, Clone)]
pub struct Verdict<'c> {
    /// The matching profile, in the configuration the decision was made with.
    pub profile: &'c Profile,
    /// SHA-256 of the certificate DER (the id AWS IoT gives it).
    pub certificate_id: CertificateId,
    /// Serial number, hex.
    pub serial: String,
    /// Key algorithm and size.
    pub key: KeyKind,
    /// notBefore / notAfter, Unix seconds.
    pub not_before: i64,
    /// See `not_before`.
    pub not_after: i64,
    /// The thing to create or reuse; the MQTT client id must equal it.
    pub thing_name: ThingName,
    /// Thing type, if the profile sets one.
    pub thing_type: Option<String>,
    /// Thing groups.
    pub thing_groups: Vec<String>,
    /// Thing attributes, rendered and validated.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
    /// The policy.
    pub policy: RenderedPolicy,
    /// Per-thing or shared policy.
    pub policy_mode: PolicyMode,
    /// What to do if the thing has another active certificate.
    pub on_duplicate: OnDuplicate,
}

/// No: the rejection, and the profile that governed it (for `on_reject`), if one had been selected.
#[derive(Debug, Clone)]
pub struct Refusal<'c> {
    /// Code and message.
    pub rejection: Rejection,
    /// The selected profile, if the decision got that far.
    pub profile: Option<&'c Profile>,
}

impl From<Rejection> for Refusal<'_> {
    fn from(rejection: Rejection) -> Self {
        Self { rejection, profile: None }
    }
}

/// Parse the registered CA; anything wrong with it is CA_INVALID.
pub fn parse_ca(pem: &[u8]) -> Result<Certificate, Rejection> {
    Certificate::from_pem(pem)
        .map_err(|e| reject!(CaInvalid, "the registered CA certificate cannot be read: {}", e.message))
}

/// A registered CA as the decision uses it: parsed, checked once ([`TrustedCa::check`]), and with every
/// matching profile's `ca_chain` and `crl` verified once (a CRL's issuer, the CA's cRLSign and the CRL's
/// signature: [`cert::Crl::verify`], whose proof travels here), so that a decision checks only the CA's
/// validity window and each CRL's nextUpdate. The
/// workflow builds one when the CA enters its cache; `jitp check` builds one per call. Built for one
/// [`Config`]: the profile checks are by position in `config.profiles`.
#[derive(Debug, Clone)]
pub struct RegisteredCa {
    id: CaCertificateId,
    state: CaState,
}

#[derive(Debug, Clone)]
enum CaState {
    /// The PEM does not parse: the workflow refuses before it looks at the CA's status.
    Unreadable(Rejection),
    /// Parsed, but not a CA jitp trusts: the decision says so after it has found a profile for the CA.
    Untrusted { cert: Certificate, why: Rejection },
    /// Trusted; `profiles[i]`: what profile `i`'s `ca_chain` and `crl` say of it.
    Trusted { ca: TrustedCa, profiles: Vec<ProfileCa> },
}

/// What one profile's CA-dependent settings say of a registered CA, worked out once when the CA is checked.
#[derive(Debug, Clone)]
struct ProfileCa {
    /// Does the profile accept the CA (an empty `ca_chain`, or the CA chains to it)?
    chains: bool,
    /// Per CRL of the profile (same order as `profile.crl`): the proof that the CA issued it, or why not.
    crls: Vec<Result<CrlCheck, String>>,
    /// Has a `crl_policy = "warn"` warning been logged for this CA? Once per cached CA, not once per decision: a
    /// burst of 10,000 devices under a stale CRL logs it once (and again when the CA cache refills, so it is not
    /// forgotten either). Shared by the clones of this entry. `2n + 1` flags for `n` CRLs: `[i]` CRL `i` is
    /// ignored, `[n + i]` CRL `i` is used without its delta CRLs, `[2n]` a device no CRL covers was accepted.
    warned: Arc<[AtomicBool]>,
}

impl ProfileCa {
    /// What profile `p` says of the CA `id` (checked: `ca`).
    fn new(p: &Profile, id: &CaCertificateId, ca: &TrustedCa) -> Self {
        if !p.ca.matches(id) {
            return Self { chains: true, crls: Vec::new(), warned: Arc::new([]) };
        }
        Self {
            chains: p.ca_chain.is_empty() || cert::chains_to(ca.certificate(), &p.ca_chain),
            crls: p.crl.iter().map(|c| c.crl.verify(ca)).collect(),
            warned: (0..2 * p.crl.len() + 1).map(|_| AtomicBool::new(false)).collect(),
        }
    }
}

impl RegisteredCa {
    /// Parse and check the CA `id` registered with `pem`, for the profiles of `config`.
    pub fn new(config: &Config, id: CaCertificateId, pem: &[u8]) -> Self {
        let state = match parse_ca(pem) {
            Err(why) => CaState::Unreadable(why),
            Ok(cert) => match TrustedCa::check(cert.clone()) {
                Err(why) => CaState::Untrusted { cert, why },
                Ok(ca) => {
                    let profiles = config.profiles.iter().map(|p| ProfileCa::new(p, &id, &ca)).collect();
                    CaState::Trusted { ca, profiles }
                }
            },
        };
        Self { id, state }
    }

    /// The same CA checked for `config` instead (a CRL refresh: the same profiles, new CRLs), without parsing
    /// or checking the CA again.
    pub fn for_config(&self, config: &Config) -> Self {
        match &self.state {
            CaState::Trusted { ca, .. } => {
                let profiles = config.profiles.iter().map(|p| ProfileCa::new(p, &self.id, ca)).collect();
                Self { id: self.id.clone(), state: CaState::Trusted { ca: ca.clone(), profiles } }
            }
            CaState::Unreadable(_) | CaState::Untrusted { .. } => self.clone(),
        }
    }

    /// The CRLs of `config` that verified against this CA as `before` checked it and do not as `self` does
    /// (`self` = `before.for_config(config)`): per CRL, its profile's key and why, e.g. a newly published CRL
    /// signed by another key.
    pub fn crls_no_longer_verifying(&self, before: &RegisteredCa, config: &Config) -> Vec<(String, String)> {
        let (Ok((_, now)), Ok((_, was))) = (self.trusted(), before.trusted()) else { return Vec::new() };
        let mut out = Vec::new();
        for (i, (profile, (now, was))) in config.profiles.iter().zip(now.iter().zip(was)).enumerate() {
            for (listed, (now, was)) in profile.crl.iter().zip(now.crls.iter().zip(&was.crls)) {
                if let (Err(why), Ok(_)) = (now, was) {
                    out.push((
                        format!("profiles[{i}].crl"),
                        format!("{}: no longer verifies against CA {}: {why}", listed.file, self.id),
                    ));
                }
            }
        }
        out
    }

    /// The CA's id in AWS IoT.
    pub fn id(&self) -> &CaCertificateId {
        &self.id
    }

    /// The parsed certificate, or CA_INVALID if the PEM does not parse.
    pub fn certificate(&self) -> Result<&Certificate, &Rejection> {
        match &self.state {
            CaState::Unreadable(why) => Err(why),
            CaState::Untrusted { cert, .. } => Ok(cert),
            CaState::Trusted { ca, .. } => Ok(ca.certificate()),
        }
    }

    fn trusted(&self) -> Result<(&TrustedCa, &[ProfileCa]), Rejection> {
        match &self.state {
            CaState::Unreadable(why) | CaState::Untrusted { why, .. } => Err(why.clone()),
            CaState::Trusted { ca, profiles } => Ok((ca, profiles)),
        }
    }
}

/// Decide whether the certificate may be provisioned, and as what.
///
/// The first failing step decides, in this order (tested in `tests/decide.rs`, `tests/cert_checks.rs` and
/// `tests/crl.rs`):
/// 1. the device certificate parses (MALFORMED_CERTIFICATE, ...);
/// 2. a profile lists the CA (UNKNOWN_CA);
/// 3. the CA's own checks, then its validity at `now` (CA_INVALID, CA_NOT_YET_VALID, CA_EXPIRED);
/// 4. the device certificate against the CA, [`cert::verify_device`]'s order: algorithms, issuer, signature,
///    key usage, name constraints, a known-weak RSA key, then its validity (... SIGNATURE_INVALID ..., WEAK_KEY,
///    CERT_NOT_YET_VALID, CERT_EXPIRED);
/// 5. the subject rules select the profile (SUBJECT_MISMATCH);
/// 6. the profile's CRLs (see `revocation`): a valid one (issued by the CA, not stale) whose scope covers the
///    device and lists the serial is CERT_REVOKED, or CERT_ON_HOLD for a certificateHold entry; an entry on a
///    CRL whose scope leaves the device out is CRL_SCOPE_MISMATCH; then a CRL the CA did not issue, one past its
///    nextUpdate, or one advertising delta CRLs is CA_INVALID under `crl_policy = "enforce"`, and a device no
///    valid CRL covers is CRL_SCOPE_MISMATCH (warnings under `"warn"`). An expired certificate that is also
///    revoked is CERT_EXPIRED: RFC 5280 6.1.3 checks the validity period before the revocation status;
/// 7. the profile's own checks: `ca_chain` (CA_INVALID), WEAK_KEY, VALIDITY_TOO_LONG, CERT_DENIED;
/// 8. the names, then the policy (INVALID_THING_NAME, INVALID_ATTRIBUTE, POLICY_TEMPLATE_ERROR,
///    POLICY_TOO_PERMISSIVE, POLICY_TOO_LARGE).
pub fn decide<'c>(rules: &'c Rules, input: &Input<'_>) -> Result<Verdict<'c>, Refusal<'c>> {
    let config = rules.config();
    let device = Certificate::from_pem(input.certificate_pem)?;
    let ca_id = input.ca.id();
    let candidates: Vec<(usize, &Profile)> =
        config.profiles.iter().enumerate().filter(|(_, p)| p.ca.matches(ca_id)).collect();
    if candidates.is_empty() {
        return Err(reject!(UnknownCa, "no profile in {} lists CA {ca_id}", config.path.display()).into());
    }
    let check = DeviceCheck { now: input.now, clock_skew_seconds: config.defaults.clock_skew_seconds };
    let (ca, per_profile) = input.ca.trusted()?;
    let ca_ok = ca.valid_at(check)?;
    cert::verify_device(&device, ca.certificate(), ca_ok, check)?;

    let (index, profile) = select_profile(&candidates, &device)?;
    let with_profile = |rejection: Rejection| Refusal { rejection, profile: Some(profile) };
    let (chains, crls, warned) =
        per_profile.get(index).map_or((false, &[][..], &[][..]), |p| (p.chains, p.crls.as_slice(), &p.warned[..]));
    revocation(profile, &device, crls, warned, input.now).map_err(with_profile)?;
    profile_checks(profile, &device, ca.certificate(), chains).map_err(with_profile)?;
    device_verdict(rules, profile, &device, input).map_err(with_profile)
}

fn select_profile<'p>(
    candidates: &[(usize, &'p Profile)],
    device: &Certificate,
) -> Result<(usize, &'p Profile), Rejection> {
    let mut first_miss = None;
    for &(index, profile) in candidates {
        match subject_matches(profile, device) {
            Ok(()) => return Ok((index, profile)),
            Err(e) => {
                first_miss.get_or_insert(e);
            }
        }
    }
    Err(first_miss.unwrap_or_else(|| reject!(SubjectMismatch, "no profile's subject rules match")))
}

fn subject_matches(profile: &Profile, device: &Certificate) -> Result<(), Rejection> {
    subject_accepted(profile, device.subject())
}

/// Do `profile`'s subject rules (common_name, allow-lists, single-valued fields) accept `subject`? A subject
/// without a CN is accepted only by a profile that does not need one ([`Profile::needs_cn`]: no `common_name`
/// that refuses the empty string, and no template that reads `subject.cn`).
pub fn subject_accepted(profile: &Profile, subject: &Subject) -> Result<(), Rejection> {
    match subject.single("cn") {
        Ok(Some(cn)) => {
            if !profile.common_name.is_match(cn) {
                return Err(reject!(
                    SubjectMismatch,
                    "CN {} does not match profile {}'s common_name {}",
                    shown(cn),
                    profile.name,
                    shown(profile.common_name_source())
                ));
            }
        }
        Ok(None) => {
            if let Some(why) = &profile.needs_cn {
                return Err(reject!(
                    SubjectMismatch,
                    "the subject has no CN, and profile {} needs one: {why}",
                    profile.name
                ));
            }
        }
        Err(several) if profile.needs_cn.is_some() => return Err(several),
        Err(_) => {}
    }
    for (field, allowed) in
        [("o", &profile.organization), ("ou", &profile.organizational_unit), ("c", &profile.country)]
    {
        let Some(allowed) = allowed else { continue };
        match subject.single(field)? {
            Some(value) if allowed.iter().any(|a| a == value) => {}
            Some(value) => {
                return Err(reject!(
                    SubjectMismatch,
                    "{} {} is not in profile {}'s allow-list {:?}",
                    field.to_uppercase(),
                    shown(value),
                    profile.name,
                    allowed
                ));
            }
            None => {
                return Err(reject!(
                    SubjectMismatch,
                    "the subject has no {} (profile {} requires one)",
                    field.to_uppercase(),
                    profile.name
                ));
            }
        }
    }
    Ok(())
}

/// The selected profile's CRLs (RFC 5280 6.3.3, with the profile's CRLs as the available ones). `checks[i]`:
/// did the CA issue `profile.crl[i]` (checked once, by [`RegisteredCa`])? In this order:
/// - a valid CRL (issued by the CA, not stale) whose scope covers the device ([`cert::CrlScope::coverage`])
///   and lists it: CERT_REVOKED, the CA's own word, whatever else is wrong with the configuration; a
///   removeFromCRL entry is not a revocation (RFC 5280 6.3.3 (k));
/// - such an entry with reason certificateHold: CERT_ON_HOLD, a suspension (held, never revoked: the hold may
///   be lifted);
/// - an entry on a valid CRL whose scope leaves the device out: CRL_SCOPE_MISMATCH, held in both policies (the
///   CA's CRLs disagree: neither a revocation jitp is sure of nor a status it may ignore);
/// - a CRL the CA did not issue, one past its nextUpdate at `now`, or a covering one that advertises delta
///   CRLs (freshestCRL): the operator's CA_INVALID under `crl_policy = "enforce"`; under `"warn"` the first two
///   are skipped and the third used as it is, with a warning;
/// - no valid CRL covering the device for every reason: CRL_SCOPE_MISMATCH under `"enforce"`, a warning under
///   `"warn"`.
///
/// Warnings are logged once per cached CA (`warned`, see [`ProfileCa`]).
fn revocation(
    profile: &Profile,
    device: &Certificate,
    checks: &[Result<CrlCheck, String>],
    warned: &[AtomicBool],
    now: i64,
) -> Result<(), Rejection> {
    if profile.crl.is_empty() {
        return Ok(());
    }
    let n = profile.crl.len();
    let warn_once = |flag: usize| !warned.get(flag).is_some_and(|w| w.swap(true, Ordering::Relaxed));
    let points = cert::DistributionPoints::of(device);
    let mut fault = None;
    let mut covered = 0;
    let mut hold = None;
    let mut outside = None;
    for (i, listed) in profile.crl.iter().enumerate() {
        let ProfileCrl { file, crl, .. } = listed;
        let problem = match checks.get(i) {
            Some(Ok(proof)) if !crl.expired_at(now) => {
                let coverage = crl.scope().coverage(&points);
                match crl.revocation(device, *proof) {
                    Some(entry) if entry.is_removal() => {}
                    Some(entry) if coverage == 0 => {
                        outside.get_or_insert((listed, entry));
                        continue;
                    }
                    Some(entry) if entry.is_hold() => {
                        hold.get_or_insert((file, entry));
                    }
                    Some(entry) => {
                        return Err(reject!(
                            CertRevoked,
                            "the certificate (serial {}) is on profile {}'s CRL {}: revoked at {}{}",
                            device.serial_hex(),
                            profile.name,
                            shown(file),
                            rfc3339(entry.revocation_date),
                            entry.reason.map(|r| format!(", reason {r}")).unwrap_or_default()
                        ));
                    }
                    None => {}
                }
                if coverage == 0 {
                    continue;
                }
                covered |= coverage;
                let Some(deltas) = crl.freshest_crl() else { continue };
                let problem = format!(
                    "advertises delta CRLs (freshestCRL: {deltas}), which jitp does not read: a revocation after its \
                     thisUpdate {} may be only in them",
                    rfc3339(crl.this_update())
                );
                if profile.crl_policy == CrlPolicy::Warn {
                    if warn_once(n + i) {
                        tracing::warn!(
                            profile = %profile.name,
                            crl = %file,
                            "CRL used without its delta CRLs (crl_policy = \"warn\"): it {problem} (logged once until the CA is checked again)"
                        );
                    }
                    continue;
                }
                format!("{problem}; publish full CRLs without delta CRLs, or set crl_policy = \"warn\"")
            }
            Some(Ok(_)) => format!(
                "is stale: its nextUpdate {} is not after the decision time {} (issued {}); publish a fresh CRL",
                rfc3339(crl.next_update()),
                rfc3339(now),
                rfc3339(crl.this_update())
            ),
            Some(Err(why)) => format!("was not issued by the registered CA: {why}"),
            None => "was not checked against the registered CA".to_owned(),
        };
        match profile.crl_policy {
            CrlPolicy::Enforce => {
                fault.get_or_insert_with(|| {
                    reject!(
                        CaInvalid,
                        "profile {}'s CRL {} {problem} (crl_policy = \"enforce\": the profile's devices are held until it is fixed)",
                        profile.name,
                        shown(file)
                    )
                });
            }
            CrlPolicy::Warn => {
                // Logged once per cached CA (a missing flag: logged, never silenced).
                if warn_once(i) {
                    tracing::warn!(
                        profile = %profile.name,
                        crl = %file,
                        "CRL ignored (crl_policy = \"warn\"): it {problem} (logged once until the CA is checked again)"
                    );
                }
            }
        }
    }
    if let Some((file, entry)) = hold {
        return Err(reject!(
            CertOnHold,
            "the certificate (serial {}) is on hold on profile {}'s CRL {} since {} (reason certificateHold): a \
             suspension, not a revocation; it stays pending and is provisioned once the CA lifts the hold (the \
             entry leaves a later CRL, or becomes removeFromCRL) and jitp loads that CRL",
            device.serial_hex(),
            profile.name,
            shown(file),
            rfc3339(entry.revocation_date)
        ));
    }
    if let Some((listed, entry)) = outside {
        return Err(reject!(
            CrlScopeMismatch,
            "profile {}'s CRL {} lists the certificate (serial {}, {} at {}) but its scope leaves it out: it covers \
             {}, and {}. The CA's CRLs disagree, so the device is held, neither revoked nor provisioned; list the \
             CRL of the device's distribution point",
            profile.name,
            shown(&listed.file),
            device.serial_hex(),
            entry.reason.unwrap_or("revoked"),
            rfc3339(entry.revocation_date),
            listed.crl.scope().describe(),
            points.describe()
        ));
    }
    if let Some(fault) = fault {
        return Err(fault);
    }
    if covered != cert::ALL_REASONS {
        let scopes: Vec<String> = profile
            .crl
            .iter()
            .map(|listed| format!("{} covers {}", shown(&listed.file), listed.crl.scope().describe()))
            .collect();
        let gap = if covered == 0 { String::new() } else { " for every revocation reason".to_owned() };
        let why = format!(
            "no valid CRL of profile {} covers the certificate (serial {}){gap}: {}; {}",
            profile.name,
            device.serial_hex(),
            points.describe(),
            scopes.join("; ")
        );
        match profile.crl_policy {
            CrlPolicy::Enforce => {
                return Err(reject!(
                    CrlScopeMismatch,
                    "{why} (crl_policy = \"enforce\": held until a CRL covering it is listed)"
                ));
            }
            CrlPolicy::Warn => {
                if warn_once(2 * n) {
                    tracing::warn!(
                        profile = %profile.name,
                        "device accepted without a CRL covering it (crl_policy = \"warn\"): {why} (logged once until the CA is checked again)"
                    );
                }
            }
        }
    }
    Ok(())
}

/// The selected profile's own rules; `chains`: the CA satisfies its `ca_chain` (checked once, by [`RegisteredCa`]).
/// What no configuration accepts (the deny list, a key below AWS IoT's floor) is checked before the profile's
/// own limits, so that a certificate both denied and too long-lived is CERT_DENIED, final, not held.
fn profile_checks(profile: &Profile, device: &Certificate, ca: &Certificate, chains: bool) -> Result<(), Rejection> {
    if !chains {
        return Err(reject!(
            CaInvalid,
            "the registered CA {:?} does not chain to profile {}'s ca_chain",
            ca.subject_line(),
            profile.name
        ));
    }
    if let Some(matched) = profile.deny.matches(device) {
        return Err(reject!(CertDenied, "the certificate ({matched}) is on profile {}'s deny list", profile.name));
    }
    let floor = usize::try_from(cert::MIN_RSA_BITS).unwrap_or(2048);
    if let KeyKind::Rsa { bits } = device.key() {
        if *bits < floor {
            return Err(reject!(
                WeakKey,
                "the RSA key has {bits} bits; AWS IoT and jitp accept no RSA key below {floor} bits"
            ));
        }
        if *bits < profile.min_rsa_bits {
            return Err(reject!(
                KeyTooShort,
                "the RSA key has {bits} bits; profile {} requires at least {} (min_rsa_bits; lower it to accept \
                 this device, down to {floor})",
                profile.name,
                profile.min_rsa_bits
            ));
        }
    }
    if profile.require_v3 && device.version() != 3 {
        return Err(reject!(
            CertNotV3,
            "the certificate is X.509 v{} (no extensions); profile {} sets require_v3 = true (remove it to accept \
             v1 certificates, which RFC 5280 allows for end entities)",
            device.version(),
            profile.name
        ));
    }
    if let Some(days) = profile.max_validity_days {
        let (not_before, not_after) = device.validity();
        if device.has_no_expiration() {
            if !profile.allow_no_expiration {
                return Err(reject!(
                    ValidityTooLong,
                    "the certificate has no well-defined expiration date (notAfter 99991231235959Z, RFC 5280 \
                     4.1.2.5); profile {} allows at most {days} days (max_validity_days): set allow_no_expiration = \
                     true in the profile to accept such certificates",
                    profile.name
                ));
            }
        } else {
            let lifetime = not_after.saturating_sub(not_before);
            if lifetime > i64::from(days) * 86_400 {
                return Err(reject!(
                    ValidityTooLong,
                    "the certificate is valid for {} days ({} to {}); profile {} allows at most {days} \
                     (max_validity_days: raise it if these devices' certificates really live that long)",
                    lifetime.saturating_add(86_399) / 86_400,
                    rfc3339(not_before),
                    rfc3339(not_after),
                    profile.name
                ));
            }
        }
    }
    Ok(())
}

/// The thing name and attributes a profile's expressions give one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The validated thing name.
    pub thing_name: ThingName,
    /// The validated attributes.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
}

/// Render and validate the thing_name and attribute expressions of `device`'s profile, and add the thing name
/// to `device`: the one code path that [`decide`] and `jitp lint` share. The rendered text is used exactly as
/// it is; a name or value that is not valid is the device's fault (INVALID_THING_NAME, INVALID_ATTRIBUTE,
/// naming the subject field whose value carries the offending character), an expression that fails to render
/// is the template's.
pub fn render_names(rules: &Rules, device: &mut DeviceContext<'_>) -> Result<Names, Rejection> {
    let engine = rules.templates();
    let (profile, subject) = (device.profile(), device.subject());
    let raw_name = engine.render_thing_name(device)?;
    let thing_name = ThingName::try_from(raw_name.clone()).map_err(|e| {
        reject!(
            InvalidThingName,
            "the thing name {} rendered for profile {} is invalid: {e}{}",
            shown(&raw_name),
            profile.name,
            culprits(subject, &raw_name, |c| c.is_ascii_alphanumeric() || ":_-".contains(c))
        )
    })?;
    device.name(thing_name.clone());
    let mut attributes = BTreeMap::new();
    for name in profile.attributes.keys() {
        let raw = engine.render_attribute(device, name.as_str())?;
        let value = AttributeValue::try_from(raw.clone()).map_err(|e| {
            reject!(
                InvalidAttribute,
                "attribute {name} of profile {}: {e}{}",
                profile.name,
                culprits(subject, &raw, |c| { c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c) })
            )
        })?;
        attributes.insert(name.clone(), value);
    }
    Ok(Names { thing_name, attributes })
}

/// `; subject.cn "sensor-1 " contains U+0020 ' '` for each subject field whose value carries a character
/// that `rendered` (an invalid name or value) also carries and that names and values may not hold: which
/// field of the certificate made it invalid. Empty when no single field is to blame (e.g. a name too long).
fn culprits(subject: &Subject, rendered: &str, allowed: fn(char) -> bool) -> String {
    let mut out = String::new();
    for (field, values) in subject.fields() {
        let [value] = values else { continue };
        if let Some(c) = value.chars().find(|c| !allowed(*c) && rendered.contains(*c)) {
            out.push_str(&format!("; subject.{field} {} contains {}", shown(value), jitp_policy::policy::describe_char(c)));
        }
    }
    out
}

fn device_verdict<'c>(
    rules: &Rules,
    profile: &'c Profile,
    device: &Certificate,
    input: &Input<'_>,
) -> Result<Verdict<'c>, Rejection> {
    // The fingerprint is the SHA-256 of the DER: AWS IoT's certificate id, already computed at parse time.
    let certificate_id = CertificateId::from_fingerprint(device.fingerprint());
    let serial = device.serial_hex();
    // The one template context of this device: its names, then its policy, read it.
    let mut context =
        DeviceContext::new(profile, device.subject(), certificate_id.as_str(), &serial, input.ca.id().as_str());
    let Names { thing_name, attributes } = render_names(rules, &mut context)?;
    context.place(input.aws);
    let policy = rules.templates().render_policy(&context)?;
    let (not_before, not_after) = device.validity();
    Ok(Verdict {
        profile,
        certificate_id,
        serial,
        key: *device.key(),
        not_before,
        not_after,
        thing_name,
        thing_type: profile.thing_type.clone(),
        thing_groups: profile.thing_groups.clone(),
        attributes,
        policy,
        policy_mode: profile.policy_mode,
        on_duplicate: profile.on_duplicate,
    })
}

impl Refusal<'_> {
    /// The reason code.
    pub fn reason(&self) -> ReasonCode {
        self.rejection.reason
    }
}

/// The outcome of [`check`] in the shape `jitp check --format json` and `POST /v1/preview` print.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `accept` or `reject`.
    pub decision: &'static str,
    /// The reason code of a rejection.
    pub reason: Option<ReasonCode>,
    /// Whose fault the rejection is, which says what the workflow would do to the certificate: `device` its
    /// profile's `on_reject`, `profile` and `operator` held (left pending for the fix).
    pub fault: Option<Fault>,
    /// One sentence for people.
    pub message: String,
    /// The selected profile.
    pub profile: Option<String>,
    /// The thing name.
    pub thing_name: Option<String>,
    /// The policy name.
    pub policy_name: Option<String>,
    /// The rendered policy document, as JSON.
    pub policy: Option<serde_json::Value>,
    /// Lint warnings on the policy.
    pub warnings: Vec<jitp_policy::policy::Finding>,
    /// The certificate id (SHA-256 of the DER), when the certificate parsed.
    pub certificate_id: Option<String>,
    /// The CA id the decision used.
    pub ca_id: Option<String>,
    /// Thing type, groups and attributes the thing would get.
    pub thing_type: Option<String>,
    /// See `thing_type`.
    pub thing_groups: Vec<String>,
    /// See `thing_type`.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
    /// The selected profile's CRLs and what the decision made of each.
    pub crls: Vec<CrlStatus>,
}

/// One CRL of the selected profile, as `jitp check` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CrlStatus {
    /// The file as written in `crl = [...]`.
    pub file: String,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// nextUpdate, RFC 3339.
    pub next_update: String,
    /// `valid`: issued by the registered CA and not stale, so the decision used it; otherwise why not (the
    /// profile's `crl_policy` says whether that held the device or was ignored).
    pub status: String,
    /// Which devices it covers (its issuingDistributionPoint; the decision says whether it covered this one).
    pub scope: String,
}

impl RegisteredCa {
    /// What the decision at `now` makes of each CRL of `config.profiles[index]` (empty if the CA is not trusted).
    pub fn crl_statuses(&self, config: &Config, index: usize, now: i64) -> Vec<CrlStatus> {
        let (Some(profile), Ok((_, per_profile))) = (config.profiles.get(index), self.trusted()) else {
            return Vec::new();
        };
        let checks = per_profile.get(index).map_or(&[][..], |p| p.crls.as_slice());
        profile
            .crl
            .iter()
            .enumerate()
            .map(|(i, listed)| CrlStatus {
                file: listed.file.clone(),
                revoked: listed.crl.revoked_count(),
                next_update: rfc3339(listed.crl.next_update()),
                scope: listed.crl.scope().describe(),
                status: match checks.get(i) {
                    Some(Ok(_)) if listed.crl.expired_at(now) => "stale: past its nextUpdate".to_owned(),
                    Some(Ok(_)) => "valid".to_owned(),
                    Some(Err(why)) => format!("not issued by the registered CA: {why}"),
                    None => "not checked".to_owned(),
                },
            })
            .collect()
    }
}

impl CheckReport {
    /// Did the certificate pass?
    pub fn accepted(&self) -> bool {
        self.decision == "accept"
    }

    fn rejected(refusal: Refusal<'_>, ca_id: Option<String>, certificate_id: Option<String>) -> Self {
        Self {
            decision: "reject",
            reason: Some(refusal.rejection.reason),
            fault: Some(refusal.rejection.reason.fault()),
            message: refusal.rejection.message,
            profile: refusal.profile.map(|p| p.name.clone()),
            thing_name: None,
            policy_name: None,
            policy: None,
            warnings: Vec::new(),
            certificate_id,
            ca_id,
            thing_type: None,
            thing_groups: Vec::new(),
            attributes: BTreeMap::new(),
            crls: Vec::new(),
        }
    }
}

/// The whole offline decision from PEM inputs, for `jitp check` and previews: no registry, no side effects.
/// `ca_id` defaults to the SHA-256 of the CA's DER, as AWS IoT computes it.
pub fn check(
    rules: &Rules,
    ca_pem: &[u8],
    certificate_pem: &[u8],
    ca_id: Option<&CaCertificateId>,
    now: i64,
    aws: &AwsContext,
) -> CheckReport {
    let certificate_id = cert::pem_to_der(certificate_pem).ok().map(|der| CertificateId::of_der(&der).to_string());
    let ca = match parse_ca(ca_pem) {
        Ok(ca) => ca,
        Err(e) => {
            return CheckReport::rejected(e.into(), ca_id.map(|i| i.to_string()), certificate_id);
        }
    };
    let ca_id = ca_id.cloned().unwrap_or_else(|| CaCertificateId::of_der(ca.der()));
    let ca = RegisteredCa::new(rules.config(), ca_id.clone(), ca_pem);
    let input = Input { certificate_pem, ca: &ca, now, aws };
    let crls = |profile: Option<&Profile>| {
        let index = profile.and_then(|p| rules.config().profiles.iter().position(|q| std::ptr::eq(p, q)));
        index.map(|i| ca.crl_statuses(rules.config(), i, now)).unwrap_or_default()
    };
    match decide(rules, &input) {
        Ok(v) => CheckReport {
            crls: crls(Some(v.profile)),
            decision: "accept",
            reason: None,
            fault: None,
            message: format!("certificate accepted by profile {} as thing {}", v.profile.name, v.thing_name),
            profile: Some(v.profile.name.clone()),
            thing_name: Some(v.thing_name.to_string()),
            policy_name: Some(v.policy.name.to_string()),
            policy: Some(v.policy.json()),
            warnings: v.policy.warnings,
            certificate_id: Some(v.certificate_id.to_string()),
            ca_id: Some(ca_id.to_string()),
            thing_type: v.thing_type,
            thing_groups: v.thing_groups,
            attributes: v.attributes,
        },
        Err(refusal) => {
            let statuses = crls(refusal.profile);
            CheckReport { crls: statuses, ..CheckReport::rejected(refusal, Some(ca_id.to_string()), certificate_id) }
        }
    }
}
