//! The event AWS IoT invokes the guard with, and the guard's answer.
//!
//! Source: AWS IoT Core Developer Guide, "Custom client certificate validation", step 2, "Create a Lambda
//! function" (the request and response formats):
//! <https://docs.aws.amazon.com/iot/latest/developerguide/customize-client-auth.html>. The event is
//!
//! ```json
//! {"connectionMetadata": {"id": "string"}, "principalId": "string", "serverName": "string",
//!  "clientCertificateChain": ["string", "string"]}
//! ```
//!
//! (the connection's id, the principal of the TLS connection, the SNI host name, the client's certificate chain)
//! and the answer is `{"isAuthenticated": boolean}`. The page does not say how each chain element is encoded
//! nor in which order: the guard accepts an element written as one PEM certificate or as the base64 of its
//! DER (what PEM carries between its lines), and takes the first element as the client's own certificate, the
//! order of TLS's Certificate message (RFC 8446 4.4.2: the sender's certificate first). Fields the page does
//! not list are ignored (AWS may add some); a listed field of the wrong type, a missing or empty chain, or an
//! element that is not one certificate makes the event malformed, and a malformed event is refused, never
//! allowed. The other elements are parsed (a chain that carries garbage is malformed) but never trusted: the
//! CA that vouches for the client is one registered in AWS IoT ([`crate::cas::CaSet`]).

use serde::Serialize;
use serde_json::Value;

use crate::judge::{Certificate, MAX_PEM_BYTES, ReasonCode, Rejection};

/// At most this many certificates in a chain: a device's own, a few intermediates and a root. RFC 5280 sets no
/// limit; webpki stops path building at 6 intermediates, and a chain of 10 is already far past any fleet's.
pub const MAX_CHAIN: usize = 10;
/// At most this many bytes in `connectionMetadata.id`, `principalId` and `serverName` (a DNS name is at most
/// 253): they are only logged, and a log line has a size.
pub const MAX_FIELD_BYTES: usize = 1024;

/// The connection attempt AWS IoT asks about, parsed and checked.
#[derive(Debug, Clone)]
pub struct ConnectEvent {
    /// `connectionMetadata.id`.
    pub connection_id: Option<String>,
    /// `principalId`.
    pub principal_id: Option<String>,
    /// `serverName`: the SNI host name the client asked for (the guarded domain).
    pub server_name: Option<String>,
    /// The client's own certificate, `clientCertificateChain[0]`.
    pub device: Certificate,
    /// How many certificates the chain carried.
    pub chain_len: usize,
}

/// The guard's answer to AWS IoT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAnswer {
    /// May the client connect?
    pub is_authenticated: bool,
}

/// What could be read of a malformed event's connection, for the refusal's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `connectionMetadata.id`, if it was a string.
    pub connection_id: Option<String>,
    /// `principalId`, if it was a string.
    pub principal_id: Option<String>,
    /// `serverName`, if it was a string.
    pub server_name: Option<String>,
}

impl ConnectEvent {
    /// The connection's fields.
    pub fn connection(&self) -> Connection {
        Connection {
            connection_id: self.connection_id.clone(),
            principal_id: self.principal_id.clone(),
            server_name: self.server_name.clone(),
        }
    }
}

fn malformed(message: String) -> Rejection {
    Rejection::new(ReasonCode::MalformedEvent, message)
}

/// An optional string field: absent or null is `None`; another type, or over [`MAX_FIELD_BYTES`], is malformed.
fn optional_string(
    object: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, Rejection> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_FIELD_BYTES => Ok(Some(s.clone())),
        Some(Value::String(s)) => {
            Err(malformed(format!("{path} is {} bytes long, over the {MAX_FIELD_BYTES}-byte limit", s.len())))
        }
        Some(other) => Err(malformed(format!("{path} is {}, not a string", kind(other)))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The connection fields of `payload`, as far as they can be read (a malformed event's record).
pub fn connection_of(payload: &Value) -> Connection {
    let Some(object) = payload.as_object() else { return Connection::default() };
    let meta = object.get("connectionMetadata").and_then(Value::as_object);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| s.len() <= MAX_FIELD_BYTES).map(str::to_owned);
    Connection {
        connection_id: text(meta.and_then(|m| m.get("id"))),
        principal_id: text(object.get("principalId")),
        server_name: text(object.get("serverName")),
    }
}

/// Parse the event: MALFORMED_EVENT for its shape, MALFORMED_CERTIFICATE (naming the element) for a chain
/// element that is not one certificate.
pub fn parse(payload: &Value) -> Result<ConnectEvent, Rejection> {
    let Some(object) = payload.as_object() else {
        return Err(malformed(format!(
            "the event is {}, not a JSON object with clientCertificateChain (AWS IoT's custom client certificate validation)",
            kind(payload)
        )));
    };
    let connection_id = match object.get("connectionMetadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(meta)) => optional_string(meta, "id", "connectionMetadata.id")?,
        Some(other) => return Err(malformed(format!("connectionMetadata is {}, not an object", kind(other)))),
    };
    let principal_id = optional_string(object, "principalId", "principalId")?;
    let server_name = optional_string(object, "serverName", "serverName")?;
    let chain = match object.get("clientCertificateChain") {
        None | Some(Value::Null) => {
            return Err(malformed("the event has no clientCertificateChain: no client certificate to check".into()));
        }
        Some(Value::Array(chain)) => chain,
        Some(other) => return Err(malformed(format!("clientCertificateChain is {}, not an array", kind(other)))),
    };
    if chain.is_empty() {
        return Err(malformed("clientCertificateChain is empty: no client certificate to check".into()));
    }
    if chain.len() > MAX_CHAIN {
        return Err(malformed(format!(
            "clientCertificateChain has {} certificates, over the limit of {MAX_CHAIN}",
            chain.len()
        )));
    }
    let mut device = None;
    for (i, element) in chain.iter().enumerate() {
        let Value::String(text) = element else {
            return Err(malformed(format!("clientCertificateChain[{i}] is {}, not a string", kind(element))));
        };
        let pem = element_pem(text).map_err(|why| {
            Rejection::new(ReasonCode::MalformedCertificate, format!("clientCertificateChain[{i}] {why}"))
        })?;
        let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| {
            Rejection::new(ReasonCode::MalformedCertificate, format!("clientCertificateChain[{i}]: {}", e.message))
        })?;
        if i == 0 {
            device = Some(cert);
        }
    }
    let Some(device) = device else {
        return Err(malformed("clientCertificateChain is empty: no client certificate to check".into()));
    };
    Ok(ConnectEvent { connection_id, principal_id, server_name, device, chain_len: chain.len() })
}

/// One chain element as PEM text: a PEM certificate as it is, or base64 DER framed as one. Anything else (empty,
/// another alphabet, over [`MAX_PEM_BYTES`]) is refused with why.
fn element_pem(text: &str) -> Result<String, String> {
    if text.len() > MAX_PEM_BYTES {
        return Err(format!("is {} bytes long, over the {MAX_PEM_BYTES}-byte limit", text.len()));
    }
    if text.contains("-----BEGIN") {
        return Ok(text.to_owned());
    }
    let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n');
    if text.trim().is_empty() || !text.bytes().all(base64) {
        return Err("is neither a PEM certificate nor the base64 of a DER certificate".to_owned());
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut pem = String::with_capacity(compact.len() + compact.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in compact.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use jitp_testkit::{Alg, Ca, Device};
    use serde_json::json;

    use super::*;

    fn device_pem() -> String {
        Ca::new("jitp guard event CA", Alg::P256).issue(&Device::new("sensor-0000000000aa")).pem
    }

    fn base64_of(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn aws_shape_parses_and_unknown_fields_are_ignored() {
        let pem = device_pem();
        let event = json!({
            "connectionMetadata": {"id": "c-1", "extra": 1},
            "principalId": "abc",
            "serverName": "iot.example.com",
            "clientCertificateChain": [pem],
            "somethingNew": {"x": [1, 2]},
        });
        let parsed = parse(&event).unwrap();
        assert_eq!(parsed.connection_id.as_deref(), Some("c-1"));
        assert_eq!(parsed.principal_id.as_deref(), Some("abc"));
        assert_eq!(parsed.server_name.as_deref(), Some("iot.example.com"));
        assert_eq!(parsed.chain_len, 1);
        assert_eq!(parsed.device.der(), Certificate::from_pem(pem.as_bytes()).unwrap().der());
    }

    #[test]
    fn base64_der_is_the_same_certificate_as_its_pem() {
        let pem = device_pem();
        let from_pem = parse(&json!({"clientCertificateChain": [pem]})).unwrap();
        let from_b64 = parse(&json!({"clientCertificateChain": [base64_of(&pem)]})).unwrap();
        assert_eq!(from_pem.device.fingerprint(), from_b64.device.fingerprint());
    }

    #[test]
    fn every_malformed_shape_is_refused_with_the_field_named() {
        let pem = device_pem();
        let too_many: Vec<String> = (0..=MAX_CHAIN).map(|_| pem.clone()).collect();
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let cases = [
            (json!([]), "MALFORMED_EVENT", "not a JSON object"),
            (json!("text"), "MALFORMED_EVENT", "not a JSON object"),
            (json!({}), "MALFORMED_EVENT", "no clientCertificateChain"),
            (json!({"clientCertificateChain": null}), "MALFORMED_EVENT", "no clientCertificateChain"),
            (json!({"clientCertificateChain": []}), "MALFORMED_EVENT", "is empty"),
            (json!({"clientCertificateChain": pem}), "MALFORMED_EVENT", "not an array"),
            (json!({"clientCertificateChain": [42]}), "MALFORMED_EVENT", "[0] is a number"),
            (json!({"clientCertificateChain": too_many}), "MALFORMED_EVENT", "over the limit"),
            (json!({"clientCertificateChain": [pem], "principalId": 7}), "MALFORMED_EVENT", "principalId"),
            (json!({"clientCertificateChain": [pem], "serverName": long}), "MALFORMED_EVENT", "serverName"),
            (
                json!({"clientCertificateChain": [pem], "connectionMetadata": "x"}),
                "MALFORMED_EVENT",
                "connectionMetadata",
            ),
            (
                json!({"clientCertificateChain": [pem], "connectionMetadata": {"id": []}}),
                "MALFORMED_EVENT",
                "connectionMetadata.id",
            ),
            (json!({"clientCertificateChain": [""]}), "MALFORMED_CERTIFICATE", "[0] is neither"),
            (json!({"clientCertificateChain": ["not base64!"]}), "MALFORMED_CERTIFICATE", "[0] is neither"),
            (json!({"clientCertificateChain": ["AAAA"]}), "MALFORMED_CERTIFICATE", "[0]"),
            (json!({"clientCertificateChain": [pem, "garbage!"]}), "MALFORMED_CERTIFICATE", "[1]"),
            (json!({"clientCertificateChain": [format!("{pem}{pem}")]}), "MALFORMED_CERTIFICATE", "[0]"),
            (json!({"clientCertificateChain": ["A".repeat(MAX_PEM_BYTES + 1)]}), "MALFORMED_CERTIFICATE", "over the"),
        ];
        for (event, code, says) in cases {
            let why = parse(&event).unwrap_err();
            assert_eq!(why.reason.as_str(), code, "{event}: {}", why.message);
            assert!(why.message.contains(says), "{event}: {}", why.message);
        }
    }

    #[test]
    fn a_private_key_in_the_chain_is_not_a_certificate() {
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let why = parse(&json!({"clientCertificateChain": [key]})).unwrap_err();
        assert_eq!(why.reason, ReasonCode::MalformedCertificate, "{}", why.message);
    }

    proptest::proptest! {
        /// No input panics, and nothing but one certificate is ever taken as the device's.
        #[test]
        fn arbitrary_elements_never_panic(s in "\\PC{0,300}") {
            let _ = parse(&json!({"clientCertificateChain": [s]}));
        }

        #[test]
        fn arbitrary_base64_never_panics(s in "[A-Za-z0-9+/=\n]{0,400}") {
            let _ = parse(&json!({"clientCertificateChain": [s]}));
        }
    }

    #[test]
    fn the_connection_of_a_malformed_event_is_read_as_far_as_it_goes() {
        let c = connection_of(&json!({"connectionMetadata": {"id": 5}, "principalId": "p", "serverName": 1}));
        assert_eq!(c, Connection { connection_id: None, principal_id: Some("p".into()), server_name: None });
        assert_eq!(connection_of(&json!(null)), Connection::default());
    }
}
