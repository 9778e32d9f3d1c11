//! The certificate half of the decision: a device certificate against its registered CA and the profiles.
//!
//! [`judge`] runs every check that needs no template: the CA, the chain, the subject rules that select the
//! profile, the profile's CRLs, its deny list and its limits. jitp-core's decision renders the names and the
//! policy on top of it; the connect guard runs it alone, on every connect, with nothing else linked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use jitp_pki::cert::{self, Certificate, CrlCheck, DeviceCheck, KeyKind, Subject, TrustedCa};
use jitp_pki::ids::{CaCertificateId, shown};
use jitp_pki::reason::{ReasonCode, Rejection, reject};
use jitp_pki::unix_time::rfc3339;

use crate::profile::{Config, CrlPolicy, Profile, ProfileCrl};

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

impl Refusal<'_> {
    /// The reason code.
    pub fn reason(&self) -> ReasonCode {
        self.rejection.reason
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

/// The certificate half of the decision ([`jitp_core::decide`]'s steps 2 to 7, and all the connect guard runs):
/// may `device`, issued by the registered CA `ca`, be accepted at `now`, and under which profile of `config`?
///
/// The first failing step decides, in this order (tested in jitp-core's `tests/decide.rs`,
/// `tests/cert_checks.rs` and `tests/crl.rs`):
/// 1. a profile lists the CA (UNKNOWN_CA);
/// 2. the CA's own checks, then its validity at `now` (CA_INVALID, CA_NOT_YET_VALID, CA_EXPIRED);
/// 3. the device certificate against the CA, [`cert::verify_device`]'s order: algorithms, issuer, signature,
///    key usage, name constraints, a known-weak RSA key, then its validity (... SIGNATURE_INVALID ..., WEAK_KEY,
///    CERT_NOT_YET_VALID, CERT_EXPIRED);
/// 4. the subject rules select the profile (SUBJECT_MISMATCH);
/// 5. the profile's CRLs (see `revocation`): a valid one (issued by the CA, not stale) whose scope covers the
///    device and lists the serial is CERT_REVOKED, or CERT_ON_HOLD for a certificateHold entry; an entry on a
///    CRL whose scope leaves the device out is CRL_SCOPE_MISMATCH; then a CRL the CA did not issue, one past its
///    nextUpdate, or one advertising delta CRLs is CA_INVALID under `crl_policy = "enforce"`, and a device no
///    valid CRL covers is CRL_SCOPE_MISMATCH (warnings under `"warn"`). An expired certificate that is also
///    revoked is CERT_EXPIRED: RFC 5280 6.1.3 checks the validity period before the revocation status;
/// 6. the profile's own checks: `ca_chain` (CA_INVALID), CERT_DENIED, WEAK_KEY, KEY_TOO_SHORT, CERT_NOT_V3,
///    VALIDITY_TOO_LONG.
pub fn judge<'c>(
    config: &'c Config,
    device: &Certificate,
    ca: &RegisteredCa,
    now: i64,
) -> Result<&'c Profile, Refusal<'c>> {
    let ca_id = ca.id();
    let candidates: Vec<(usize, &Profile)> =
        config.profiles.iter().enumerate().filter(|(_, p)| p.ca.matches(ca_id)).collect();
    if candidates.is_empty() {
        return Err(reject!(UnknownCa, "no profile in {} lists CA {ca_id}", config.path.display()).into());
    }
    let check = DeviceCheck { now, clock_skew_seconds: config.defaults.clock_skew_seconds };
    let (trusted, per_profile) = ca.trusted()?;
    let ca_ok = trusted.valid_at(check)?;
    cert::verify_device(device, trusted.certificate(), ca_ok, check)?;

    let (index, profile) = select_profile(&candidates, device)?;
    let with_profile = |rejection: Rejection| Refusal { rejection, profile: Some(profile) };
    let (chains, crls, warned) =
        per_profile.get(index).map_or((false, &[][..], &[][..]), |p| (p.chains, p.crls.as_slice(), &p.warned[..]));
    revocation(profile, device, crls, warned, now).map_err(with_profile)?;
    profile_checks(profile, device, trusted.certificate(), chains).map_err(with_profile)?;
    Ok(profile)
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
