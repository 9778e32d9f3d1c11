//! jitp-aws: the [`IotRegistry`] port over the AWS SDK for Rust (aws-sdk-iot).
//!
//! One [`AwsRegistry`] per process: it holds one SDK client built from the default credential chain and
//! region, with bounded time per attempt and per call, and **without the SDK's retries**: the workflow
//! (`jitp_core::provision`) retries every transient failure itself, with jittered exponential backoff under one
//! deadline, and counts each attempt in the audit record. With the SDK retrying too, a throttled call would be
//! sent up to three times per workflow attempt and the record would count only the workflow's. Every SDK
//! error is classified once, in `error_map`, into [`RegistryError`] so the workflow can tell "already done"
//! from "retry later" from "will never work".
//!
//! What stays out: the CA description cache and the API-call counting belong to the workflow, so that every
//! registry backend gets them; so does reading the environment: the endpoint (an emulator such as moto's
//! server, see `tests/README.md` at the repository root for where moto and AWS differ) and the region are
//! given to [`AwsRegistryBuilder`] by the binary.

mod error_map;
pub mod s3;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_iot::config::http::HttpResponse;
use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::config::timeout::TimeoutConfig;
use aws_sdk_iot::config::{Credentials, Region};
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types as sdk;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};
use jitp_registry::event::CertificateStatus;
use jitp_registry::registry::{
    CaDescription, CaStatus, CertificateDescription, CertificatePage, CertificateSummary, IotRegistry,
    MAX_THINGS_PER_PAGE, Operation, PolicyDescription, PolicyVersion, RegistryError, ThingDescription, ThingFilter,
    ThingNamePage, ThingPage, ThingSpec,
};
use jitp_registry::thing::ThingName;

/// Default bound on one call, credential resolution included: well inside a Lambda's timeout.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one attempt (the SDK makes one per call): AWS IoT's control plane answers in tens of
/// milliseconds. A call that times out is an `Unavailable` error, which the workflow retries.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default bound on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pages followed at most for one list call. AWS allows 10 policies per certificate and returns up to 250
/// per page, and a thing has a handful of principals: running out means the registry is looping.
const MAX_PAGES: usize = 100;

/// The crate's one error type: what the S3 CRL fetch ([`s3::S3Crls`]) reports. (The registry's calls report
/// jitp-core's [`RegistryError`], which the workflow classifies.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// GetObject failed: access denied, no such key or bucket, throttled, unreachable, timed out.
    #[error("{object}: GetObject failed: {code}: {message}")]
    S3Get {
        /// The `s3://` URI.
        object: String,
        /// S3's error code (`AccessDenied`, `NoSuchKey`, ...), or `Timeout` / `Unavailable` without a response.
        code: String,
        /// What S3 or the SDK said.
        message: String,
    },
    /// The object is larger than a CRL may be; reading stopped there.
    #[error("{object}: the object is over the {limit}-byte limit for a CRL{}", read.map(|n| format!(" ({n} bytes or more)")).unwrap_or_default())]
    CrlTooLarge {
        /// The `s3://` URI.
        object: String,
        /// [`jitp_pki::cert::MAX_CRL_BYTES`].
        limit: usize,
        /// The declared length, or how much had arrived when reading stopped.
        read: Option<u64>,
    },
    /// The body broke off while being read.
    #[error("{object}: reading the object failed: {message}")]
    S3Body {
        /// The `s3://` URI.
        object: String,
        /// The cause.
        message: String,
    },
}

/// The retry configuration [`AwsRegistry`] uses: one attempt per call, no SDK retries (the workflow's retry loop
/// is the only one).
pub fn retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// The timeout configuration [`AwsRegistry`] uses.
pub fn timeout_config(operation: Duration, attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(operation)
        .operation_attempt_timeout(attempt)
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT.min(attempt))
        .build()
}

/// Apply what every [`AwsRegistry`] client runs with (no retries, [`timeout_config`]) to a client
/// configuration built elsewhere: tests build one over a replaying HTTP client and get the production behaviour.
pub fn configure(
    builder: aws_sdk_iot::config::Builder,
    operation: Duration,
    attempt: Duration,
) -> aws_sdk_iot::config::Builder {
    builder.retry_config(retry_config()).timeout_config(timeout_config(operation, attempt))
}

/// [`IotRegistry`] over aws-sdk-iot. Cheap to clone (the SDK client is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct AwsRegistry {
    client: aws_sdk_iot::Client,
}

/// Builds an [`AwsRegistry`] from the default credential chain and region, with overrides.
#[derive(Debug, Clone)]
pub struct AwsRegistryBuilder {
    endpoint_url: Option<String>,
    region: Option<String>,
    credentials: Option<Credentials>,
    operation_timeout: Duration,
    attempt_timeout: Duration,
}

impl Default for AwsRegistryBuilder {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            credentials: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }
}

/// The shared AWS configuration both clients start from (AWS IoT's and S3's): the default chain, with the region,
/// the credentials and an endpoint for every service overridden when given.
pub(crate) async fn shared_config(
    endpoint_url: Option<String>,
    region: Option<String>,
    credentials: Option<Credentials>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

impl AwsRegistryBuilder {
    /// Send requests to `url` instead of AWS IoT's regional endpoint (an emulator such as moto's server).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Same, optional.
    pub fn set_endpoint_url(mut self, url: Option<String>) -> Self {
        self.endpoint_url = url;
        self
    }

    /// Use this region instead of the default chain's (`AWS_REGION`, profile, IMDS).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Same, optional.
    pub fn set_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Use fixed credentials instead of the default chain (for emulators and tests: nothing is looked up).
    pub fn static_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials::new(access_key_id, secret_access_key, None, None, "jitp-static"));
        self
    }

    /// Bound on one call.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bound on one attempt.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Load the shared AWS configuration and build the client. Credentials are resolved lazily, on the first
    /// call, so this does not fail; a missing region surfaces as an error of the first call.
    pub async fn build(self) -> AwsRegistry {
        let shared = shared_config(self.endpoint_url, self.region, self.credentials).await;
        let config =
            configure(aws_sdk_iot::config::Builder::from(&shared), self.operation_timeout, self.attempt_timeout);
        AwsRegistry::from_client(aws_sdk_iot::Client::from_conf(config.build()))
    }
}

impl AwsRegistry {
    /// A builder with the defaults: default credential chain and region, no SDK retries, timeouts.
    pub fn builder() -> AwsRegistryBuilder {
        AwsRegistryBuilder::default()
    }

    /// Wrap a client built elsewhere (tests: a replaying HTTP client). Its retry and timeout configuration is
    /// used as it is.
    pub fn from_client(client: aws_sdk_iot::Client) -> AwsRegistry {
        AwsRegistry { client }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_iot::Client {
        &self.client
    }

    /// The region the client sends requests to (given, or resolved by the default chain), if any.
    pub fn region(&self) -> Option<&str> {
        // Called as an associated function: tests/iam.rs reads every method called on `client` here as an AWS IoT
        // API call, and this one is not.
        aws_sdk_iot::Client::config(&self.client).region().map(|r| r.as_ref())
    }
}

/// Run one SDK call: time it, classify its error, log the outcome at debug level.
async fn call<T, E, F>(op: Operation, request: F) -> Result<T, RegistryError>
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let started = Instant::now();
    let answer = request.await;
    logged(op, started, answer)
}

/// An answer to a call of `op` started at `started`, mapped to the registry's errors, and logged.
fn logged<T, E>(
    op: Operation,
    started: Instant,
    answer: Result<T, SdkError<E, HttpResponse>>,
) -> Result<T, RegistryError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let result = answer.map_err(|e| error_map::map_sdk_error(op, &e));
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(_) => tracing::debug!(operation = %op, elapsed_ms, outcome = "ok", "aws iot call"),
        Err(e) => {
            tracing::debug!(operation = %op, elapsed_ms, outcome = error_map::outcome(e), error = %e, "aws iot call");
        }
    }
    result
}

/// Every page of a listing through the SDK's paginator (which sends the next page's token or marker and ends on
/// an absent or empty one), each page mapped and logged as [`call`] does and handed to `take`. A listing still
/// going after [`MAX_PAGES`] pages is refused as unreadable: jitp never acts on a truncated list. The paginators
/// are built with `stop_on_duplicate_token(false)`, so a service repeating a token is cut off the same way
/// rather than ending the listing early and silently.
async fn all_pages<P, E>(
    op: Operation,
    mut pages: PaginationStream<Result<P, SdkError<E, HttpResponse>>>,
    mut take: impl FnMut(P) -> Result<(), RegistryError>,
) -> Result<(), RegistryError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    for _ in 0..MAX_PAGES {
        let started = Instant::now();
        let Some(page) = pages.next().await else { return Ok(()) };
        take(logged(op, started, page)?)?;
    }
    Err(malformed(op, &format!("is still paginating after {MAX_PAGES} pages")))
}

/// A success response that lacks what the API promises, or holds what jitp cannot take: the same request would
/// get the same answer, so it is not retried ([`RegistryError::Unreadable`]).
fn malformed(op: Operation, what: &str) -> RegistryError {
    RegistryError::Unreadable(format!("{op}: the response {what}"))
}

/// A thing name from a listing, or why the listing is unusable.
fn listed_thing(op: Operation, name: String) -> Result<ThingName, RegistryError> {
    name.parse().map_err(|e| malformed(op, &format!("names a thing jitp cannot name ({e})")))
}

fn to_sdk_status(status: CertificateStatus) -> sdk::CertificateStatus {
    match status {
        CertificateStatus::Active => sdk::CertificateStatus::Active,
        CertificateStatus::Inactive => sdk::CertificateStatus::Inactive,
        CertificateStatus::Revoked => sdk::CertificateStatus::Revoked,
        CertificateStatus::PendingActivation => sdk::CertificateStatus::PendingActivation,
        CertificateStatus::PendingTransfer => sdk::CertificateStatus::PendingTransfer,
        CertificateStatus::RegisterInactive => sdk::CertificateStatus::RegisterInactive,
    }
}

fn from_sdk_status(status: &sdk::CertificateStatus) -> Option<CertificateStatus> {
    Some(match status {
        sdk::CertificateStatus::Active => CertificateStatus::Active,
        sdk::CertificateStatus::Inactive => CertificateStatus::Inactive,
        sdk::CertificateStatus::Revoked => CertificateStatus::Revoked,
        sdk::CertificateStatus::PendingActivation => CertificateStatus::PendingActivation,
        sdk::CertificateStatus::PendingTransfer => CertificateStatus::PendingTransfer,
        sdk::CertificateStatus::RegisterInactive => CertificateStatus::RegisterInactive,
        _ => return None,
    })
}

fn attribute_payload(attributes: &BTreeMap<String, String>, merge: bool) -> sdk::AttributePayload {
    sdk::AttributePayload::builder()
        .set_attributes(Some(attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .merge(merge)
        .build()
}

#[async_trait]
impl IotRegistry for AwsRegistry {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateDescription, RegistryError> {
        const OP: Operation = Operation::DescribeCertificate;
        let out = call(OP, self.client.describe_certificate().certificate_id(id.as_str()).send()).await?;
        let d = out.certificate_description.ok_or_else(|| malformed(OP, "has no certificateDescription"))?;
        let returned_id = d.certificate_id.as_deref().unwrap_or(id.as_str());
        let id = returned_id
            .parse::<CertificateId>()
            .map_err(|e| malformed(OP, &format!("has a bad certificateId: {e}")))?;
        let status = d.status.as_ref().ok_or_else(|| malformed(OP, "has no status"))?;
        let status = from_sdk_status(status)
            .ok_or_else(|| malformed(OP, &format!("has an unknown status {}", status.as_str())))?;
        // Absent is normal for certificates registered without a CA, and for moto, which never returns it.
        let ca_certificate_id = match d.ca_certificate_id.as_deref().filter(|s| !s.is_empty()) {
            Some(ca) => Some(ca.parse().map_err(|e| malformed(OP, &format!("has a bad caCertificateId: {e}")))?),
            None => None,
        };
        Ok(CertificateDescription {
            id,
            arn: d.certificate_arn.ok_or_else(|| malformed(OP, "has no certificateArn"))?,
            pem: d.certificate_pem.ok_or_else(|| malformed(OP, "has no certificatePem"))?,
            status,
            ca_certificate_id,
        })
    }

    async fn describe_ca_certificate(&self, id: &CaCertificateId) -> Result<CaDescription, RegistryError> {
        const OP: Operation = Operation::DescribeCACertificate;
        let out = call(OP, self.client.describe_ca_certificate().certificate_id(id.as_str()).send()).await?;
        let d = out.certificate_description.ok_or_else(|| malformed(OP, "has no certificateDescription"))?;
        let returned_id = d.certificate_id.as_deref().unwrap_or(id.as_str());
        let id = returned_id
            .parse::<CaCertificateId>()
            .map_err(|e| malformed(OP, &format!("has a bad certificateId: {e}")))?;
        let status = match d.status.as_ref().ok_or_else(|| malformed(OP, "has no status"))? {
            sdk::CaCertificateStatus::Active => CaStatus::Active,
            sdk::CaCertificateStatus::Inactive => CaStatus::Inactive,
            other => return Err(malformed(OP, &format!("has an unknown status {}", other.as_str()))),
        };
        Ok(CaDescription {
            id,
            pem: d.certificate_pem.ok_or_else(|| malformed(OP, "has no certificatePem"))?,
            status,
            // AWS always says; moto never does, and absent reads as off.
            auto_registration: matches!(d.auto_registration_status, Some(sdk::AutoRegistrationStatus::Enable)),
        })
    }

    async fn update_certificate(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), RegistryError> {
        let request =
            self.client.update_certificate().certificate_id(id.as_str()).new_status(to_sdk_status(status)).send();
        call(Operation::UpdateCertificate, request).await.map(drop)
    }

    async fn create_thing(&self, spec: &ThingSpec) -> Result<(), RegistryError> {
        // AWS answers an identical CreateThing with success and a different one with
        // ResourceAlreadyExistsException, which maps to AlreadyExists: no read-before-write needed here.
        let mut request =
            self.client.create_thing().thing_name(spec.name.as_str()).set_thing_type_name(spec.thing_type.clone());
        if !spec.attributes.is_empty() {
            request = request.attribute_payload(attribute_payload(&spec.attributes, false));
        }
        call(Operation::CreateThing, request.send()).await.map(drop)
    }

    async fn describe_thing(&self, name: &ThingName) -> Result<ThingDescription, RegistryError> {
        let out = call(Operation::DescribeThing, self.client.describe_thing().thing_name(name.as_str()).send()).await?;
        Ok(ThingDescription {
            name: name.clone(),
            thing_type: out.thing_type_name.filter(|t| !t.is_empty()),
            attributes: out.attributes.unwrap_or_default().into_iter().collect(),
            version: out.version,
        })
    }

    async fn update_thing(&self, spec: &ThingSpec, expected_version: Option<i64>) -> Result<(), RegistryError> {
        let mut request = self
            .client
            .update_thing()
            .thing_name(spec.name.as_str())
            .set_expected_version(expected_version)
            .attribute_payload(attribute_payload(&spec.attributes, false));
        request = match &spec.thing_type {
            Some(t) => request.thing_type_name(t),
            None => request.remove_thing_type(true),
        };
        call(Operation::UpdateThing, request.send()).await.map(drop)
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), RegistryError> {
        let request = self.client.add_thing_to_thing_group().thing_name(thing.as_str()).thing_group_name(group).send();
        call(Operation::AddThingToThingGroup, request).await.map(drop)
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, RegistryError> {
        let pages = self.client.list_thing_principals().thing_name(thing.as_str()).into_paginator();
        let mut principals = Vec::new();
        all_pages(Operation::ListThingPrincipals, pages.stop_on_duplicate_token(false).send(), |page| {
            principals.extend(page.principals.unwrap_or_default());
            Ok(())
        })
        .await?;
        Ok(principals)
    }

    async fn create_policy(&self, name: &PolicyName, document: &str) -> Result<(), RegistryError> {
        let request = self.client.create_policy().policy_name(name.as_str()).policy_document(document).send();
        call(Operation::CreatePolicy, request).await.map(drop)
    }

    async fn get_policy(&self, name: &PolicyName) -> Result<PolicyDescription, RegistryError> {
        const OP: Operation = Operation::GetPolicy;
        let out = call(OP, self.client.get_policy().policy_name(name.as_str()).send()).await?;
        Ok(PolicyDescription {
            name: name.clone(),
            document: out.policy_document.ok_or_else(|| malformed(OP, "has no policyDocument"))?,
            default_version_id: out.default_version_id.ok_or_else(|| malformed(OP, "has no defaultVersionId"))?,
            arn: out.policy_arn.ok_or_else(|| malformed(OP, "has no policyArn"))?,
        })
    }

    async fn create_policy_version(&self, name: &PolicyName, document: &str) -> Result<String, RegistryError> {
        const OP: Operation = Operation::CreatePolicyVersion;
        let request = self
            .client
            .create_policy_version()
            .policy_name(name.as_str())
            .policy_document(document)
            .set_as_default(true)
            .send();
        let out = call(OP, request).await?;
        out.policy_version_id.ok_or_else(|| malformed(OP, "has no policyVersionId"))
    }

    async fn list_policy_versions(&self, name: &PolicyName) -> Result<Vec<PolicyVersion>, RegistryError> {
        // ListPolicyVersions is not paginated: AWS returns every version (at most 5) in one answer.
        const OP: Operation = Operation::ListPolicyVersions;
        let out = call(OP, self.client.list_policy_versions().policy_name(name.as_str()).send()).await?;
        out.policy_versions
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                Ok(PolicyVersion {
                    version_id: v.version_id.ok_or_else(|| malformed(OP, "has a version without versionId"))?,
                    is_default: v.is_default_version,
                })
            })
            .collect()
    }

    async fn delete_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError> {
        let request =
            self.client.delete_policy_version().policy_name(name.as_str()).policy_version_id(version_id).send();
        call(Operation::DeletePolicyVersion, request).await.map(drop)
    }

    async fn set_default_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError> {
        let request =
            self.client.set_default_policy_version().policy_name(name.as_str()).policy_version_id(version_id).send();
        call(Operation::SetDefaultPolicyVersion, request).await.map(drop)
    }

    async fn attach_policy(&self, name: &PolicyName, target: &str) -> Result<(), RegistryError> {
        let request = self.client.attach_policy().policy_name(name.as_str()).target(target).send();
        call(Operation::AttachPolicy, request).await.map(drop)
    }

    async fn list_attached_policies(&self, target: &str) -> Result<Vec<PolicyName>, RegistryError> {
        const OP: Operation = Operation::ListAttachedPolicies;
        let pages = self.client.list_attached_policies().target(target).into_paginator();
        let mut names = Vec::new();
        all_pages(OP, pages.stop_on_duplicate_token(false).send(), |page| {
            for policy in page.policies.unwrap_or_default() {
                let name = policy.policy_name.ok_or_else(|| malformed(OP, "has a policy without policyName"))?;
                names.push(name.parse().map_err(|e| malformed(OP, &format!("has a bad policy name: {e}")))?);
            }
            Ok(())
        })
        .await?;
        Ok(names)
    }

    async fn attach_thing_principal(
        &self,
        thing: &ThingName,
        principal: &str,
        exclusive: bool,
    ) -> Result<(), RegistryError> {
        let mut request = self.client.attach_thing_principal().thing_name(thing.as_str()).principal(principal);
        if exclusive {
            request = request.thing_principal_type(sdk::ThingPrincipalType::ExclusiveThing);
        }
        call(Operation::AttachThingPrincipal, request.send()).await.map(drop)
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), RegistryError> {
        let request = self.client.detach_thing_principal().thing_name(thing.as_str()).principal(principal).send();
        call(Operation::DetachThingPrincipal, request).await.map(drop)
    }

    async fn list_things(&self, filter: &ThingFilter, next_token: Option<&str>) -> Result<ThingPage, RegistryError> {
        const OP: Operation = Operation::ListThings;
        let request = self
            .client
            .list_things()
            .attribute_name(&filter.attribute_name)
            .attribute_value(&filter.attribute_value)
            .use_prefix_attribute_value(filter.prefix)
            .max_results(i32::try_from(filter.max_results).unwrap_or(i32::MAX))
            .set_next_token(next_token.map(str::to_owned))
            .send();
        let page = call(OP, request).await?;
        let things = page
            .things
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let name = t.thing_name.ok_or_else(|| malformed(OP, "has a thing without thingName"))?;
                let name = listed_thing(OP, name)?;
                Ok(ThingDescription {
                    name,
                    thing_type: t.thing_type_name.filter(|t| !t.is_empty()),
                    attributes: t.attributes.unwrap_or_default().into_iter().collect(),
                    version: t.version,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(ThingPage { things, next_token: page.next_token.filter(|t| !t.is_empty()) })
    }

    async fn list_things_in_thing_group(
        &self,
        group: &str,
        next_token: Option<&str>,
    ) -> Result<ThingNamePage, RegistryError> {
        const OP: Operation = Operation::ListThingsInThingGroup;
        let request = self
            .client
            .list_things_in_thing_group()
            .thing_group_name(group)
            .max_results(i32::try_from(MAX_THINGS_PER_PAGE).unwrap_or(i32::MAX))
            .set_next_token(next_token.map(str::to_owned))
            .send();
        let page = call(OP, request).await?;
        let things = page
            .things
            .unwrap_or_default()
            .into_iter()
            .map(|name| listed_thing(OP, name))
            .collect::<Result<Vec<ThingName>, RegistryError>>()?;
        Ok(ThingNamePage { things, next_token: page.next_token.filter(|t| !t.is_empty()) })
    }

    async fn list_targets_for_policy(&self, name: &PolicyName) -> Result<Vec<String>, RegistryError> {
        let pages = self.client.list_targets_for_policy().policy_name(name.as_str()).page_size(250).into_paginator();
        let mut targets = Vec::new();
        all_pages(Operation::ListTargetsForPolicy, pages.stop_on_duplicate_token(false).send(), |page| {
            targets.extend(page.targets.unwrap_or_default());
            Ok(())
        })
        .await?;
        Ok(targets)
    }

    async fn tag_resource(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), RegistryError> {
        const OP: Operation = Operation::TagResource;
        let tags = tags
            .iter()
            .map(|(key, value)| sdk::Tag::builder().key(key).value(value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RegistryError::InvalidRequest(format!("{OP}: request not built: {e}")))?;
        call(OP, self.client.tag_resource().resource_arn(arn).set_tags(Some(tags)).send()).await.map(drop)
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), RegistryError> {
        let request = self.client.untag_resource().resource_arn(arn).set_tag_keys(Some(keys.to_vec())).send();
        call(Operation::UntagResource, request).await.map(drop)
    }

    async fn list_tags_for_resource(&self, arn: &str) -> Result<BTreeMap<String, String>, RegistryError> {
        let pages = self.client.list_tags_for_resource().resource_arn(arn).into_paginator();
        let mut tags = BTreeMap::new();
        all_pages(Operation::ListTagsForResource, pages.stop_on_duplicate_token(false).send(), |page| {
            // A tag without a value is the empty string, as the API reference has it (Value: 0 to 256 characters).
            tags.extend(page.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value.unwrap_or_default())));
            Ok(())
        })
        .await?;
        Ok(tags)
    }

    async fn list_ca_certificates(&self) -> Result<Vec<CaCertificateId>, RegistryError> {
        const OP: Operation = Operation::ListCACertificates;
        let pages = self.client.list_ca_certificates().page_size(250).into_paginator();
        let mut ids = Vec::new();
        all_pages(OP, pages.stop_on_duplicate_token(false).send(), |page| {
            for ca in page.certificates.unwrap_or_default() {
                let id = ca.certificate_id.ok_or_else(|| malformed(OP, "has a CA without certificateId"))?;
                ids.push(id.parse().map_err(|e| malformed(OP, &format!("has a bad CA id: {e}")))?);
            }
            Ok(())
        })
        .await?;
        Ok(ids)
    }

    async fn list_certificates_by_ca(
        &self,
        ca: &CaCertificateId,
        marker: Option<&str>,
    ) -> Result<CertificatePage, RegistryError> {
        const OP: Operation = Operation::ListCertificatesByCA;
        let request = self
            .client
            .list_certificates_by_ca()
            .ca_certificate_id(ca.as_str())
            .page_size(250)
            .set_marker(marker.map(str::to_owned))
            .send();
        let page = call(OP, request).await?;
        let mut certificates = Vec::new();
        for c in page.certificates.unwrap_or_default() {
            let id = c.certificate_id.ok_or_else(|| malformed(OP, "has a certificate without certificateId"))?;
            let id: CertificateId = id.parse().map_err(|e| malformed(OP, &format!("has a bad certificate id: {e}")))?;
            let arn = c.certificate_arn.ok_or_else(|| malformed(OP, "has a certificate without certificateArn"))?;
            // A status this adapter does not know is not one jitp could act on: skip the certificate, as the
            // listing's other readers would not see it either.
            let Some(status) = c.status.as_ref().and_then(from_sdk_status) else { continue };
            certificates.push(CertificateSummary { id, arn, status });
        }
        Ok(CertificatePage { certificates, next_marker: page.next_marker.filter(|m| !m.is_empty()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_the_sdk_enum() {
        use CertificateStatus as S;
        for status in
            [S::Active, S::Inactive, S::Revoked, S::PendingActivation, S::PendingTransfer, S::RegisterInactive]
        {
            assert_eq!(to_sdk_status(status).as_str(), status.as_str());
            assert_eq!(from_sdk_status(&to_sdk_status(status)), Some(status));
        }
        assert_eq!(from_sdk_status(&sdk::CertificateStatus::from("SOMETHING_NEW")), None);
    }
}
