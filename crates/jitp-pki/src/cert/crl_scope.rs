//! Which certificates a CRL speaks for (RFC 5280 5.2.5 and 6.3.3 (b)): its issuingDistributionPoint, read once
//! when the CRL loads ([`CrlScope`]), against a device's cRLDistributionPoints, read once per decision
//! ([`DistributionPoints`]). [`CrlScope::coverage`] is a mask of the revocation reasons for which the CRL is
//! complete for that device: every reason, some, or none.
//!
//! RFC 5280 6.3.3 (b)(2)(i): a CRL whose issuingDistributionPoint names a distribution point covers a certificate
//! only if one of those names is one of the names of a distribution point the certificate lists. After the
//! certificate's own distribution points, 6.3.3 processes "any available CRLs not specified in a distribution
//! point but issued by the certificate issuer" with an assumed distribution point named by the certificate
//! issuer (a directoryName): that is how a complete CRL without a distribution point name covers every
//! certificate of its issuer, and why a CRL that names a distribution point (one partition of a partitioned
//! CRL) does not cover a certificate that names none, unless it names the issuer itself. Names match when
//! their DER is equal (no case folding of URIs: a mismatch only leaves the device uncovered, never revokes it).
//!
//! A distribution point with a cRLIssuer points to an indirect CRL, which jitp does not read: it covers nothing
//! here. A `reasons` field of the certificate's distribution point and the CRL's onlySomeReasons narrow the mask.

use der::{Decode, Encode};
use x509_cert::ext::pkix::CrlDistributionPoints;
#[cfg(test)]
use x509_cert::ext::pkix::crl::dp::Reasons;
use x509_cert::ext::pkix::crl::dp::{IssuingDistributionPoint, ReasonFlags};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use super::Certificate;
use crate::ids::shown;

/// Every revocation reason of RFC 5280 4.2.1.13's ReasonFlags (bit 0, `unused`, excluded).
pub const ALL_REASONS: u16 = 0b1_1111_1110;

/// id-ce-cRLDistributionPoints.
const CRL_DISTRIBUTION_POINTS: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.31");

/// The scope of a CRL, from its issuingDistributionPoint (none: every certificate of the issuer, every reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlScope {
    /// The distribution point's names, each a DER GeneralName (a relative name made full against the CRL's
    /// issuer); `None`: the extension names no distribution point.
    names: Option<Vec<Vec<u8>>>,
    /// The names as people read them, for lint and messages.
    shown: Vec<String>,
    /// onlySomeReasons as a mask of [`ALL_REASONS`]' bits.
    reasons: u16,
    /// onlyContainsUserCerts: a device is never a CA (DEVICE_CERT_IS_CA), so it is always inside it.
    only_user_certs: bool,
}

impl Default for CrlScope {
    fn default() -> Self {
        Self { names: None, shown: Vec::new(), reasons: ALL_REASONS, only_user_certs: false }
    }
}

impl CrlScope {
    /// The scope an issuingDistributionPoint extension value gives a CRL whose issuer is `issuer_der`, or why
    /// jitp cannot use the CRL (a sentence naming the field and what jitp needs instead).
    pub(crate) fn from_idp(value: &[u8], issuer_der: &[u8]) -> Result<Self, String> {
        let idp = IssuingDistributionPoint::from_der(value).map_err(|e| {
            format!("its issuingDistributionPoint extension does not decode ({e}); jitp needs a DER IssuingDistributionPoint (RFC 5280 5.2.5)")
        })?;
        if idp.only_contains_ca_certs {
            return Err("its issuingDistributionPoint says onlyContainsCACerts: it lists CA certificates only and \
                        says nothing of devices; list the CA's CRL for end-entity certificates instead"
                .into());
        }
        if idp.only_contains_attribute_certs {
            return Err("its issuingDistributionPoint says onlyContainsAttributeCerts, which RFC 5280 5.2.5 forbids \
                        in a conforming CRL and which says nothing of devices; list the CA's CRL for end-entity \
                        certificates instead"
                .into());
        }
        if idp.indirect_crl {
            return Err("its issuingDistributionPoint says indirectCRL (entries for other issuers); jitp reads only \
                        CRLs the registered CA issues for itself: list the CA's own CRL"
                .into());
        }
        if idp.distribution_point.is_none() && !idp.only_contains_user_certs && idp.only_some_reasons.is_none() {
            return Err("its issuingDistributionPoint is an empty SEQUENCE, which RFC 5280 5.2.5 forbids; jitp \
                        needs the CA's CRL without the extension or with a distributionPoint"
                .into());
        }
        let reasons = match idp.only_some_reasons {
            Some(flags) => mask(flags) & ALL_REASONS,
            None => ALL_REASONS,
        };
        if reasons == 0 {
            return Err("its issuingDistributionPoint's onlySomeReasons names no revocation reason, so it covers \
                        nothing; list the CA's CRL for all reasons"
                .into());
        }
        let (names, shown) = match idp.distribution_point {
            None => (None, Vec::new()),
            Some(name) => {
                let names = full_names(&name, issuer_der)
                    .ok_or("its issuingDistributionPoint's distributionPoint does not encode; jitp needs a DER name")?;
                if names.is_empty() {
                    return Err("its issuingDistributionPoint's distributionPoint fullName is empty; jitp needs at \
                                least one name"
                        .into());
                }
                (Some(names), describe(&name))
            }
        };
        Ok(Self { names, shown, reasons, only_user_certs: idp.only_contains_user_certs })
    }

    /// For which reasons (a mask of [`ALL_REASONS`]' bits, 0: none) this CRL is complete for a device with these
    /// distribution points (RFC 5280 6.3.3 (b)(2) and (d)).
    pub fn coverage(&self, device: &DistributionPoints) -> u16 {
        let mut covered = 0;
        for point in &device.points {
            let matches = match &self.names {
                None => true,
                Some(names) => point.names.iter().any(|n| names.contains(n)),
            };
            if matches {
                covered |= point.reasons & self.reasons;
            }
        }
        covered
    }

    /// Does the CRL name a distribution point (one partition of the CA's revocations)?
    pub fn names_a_distribution_point(&self) -> bool {
        self.names.is_some()
    }

    /// Is it complete for every reason (no onlySomeReasons)?
    pub fn all_reasons(&self) -> bool {
        self.reasons == ALL_REASONS
    }

    /// Which devices it covers, in a phrase for lint and messages.
    pub fn describe(&self) -> String {
        let mut out = match &self.names {
            None => "every certificate of its issuer (no distribution point name)".to_owned(),
            Some(_) => format!(
                "only certificates whose cRLDistributionPoints names {} (issuingDistributionPoint); a device \
                 without that name is not covered by it",
                self.shown.join(" or ")
            ),
        };
        if self.only_user_certs {
            out.push_str(", end-entity certificates only (onlyContainsUserCerts)");
        }
        if self.reasons != ALL_REASONS {
            out.push_str(&format!(", only for the reasons {} (onlySomeReasons)", reason_names(self.reasons)));
        }
        out
    }
}

/// A device certificate's distribution points, as RFC 5280 6.3.3 walks them: each of its cRLDistributionPoints
/// (less those naming a cRLIssuer or no name), then the assumed one named by its issuer.
#[derive(Debug, Clone, Default)]
pub struct DistributionPoints {
    points: Vec<Point>,
    /// The names of its own distribution points, as people read them.
    shown: Vec<String>,
    /// Why the extension could not be read, if it could not (the device is then covered only as one without
    /// distribution points).
    unreadable: Option<String>,
}

#[derive(Debug, Clone)]
struct Point {
    names: Vec<Vec<u8>>,
    reasons: u16,
}

impl DistributionPoints {
    /// Read `device`'s cRLDistributionPoints.
    pub fn of(device: &Certificate) -> Self {
        let issuer_der = device.issuer_der();
        let mut out = Self::default();
        let extension = device
            .x509()
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == CRL_DISTRIBUTION_POINTS);
        if let Some(extension) = extension {
            match CrlDistributionPoints::from_der(extension.extn_value.as_bytes()) {
                Err(e) => out.unreadable = Some(format!("its cRLDistributionPoints does not decode ({e})")),
                Ok(points) => {
                    for point in points.0 {
                        if point.crl_issuer.is_some() {
                            continue; // an indirect CRL's point: not the registered CA's own CRL
                        }
                        let Some(name) = point.distribution_point else { continue };
                        let Some(names) = full_names(&name, &issuer_der) else { continue };
                        out.shown.extend(describe(&name));
                        let reasons = point.reasons.map_or(ALL_REASONS, |r| mask(r) & ALL_REASONS);
                        out.points.push(Point { names, reasons });
                    }
                }
            }
        }
        out.points.push(Point { names: vec![directory_name(&issuer_der)], reasons: ALL_REASONS });
        out
    }

    /// Why the device's cRLDistributionPoints could not be read, if it could not.
    pub fn unreadable(&self) -> Option<&str> {
        self.unreadable.as_deref()
    }

    /// The device's distribution points in a phrase: "its cRLDistributionPoints names ...".
    pub fn describe(&self) -> String {
        match (&self.unreadable, self.shown.as_slice()) {
            (Some(why), _) => format!("{why}, so it counts as naming no distribution point"),
            (None, []) => "it names no distribution point of the registered CA (no cRLDistributionPoints, or only \
                           ones for an indirect CRL)"
                .to_owned(),
            (None, names) => format!("its cRLDistributionPoints names {}", names.join(", ")),
        }
    }
}

fn mask(flags: ReasonFlags) -> u16 {
    flags.bits()
}

/// RFC 5280 4.2.1.13 names of the bits of `mask` (bit `n` is ReasonFlags bit `n`, as [`ReasonFlags::bits`] numbers
/// them).
fn reason_names(mask: u16) -> String {
    const NAMES: [&str; 9] = [
        "unused",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    ];
    NAMES.iter().enumerate().filter(|(bit, _)| mask & (1 << bit) != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// A distribution point name as full names (DER GeneralNames); a name relative to the CRL issuer is the
/// issuer's name with the RDN appended (RFC 5280 4.2.1.13), as a directoryName. `None` if a name does not encode.
fn full_names(name: &DistributionPointName, issuer_der: &[u8]) -> Option<Vec<Vec<u8>>> {
    match name {
        DistributionPointName::FullName(names) => names.iter().map(|n| n.to_der().ok()).collect(),
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            let rdn = rdn.to_der().ok()?;
            let (_, content) = split_tlv(issuer_der)?;
            let mut name = content.to_vec();
            name.extend_from_slice(&rdn);
            Some(vec![directory_name(&tlv(0x30, &name))])
        }
    }
}

fn describe(name: &DistributionPointName) -> Vec<String> {
    match name {
        DistributionPointName::FullName(names) => names
            .iter()
            .map(|n| match n {
                GeneralName::UniformResourceIdentifier(uri) => shown(uri.as_str()),
                GeneralName::DirectoryName(dn) => format!("the directoryName {}", shown(&dn.to_string())),
                GeneralName::DnsName(dns) => format!("the dNSName {}", shown(dns.as_str())),
                _ => "a general name of another type".to_owned(),
            })
            .collect(),
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            vec![format!("the issuer's name plus {} (nameRelativeToCRLIssuer)", shown(&rdn.to_string()))]
        }
    }
}

/// A Name's DER as a GeneralName directoryName: `[4] EXPLICIT Name`.
fn directory_name(name_der: &[u8]) -> Vec<u8> {
    tlv(0xA4, name_der)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The tag and content of one DER TLV.
fn split_tlv(der: &[u8]) -> Option<(u8, &[u8])> {
    let any = der::asn1::AnyRef::from_der(der).ok()?;
    Some((der.first().copied()?, any.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths_are_der() {
        assert_eq!(tlv(0x30, &[]), [0x30, 0]);
        assert_eq!(&tlv(0x30, &[0; 0x80])[..3], [0x30, 0x81, 0x80]);
        assert_eq!(&tlv(0x30, &[0; 0x100])[..4], [0x30, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn every_reason_bit_has_a_name() {
        assert_eq!(reason_names(ALL_REASONS).split(", ").count(), 8);
        assert_eq!(reason_names(mask(Reasons::KeyCompromise.into())), "keyCompromise");
        assert_eq!(reason_names(mask(Reasons::AaCompromise | Reasons::Superseded)), "superseded, aACompromise");
    }
}
