//! CRL and certificate extensions rcgen cannot write, encoded with x509-cert's types: issuingDistributionPoint
//! in every shape RFC 5280 5.2.5 allows (and some it forbids), cRLDistributionPoints with relative names,
//! reasons and cRLIssuer, freshestCRL; and [`resign`], which puts them into a CRL and signs it again.

use std::str::FromStr;

use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString};
use der::flagset::FlagSet;
use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint, Reasons};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::name::{Name, RelativeDistinguishedName};

/// One extension: OID (dotted), criticality, DER value. A `None` value removes the extension.
#[derive(Debug, Clone)]
pub struct RawExtension {
    /// The OID, dotted.
    pub oid: &'static str,
    /// Marked critical?
    pub critical: bool,
    /// The extnValue's content; `None`: remove the extension of this OID.
    pub value: Option<Vec<u8>>,
}

impl RawExtension {
    /// issuingDistributionPoint (2.5.29.28), critical as RFC 5280 5.2.5 requires.
    pub fn idp(idp: &Idp) -> Self {
        Self { oid: "2.5.29.28", critical: true, value: Some(idp.der()) }
    }

    /// freshestCRL (2.5.29.46), non-critical, naming `uri`.
    pub fn freshest_crl(uri: &str) -> Self {
        let points = vec![point(Some(full(&[uri])), None)];
        Self {
            oid: "2.5.29.46",
            critical: false,
            value: Some(x509_cert::ext::pkix::FreshestCrl(points).to_der().unwrap()),
        }
    }
}

/// A distribution point name: full URIs, or a CN relative to the CRL issuer.
#[derive(Debug, Clone)]
pub enum DpName {
    /// fullName: these URIs.
    Uris(Vec<String>),
    /// fullName: this directoryName (RFC 4514 text, e.g. `CN=Acme Device CA,O=jitp test`).
    Directory(String),
    /// nameRelativeToCRLIssuer: `CN=<this>`.
    RelativeCn(String),
}

/// An issuingDistributionPoint's fields.
#[derive(Debug, Clone, Default)]
pub struct Idp {
    /// distributionPoint.
    pub name: Option<DpName>,
    /// onlyContainsUserCerts.
    pub only_user: bool,
    /// onlyContainsCACerts.
    pub only_ca: bool,
    /// onlySomeReasons, as RFC 5280 ReasonFlags bits (1 << 1 = keyCompromise, ...).
    pub only_some_reasons: Option<u16>,
    /// indirectCRL.
    pub indirect: bool,
    /// onlyContainsAttributeCerts.
    pub only_attribute: bool,
}

impl Idp {
    /// The DER value.
    pub fn der(&self) -> Vec<u8> {
        IssuingDistributionPoint {
            distribution_point: self.name.as_ref().map(dp_name),
            only_contains_user_certs: self.only_user,
            only_contains_ca_certs: self.only_ca,
            only_some_reasons: self.only_some_reasons.map(flags),
            indirect_crl: self.indirect,
            only_contains_attribute_certs: self.only_attribute,
        }
        .to_der()
        .unwrap()
    }
}

/// One cRLDistributionPoints entry.
#[derive(Debug, Clone)]
pub struct Cdp {
    /// distributionPoint.
    pub name: Option<DpName>,
    /// reasons, as ReasonFlags bits.
    pub reasons: Option<u16>,
    /// cRLIssuer: a URI (an indirect CRL's issuer).
    pub crl_issuer: Option<String>,
}

impl Cdp {
    /// A point naming `uri`, all reasons, no cRLIssuer.
    pub fn uri(uri: &str) -> Self {
        Self { name: Some(DpName::Uris(vec![uri.to_owned()])), reasons: None, crl_issuer: None }
    }
}

/// A cRLDistributionPoints extension value.
pub fn cdp(points: &[Cdp]) -> Vec<u8> {
    let points = points
        .iter()
        .map(|p| DistributionPoint {
            distribution_point: p.name.as_ref().map(dp_name),
            reasons: p.reasons.map(flags),
            crl_issuer: p.crl_issuer.as_ref().map(|u| vec![uri(u)]),
        })
        .collect();
    x509_cert::ext::pkix::CrlDistributionPoints(points).to_der().unwrap()
}

fn flags(bits: u16) -> FlagSet<Reasons> {
    FlagSet::<Reasons>::new(bits).unwrap()
}

fn uri(u: &str) -> GeneralName {
    GeneralName::UniformResourceIdentifier(Ia5String::new(u).unwrap())
}

fn full(uris: &[&str]) -> DistributionPointName {
    DistributionPointName::FullName(uris.iter().map(|u| uri(u)).collect())
}

fn point(name: Option<DistributionPointName>, reasons: Option<u16>) -> DistributionPoint {
    DistributionPoint { distribution_point: name, reasons: reasons.map(flags), crl_issuer: None }
}

fn dp_name(name: &DpName) -> DistributionPointName {
    match name {
        DpName::Uris(uris) => DistributionPointName::FullName(uris.iter().map(|u| uri(u)).collect()),
        DpName::Directory(dn) => {
            DistributionPointName::FullName(vec![GeneralName::DirectoryName(Name::from_str(dn).unwrap())])
        }
        DpName::RelativeCn(cn) => {
            let rdn: RelativeDistinguishedName = RelativeDistinguishedName::from_str(&format!("CN={cn}")).unwrap();
            DistributionPointName::NameRelativeToCRLIssuer(rdn)
        }
    }
}

/// `crl` with `extensions` put in (replacing those of the same OID, appended otherwise), signed again with
/// `sign` over the new tbsCertList (the signature algorithm stays the CA's).
pub fn resign(crl: &[u8], extensions: &[RawExtension], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl).unwrap();
    let exts = list.tbs_cert_list.crl_extensions.get_or_insert_with(Vec::new);
    for raw in extensions {
        let oid = ObjectIdentifier::new(raw.oid).unwrap();
        exts.retain(|e| e.extn_id != oid);
        if let Some(value) = &raw.value {
            exts.push(Extension {
                extn_id: oid,
                critical: raw.critical,
                extn_value: OctetString::new(value.clone()).unwrap(),
            });
        }
    }
    if list.tbs_cert_list.crl_extensions.as_ref().is_some_and(Vec::is_empty) {
        list.tbs_cert_list.crl_extensions = None;
    }
    let tbs = list.tbs_cert_list.to_der().unwrap();
    list.signature = BitString::from_bytes(&sign(&tbs)).unwrap();
    list.to_der().unwrap()
}
