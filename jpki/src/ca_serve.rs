//! `jpki serve ca`: the certificate authority as its own service, the only process that opens
//! the CA's keys (software key store or PKCS#11) and database. It serves windows (issuance,
//! renewal, card-issuer authentication), CA operators (revocation, CRL publication), validators
//! (the status stream) and everyone (CA certificates, CRLs) over mutual TLS with its network
//! credential (`ca:<id>`), follows the national change feed in the background, and holds the
//! card issuer master key (`JPKI_CARD_ISSUER_KEY`, 64 hex digits) that no window ever sees.
//! Routes and who may call them: `ca::service`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use identity::http::now;
use identity::party::{Party, PartyKind};

use crate::ca_cmd::Store;
use crate::netargs::NetArgs;

/// `jpki serve ca`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// CA database: a SQLite file path or a postgres:// URL.
    #[arg(long, env = "JPKI_CA_DB", default_value = "jpki-ca.db")]
    pub db: String,
    /// Directory of encrypted PKCS#8 key files (passphrase from JPKI_CA_PASSPHRASE or
    /// JPKI_CA_PASSPHRASE_FILE).
    #[arg(long, env = "JPKI_CA_KEYS", default_value = "jpki-ca-keys")]
    pub keys: PathBuf,
    /// CA keys on a PKCS#11 token instead: the module (PIN from JPKI_CA_PIN).
    #[arg(long, env = "JPKI_CA_PKCS11_MODULE", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, env = "JPKI_CA_PKCS11_TOKEN")]
    pub pkcs11_token: Option<String>,
    /// The audit journal (every audit row also appended here, fsynced before it commits; what
    /// a restored database is reconciled with: `jpki ca reconcile`).
    #[arg(long, env = "JPKI_CA_AUDIT_JOURNAL")]
    pub audit_journal: Option<PathBuf>,
    /// Listen address (mutual TLS).
    #[arg(long, default_value = "127.0.0.1:8401")]
    pub listen: String,
    /// The national node (`https://…`; identity items, residence checks, the change feed).
    #[arg(long, env = "JPKI_NATIONAL_URL")]
    pub national: String,
    /// Where CRLs are published (`DIR/crl/<ca>/g<n>/<shard>.crl`) when an operator asks.
    #[arg(long)]
    pub publish_dir: Option<PathBuf>,
    /// Milliseconds between two pulls of the national change feed (0: never).
    #[arg(long, default_value_t = 1000)]
    pub follow_interval_ms: u64,
    /// Only this validator (a `validator:<name>` party; repeat) gets delegated OCSP responder
    /// certificates (`POST /v1/responders`); others are refused (`validator_not_allowed`,
    /// audited). Default: every validator party.
    #[arg(
        long = "responder-validator",
        value_name = "PARTY",
        env = "JPKI_CA_RESPONDER_VALIDATORS",
        value_delimiter = ','
    )]
    pub responder_validators: Vec<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// The card issuer master key (`JPKI_CARD_ISSUER_KEY`), if set.
pub fn issuer_master() -> Result<Option<zeroize::Zeroizing<[u8; 32]>>> {
    if std::env::var_os("JPKI_CARD_ISSUER_KEY").is_none() && std::env::var_os("JPKI_CARD_ISSUER_KEY_FILE").is_none() {
        return Ok(None);
    }
    let h = net::secret::Secret::from_env("JPKI_CARD_ISSUER_KEY")?;
    let text = h.expose_str().ok_or_else(|| anyhow!("JPKI_CARD_ISSUER_KEY is not hex"))?;
    let b = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| anyhow!("JPKI_CARD_ISSUER_KEY is not hex"))?);
    let k = <[u8; 32]>::try_from(b.as_slice())
        .map_err(|_| anyhow!("JPKI_CARD_ISSUER_KEY must be 32 bytes (64 hex digits)"))?;
    Ok(Some(zeroize::Zeroizing::new(k)))
}

/// Runs the CA service until SIGTERM or Ctrl-C.
pub async fn serve(a: ServeArgs) -> Result<()> {
    let net = a.net.load()?;
    let party = net.cred.party.clone();
    anyhow::ensure!(party.kind() == PartyKind::Ca, "the credential names {party}, not a CA (ca:<id>)");
    // The service's own operations (feed revocations, recovery) are audited under its party;
    // requests under the caller's.
    let store = Store {
        db: a.db.clone(),
        keys: a.keys.clone(),
        actor: party.to_string(),
        pkcs11_module: a.pkcs11_module.clone(),
        pkcs11_token: a.pkcs11_token.clone(),
        audit_journal: a.audit_journal.clone(),
    };
    let master = issuer_master()?;
    // Opening resolves what an interrupted run left (reservations abandoned, stored TBSs
    // signed), before the first request.
    let authority = Arc::new(crate::ca_cmd::open(&store).await?);
    let source = ca::identity_source::IdentitySource::Http(net.peer(&a.national, Some(Party::National))?);
    let svc = ca::service::CaService::new(
        authority.clone(),
        source.clone(),
        net.trust.clone(),
        master.clone(),
        a.publish_dir.clone(),
        now,
    );
    if !a.responder_validators.is_empty() {
        let mut parties = Vec::new();
        for p in &a.responder_validators {
            let party: Party = p.parse().map_err(|e| anyhow!("--responder-validator {p}: {e}"))?;
            if !matches!(party, Party::Validator(_)) {
                bail!("--responder-validator {p}: not a validator:<name> party");
            }
            parties.push(party);
        }
        svc.restrict_responders(parties);
    }
    if a.follow_interval_ms > 0 {
        let every = Duration::from_millis(a.follow_interval_ms);
        tokio::spawn(follow_feed(authority, source, net.verifier(), store.actor.clone(), every, true));
    }
    let l = tokio::net::TcpListener::bind(&a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    tracing::info!(
        party = %party,
        listen = %l.local_addr()?,
        card_issuer_key = if master.is_some() { "loaded" } else { "absent (issuer authentication refused)" },
        "CA service listening (mutual TLS)"
    );
    net.serve(l, ca::service::router(svc)).await
}

/// Follows the change feed forever: at once when the feed moves (a long poll of its head, unless
/// `long_poll` is false: the timer-only reference of `jpki bench peak`), and at least every
/// `every`; after a failure, or a poll answered at once with nothing new, waits `every`. Runs
/// are paced ([`identity::client::Pace`]), so under load each run takes a bigger batch.
pub async fn follow_feed(
    authority: Arc<ca::authority::Authority>,
    source: ca::identity_source::IdentitySource,
    verifier: Arc<dyn identity::notice_sig::NoticeVerifier>,
    actor: String,
    every: Duration,
    long_poll: bool,
) {
    let mut pace = identity::client::Pace::default();
    loop {
        pace.wait().await;
        let started = tokio::time::Instant::now();
        let cursor = match authority.follow(&actor, &source, verifier.as_ref(), now()).await {
            Ok(r) => {
                if !r.revoked.is_empty() {
                    tracing::info!(revoked = r.revoked.len(), cursor = r.cursor, "change feed applied");
                }
                Some(r.cursor)
            }
            Err(e) => {
                tracing::warn!(kind = e.kind(), error = %e, "following the change feed failed");
                None
            }
        };
        pace.ran(started);
        let news = match cursor {
            Some(c) if long_poll => match source.feed_head_wait(c, identity::client::MAX_WAIT_MS).await {
                Ok(head) => head > c,
                Err(e) => {
                    tracing::debug!(error = %e, "long poll of the feed's head failed; will retry");
                    false
                }
            },
            _ => false,
        };
        if !news && started.elapsed() < every {
            tokio::time::sleep_until(started + every).await;
        }
    }
}
