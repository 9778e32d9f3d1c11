//! `jitp provision` and `jitp register`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use jitp_core::audit::Outcome;
use jitp_core::provision::Provisioner;
use jitp_pki::cert::MAX_PEM_BYTES;
use jitp_pki::unix_time::now;
use jitp_registry::event::MAX_EVENT_BYTES;
use jitp_wiring::{RegistryArg, Settings};

use crate::common::read_bounded;

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// The certificate-registered event (JSON file, or - for stdin).
    #[arg(long)]
    event: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

/// Exit status of `jitp provision`: 0 provisioned (or already), 1 rejected, 3 transient (deliver again), 4 held.
pub(crate) async fn run(args: &ProvisionArgs) -> anyhow::Result<ExitCode> {
    let settings = &args.settings;
    let bytes = if args.event.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(std::io::stdin(), MAX_EVENT_BYTES as u64 + 1), &mut buf)?;
        buf
    } else {
        read_bounded(&args.event, MAX_EVENT_BYTES)?
    };
    // Offline unless told otherwise: the embedded registry, empty.
    let opened = settings.open_registry(RegistryArg::Memory(None)).await?;
    // S3 CRLs are fetched once (with --registry aws): one event needs no refresh.
    let (config, _) = settings.load_rules(&settings.config.path(None, None), &opened).await?;
    let config = Arc::new(config);
    let workflow = settings.workflow(settings.aws_context(&opened, None));
    let provisioner = Provisioner::new(config, opened.registry.clone(), workflow);
    let record = provisioner.handle_bytes(&bytes, now()).await;
    opened.save()?;
    let origin = jitp_core::audit::Origin { trigger: "cli", request_id: None, message_id: None };
    (jitp_core::audit::stdout())(&record.line(&origin));
    record.count();
    Ok(match record.outcome {
        Outcome::Provisioned | Outcome::AlreadyProvisioned => ExitCode::SUCCESS,
        Outcome::Rejected => ExitCode::from(1),
        Outcome::Error => ExitCode::from(3),
        Outcome::Held => ExitCode::from(4),
    })
}

#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// The embedded registry's file, memory:PATH (created if missing).
    #[arg(long, value_parser = memory_file)]
    registry: RegistryArg,
    /// The CA certificate (PEM); registered with auto-registration on if new.
    #[arg(long)]
    ca: PathBuf,
    /// The device certificate (PEM); registered PENDING_ACTIVATION.
    #[arg(long)]
    cert: PathBuf,
}

fn memory_file(v: &str) -> Result<RegistryArg, String> {
    match v.parse() {
        Ok(file @ RegistryArg::Memory(Some(_))) => Ok(file),
        _ => Err("memory:PATH (jitp register works on the embedded registry; AWS IoT registers certificates itself)"
            .to_owned()),
    }
}

/// Do what AWS IoT does on a device's first connection, and print the registration event.
pub(crate) async fn register(args: &RegisterArgs) -> anyhow::Result<ExitCode> {
    let opened = jitp_wiring::registry::open(&args.registry, None, None).await?;
    let memory = opened.memory.clone().context("memory registry")?;
    let ca_pem = String::from_utf8(read_bounded(&args.ca, MAX_PEM_BYTES)?).context("the CA file is not PEM text")?;
    let cert_pem =
        String::from_utf8(read_bounded(&args.cert, MAX_PEM_BYTES)?).context("the certificate file is not PEM text")?;
    let ca_id = memory.register_ca(&ca_pem, true).map_err(|e| anyhow::anyhow!("cannot register the CA: {e}"))?;
    let cert_id = memory
        .register_certificate(&cert_pem, &ca_id)
        .map_err(|e| anyhow::anyhow!("cannot register the certificate: {e}"))?;
    opened.save()?;
    let event = serde_json::json!({
        "certificateId": cert_id,
        "caCertificateId": ca_id,
        "timestamp": now() * 1000,
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": "123456789012",
        "certificateRegistrationTimestamp": null,
    });
    outln!("{event}");
    Ok(ExitCode::SUCCESS)
}
