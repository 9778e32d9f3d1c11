//! AWS IoT topic rule destination confirmation.
//!
//! Before an IoT rule's HTTP action may call jitp, AWS IoT posts a confirmation message to the destination URL:
//! `{"arn": "...", "confirmationToken": "...", "enableUrl": "https://iot.<region>.amazonaws.com/confirmdestination/..."}`.
//! It carries none of the action's headers, so it cannot present the intake secret. jitp therefore takes it
//! without the secret, but only records it: the operator reads it back (`GET /v1/confirmation`, which needs the
//! secret) and confirms the destination (open the `enableUrl`, or `aws iot confirm-topic-rule-destination`).
//! jitp never follows the URL itself. Only AWS-shaped messages are recorded.
//!
//! Anyone who can reach the server can post one, and a forgery can have AWS's shape. So nothing received is
//! ever replaced or evicted: the first [`Options::max_confirmations`] are kept in arrival order, each with when
//! it arrived and where from (peer address, forwarding headers, whether the secret came with it), and later
//! ones are only counted. A flood can therefore crowd out AWS's message but never hide one already kept, and
//! the count says that it happened. The operator picks the one whose `arn` is the destination they created.
//!
//! [`Options::max_confirmations`]: crate::Options::max_confirmations

use serde::{Deserialize, Serialize};

/// Bounds on each field: real values are about 100 (ARN), 200 (token) and 300 (URL) characters.
const MAX_ARN: usize = 2048;
const MAX_TOKEN: usize = 4096;
const MAX_URL: usize = 8192;

/// A destination confirmation message, checked for AWS's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    /// The topic rule destination, `arn:<partition>:iot:<region>:<account>:ruledestination/http/<id>`.
    pub arn: String,
    /// The token for `ConfirmTopicRuleDestination`.
    pub confirmation_token: String,
    /// Opening this URL confirms the destination.
    pub enable_url: String,
}

/// The default bound on kept confirmations. AWS sends one per destination created (and one more each time the
/// operator asks for it again), so a real deployment sees a handful; 64 leaves room for a few rounds of retries
/// and costs at most 64 x ~17 KiB (the field bounds above plus [`MAX_ORIGIN_VALUE`] per origin header) of memory.
pub const DEFAULT_MAX_CONFIRMATIONS: usize = 64;

/// Request headers that say where a request came from (set by proxies and load balancers in front of jitp, or by
/// the sender itself: they are claims, not facts). Recorded with each confirmation when present.
pub const ORIGIN_HEADERS: [&str; 7] =
    ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "via", "user-agent"];

/// Longest origin header value kept, bytes; longer ones are cut (at a character boundary) and marked with `...`.
pub const MAX_ORIGIN_VALUE: usize = 512;

/// Where a confirmation came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The TCP peer (`ip:port`): the sender, or the proxy in front of jitp. `None` when the transport gives none
    /// (in-process tests).
    pub peer: Option<String>,
    /// The [`ORIGIN_HEADERS`] present, by lower-case name; repeated headers joined with `, `.
    pub headers: std::collections::BTreeMap<&'static str, String>,
}

impl Origin {
    /// The origin of a request from `peer` with `headers`.
    pub fn new(peer: Option<std::net::SocketAddr>, headers: &axum::http::HeaderMap) -> Self {
        let mut kept = std::collections::BTreeMap::new();
        for name in ORIGIN_HEADERS {
            let values: Vec<String> =
                headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
            if !values.is_empty() {
                kept.insert(name, truncate(values.join(", "), MAX_ORIGIN_VALUE));
            }
        }
        Self { peer: peer.map(|p| p.to_string()), headers: kept }
    }
}

fn truncate(mut value: String, max: usize) -> String {
    if value.len() > max {
        let mut end = max;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
        value.push_str("...");
    }
    value
}

/// One kept confirmation, as `GET /v1/confirmation` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredConfirmation {
    /// Its place in arrival order among all received since start (dropped ones included), from 1.
    pub(crate) seq: u64,
    #[serde(flatten)]
    pub(crate) message: Confirmation,
    /// When it arrived (RFC 3339).
    pub(crate) received_at: String,
    /// Where it came from.
    pub(crate) origin: Origin,
    /// Did the request carry the intake secret? AWS's own confirmation does not.
    pub(crate) token_verified: bool,
}

/// Every confirmation received since start: the first `limit` kept, the rest counted.
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    kept: Vec<StoredConfirmation>,
    received: u64,
    dropped: u64,
}

/// What became of a received confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Kept, with this sequence number.
    Yes(u64),
    /// Not kept: `limit` were kept already. Counted only.
    Dropped(u64),
}

impl Confirmations {
    /// Record one. Never replaces or evicts a kept one: past `limit`, it is only counted.
    pub(crate) fn record(
        &mut self,
        message: Confirmation,
        received_at: String,
        origin: Origin,
        token_verified: bool,
        limit: usize,
    ) -> Kept {
        self.received += 1;
        let seq = self.received;
        if self.kept.len() >= limit {
            self.dropped += 1;
            return Kept::Dropped(seq);
        }
        self.kept.push(StoredConfirmation { seq, message, received_at, origin, token_verified });
        Kept::Yes(seq)
    }

    /// The kept ones, oldest first.
    pub(crate) fn kept(&self) -> &[StoredConfirmation] {
        &self.kept
    }

    /// How many arrived since start, kept or not.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// How many arrived after the bound was reached.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What a body is, as far as confirmations go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recognised {
    /// Not a confirmation message at all: handle it as an event.
    NotConfirmation,
    /// A confirmation message with AWS's shape.
    Valid(Confirmation),
    /// It has `confirmationToken` but is not something AWS would send.
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    confirmation_token: Option<serde_json::Value>,
}

/// Recognise a confirmation message: a JSON object with a `confirmationToken` member. Registration events
/// never have one.
pub(crate) fn recognise(body: &[u8]) -> Recognised {
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe { confirmation_token: Some(_) }) => {}
        _ => return Recognised::NotConfirmation,
    }
    let message: Confirmation = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return Recognised::Invalid(format!("not a topic rule destination confirmation: {e}")),
    };
    match validate(&message) {
        Ok(()) => Recognised::Valid(message),
        Err(e) => Recognised::Invalid(format!("not a topic rule destination confirmation: {e}")),
    }
}

fn validate(m: &Confirmation) -> Result<(), String> {
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    let arn_parts: Vec<&str> = m.arn.splitn(6, ':').collect();
    let arn_ok = m.arn.len() <= MAX_ARN
        && printable(&m.arn)
        && matches!(arn_parts.as_slice(), ["arn", partition, "iot", _region, account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("ruledestination/"));
    if !arn_ok {
        return Err("arn is not an AWS IoT topic rule destination ARN".into());
    }
    // AWS's tokens are base64-like; anything else (quotes, spaces) has no business in the operator's shell.
    let token_chars = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.');
    if m.confirmation_token.is_empty()
        || m.confirmation_token.len() > MAX_TOKEN
        || !m.confirmation_token.bytes().all(token_chars)
    {
        return Err("confirmationToken is empty, too long or has characters outside [A-Za-z0-9+/=_.-]".into());
    }
    if m.enable_url.len() > MAX_URL || !printable(&m.enable_url) || !is_aws_enable_url(&m.enable_url) {
        return Err("enableUrl is not https://iot.<region>.amazonaws.com[.cn]/confirmdestination/...".into());
    }
    Ok(())
}

/// `https://iot.<region>.amazonaws.com/confirmdestination/...` (or `.amazonaws.com.cn`), nothing else: the
/// operator is going to open it.
fn is_aws_enable_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else { return false };
    let Some((host, path)) = rest.split_once('/') else { return false };
    let Some(region) = host.strip_prefix("iot.") else { return false };
    let Some(region) = region.strip_suffix(".amazonaws.com").or_else(|| region.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    let region_ok =
        !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    region_ok && path.starts_with("confirmdestination/") && path.len() > "confirmdestination/".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012:ruledestination/http/8a4b4c4d-1111-2222-3333-444455556666";
    const URL: &str = "https://iot.us-east-1.amazonaws.com/confirmdestination/AYVzI1NiIsInR5cCI6IkpXVCJ9";

    fn body(arn: &str, token: &str, url: &str) -> Vec<u8> {
        serde_json::json!({ "arn": arn, "confirmationToken": token, "enableUrl": url }).to_string().into_bytes()
    }

    #[test]
    fn recognises_aws_confirmation() {
        let r = recognise(&body(ARN, "AYVzI1NiIsInR5cCI6IkpXVCJ9", URL));
        assert!(matches!(r, Recognised::Valid(ref c) if c.arn == ARN && c.enable_url == URL), "{r:?}");
        let cn = "https://iot.cn-north-1.amazonaws.com.cn/confirmdestination/abc";
        assert!(matches!(recognise(&body(&ARN.replace("aws:", "aws-cn:"), "t", cn)), Recognised::Valid(_)));
    }

    #[test]
    fn events_and_garbage_are_not_confirmations() {
        for b in [&br#"{"certificateId":"x"}"#[..], b"", b"null", b"[]", b"{", br#"{"confirmationToken":null}"#] {
            assert_eq!(recognise(b), Recognised::NotConfirmation, "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn forged_confirmations_are_invalid() {
        let cases = [
            body(ARN, "t", "https://evil.example/confirmdestination/x"),
            body(ARN, "t", "http://iot.us-east-1.amazonaws.com/confirmdestination/x"),
            body(ARN, "t", "https://iot.us-east-1.amazonaws.com.evil.example/confirmdestination/x"),
            body(ARN, "t", "https://iot.us-east-1.amazonaws.com/other/x"),
            body(ARN, "t", "https://iot.us-east-1.amazonaws.com/confirmdestination/"),
            body(ARN, "t", "https://iot..amazonaws.com/confirmdestination/x"),
            body(ARN, "", URL),
            body(ARN, "a b", URL),
            body(ARN, "a'b", URL),
            body("arn:aws:s3:::bucket", "t", URL),
            body(&ARN.replace("123456789012", "1234"), "t", URL),
            br#"{"confirmationToken":"t"}"#.to_vec(),
            br#"{"confirmationToken":1,"arn":"a","enableUrl":"u"}"#.to_vec(),
        ];
        for case in cases {
            assert!(matches!(recognise(&case), Recognised::Invalid(_)), "{}", String::from_utf8_lossy(&case));
        }
    }
}
