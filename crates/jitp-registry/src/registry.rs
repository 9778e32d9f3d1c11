//! The port: the AWS IoT calls jitp needs, with typed results and errors.
//!
//! Implementations: [`crate::memory::MemoryRegistry`] (AWS semantics in memory, for the demo, tests and
//! benches) and `jitp_aws::AwsRegistry` (aws-sdk-iot). Errors are classified so that the workflow can tell
//! "already done" (converge) from "try again later" (transient) from "this will never work".

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::CertificateStatus;
use crate::thing::ThingName;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};

/// A registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// ResourceNotFoundException.
    #[error("not found: {0}")]
    NotFound(String),
    /// ResourceAlreadyExistsException (for things: exists with a different configuration).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A state conflict: CertificateStateException, ConflictException, DeleteConflictException.
    #[error("conflict: {0}")]
    Conflict(String),
    /// VersionConflictException: UpdateThing's `expectedVersion` is not the thing's version (someone else wrote
    /// the thing since it was read).
    #[error("version conflict: {0}")]
    VersionConflict(String),
    /// VersionsLimitExceededException: a policy has 5 versions.
    #[error("policy versions limit exceeded: {0}")]
    VersionsLimitExceeded(String),
    /// ThrottlingException, LimitExceededException: retry later.
    #[error("throttled: {0}")]
    Throttled(String),
    /// 5xx, timeouts, connection failures: retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// InvalidRequestException and other 4xx: a retry will not help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The service answered success, but not in a shape jitp can read (a body that does not parse, a field the
    /// API promises that is missing, a name jitp cannot hold): the same request would get the same answer, so a
    /// retry will not help.
    #[error("unreadable answer: {0}")]
    Unreadable(String),
    /// The persistence file of a [`crate::memory::MemoryRegistry`] cannot be read or written, or is not one.
    #[error("memory registry file {}: {message}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (the line, where the JSON does not parse).
        message: String,
    },
}

impl RegistryError {
    /// Throttled or unavailable: the call may succeed if repeated later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Unavailable(_))
    }
}

/// The registry calls, by their AWS names (audit records count them under these names).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Operation {
    DescribeCertificate,
    DescribeCACertificate,
    UpdateCertificate,
    CreateThing,
    DescribeThing,
    UpdateThing,
    AddThingToThingGroup,
    ListThingPrincipals,
    CreatePolicy,
    GetPolicy,
    CreatePolicyVersion,
    ListPolicyVersions,
    DeletePolicyVersion,
    SetDefaultPolicyVersion,
    AttachPolicy,
    ListAttachedPolicies,
    AttachThingPrincipal,
    DetachThingPrincipal,
    ListThings,
    ListThingsInThingGroup,
    ListTargetsForPolicy,
    ListCACertificates,
    ListCertificatesByCA,
    TagResource,
    UntagResource,
    ListTagsForResource,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: &'static [Operation] = <Self as strum::VariantArray>::VARIANTS;

    /// The AWS API name: the variant's (strum and serde derive it; `names_are_pinned` holds them).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The IAM action that authorises the call. [`Operation::ALL`] mapped through this is the whole set of
    /// actions the function role needs: the source of truth that infra/ is tested against.
    pub fn iam_action(self) -> &'static str {
        match self {
            Self::DescribeCertificate => "iot:DescribeCertificate",
            Self::DescribeCACertificate => "iot:DescribeCACertificate",
            Self::UpdateCertificate => "iot:UpdateCertificate",
            Self::CreateThing => "iot:CreateThing",
            Self::DescribeThing => "iot:DescribeThing",
            Self::UpdateThing => "iot:UpdateThing",
            Self::AddThingToThingGroup => "iot:AddThingToThingGroup",
            Self::ListThingPrincipals => "iot:ListThingPrincipals",
            Self::CreatePolicy => "iot:CreatePolicy",
            Self::GetPolicy => "iot:GetPolicy",
            Self::CreatePolicyVersion => "iot:CreatePolicyVersion",
            Self::ListPolicyVersions => "iot:ListPolicyVersions",
            Self::DeletePolicyVersion => "iot:DeletePolicyVersion",
            Self::SetDefaultPolicyVersion => "iot:SetDefaultPolicyVersion",
            Self::AttachPolicy => "iot:AttachPolicy",
            Self::ListAttachedPolicies => "iot:ListAttachedPolicies",
            Self::AttachThingPrincipal => "iot:AttachThingPrincipal",
            Self::DetachThingPrincipal => "iot:DetachThingPrincipal",
            Self::ListThings => "iot:ListThings",
            Self::ListThingsInThingGroup => "iot:ListThingsInThingGroup",
            Self::ListTargetsForPolicy => "iot:ListTargetsForPolicy",
            Self::ListCACertificates => "iot:ListCACertificates",
            Self::ListCertificatesByCA => "iot:ListCertificatesByCA",
            Self::TagResource => "iot:TagResource",
            Self::UntagResource => "iot:UntagResource",
            Self::ListTagsForResource => "iot:ListTagsForResource",
        }
    }
}

impl std::str::FromStr for Operation {
    type Err = String;

    /// The operation with this AWS API name (`"DescribeCertificate"`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|op| op.as_str() == name).ok_or_else(|| format!("no AWS IoT operation {name:?}"))
    }
}

/// DescribeCertificate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDescription {
    /// The certificate id.
    pub id: CertificateId,
    /// Its ARN (the principal attached to things and policies).
    pub arn: String,
    /// PEM as registered.
    pub pem: String,
    /// Current status.
    pub status: CertificateStatus,
    /// The CA AWS IoT says signed it; `None` where the registry does not say (moto).
    pub ca_certificate_id: Option<CaCertificateId>,
}

/// ACTIVE or INACTIVE, for CA certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaStatus {
    /// Signs certificates AWS IoT accepts.
    Active,
    /// Disabled.
    Inactive,
}

/// DescribeCACertificate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaDescription {
    /// The CA id.
    pub id: CaCertificateId,
    /// PEM as registered.
    pub pem: String,
    /// Current status.
    pub status: CaStatus,
    /// Auto-registration on?
    pub auto_registration: bool,
}

/// A thing as jitp creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingSpec {
    /// Name.
    pub name: ThingName,
    /// Thing type (must exist in the account).
    pub thing_type: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// DescribeThing's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingDescription {
    /// Name.
    pub name: ThingName,
    /// Thing type.
    pub thing_type: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// The thing's version: AWS IoT increments it on every update, and UpdateThing with `expectedVersion`
    /// succeeds only while it is unchanged (the compare-and-set jitp moves ownership with).
    pub version: i64,
}

/// ListThings' filter: the things whose attribute `attribute_name` equals `attribute_value` or, with `prefix`
/// (AWS's `usePrefixAttributeValue`), starts with it. jitp only ever lists by attribute, so both are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingFilter {
    /// `attributeName`.
    pub attribute_name: String,
    /// `attributeValue`.
    pub attribute_value: String,
    /// `usePrefixAttributeValue`: a prefix match instead of an exact one.
    pub prefix: bool,
    /// `maxResults`: at most [`MAX_THINGS_PER_PAGE`] things per page.
    pub max_results: u32,
}

/// The most things one ListThings page holds (AWS's `maxResults` limit).
pub const MAX_THINGS_PER_PAGE: u32 = 250;

/// One page of ListThings: the things (name, type, attributes, version: what ListThings' `ThingAttribute`
/// carries, the same fields as DescribeThing's answer) and the token of the next page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingPage {
    /// The things of this page.
    pub things: Vec<ThingDescription>,
    /// `nextToken`: pass it back for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// One page of ListThingsInThingGroup: the names of the group's things (not recursive) and the next page's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingNamePage {
    /// The things of this page.
    pub things: Vec<ThingName>,
    /// `nextToken`: pass it back for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// GetPolicy's answer (the default version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDescription {
    /// Name.
    pub name: PolicyName,
    /// The default version's document.
    pub document: String,
    /// The default version id.
    pub default_version_id: String,
    /// `policyArn`: the ARN its tags are read and written on (as AWS IoT gives it: jitp never builds one, so
    /// the account and partition are never guessed).
    #[serde(default)]
    pub arn: String,
}

/// One entry of ListPolicyVersions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// Version id ("1", "2", ...).
    pub version_id: String,
    /// Is it the default?
    pub is_default: bool,
}

/// One certificate of ListCertificatesByCA (the fields jitp reads of AWS's `Certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// The certificate id.
    pub id: CertificateId,
    /// Its ARN.
    pub arn: String,
    /// Its status.
    pub status: CertificateStatus,
}

/// One page of ListCertificatesByCA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatePage {
    /// The certificates of this page.
    pub certificates: Vec<CertificateSummary>,
    /// `nextMarker`: pass it back for the next page; `None` on the last page.
    pub next_marker: Option<String>,
}

/// The AWS IoT calls jitp needs.
#[async_trait]
pub trait IotRegistry: Send + Sync {
    /// DescribeCertificate.
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateDescription, RegistryError>;
    /// DescribeCACertificate.
    async fn describe_ca_certificate(&self, id: &CaCertificateId) -> Result<CaDescription, RegistryError>;
    /// UpdateCertificate (ACTIVE, INACTIVE, REVOKED).
    async fn update_certificate(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), RegistryError>;
    /// CreateThing: Ok if created or identical; AlreadyExists if it exists with another configuration.
    async fn create_thing(&self, spec: &ThingSpec) -> Result<(), RegistryError>;
    /// DescribeThing.
    async fn describe_thing(&self, name: &ThingName) -> Result<ThingDescription, RegistryError>;
    /// UpdateThing: set the type and replace the attributes. With `expected_version`, only if the thing's
    /// version is still that one (VersionConflict otherwise): an atomic compare-and-set.
    async fn update_thing(&self, spec: &ThingSpec, expected_version: Option<i64>) -> Result<(), RegistryError>;
    /// AddThingToThingGroup.
    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), RegistryError>;
    /// ListThingPrincipals: the ARNs of the certificates attached to the thing.
    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, RegistryError>;
    /// CreatePolicy: AlreadyExists if the name is taken.
    async fn create_policy(&self, name: &PolicyName, document: &str) -> Result<(), RegistryError>;
    /// GetPolicy (default version).
    async fn get_policy(&self, name: &PolicyName) -> Result<PolicyDescription, RegistryError>;
    /// CreatePolicyVersion, set as default; VersionsLimitExceeded at 5 versions.
    async fn create_policy_version(&self, name: &PolicyName, document: &str) -> Result<String, RegistryError>;
    /// ListPolicyVersions.
    async fn list_policy_versions(&self, name: &PolicyName) -> Result<Vec<PolicyVersion>, RegistryError>;
    /// DeletePolicyVersion (not the default).
    async fn delete_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError>;
    /// SetDefaultPolicyVersion: make an existing version the default (`jitp reconcile --rollback`).
    async fn set_default_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError>;
    /// AttachPolicy to a certificate ARN (idempotent).
    async fn attach_policy(&self, name: &PolicyName, target: &str) -> Result<(), RegistryError>;
    /// ListAttachedPolicies of a certificate ARN.
    async fn list_attached_policies(&self, target: &str) -> Result<Vec<PolicyName>, RegistryError>;
    /// AttachThingPrincipal; `exclusive` asks for EXCLUSIVE_THING.
    async fn attach_thing_principal(
        &self,
        thing: &ThingName,
        principal: &str,
        exclusive: bool,
    ) -> Result<(), RegistryError>;
    /// DetachThingPrincipal (idempotent: detaching what is not attached succeeds).
    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), RegistryError>;
    /// ListThings, one page: the things matching `filter`, from `next_token` (a previous page's) or the start.
    async fn list_things(&self, filter: &ThingFilter, next_token: Option<&str>) -> Result<ThingPage, RegistryError>;
    /// ListThingsInThingGroup, one page of [`MAX_THINGS_PER_PAGE`] at most (`jitp reconcile --thing-group`).
    async fn list_things_in_thing_group(
        &self,
        group: &str,
        next_token: Option<&str>,
    ) -> Result<ThingNamePage, RegistryError>;
    /// ListTargetsForPolicy, every page: the principals (certificate ARNs, and whatever else the account
    /// attached: thing groups, Cognito identities) the policy is attached to.
    async fn list_targets_for_policy(&self, name: &PolicyName) -> Result<Vec<String>, RegistryError>;
    /// ListCACertificates, every page: the ids of the CA certificates registered in the account.
    async fn list_ca_certificates(&self) -> Result<Vec<CaCertificateId>, RegistryError>;
    /// ListCertificatesByCA, one page of at most 250, from `marker` (a previous page's) or the start.
    async fn list_certificates_by_ca(
        &self,
        ca: &CaCertificateId,
        marker: Option<&str>,
    ) -> Result<CertificatePage, RegistryError>;
    /// TagResource: add `tags` to the resource `arn` (a policy's, as GetPolicy gave it), replacing the value of a
    /// key it already has.
    async fn tag_resource(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), RegistryError>;
    /// UntagResource: remove `keys` from the resource `arn` (a key it does not have is no error).
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), RegistryError>;
    /// ListTagsForResource: every tag of the resource `arn`, all pages.
    async fn list_tags_for_resource(&self, arn: &str) -> Result<BTreeMap<String, String>, RegistryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation's AWS API name, byte for byte: audit records, quotas (`JITP_QUOTAS`, jitp.toml's
    /// `[quotas]`) and metrics name them, and serde writes the same.
    #[test]
    fn names_are_pinned() {
        let pinned = [
            (Operation::DescribeCertificate, "DescribeCertificate"),
            (Operation::DescribeCACertificate, "DescribeCACertificate"),
            (Operation::UpdateCertificate, "UpdateCertificate"),
            (Operation::CreateThing, "CreateThing"),
            (Operation::DescribeThing, "DescribeThing"),
            (Operation::UpdateThing, "UpdateThing"),
            (Operation::AddThingToThingGroup, "AddThingToThingGroup"),
            (Operation::ListThingPrincipals, "ListThingPrincipals"),
            (Operation::CreatePolicy, "CreatePolicy"),
            (Operation::GetPolicy, "GetPolicy"),
            (Operation::CreatePolicyVersion, "CreatePolicyVersion"),
            (Operation::ListPolicyVersions, "ListPolicyVersions"),
            (Operation::DeletePolicyVersion, "DeletePolicyVersion"),
            (Operation::SetDefaultPolicyVersion, "SetDefaultPolicyVersion"),
            (Operation::AttachPolicy, "AttachPolicy"),
            (Operation::ListAttachedPolicies, "ListAttachedPolicies"),
            (Operation::AttachThingPrincipal, "AttachThingPrincipal"),
            (Operation::DetachThingPrincipal, "DetachThingPrincipal"),
            (Operation::ListThings, "ListThings"),
            (Operation::ListThingsInThingGroup, "ListThingsInThingGroup"),
            (Operation::ListTargetsForPolicy, "ListTargetsForPolicy"),
            (Operation::ListCACertificates, "ListCACertificates"),
            (Operation::ListCertificatesByCA, "ListCertificatesByCA"),
            (Operation::TagResource, "TagResource"),
            (Operation::UntagResource, "UntagResource"),
            (Operation::ListTagsForResource, "ListTagsForResource"),
        ];
        assert_eq!(pinned.len(), Operation::ALL.len(), "a new operation gets its pinned name here");
        for (op, name) in pinned {
            assert_eq!((op.as_str(), op.to_string().as_str()), (name, name));
            assert_eq!(serde_json::to_string(&op).ok(), Some(format!("\"{name}\"")));
            assert_eq!(name.parse::<Operation>(), Ok(op));
        }
        assert_eq!(
            "describeCertificate".parse::<Operation>(),
            Err("no AWS IoT operation \"describeCertificate\"".to_owned())
        );
    }
}
