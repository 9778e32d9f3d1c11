//! `jitp handover`: move a thing to a certificate by an operator's decision (a name held by a retired or
//! foreign owner; a rotation rolled back), audited, by compare-and-set on the thing.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use jitp_core::provision::Provisioner;
use jitp_pki::ids::CertificateId;
use jitp_pki::unix_time::now;
use jitp_registry::thing::ThingName;
use jitp_wiring::{RegistryArg, Settings};

#[derive(Debug, Args)]
pub(crate) struct HandoverArgs {
    /// The thing to hand over.
    #[arg(long)]
    thing: ThingName,
    /// The certificate (id, 64 lowercase hex digits) that becomes its owner: today's configuration must accept
    /// it for exactly this thing.
    #[arg(long)]
    certificate: CertificateId,
    #[command(flatten)]
    settings: Settings,
}

/// Exit status: 0 handed over, 1 refused (nothing written; the reason says why), 3 transient or contended (run
/// again: the thing changed under the hand-over, or the registry failed), 2 usage or configuration.
pub(crate) async fn run(args: &HandoverArgs) -> anyhow::Result<ExitCode> {
    let settings = &args.settings;
    let opened = settings.open_registry(RegistryArg::Memory(None)).await?;
    let (config, _) = settings.load_rules(&settings.config.path(None, None), &opened).await?;
    let workflow = settings.workflow(settings.aws_context(&opened, None));
    let provisioner = Provisioner::new(Arc::new(config), opened.registry.clone(), workflow);
    let result = provisioner.hand_over(&args.thing, &args.certificate, now()).await;
    opened.save()?;
    let (line, code) = match result {
        Ok(Ok(done)) => {
            (serde_json::json!({"eventType": "jitp.handover", "outcome": "HANDED_OVER", "handover": done}), 0)
        }
        Ok(Err(rejection)) => (
            serde_json::json!({"eventType": "jitp.handover", "outcome": "REFUSED", "reason": rejection.reason,
                               "message": rejection.message, "thing": args.thing.as_str(),
                               "certificate": args.certificate.as_str()}),
            1,
        ),
        Err(e) => (
            serde_json::json!({"eventType": "jitp.handover", "outcome": "ERROR", "message": e.to_string(),
                               "thing": args.thing.as_str(), "certificate": args.certificate.as_str()}),
            3,
        ),
    };
    (jitp_core::audit::stdout())(&line.to_string());
    Ok(ExitCode::from(code))
}
