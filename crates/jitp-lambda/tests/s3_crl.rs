#![cfg(test)]
//! S3 CRLs over moto's server (S3 and AWS IoT on one endpoint): the handler loads a jitp.toml whose profile
//! lists `s3://…` CRLs, a device on the CRL is CERT_REVOKED; a CRL published later takes effect at the first
//! invocation after the TTL, without touching a device provisioned before; an unchanged object costs a 304 and
//! no rebuild; a deleted object or a bad CRL keeps the last good rules; an oversized object is refused at init.
//! Skipped without moto (see tests/README.md).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::types::CertificateStatus as SdkStatus;
use aws_sdk_s3::primitives::ByteStream;
use jitp_lambda::{Handler, LambdaSettings, Response};
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, CrlSpec, Device, NOW, event_for_ids};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const BUCKET: &str = "acme-pki";
const KEY: &str = "crl/acme-issuing.crl";
const URI: &str = "s3://acme-pki/crl/acme-issuing.crl";
const TTL: Duration = Duration::from_millis(300);

struct World {
    moto: jitp_testkit::moto::Moto,
    s3: aws_sdk_s3::Client,
    ca: Ca,
    ca_id: CaCertificateId,
    dir: ConfigDir,
}

impl World {
    async fn start() -> Option<World> {
        let moto = jitp_testkit::moto::Moto::start_with_aws_semantics().await?;
        let ca = Ca::new("jitp s3 crl CA", Alg::P256);
        let ca_id = moto.register_ca(&ca, true).await;
        let shared = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(&moto.server.endpoint)
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(shared);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        dir.write_config(&format!(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"{URI}\"]\n"
        ));
        Some(World { moto, s3, ca, ca_id, dir })
    }

    async fn publish(&self, bytes: Vec<u8>) {
        self.s3.put_object().bucket(BUCKET).key(KEY).body(ByteStream::from(bytes)).send().await.unwrap();
    }

    fn crl(&self, cns: &[&str]) -> Vec<u8> {
        let serials: Vec<Vec<u8>> = cns.iter().map(|cn| Device::new(cn).serial).collect();
        let refs: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
        self.ca.crl_with(&CrlSpec::new(&refs)).der
    }

    fn settings(&self) -> LambdaSettings {
        let vars = [
            ("JITP_CONFIG", self.dir.path().join("jitp.toml").display().to_string()),
            ("JITP_REGISTRY", "aws".to_owned()),
            ("JITP_AWS_ENDPOINT_URL", self.moto.server.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("JITP_AWS_ACCOUNT_ID", "123456789012".to_owned()),
            ("JITP_AWS_PARTITION", "aws".to_owned()),
        ];
        jitp_wiring::parse::from_vars(["jitp-lambda"], vars).unwrap()
    }

    /// The handler as `jitp_lambda::build` makes it, with a TTL short enough for a test (the setting's floor
    /// is 10 s).
    async fn handler(&self) -> Result<Handler, String> {
        let settings = self.settings();
        let path = settings.common.config.path(None, None);
        let fetcher: Arc<dyn jitp_wiring::crl::CrlFetch> = Arc::new(jitp_wiring::crl::S3Fetcher(self.s3_crls().await));
        let (rules, crls) = jitp_wiring::crl::load(&settings.common.config, &path, Some(fetcher), TTL)
            .await
            .map_err(|e| e.to_string())?;
        let registry = self.moto.registry.clone() as Arc<dyn jitp_registry::registry::IotRegistry>;
        Ok(Handler::builder(Arc::new(rules), registry, &settings)
            .clock(Arc::new(|| NOW))
            .sink(Arc::new(|_: &str| {}))
            .crl_refresh(crls)
            .build())
    }

    /// jitp-aws's fetcher over moto (static credentials: the test's environment has none).
    async fn s3_crls(&self) -> jitp_aws::s3::S3Crls {
        jitp_aws::s3::S3Crls::builder()
            .set_endpoint_url(Some(self.moto.server.endpoint.clone()))
            .set_region(Some("us-east-1".into()))
            .static_credentials("testing", "testing")
            .build()
            .await
    }

    async fn device(&self, cn: &str) -> (CertificateId, Value) {
        let id = self.moto.register_pending(&self.ca.issue(&Device::new(cn)).pem, &self.ca).await.id;
        (id.clone(), serde_json::from_str(&event_for_ids(id.as_str(), self.ca_id.as_str())).unwrap())
    }

    async fn run(&self, handler: &Handler, cn: &str) -> (CertificateId, Value) {
        let (id, event) = self.device(cn).await;
        let reply = handler.handle(LambdaEvent::new(event, Context::default())).await;
        let record = match reply {
            Ok(Response::Direct(record)) => serde_json::to_value(&*record).unwrap(),
            other => panic!("{other:?}"),
        };
        (id, record)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_published_to_s3_revokes_after_the_ttl() {
    let Some(world) = World::start().await else { return };
    world.publish(world.crl(&["sensor-0000000000a1"])).await;
    let handler = world.handler().await.unwrap();

    let (a, record) = world.run(&handler, "sensor-0000000000a1").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    assert!(record["message"].as_str().unwrap().contains(URI), "{record}");
    assert_eq!(world.moto.status(&a).await, SdkStatus::Revoked);
    let (b, record) = world.run(&handler, "sensor-0000000000b2").await;
    assert_eq!(record["outcome"], "PROVISIONED", "{record}");

    // Unchanged after the TTL: a conditional GetObject, 304, no rebuild.
    tokio::time::sleep(TTL * 2).await;
    let (_, record) = world.run(&handler, "sensor-0000000000c3").await;
    assert_eq!(record["outcome"], "PROVISIONED", "{record}");
    assert_eq!(handler.crl_refresh().rebuilds(), 0, "moto answers If-None-Match with 304");

    // Published: a new CRL revoking d4 too. Within the TTL the old rules stand; after it, d4 is revoked.
    world.publish(world.crl(&["sensor-0000000000a1", "sensor-0000000000d4"])).await;
    tokio::time::sleep(TTL * 2).await;
    let (d, record) = world.run(&handler, "sensor-0000000000d4").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    assert_eq!(world.moto.status(&d).await, SdkStatus::Revoked);
    assert_eq!(handler.crl_refresh().rebuilds(), 1);
    assert_eq!(world.moto.status(&b).await, SdkStatus::Active, "a device provisioned before is unaffected");

    // Deleted, then not a CRL: the last good rules stay (d4's CRL), and nothing is rebuilt.
    world.s3.delete_object().bucket(BUCKET).key(KEY).send().await.unwrap();
    tokio::time::sleep(TTL * 2).await;
    let (_, record) = world.run(&handler, "sensor-0000000000d4").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    world.publish(b"not a CRL".to_vec()).await;
    tokio::time::sleep(TTL * 2).await;
    let (_, record) = world.run(&handler, "sensor-0000000000d4").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    let (_, record) = world.run(&handler, "sensor-0000000000e5").await;
    assert_eq!(record["outcome"], "PROVISIONED", "{record}");
    // A CRL under the CA's name signed by another key: it parses but does not verify against the cached CA,
    // so the last good rules stay (d4 still revoked) rather than holding every device as CA_INVALID.
    let impostor = Ca::new("jitp s3 crl CA", Alg::P256);
    world.publish(impostor.crl_with(&CrlSpec::new(&[])).der).await;
    tokio::time::sleep(TTL * 2).await;
    let (_, record) = world.run(&handler, "sensor-0000000000d4").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    assert_eq!(handler.crl_refresh().rebuilds(), 1);
    // Fixed: a good CRL again, revoking e5's neighbour f6 too.
    world.publish(world.crl(&["sensor-0000000000a1", "sensor-0000000000d4", "sensor-0000000000f6"])).await;
    tokio::time::sleep(TTL * 2).await;
    let (_, record) = world.run(&handler, "sensor-0000000000f6").await;
    assert_eq!(record["reason"], "CERT_REVOKED", "{record}");
    assert_eq!(handler.crl_refresh().rebuilds(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_fails_on_a_missing_or_oversized_crl_object() {
    let Some(world) = World::start().await else { return };
    let missing = world.handler().await.unwrap_err();
    assert!(missing.contains(URI) && missing.contains("NoSuchKey"), "{missing}");
    world.publish(vec![0x30; jitp_pki::cert::MAX_CRL_BYTES + 1]).await;
    let huge = world.handler().await.unwrap_err();
    assert!(huge.contains(URI) && huge.contains("limit"), "{huge}");
}

/// jitp-aws's fetch directly: the ETag round trip moto gives (If-None-Match -> 304).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_object_is_not_modified() {
    let Some(world) = World::start().await else { return };
    world.publish(world.crl(&[])).await;
    let s3 = world.s3_crls().await;
    let object: jitp_pki::ids::S3Object = URI.parse().unwrap();
    let jitp_aws::s3::Fetched::Changed { etag: Some(etag), .. } = s3.get(&object, None).await.unwrap() else {
        panic!("an ETag")
    };
    assert_eq!(s3.get(&object, Some(&etag)).await.unwrap(), jitp_aws::s3::Fetched::Unchanged);
    assert!(matches!(s3.get(&object, Some("\"other\"")).await.unwrap(), jitp_aws::s3::Fetched::Changed { .. }));
}
