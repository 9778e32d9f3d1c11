//! S3 CRLs: `GetObject` of the `s3://bucket/key` objects a profile lists as CRLs (`crl = [...]`).
//!
//! jitp-core parses the bytes (`jitp_profile::profile::Overrides::crl_objects`); this module only fetches them,
//! bounded and conditionally:
//! - the body is read chunk by chunk and refused as soon as it passes [`MAX_CRL_BYTES`] (a `Content-Length`
//!   over the limit is refused before any of it is read), so no more than `MAX_CRL_BYTES` + one chunk is ever
//!   held;
//! - a refresh sends `If-None-Match` with the ETag of the copy it holds: an unchanged object is S3's
//!   `304 Not Modified`, no body, and [`Fetched::Unchanged`], so the caller rebuilds nothing.
//!
//! The SDK's standard retries stay on here (unlike [`crate::AwsRegistry`]'s): no workflow retry loop sits
//! above a CRL fetch, and a refresh that still fails keeps the last good CRL.

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use jitp_pki::cert::MAX_CRL_BYTES;
use jitp_pki::ids::S3Object;

use crate::{DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, Error, timeout_config};

/// What a [`S3Crls::get`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The object's ETag is still the one given (S3 answered 304 Not Modified): keep the copy held.
    Unchanged,
    /// The object's bytes (at most [`MAX_CRL_BYTES`]) and its ETag, for the next conditional get.
    Changed {
        /// The body.
        bytes: Vec<u8>,
        /// The ETag S3 returned, if any.
        etag: Option<String>,
    },
}

/// GetObject for CRL objects. Cheap to clone (the SDK client is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct S3Crls {
    s3: aws_sdk_s3::Client,
}

/// Builds an [`S3Crls`] from the default credential chain and region, with overrides (as
/// [`crate::AwsRegistryBuilder`]).
#[derive(Debug, Clone, Default)]
pub struct S3CrlsBuilder {
    endpoint_url: Option<String>,
    region: Option<String>,
    credentials: Option<Credentials>,
}

impl S3CrlsBuilder {
    /// Send requests to `url` (an emulator such as moto's server), path-style (`url/bucket/key`).
    pub fn set_endpoint_url(mut self, url: Option<String>) -> Self {
        self.endpoint_url = url;
        self
    }

    /// Use this region instead of the default chain's.
    pub fn set_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Use fixed credentials instead of the default chain (emulators and tests).
    pub fn static_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials::new(access_key_id, secret_access_key, None, None, "jitp-static"));
        self
    }

    /// Load the shared AWS configuration and build the client (credentials are resolved on the first call).
    pub async fn build(self) -> S3Crls {
        // The endpoint is set on S3's own configuration below, where path-style addressing goes with it.
        let shared = crate::shared_config(None, self.region, self.credentials).await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .timeout_config(timeout_config(DEFAULT_OPERATION_TIMEOUT, DEFAULT_ATTEMPT_TIMEOUT));
        if let Some(url) = self.endpoint_url {
            config = config.endpoint_url(url).force_path_style(true);
        }
        S3Crls::from_client(aws_sdk_s3::Client::from_conf(config.build()))
    }
}

impl S3Crls {
    /// A builder: default credential chain and region.
    pub fn builder() -> S3CrlsBuilder {
        S3CrlsBuilder::default()
    }

    /// Wrap a client built elsewhere (tests).
    pub fn from_client(s3: aws_sdk_s3::Client) -> Self {
        Self { s3 }
    }

    /// GetObject `object`; with `etag`, conditionally (`If-None-Match`): [`Fetched::Unchanged`] if it still is.
    pub async fn get(&self, object: &S3Object, etag: Option<&str>) -> Result<Fetched, Error> {
        let request =
            self.s3.get_object().bucket(object.bucket()).key(object.key()).set_if_none_match(etag.map(str::to_owned));
        let output = match request.send().await {
            Ok(output) => output,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => return Ok(Fetched::Unchanged),
            Err(e) => return Err(get_error(object, &e)),
        };
        let too_large =
            |read: Option<u64>| Error::CrlTooLarge { object: object.to_string(), limit: MAX_CRL_BYTES, read };
        let declared = output.content_length().and_then(|n| u64::try_from(n).ok());
        if declared.is_some_and(|n| n > MAX_CRL_BYTES as u64) {
            return Err(too_large(declared));
        }
        let etag = output.e_tag().map(str::to_owned);
        let mut body = output.body;
        let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        loop {
            match body.try_next().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_CRL_BYTES {
                        return Err(too_large(Some((bytes.len() + chunk.len()) as u64)));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::S3Body { object: object.to_string(), message: jitp_pki::report::chain(&e) });
                }
            }
        }
        Ok(Fetched::Changed { bytes, etag })
    }
}

/// A failed GetObject, by S3's error code (`AccessDenied`, `NoSuchKey`, ...) where it gave one.
fn get_error<E, R>(object: &S3Object, e: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let (code, message) = match e {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("Unknown").to_owned(),
            service.err().message().map_or_else(|| jitp_pki::report::chain(service.err()), str::to_owned),
        ),
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), jitp_pki::report::chain(e)),
        _ => ("Unavailable".to_owned(), jitp_pki::report::chain(e)),
    };
    Error::S3Get { object: object.to_string(), code, message }
}
