//! `jpki ca-op …`: a CA operator's commands against the running CA service (`jpki serve ca`),
//! over mutual TLS with the operator's own network credential (`operator:<name>`): revoke,
//! publish CRLs, follow the revocation stream, run key ceremonies. The operator holds no CA passphrase or key;
//! every action is audited by the service under the operator's party.

use anyhow::{Context, Result, ensure};
use clap::{Args, Subcommand};
use identity::party::PartyKind;

use crate::netargs::NetArgs;

/// Where the CA service is.
#[derive(Debug, Args)]
pub struct Service {
    /// The CA service (`https://HOST:PORT`).
    #[arg(long = "ca", env = "JPKI_CA_URL")]
    pub ca_url: String,
    /// The party the CA service's certificate must name.
    #[arg(long, env = "JPKI_CA_PARTY", default_value = "ca:jpki-ca")]
    pub ca_party: String,
    #[command(flatten)]
    pub net: NetArgs,
}

/// CA operator commands through the CA service.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Revoke a certificate (final). Reasons as for `jpki ca revoke`.
    Revoke {
        #[command(flatten)]
        service: Service,
        /// Serial (hex).
        #[arg(long)]
        serial: String,
        /// Reason (key-compromise, certificate-hold, …).
        #[arg(long)]
        reason: String,
        /// Why, for the record.
        #[arg(long)]
        cause: String,
    },
    /// Publish every CRL shard and ARL into the service's publish directory.
    Crl {
        #[command(flatten)]
        service: Service,
    },
    /// Revocations after a sequence number, in commit order.
    Revocations {
        #[command(flatten)]
        service: Service,
        /// Sequence number to start after.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Key ceremonies run by the CA service (as `jpki ca ceremony`, without the CA's secrets).
    #[command(subcommand)]
    Ceremony(CeremonyCmd),
    /// Emergency migration: declare a generation compromised, plan the re-issuance.
    #[command(subcommand)]
    Emergency(EmergencyCmd),
}

/// Emergency commands through the CA service.
#[derive(Debug, Subcommand)]
pub enum EmergencyCmd {
    /// Revoke a generation at once: its CA certificate and every certificate it issued
    /// (cACompromise). Refused while it is the issuing generation.
    Compromise {
        #[command(flatten)]
        service: Service,
        #[command(flatten)]
        which: Which,
    },
    /// Queue every resident holding a certificate of the generation at their municipality
    /// (resumable: run again after an interruption), with a progress bar.
    Plan {
        #[command(flatten)]
        service: Service,
        #[command(flatten)]
        which: Which,
        /// Residents per request.
        #[arg(long, default_value_t = 1000)]
        batch: i64,
    },
}

/// One CA generation (`--slug`, since `--ca` is the service's URL in `jpki ca-op`).
#[derive(Debug, Args)]
pub struct Which {
    /// The CA (slug: sign-root, sign-13, …).
    #[arg(long = "slug")]
    ca: String,
    /// The generation.
    #[arg(long)]
    generation: i64,
}

/// Ceremony commands through the CA service.
#[derive(Debug, Subcommand)]
pub enum CeremonyCmd {
    /// The steps the ceremony in FILE would take, checked by the service (dry run).
    Plan {
        #[command(flatten)]
        service: Service,
        /// The ceremony file (TOML).
        file: std::path::PathBuf,
    },
    /// Run (or resume) the ceremony in FILE.
    Run {
        #[command(flatten)]
        service: Service,
        /// The ceremony file (TOML).
        file: std::path::PathBuf,
    },
    /// Every generation with its key state, links and ceremony progress.
    Status {
        #[command(flatten)]
        service: Service,
        /// Only this CA (slug; `--ca` is the service's URL here).
        #[arg(long = "slug")]
        ca: Option<String>,
    },
    /// Roll a generation back before it has issued its first certificate.
    Rollback {
        #[command(flatten)]
        service: Service,
        #[command(flatten)]
        which: Which,
    },
}

fn ceremony_file(p: &std::path::Path) -> Result<ca::service::CeremonyBody> {
    Ok(ca::service::CeremonyBody {
        file: std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
    })
}

fn client(s: &Service) -> Result<(reqwest::Client, String)> {
    net::client::require_https(&s.ca_url)?;
    let n = s.net.load()?;
    ensure!(n.cred.party.kind() == PartyKind::Operator, "the credential names {}, not an operator", n.cred.party);
    let c = net::client::client(&n.cred, &n.trust, Some(s.ca_party.parse().context("--ca-party")?))?;
    Ok((c, s.ca_url.trim_end_matches('/').to_owned()))
}

/// The body of a CA service answer, or its status and refusal as the error.
pub(crate) async fn answer(r: reqwest::Response) -> Result<String> {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    ensure!(status.is_success(), "the CA service answered {status}: {body}");
    Ok(body)
}

/// `ceremony plan` (`run == false`) or `ceremony run` through the service.
async fn ceremony(service: &Service, file: &std::path::Path, run: bool) -> Result<()> {
    let (c, base) = client(service)?;
    let url = format!("{base}/v1/ceremony/{}", if run { "run" } else { "plan" });
    let body = ceremony_file(file)?;
    let steps: Vec<ca::service::StepBody> = if run {
        // The run is one request; meanwhile the ceremony's step count is read from the status
        // route (once its generation exists) for the bar.
        let parsed = ca::ceremony::parse(&body.file)?;
        let bar = crate::progress::Bar::new("ca-op ceremony run", "steps");
        let status = format!("{base}/v1/ceremony/status?ca={}", parsed.ca);
        let request = async { answer(c.post(url).json(&body).send().await?).await };
        tokio::pin!(request);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        let text = loop {
            tokio::select! {
                r = &mut request => break r?,
                _ = tick.tick() => {
                    if let Ok(r) = c.get(&status).send().await
                        && let Ok(gens) = r.json::<Vec<ca::service::GenerationBody>>().await
                        && let Some((done, n)) = gens.iter().find(|g| g.generation == parsed.generation).and_then(|g| g.ceremony)
                    {
                        bar.set(u64::try_from(done).unwrap_or(0), u64::try_from(n).unwrap_or(0));
                    }
                }
            }
        };
        let steps: Vec<ca::service::StepBody> = serde_json::from_str(&text)?;
        let now_done = steps.iter().filter(|s| s.done_now).count();
        bar.finish(format_args!(
            "{} g{}: {} steps, {now_done} done by this run",
            parsed.ca,
            parsed.generation,
            steps.len()
        ));
        steps
    } else {
        serde_json::from_str(&answer(c.post(url).json(&body).send().await?).await?)?
    };
    for (i, s) in steps.iter().enumerate() {
        let how = match (run, s.done_now) {
            (false, _) => "",
            (true, true) => "done: ",
            (true, false) => "done before: ",
        };
        println!("  {}. {how}{}", i + 1, s.step);
    }
    Ok(())
}

/// Runs a CA operator command through the service.
pub async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Revoke { service, serial, reason, cause } => {
            let (c, base) = client(&service)?;
            let body = ca::service::RevokeBody { serial: serial.clone(), reason: reason.clone(), cause };
            answer(c.post(format!("{base}/v1/revoke")).json(&body).send().await?).await?;
            println!("revoked {serial} ({reason}); it appears on the next CRL of its shard");
        }
        Cmd::Crl { service } => {
            let (c, base) = client(&service)?;
            let bar = crate::progress::Bar::spinner("ca-op crl", "publishing CRLs at the CA service");
            let out: Vec<ca::service::PublishedBody> =
                serde_json::from_str(&answer(c.post(format!("{base}/v1/crl/publish")).send().await?).await?)?;
            let entries: u64 = out.iter().map(|p| p.entries).sum();
            bar.finish(format_args!("{} CRLs published ({entries} entries)", out.len()));
            for p in &out {
                let scope = if p.shard < 0 { "ARL".to_owned() } else { format!("shard {}", p.shard) };
                println!(
                    "{} g{} {scope}: CRL #{} with {} entries, {} bytes",
                    p.ca, p.generation, p.number, p.entries, p.bytes
                );
            }
        }
        Cmd::Revocations { service, after } => {
            let (c, base) = client(&service)?;
            let url = format!("{base}/v1/status/revocations?after={after}&limit=10000");
            let page: Vec<ca::service::RevocationBody> =
                serde_json::from_str(&answer(c.get(url).send().await?).await?)?;
            for r in &page {
                println!(
                    "{:>8}  {}  {} g{}  revoked_at {}  reason {}",
                    r.seq, r.serial, r.issuer_slug, r.issuer_generation, r.revoked_at, r.reason
                );
            }
        }
        Cmd::Ceremony(CeremonyCmd::Plan { service, file }) => ceremony(&service, &file, false).await?,
        Cmd::Ceremony(CeremonyCmd::Run { service, file }) => ceremony(&service, &file, true).await?,
        Cmd::Emergency(EmergencyCmd::Compromise { service, which: Which { ca, generation } }) => {
            let (c, base) = client(&service)?;
            let body = ca::service::EmergencyBody { ca: ca.clone(), generation, limit: None };
            let r: ca::service::CompromisedBody = serde_json::from_str(
                &answer(c.post(format!("{base}/v1/emergency/compromise")).json(&body).send().await?).await?,
            )?;
            println!(
                "{ca} g{generation} compromised: CA certificate {} revoked, {} certificates revoked (cACompromise); revocation sequence now {}",
                r.ca_certificate.as_deref().unwrap_or("(a root: none)"),
                r.revoked,
                r.head
            );
        }
        Cmd::Emergency(EmergencyCmd::Plan { service, which: Which { ca, generation }, batch }) => {
            let (c, base) = client(&service)?;
            let bar = crate::progress::Bar::new("ca-op emergency plan", "residents");
            let body = ca::service::EmergencyBody { ca: ca.clone(), generation, limit: Some(batch) };
            let mut before = -1;
            let last = loop {
                let p: ca::service::PlanBody = serde_json::from_str(
                    &answer(c.post(format!("{base}/v1/emergency/plan")).json(&body).send().await?).await?,
                )?;
                bar.set(u64::try_from(p.planned).unwrap_or(0), u64::try_from(p.total).unwrap_or(0));
                if p.planned >= p.total {
                    break p;
                }
                // A call that plans nothing more would loop for ever: say so, resumable as it is.
                ensure!(
                    p.planned > before,
                    "the plan stopped at {} of {} residents; run the command again to resume",
                    p.planned,
                    p.total
                );
                before = p.planned;
            };
            bar.finish(format_args!("{ca} g{generation}: {} of {} residents planned", last.planned, last.total));
            println!("{ca} g{generation}: {} residents planned", last.planned);
            for (m, queued, done) in &last.by_municipality {
                println!("  {m}: {queued} to call in, {done} re-issued");
            }
        }
        Cmd::Ceremony(CeremonyCmd::Status { service, ca }) => {
            let (c, base) = client(&service)?;
            let url = match &ca {
                Some(slug) => format!("{base}/v1/ceremony/status?ca={slug}"),
                None => format!("{base}/v1/ceremony/status"),
            };
            let gens: Vec<ca::service::GenerationBody> =
                serde_json::from_str(&answer(c.get(url).send().await?).await?)?;
            for g in &gens {
                let progress = g.ceremony.map_or("-".to_owned(), |(d, n)| format!("{d}/{n} steps"));
                println!(
                    "{:<14} g{:<3} {:<10} {:<11} activation {}  notAfter {}  issued {:>8}  key id {}  ceremony {progress}",
                    g.ca, g.generation, g.algorithm, g.state, g.activation, g.not_after, g.issued, g.key_id
                );
                for l in &g.links {
                    println!("{:<14}      link {l}", "");
                }
            }
        }
        Cmd::Ceremony(CeremonyCmd::Rollback { service, which: Which { ca, generation } }) => {
            let (c, base) = client(&service)?;
            let body = ca::service::RollbackBody { ca: ca.clone(), generation };
            let revoked: Vec<String> = serde_json::from_str(
                &answer(c.post(format!("{base}/v1/ceremony/rollback")).json(&body).send().await?).await?,
            )?;
            println!("{ca} g{generation} rolled back; revoked (superseded): {}", revoked.join(", "));
        }
    }
    Ok(())
}
