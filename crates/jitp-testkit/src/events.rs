//! The events jitp is handed, built one way for every suite: the certificate-registered event AWS IoT publishes
//! (and variants of it, good and malformed, for the parser's tests and the fuzz seeds), and the SQS envelope a
//! batch of them arrives in.

use serde_json::{Value, json};

use crate::{Ca, NOW, Pem};

/// The account of every event here (moto's default, and the policy context's default).
pub const ACCOUNT_ID: &str = "123456789012";

/// A registration event for `cert` under `ca`, as AWS IoT publishes it (ids as AWS computes them).
pub fn event(cert: &Pem, ca: &Ca) -> String {
    event_for_ids(&cert.id(), &ca.id())
}

/// A registration event for raw ids (e.g. the ids a registry returned), published at [`NOW`].
pub fn event_for_ids(certificate_id: &str, ca_id: &str) -> String {
    json!({
        "certificateId": certificate_id,
        "caCertificateId": ca_id,
        "timestamp": NOW * 1000,
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": ACCOUNT_ID,
        "certificateRegistrationTimestamp": null
    })
    .to_string()
}

/// The event the parser's variants start from: certificate `aaaa…`, CA `bbbb…` (64 hex digits each).
pub fn sample() -> String {
    event_for_ids(&"a".repeat(64), &"b".repeat(64))
}

/// Variants of [`sample`] that are registration events all the same: the registration timestamp as a string, or
/// absent (AWS documents it as optional).
pub fn accepted_variants() -> Vec<String> {
    let good = sample();
    vec![
        good.replace(
            "\"certificateRegistrationTimestamp\":null",
            "\"certificateRegistrationTimestamp\":\"1700000000000\"",
        ),
        good.replace(",\"certificateRegistrationTimestamp\":null", ""),
    ]
}

/// Inputs that are not a registration event, each of which the parser must refuse as MALFORMED_EVENT: other JSON
/// values, ids, timestamps, statuses and accounts of the wrong form, a misspelt key, two events, deep nesting,
/// bytes that are not UTF-8, and a lone surrogate escape in a field the event does not have. (Not here: an event
/// over the size limit, which is the parser's own constant.)
pub fn malformed_variants() -> Vec<Vec<u8>> {
    let good = sample();
    let timestamp = (NOW * 1000).to_string();
    let mut out: Vec<Vec<u8>> = [
        String::new(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        good.replace("aaaa", "AAAA"),
        good.replace(&timestamp, "\"soon\""),
        good.replace(&timestamp, "-1"),
        good.replace("PENDING_ACTIVATION", "WHATEVER"),
        good.replace(ACCOUNT_ID, "12345"),
        good.replace("\"certificateId\"", "\"certificateID\""),
        format!("{good}{good}"),
        "{".repeat(10_000),
        good.replace("\"timestamp\"", "\"x\":\"\\udd62\",\"timestamp\""),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let mut invalid_utf8 = good.trim_end_matches('}').as_bytes().to_vec();
    invalid_utf8.extend_from_slice(b",\"extra\":\"\xff\xfe\"}");
    out.push(invalid_utf8);
    for (i, v) in out.iter().enumerate().skip(4) {
        assert_ne!(v.as_slice(), good.as_bytes(), "malformed variant {i} did not change the sample");
    }
    out
}

/// An SQS batch as the Lambda event source mapping delivers it: one record per `(messageId, body)`.
pub fn sqs(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": (NOW * 1000).to_string()},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT_ID}:jitp-events"),
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The guarded domain of [`connect`]'s events.
pub const GUARDED_DOMAIN: &str = "iot.guarded.example.com";

/// The event AWS IoT's custom client certificate validation invokes the guard with for a client presenting
/// `chain` (its own certificate first; each element PEM or base64 DER), as the AWS IoT developer guide documents
/// it ("Custom client certificate validation", step 2).
pub fn connect(chain: &[&str]) -> Value {
    json!({
        "connectionMetadata": {"id": "e1a7b5c2-0000-4000-8000-000000000001"},
        "principalId": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "serverName": GUARDED_DOMAIN,
        "clientCertificateChain": chain,
    })
}
