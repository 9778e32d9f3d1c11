#![cfg(test)]
//! jitp-aws's S3 CRL fetch against canned S3 responses (StaticReplayClient): the size bound with and without a
//! Content-Length, the conditional request (If-None-Match on the wire, 304 as Unchanged), and S3's error codes
//! in the crate's error enum.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use jitp_aws::Error;
use jitp_aws::s3::{Fetched, S3Crls};
use jitp_pki::cert::MAX_CRL_BYTES;
use jitp_pki::ids::S3Object;

const URI: &str = "s3://acme-pki/crl/acme-issuing.crl";

fn object() -> S3Object {
    URI.parse().unwrap()
}

fn response(status: u16, headers: &[(&str, &str)], body: impl Into<SdkBody>) -> HttpResponse {
    let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), body.into());
    for (name, value) in headers {
        response.headers_mut().insert(name.to_string(), value.to_string());
    }
    response
}

fn s3_error(status: u16, code: &str) -> HttpResponse {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code} says no</Message><RequestId>r1</RequestId></Error>"
    );
    response(status, &[("content-type", "application/xml")], xml)
}

fn replay(responses: Vec<HttpResponse>) -> (S3Crls, StaticReplayClient) {
    let events = responses.into_iter().map(|r| ReplayEvent::new(HttpRequest::new(SdkBody::empty()), r)).collect();
    let http = StaticReplayClient::new(events);
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(http.clone())
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    (S3Crls::from_client(aws_sdk_s3::Client::from_conf(config)), http)
}

#[tokio::test]
async fn a_body_is_returned_with_its_etag_and_a_conditional_get_sends_if_none_match() {
    let (s3, http) = replay(vec![
        response(200, &[("etag", "\"abc\""), ("content-length", "3")], "crl"),
        response(304, &[("etag", "\"abc\"")], SdkBody::empty()),
    ]);
    assert_eq!(
        s3.get(&object(), None).await.unwrap(),
        Fetched::Changed { bytes: b"crl".to_vec(), etag: Some("\"abc\"".into()) }
    );
    assert_eq!(s3.get(&object(), Some("\"abc\"")).await.unwrap(), Fetched::Unchanged);
    let requests: Vec<&HttpRequest> = http.actual_requests().collect();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].uri().contains("crl/acme-issuing.crl"), "{}", requests[0].uri());
    assert_eq!(requests[0].headers().get("if-none-match"), None);
    assert_eq!(requests[1].headers().get("if-none-match"), Some("\"abc\""));
}

#[tokio::test]
async fn an_oversized_object_is_refused_by_its_length_or_while_reading() {
    let declared = (MAX_CRL_BYTES + 1).to_string();
    let (s3, _) = replay(vec![response(200, &[("content-length", &declared)], "small")]);
    match s3.get(&object(), None).await {
        Err(Error::CrlTooLarge { object, limit, read }) => {
            assert_eq!((object.as_str(), limit, read), (URI, MAX_CRL_BYTES, Some(MAX_CRL_BYTES as u64 + 1)));
        }
        other => panic!("{other:?}"),
    }
    // No Content-Length (a chunked body): refused once the bytes pass the limit.
    let (s3, _) = replay(vec![response(200, &[], vec![0u8; MAX_CRL_BYTES + 1])]);
    let err = s3.get(&object(), None).await.unwrap_err();
    assert!(matches!(err, Error::CrlTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains(URI) && err.to_string().contains("limit"), "{err}");
    // At the limit exactly: accepted.
    let (s3, _) = replay(vec![response(200, &[], vec![0u8; MAX_CRL_BYTES])]);
    assert!(
        matches!(s3.get(&object(), None).await.unwrap(), Fetched::Changed { bytes, .. } if bytes.len() == MAX_CRL_BYTES)
    );
}

#[tokio::test]
async fn s3_errors_name_the_object_and_s3s_code() {
    for (status, code) in [(403, "AccessDenied"), (404, "NoSuchKey"), (404, "NoSuchBucket"), (503, "SlowDown")] {
        let (s3, _) = replay(vec![s3_error(status, code)]);
        match s3.get(&object(), None).await {
            Err(Error::S3Get { object, code: got, message }) => {
                assert_eq!((object.as_str(), got.as_str()), (URI, code), "{message}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}
