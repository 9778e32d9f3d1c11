//! What AWS IoT knows about a connection when it evaluates a policy: the client id, the thing attached to the
//! certificate, the certificate's subject and issuer, the domain the client connected to.
//!
//! `None` means "not described": a policy that reads it cannot be answered (never ALLOWED), whereas a described
//! certificate without an Organization has no Organization (its variable does not resolve, as in AWS IoT).

use crate::Error;
use crate::error::shorten;

/// AWS IoT's limit on an MQTT client id (AWS IoT Core quotas: "Client ID size", 128 bytes).
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// The connection a request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The MQTT client id (`iot:ClientId`).
    pub client_id: String,
    /// The thing attached to the certificate, if any.
    pub thing: Option<Thing>,
    /// The certificate's attributes; `None`: not described (certificate variables cannot be answered).
    pub certificate: Option<Certificate>,
    /// The domain configuration's name the client connected to (`iot:DomainName`); `None`: not described.
    pub domain_name: Option<String>,
    /// The MQTT CONNECT's features (`iot:ConnectAttributes`: `PersistentConnect`, `LastWill`); `None`: not
    /// described.
    pub connect_attributes: Option<Vec<String>>,
}

/// A thing attached to the connection's certificate (AttachThingPrincipal).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Thing {
    /// The thing name.
    pub name: String,
    /// Its thing type, if it has one.
    pub thing_type: Option<String>,
    /// Its attributes, name and value.
    pub attributes: Vec<(String, String)>,
    /// Attached exclusively (`EXCLUSIVE_THING`, as jitp attaches): the thing variables resolve whatever the client
    /// id; attached non-exclusively they resolve only when the client id is the thing name.
    pub exclusive: bool,
}

/// The attributes of the connection's certificate that AWS IoT's certificate policy variables read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Certificate {
    /// The certificate id (`iot:CertificateId`): SHA-256 of the DER, 64 lowercase hex. `None`: not described.
    pub id: Option<String>,
    /// The serial number as AWS IoT writes it (`iot:Certificate.SerialNumber`). `None`: not described.
    pub serial_number: Option<String>,
    /// Subject attributes in certificate order; a field may repeat (several OUs).
    pub subject: Vec<(DnField, String)>,
    /// Issuer attributes in certificate order.
    pub issuer: Vec<(DnField, String)>,
    /// Which fields `subject` describes: `None`, every field (one not in `subject` is absent from the
    /// certificate); `Some(list)`, only those (a variable for another field cannot be answered).
    pub subject_fields: Option<Vec<DnField>>,
    /// Which fields `issuer` describes, as `subject_fields`.
    pub issuer_fields: Option<Vec<DnField>>,
}

/// The distinguished-name fields AWS IoT has certificate policy variables for (developer guide, "X.509
/// Certificate AWS IoT Core policy variables"), by the names its variables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DnField {
    /// `DistinguishedNameQualifier` (dnQualifier)
    DistinguishedNameQualifier,
    /// `Country` (C)
    Country,
    /// `Organization` (O)
    Organization,
    /// `OrganizationalUnit` (OU)
    OrganizationalUnit,
    /// `State` (ST)
    State,
    /// `CommonName` (CN)
    CommonName,
    /// `SerialNumber` (serialNumber, the subject attribute, not the certificate's serial)
    SerialNumber,
    /// `Title`
    Title,
    /// `Surname` (SN)
    Surname,
    /// `GivenName` (GN)
    GivenName,
    /// `Initials`
    Initials,
    /// `Pseudonym`
    Pseudonym,
    /// `GenerationQualifier`
    GenerationQualifier,
}

impl DnField {
    /// Every field, in AWS's documented order.
    pub const ALL: [DnField; 13] = [
        DnField::DistinguishedNameQualifier,
        DnField::Country,
        DnField::Organization,
        DnField::OrganizationalUnit,
        DnField::State,
        DnField::CommonName,
        DnField::SerialNumber,
        DnField::Title,
        DnField::Surname,
        DnField::GivenName,
        DnField::Initials,
        DnField::Pseudonym,
        DnField::GenerationQualifier,
    ];

    /// The name AWS's policy variables use (`Organization`).
    pub fn as_str(self) -> &'static str {
        match self {
            DnField::DistinguishedNameQualifier => "DistinguishedNameQualifier",
            DnField::Country => "Country",
            DnField::Organization => "Organization",
            DnField::OrganizationalUnit => "OrganizationalUnit",
            DnField::State => "State",
            DnField::CommonName => "CommonName",
            DnField::SerialNumber => "SerialNumber",
            DnField::Title => "Title",
            DnField::Surname => "Surname",
            DnField::GivenName => "GivenName",
            DnField::Initials => "Initials",
            DnField::Pseudonym => "Pseudonym",
            DnField::GenerationQualifier => "GenerationQualifier",
        }
    }

    /// The field named exactly as AWS's variables name it.
    pub fn from_name(name: &str) -> Option<DnField> {
        DnField::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl std::str::FromStr for DnField {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        DnField::from_name(s).ok_or_else(|| Error::Request {
            field: "subject field",
            value: shorten(s),
            reason: format!(
                "not one of AWS IoT's certificate policy variables' fields ({})",
                DnField::ALL.map(DnField::as_str).join(", ")
            ),
        })
    }
}

impl Context {
    /// A connection with this client id and nothing else described.
    pub fn new(client_id: impl Into<String>) -> Self {
        Context { client_id: client_id.into(), ..Context::default() }
    }

    /// The thing AWS IoT evaluates thing policy variables for: the attached thing when it is attached
    /// exclusively, or when its name is the client id (developer guide, "Thing policy variables").
    pub(crate) fn policy_thing(&self) -> Option<&Thing> {
        self.thing.as_ref().filter(|t| t.exclusive || t.name == self.client_id)
    }

    /// Refuses what AWS IoT refuses before it authorizes anything: an empty or over-long client id, an invalid
    /// thing name. Values are checked exactly as given, never trimmed.
    pub fn validate(&self) -> Result<(), Error> {
        if self.client_id.is_empty() || self.client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(Error::Request {
                field: "client id",
                value: shorten(&self.client_id),
                reason: format!("AWS IoT takes 1 to {MAX_CLIENT_ID_BYTES} bytes, this is {}", self.client_id.len()),
            });
        }
        if self.client_id.contains('\0') {
            return Err(Error::Request {
                field: "client id",
                value: shorten(&self.client_id),
                reason: "MQTT strings may not contain U+0000".to_owned(),
            });
        }
        if let Some(thing) = &self.thing {
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-');
            if thing.name.is_empty() || thing.name.len() > 128 || !thing.name.chars().all(valid) {
                return Err(Error::Request {
                    field: "thing name",
                    value: shorten(&thing.name),
                    reason: "AWS IoT thing names are 1 to 128 characters of [a-zA-Z0-9:_-]".to_owned(),
                });
            }
        }
        Ok(())
    }
}
