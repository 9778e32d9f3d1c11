//! jitp's `AwsRegistry` over a [`MotoServer`], and the SDK calls that set moto up as AWS IoT's auto-registration
//! leaves an account: a registered CA, device certificates PENDING_ACTIVATION, the profile's thing type.
//!
//! moto's certificate ids hash the PEM text, not the DER (tests/README.md): events must carry the id moto
//! returned ([`Registered::id`]), as AWS IoT builds them from its own.

use std::sync::Arc;

use aws_sdk_iot::types::CertificateStatus as SdkStatus;
use jitp_aws::AwsRegistry;
use jitp_pki::ids::{CaCertificateId, CertificateId};

use super::MotoServer;
use crate::Ca;

/// The region of every registry over moto: moto's default, and the policy context's default.
pub const REGION: &str = "us-east-1";

impl MotoServer {
    /// An `AwsRegistry` over this server, in [`REGION`], with static credentials (moto accepts any; nothing of
    /// the developer's AWS set-up is looked up).
    pub async fn registry(&self) -> AwsRegistry {
        AwsRegistry::builder()
            .endpoint_url(&self.endpoint)
            .region(REGION)
            .static_credentials("testing", "testing")
            // moto loads its IoT backend on the first request (seconds on a busy machine), and the SDK makes one
            // attempt per call: give that attempt time.
            .attempt_timeout(super::READY_TIMEOUT)
            .operation_timeout(super::READY_TIMEOUT)
            .build()
            .await
    }
}

/// A moto server and a registry over it.
#[derive(Debug)]
pub struct Moto {
    /// The server, killed on drop.
    pub server: MotoServer,
    /// The registry under test, over [`Moto::server`] (its SDK client is [`Moto::sdk`]).
    pub registry: Arc<AwsRegistry>,
}

/// A device certificate registered with moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// moto's id for it (the SHA-256 of the PEM text as sent).
    pub id: CertificateId,
    /// Its ARN, the principal that things and policies are attached to.
    pub arn: String,
}

impl Moto {
    /// Plain moto (see [`MotoServer::start`]): `None` when moto is not installed and not required.
    pub async fn start() -> Option<Moto> {
        Some(Self::on(MotoServer::start()?).await)
    }

    /// moto patched to AWS IoT's documented semantics (see [`MotoServer::start_with_aws_semantics`]).
    pub async fn start_with_aws_semantics() -> Option<Moto> {
        Some(Self::on(MotoServer::start_with_aws_semantics()?).await)
    }

    /// A registry over `server`.
    pub async fn on(server: MotoServer) -> Moto {
        let registry = Arc::new(server.registry().await);
        Moto { server, registry }
    }

    /// The SDK client, to set moto up and to read its state back.
    pub fn sdk(&self) -> &aws_sdk_iot::Client {
        self.registry.client()
    }

    /// CreateThingType (a profile's thing type must exist, in moto as in AWS, where infra creates it).
    pub async fn create_thing_type(&self, name: &str) {
        self.sdk().create_thing_type().thing_type_name(name).send().await.unwrap();
    }

    /// RegisterCACertificate with auto-registration on, ACTIVE or not; moto's id for it.
    pub async fn register_ca(&self, ca: &Ca, active: bool) -> CaCertificateId {
        let out = self
            .sdk()
            .register_ca_certificate()
            .ca_certificate(&ca.cert.pem)
            .set_as_active(active)
            .allow_auto_registration(true)
            .send()
            .await
            .unwrap();
        out.certificate_id.unwrap().parse().unwrap()
    }

    /// RegisterCertificate with the CA's PEM, PENDING_ACTIVATION: what auto-registration does on a device's
    /// first connection.
    pub async fn register_pending(&self, pem: &str, ca: &Ca) -> Registered {
        let out = self
            .sdk()
            .register_certificate()
            .certificate_pem(pem)
            .ca_certificate_pem(&ca.cert.pem)
            .status(SdkStatus::PendingActivation)
            .send()
            .await
            .unwrap();
        Registered { id: out.certificate_id.unwrap().parse().unwrap(), arn: out.certificate_arn.unwrap() }
    }

    /// The certificate's status, as moto has it.
    pub async fn status(&self, id: &CertificateId) -> SdkStatus {
        let out = self.sdk().describe_certificate().certificate_id(id.as_str()).send().await.unwrap();
        out.certificate_description.unwrap().status.unwrap()
    }
}
