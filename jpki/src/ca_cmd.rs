//! `jpki ca …`: the CA operator's commands. Every command opens the CA database and key store;
//! those that change the CA first resolve what an interrupted run left (see
//! `Authority::recover`; the read-only `list`, `show`, `cert` and `audit` do not, so they are
//! safe while `jpki serve ca` runs), act, and leave a row in
//! the hash-chained audit trail under `--actor`. Secrets (key-store passphrase, PKCS#11 PIN,
//! agency token) come only from the environment and are never printed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ca::authority::{Authority, IssueRequest, Settings};
use ca::crl::Reason;
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use ca::key::KeyAlgorithm;
use ca::keystore::KeyStore;
use clap::{Args, Subcommand};
use identity::http::now;

/// Where the CA's state and keys are.
#[derive(Debug, Args)]
pub struct Store {
    /// CA database: a SQLite file path or a postgres:// URL.
    #[arg(long, env = "JPKI_CA_DB", default_value = "jpki-ca.db")]
    pub db: String,
    /// Directory of encrypted PKCS#8 key files (software key store, scrypt). The passphrase is
    /// read from JPKI_CA_PASSPHRASE or the file named by JPKI_CA_PASSPHRASE_FILE (at least 12
    /// bytes).
    #[arg(long, env = "JPKI_CA_KEYS", default_value = "jpki-ca-keys")]
    pub keys: PathBuf,
    /// Who is acting (recorded in the audit trail).
    #[arg(long, env = "JPKI_CA_ACTOR")]
    pub actor: String,
    /// Keep CA keys on a PKCS#11 token instead: the module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    /// The user PIN is read from JPKI_CA_PIN.
    #[arg(long, env = "JPKI_CA_PKCS11_MODULE", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, env = "JPKI_CA_PKCS11_TOKEN")]
    pub pkcs11_token: Option<String>,
    /// The audit journal: every audit row is also appended here (fsynced before its commit),
    /// on another disk or host than the database; a database restored from a backup is
    /// reconciled with it (`jpki ca reconcile`). Checked at every open that changes the CA.
    #[arg(long, env = "JPKI_CA_AUDIT_JOURNAL")]
    pub audit_journal: Option<PathBuf>,
}

/// CA operator commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the roots of both hierarchies (signature, authentication) and fix the CRL/OCSP
    /// URLs and shard count. Prefecture-unit CAs are created on their first issuance.
    Init {
        #[command(flatten)]
        store: Store,
        /// prod or test (the test hierarchy is kept apart: O=JPKI-TEST, its own policy OIDs).
        #[arg(long, default_value = "prod")]
        env: String,
        /// CA key algorithm: rsa2048, rsa3072, rsa4096, p384 or ml-dsa-65 (FIPS 204, RFC 9881;
        /// software keys only, see docs/ca.md "ML-DSA-65 generations").
        #[arg(long, default_value = "rsa2048")]
        algorithm: String,
        /// CRL shards per issuing CA generation.
        #[arg(long, default_value_t = 16)]
        shards: u32,
        /// Base URL under which CRLs are published (written into certificates).
        #[arg(long, default_value = "http://127.0.0.1:8180")]
        crl_base: String,
        /// OCSP responder URL (written into certificates).
        #[arg(long, default_value = "http://127.0.0.1:8180/ocsp")]
        ocsp_url: String,
        /// Hours from thisUpdate to nextUpdate of each CRL.
        #[arg(long, default_value_t = 24)]
        crl_hours: i64,
    },
    /// Issue a resident's certificates from CSRs (each CSR's signature is the proof of
    /// possession). Identity items come from the national node, never from the CSR.
    Issue {
        #[command(flatten)]
        store: Store,
        /// National node URL.
        #[arg(long, env = "JPKI_NATIONAL_URL")]
        national: String,
        /// 住民票コード.
        #[arg(long)]
        resident: String,
        /// Issuing window id (1–9 of A–Z 0–9).
        #[arg(long)]
        window: String,
        /// Last day of the card (YYYY-MM-DD).
        #[arg(long)]
        card_expiry: String,
        /// CSR (PEM or DER) for the signature key; omit for residents under 15.
        #[arg(long)]
        sign_csr: Option<PathBuf>,
        /// CSR (PEM or DER) for the authentication key.
        #[arg(long)]
        auth_csr: Option<PathBuf>,
        /// prod or test.
        #[arg(long, default_value = "prod")]
        env: String,
        /// Idempotency key: a retry with the same id returns the same certificates.
        #[arg(long)]
        request_id: Option<String>,
        /// Where to write the certificates and chain (PEM).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Revoke a certificate. Reasons: unspecified, key-compromise, ca-compromise,
    /// affiliation-changed, superseded, cessation-of-operation, certificate-hold (card lost;
    /// never released). Revocation is final.
    Revoke {
        #[command(flatten)]
        store: Store,
        /// Serial (hex).
        #[arg(long)]
        serial: String,
        /// Reason.
        #[arg(long)]
        reason: String,
        /// Why, for the record (e.g. "card lost, window 3, ticket 1234").
        #[arg(long)]
        cause: String,
    },
    /// Apply the national change feed: revoke what change notices make stale.
    Follow {
        #[command(flatten)]
        store: Store,
        /// National node URL.
        #[arg(long, env = "JPKI_NATIONAL_URL")]
        national: String,
    },
    /// Publish every CRL shard and ARL under DIR (`DIR/crl/<ca>/g<n>/<shard>.crl`).
    Crl {
        #[command(flatten)]
        store: Store,
        /// Output directory (the document root of the CRL URL base).
        #[arg(long)]
        out: PathBuf,
    },
    /// List certificates, newest first.
    List {
        #[command(flatten)]
        store: Store,
        /// Only this resident's.
        #[arg(long)]
        resident: Option<String>,
        /// Only this CA's (e.g. sign-13).
        #[arg(long)]
        ca: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one certificate (with --pem, print it).
    Show {
        #[command(flatten)]
        store: Store,
        /// Serial (hex).
        serial: String,
        /// Print the certificate as PEM.
        #[arg(long)]
        pem: bool,
    },
    /// Print a CA's certificate as PEM (current generation, or --generation N): the trust
    /// anchor for `sign-root` / `auth-root`, the intermediate for `sign-13` etc.
    Cert {
        #[command(flatten)]
        store: Store,
        /// CA (sign-root, auth-root, sign-13, test-auth-27, …).
        ca: String,
        /// Generation (default: the current one).
        #[arg(long)]
        generation: Option<i64>,
    },
    /// Key ceremonies (a reviewed TOML file per new key generation; docs/ca.md).
    #[command(subcommand)]
    Ceremony(CeremonyCmd),
    /// Resolve what an interrupted run left: abandon reserved serials, revoke stored TBSs that
    /// were never signed. Every command that changes the CA does this first; `jpki serve ca`
    /// does it when it starts.
    Recover {
        #[command(flatten)]
        store: Store,
    },
    /// After `jpki restore` of the CA database (or a PostgreSQL point-in-time restore): put
    /// back from the audit journal what the backup missed — serials (recorded and revoked),
    /// revocations, revocation and CRL numbers — so nothing is used twice; until then the CA
    /// issues and revokes nothing. Without a journal, an operator confirms instead.
    Reconcile {
        #[command(flatten)]
        store: Store,
        /// The audit journal to reconcile with (the service's JPKI_CA_AUDIT_JOURNAL).
        #[arg(long, required_unless_present = "confirm_no_journal", conflicts_with = "confirm_no_journal")]
        journal: Option<PathBuf>,
        /// There is no journal: put the database back into service as it is, moving the
        /// revocation counter and every CRL number forward by the margins (numbers the lost
        /// period may have used).
        #[arg(long)]
        confirm_no_journal: bool,
        /// With --confirm-no-journal: revocation numbers to skip.
        #[arg(long, default_value_t = 100_000, requires = "confirm_no_journal")]
        revocation_margin: i64,
        /// With --confirm-no-journal: CRL numbers to skip per CA generation.
        #[arg(long, default_value_t = 1_000, requires = "confirm_no_journal")]
        crl_margin: i64,
    },
    /// Mark the database as restored from a backup (after a PostgreSQL point-in-time restore;
    /// `jpki restore` marks a SQLite one itself): the CA issues and revokes nothing until
    /// `jpki ca reconcile`.
    MarkRestored {
        #[command(flatten)]
        store: Store,
        /// From what (recorded).
        #[arg(long)]
        detail: String,
    },
    /// Verify the audit trail's hash chain and print its last rows.
    Audit {
        #[command(flatten)]
        store: Store,
        /// Rows to print.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// Ceremony commands.
#[derive(Debug, Subcommand)]
pub enum CeremonyCmd {
    /// Print exactly what the ceremony in FILE would generate and sign (a dry run), after
    /// checking it against the CA's current generation and the overlap policy. Nothing is
    /// written.
    Plan {
        #[command(flatten)]
        store: Store,
        /// The ceremony file (TOML).
        file: PathBuf,
    },
    /// Run the ceremony in FILE step by step, each step committed and audited; run the same
    /// file again to resume after a crash (another file for the same generation is refused).
    /// For offline ceremonies with the CA service stopped; online: `jpki ca-op ceremony run`.
    Run {
        #[command(flatten)]
        store: Store,
        /// The ceremony file (TOML).
        file: PathBuf,
    },
    /// Every generation (of one CA, or all) with its key state, activation, notAfter, key id,
    /// link certificates and ceremony progress.
    Status {
        #[command(flatten)]
        store: Store,
        /// Only this CA (slug).
        #[arg(long)]
        ca: Option<String>,
    },
    /// Roll a generation back before it has issued its first certificate: the previous
    /// generation issues again; its link certificates are revoked.
    Rollback {
        #[command(flatten)]
        store: Store,
        /// The CA (slug).
        #[arg(long)]
        ca: String,
        /// The generation.
        #[arg(long)]
        generation: i64,
    },
}

fn read_ceremony(file: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Prints `ceremony status` lines (shared with `jpki ca-op ceremony status`).
pub(crate) fn print_generations(gens: &[ca::ceremony::GenerationStatus]) {
    println!(
        "{:<14} {:>3}  {:<10} {:<11} {:<20}  {:<20}  {:>8}  {:<40}  ceremony",
        "CA", "gen", "algorithm", "state", "activation", "notAfter", "issued", "key id"
    );
    for s in gens {
        let g = &s.generation;
        let ceremony = s.ceremony.map_or("-".to_owned(), |(d, n)| format!("{d}/{n} steps"));
        println!(
            "{:<14} {:>3}  {:<10} {:<11} {:<20}  {:<20}  {:>8}  {:<40}  {ceremony}",
            g.ca.slug(),
            g.generation,
            g.algorithm.name(),
            s.state.name(),
            when(g.activation),
            when(g.not_after),
            s.issued,
            hex::encode(&g.key_id)
        );
        for (serial, d, signer) in &s.links {
            println!("{:<14}      link {} signed by g{signer}: serial {serial}", "", d.name());
        }
    }
}

pub(crate) async fn open(s: &Store) -> Result<Authority> {
    open_as(s, true).await
}

/// [`open`] for the read-only commands (`list`, `show`, `cert`, `audit`): no recovery, so they
/// are safe while `jpki serve ca` runs.
async fn inspect(s: &Store) -> Result<Authority> {
    open_as(s, false).await
}

async fn open_as(s: &Store, recover: bool) -> Result<Authority> {
    check_actor(&s.actor)?;
    let keys = match (&s.pkcs11_module, &s.pkcs11_token) {
        (Some(module), Some(token)) => {
            let pin = net::secret::Secret::from_env("JPKI_CA_PIN")?;
            let pin = pin.expose_str().context("JPKI_CA_PIN is not UTF-8")?;
            KeyStore::Pkcs11(ca::pkcs11::Pkcs11Store::open(module, token, pin)?)
        }
        _ => {
            let pass = net::secret::Secret::from_env("JPKI_CA_PASSPHRASE")?.passphrase("JPKI_CA_PASSPHRASE")?;
            KeyStore::soft(&s.keys, pass)?
        }
    };
    let db = ca::schema::open(&s.db).await.with_context(|| format!("cannot open the CA database {}", s.db))?;
    if !recover {
        return Ok(Authority::open_inspect(db, keys).await?);
    }
    let journal = match &s.audit_journal {
        Some(path) => {
            let rows = if path.exists() { ca::audit::read_journal(path)? } else { Vec::new() };
            ca::audit::journal_to(path)?;
            Some(rows)
        }
        None => None,
    };
    Ok(Authority::open_with_journal(db, keys, journal.as_deref(), now()).await?)
}

/// The national node reached with the CA's own network credential (`JPKI_CREDENTIAL`,
/// `JPKI_NETWORK_CA`, `JPKI_NETWORK_CRL`, passphrase `JPKI_CREDENTIAL_PASSPHRASE`), which must
/// name a CA (`ca:<id>`, registered at the national node as the agency `<id>` for B1-020).
pub(crate) fn source(national: &str) -> Result<IdentitySource> {
    let net = crate::netargs::NetArgs::from_env().load()?;
    anyhow::ensure!(
        net.cred.party.kind() == identity::party::PartyKind::Ca,
        "the CA's credential names {}, not a CA (ca:<id>)",
        net.cred.party
    );
    Ok(IdentitySource::Http(net.peer(national, Some(identity::party::Party::National))?))
}

fn read_der(p: &PathBuf) -> Result<Vec<u8>> {
    let b = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
    if b.starts_with(b"-----BEGIN") {
        let (_, der) = der::pem::decode_vec(&b).map_err(|e| anyhow::anyhow!("{}: bad PEM: {e}", p.display()))?;
        return Ok(der);
    }
    Ok(b)
}

pub(crate) fn pem(label: &str, der: &[u8]) -> Result<String> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| anyhow::anyhow!("PEM: {e}"))
}

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Runs a CA command.
pub async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Init { store, env, algorithm, shards, crl_base, ocsp_url, crl_hours } => {
            let mut a = open(&store).await?;
            let settings =
                Settings { crl_base, ocsp_url, shards, crl_hours, ca_algorithm: KeyAlgorithm::parse(&algorithm)? };
            for g in a.init(&store.actor, Environment::parse(&env)?, settings, now()).await? {
                println!(
                    "created {} g{} ({}), key id {}, valid until {}; key {}",
                    g.ca,
                    g.generation,
                    g.algorithm.name(),
                    hex::encode(&g.key_id),
                    when(g.not_after),
                    a.key_protection(&g.key_ref)?
                );
            }
        }
        Cmd::Issue { store, national, resident, window, card_expiry, sign_csr, auth_csr, env, request_id, out } => {
            let a = open(&store).await?;
            let req = IssueRequest {
                resident_code: resident,
                window,
                card_expiry: identity::notice::parse_date("card expiry", &card_expiry)?,
                environment: Environment::parse(&env)?,
                signature_csr: sign_csr.as_ref().map(read_der).transpose()?,
                authentication_csr: auth_csr.as_ref().map(read_der).transpose()?,
                request_id,
            };
            let issued = a.issue(&store.actor, &req, &source(&national)?, now()).await?;
            std::fs::create_dir_all(&out)?;
            for c in &issued.certificates {
                let path = out.join(format!("{}-{}.pem", c.kind.name(), c.serial));
                std::fs::write(&path, pem("CERTIFICATE", &c.der)?)?;
                println!(
                    "issued {} certificate {} by {} g{} (shard {}), valid until {} -> {}",
                    c.kind.name(),
                    c.serial,
                    c.ca,
                    c.generation,
                    c.shard,
                    when(c.not_after),
                    path.display()
                );
            }
            let chain: String = issued.chain.iter().map(|d| pem("CERTIFICATE", d)).collect::<Result<_>>()?;
            std::fs::write(out.join("chain.pem"), chain)?;
            println!("CA chain -> {}", out.join("chain.pem").display());
        }
        Cmd::Revoke { store, serial, reason, cause } => {
            let a = open(&store).await?;
            let reason = Reason::parse(&reason)?;
            a.revoke(&store.actor, &serial, reason, &cause, now()).await?;
            println!("revoked {serial} ({}); it appears on the next CRL of its shard", reason.name());
        }
        Cmd::Follow { store, national } => {
            let a = open(&store).await?;
            let verifier = crate::netargs::verifier(&crate::netargs::NetArgs::from_env().trust()?);
            let bar = crate::progress::Bar::new("ca follow", "feed entries");
            let r = a.follow_with(&store.actor, &source(&national)?, verifier.as_ref(), now(), &bar.callback()).await?;
            bar.finish(format_args!("{} feed entries applied, {} revocations", r.entries, r.revoked.len()));
            for x in &r.revoked {
                println!("revoked {} {} ({}) by {}", x.kind.name(), x.serial, x.reason.name(), x.cause);
            }
            println!(
                "{} feed entries applied, {} revocations, {} code changes carried over; cursor {}",
                r.entries,
                r.revoked.len(),
                r.rekeyed,
                r.cursor
            );
        }
        Cmd::Crl { store, out } => {
            let a = open(&store).await?;
            let bar = crate::progress::Bar::new("ca crl", "CRLs");
            let published = a.publish_crls(&store.actor, &out, now(), &bar.callback()).await?;
            let entries: u64 = published.iter().map(|p| p.entries).sum();
            bar.finish(format_args!("{} CRLs published ({entries} entries)", published.len()));
            for p in &published {
                let scope = if p.shard < 0 { "ARL".to_owned() } else { format!("shard {}", p.shard) };
                println!(
                    "{} g{} {scope}: CRL #{} with {} entries, {} bytes -> {}",
                    p.ca,
                    p.generation,
                    p.number,
                    p.entries,
                    p.bytes,
                    p.path.display()
                );
            }
        }
        Cmd::List { store, resident, ca, limit } => {
            let a = inspect(&store).await?;
            println!("{:<32}  {:<14}  {:<10}  {:<12}  {:<20}  status", "serial", "kind", "ca", "resident", "not after");
            for c in a.list(resident.as_deref(), ca.as_deref(), limit).await? {
                let status = match &c.revoked {
                    Some((at, r, _)) => format!("revoked {} ({})", when(*at), r.name()),
                    None if c.state == ca::authority::state::ISSUED => "good".into(),
                    None => format!("state {}", c.state),
                };
                println!(
                    "{:<32}  {:<14}  {:<10}  {:<12}  {:<20}  {status}",
                    c.serial,
                    c.kind.name(),
                    format!("{} g{}", c.ca, c.generation),
                    c.resident_code.unwrap_or_default(),
                    c.not_after.map(when).unwrap_or_default()
                );
            }
        }
        Cmd::Show { store, serial, pem: as_pem } => {
            let a = inspect(&store).await?;
            let c = a.show(&serial).await?;
            if as_pem {
                let der = c
                    .der
                    .ok_or_else(|| anyhow::anyhow!("certificate {serial} was never issued (state {})", c.state))?;
                print!("{}", pem("CERTIFICATE", &der)?);
                return Ok(());
            }
            println!(
                "serial      {}\nkind        {}\nissuer      {} g{}\nresident    {}\nshard       {}\nnot before  {}\nnot after   {}",
                c.serial,
                c.kind.name(),
                c.ca,
                c.generation,
                c.resident_code.unwrap_or_default(),
                c.shard,
                c.not_before.map(when).unwrap_or_default(),
                c.not_after.map(when).unwrap_or_default()
            );
            match c.revoked {
                Some((at, r, cause)) => println!("status      revoked {} ({}): {cause}", when(at), r.name()),
                None => println!(
                    "status      {}",
                    if c.state == ca::authority::state::ISSUED { "good" } else { "not issued" }
                ),
            }
        }
        Cmd::Cert { store, ca: slug, generation } => {
            let a = inspect(&store).await?;
            let id = ca::hierarchy::CaId::parse(&slug)?;
            let g = match generation {
                Some(n) => a.generation_of(&id.slug(), n).await?,
                None => a.current(&id, now()).await?,
            };
            print!("{}", pem("CERTIFICATE", &g.certificate)?);
        }
        Cmd::Ceremony(CeremonyCmd::Plan { store, file }) => {
            let text = read_ceremony(&file)?;
            let c = ca::ceremony::parse(&text)?;
            let a = inspect(&store).await?;
            let p = a.ceremony_plan(&c, now()).await?;
            println!("ceremony for {} g{} ({} steps; dry run, nothing written):", c.ca, c.generation, p.steps.len());
            for (i, s) in p.steps.iter().enumerate() {
                println!("  {}. {s}", i + 1);
            }
        }
        Cmd::Ceremony(CeremonyCmd::Run { store, file }) => {
            let text = read_ceremony(&file)?;
            let a = open(&store).await?;
            let c = ca::ceremony::parse(&text)?;
            let bar = crate::progress::Bar::new("ca ceremony run", "steps");
            let done = a.ceremony_run_with(&store.actor, &text, now(), &bar.callback()).await?;
            let now_done = done.iter().filter(|(_, this_run)| *this_run).count();
            bar.finish(format_args!("{} g{}: {} steps, {now_done} done by this run", c.ca, c.generation, done.len()));
            println!("ceremony for {} g{}:", c.ca, c.generation);
            for (i, (s, this_run)) in done.iter().enumerate() {
                println!("  {}. {} {s}", i + 1, if *this_run { "done:" } else { "done before:" });
            }
        }
        Cmd::Ceremony(CeremonyCmd::Status { store, ca: slug }) => {
            let a = inspect(&store).await?;
            let id = slug.as_deref().map(ca::hierarchy::CaId::parse).transpose()?;
            print_generations(&a.ceremony_status(id.as_ref(), now()).await?);
        }
        Cmd::Ceremony(CeremonyCmd::Rollback { store, ca: slug, generation }) => {
            let a = open(&store).await?;
            let id = ca::hierarchy::CaId::parse(&slug)?;
            let revoked = a.rollback(&store.actor, &id, generation, now()).await?;
            println!("{slug} g{generation} rolled back; revoked (superseded): {}", revoked.join(", "));
        }
        Cmd::Recover { store } => {
            let a = inspect(&store).await?;
            let (abandoned, revoked) = a.recover(&store.actor, now()).await?;
            println!("{abandoned} reserved serials abandoned, {revoked} unsigned TBSs revoked");
        }
        Cmd::Reconcile { store, journal, confirm_no_journal, revocation_margin, crl_margin } => {
            let a = inspect(&store).await?;
            // The reconciliation's own audit row goes to the journal too, so that it continues
            // the chain it was reconciled with (the service's journal, else --journal).
            if let Some(path) = store.audit_journal.as_ref().or(journal.as_ref()) {
                ca::audit::journal_to(path)?;
            }
            let r = match journal {
                Some(path) => {
                    let rows = ca::audit::read_journal(&path)?;
                    ca::restore::reconcile(&a, &rows, &store.actor, now()).await?
                }
                None if confirm_no_journal => {
                    ca::restore::confirm(&a, &store.actor, revocation_margin, crl_margin, now()).await?
                }
                None => bail!("give --journal FILE or --confirm-no-journal"),
            };
            println!(
                "reconciled: {} audit rows put back, {} revocations replayed, revocation seq {} -> {}",
                r.rows, r.revocations, r.revocation_seq.0, r.revocation_seq.1
            );
            for s in &r.lost_serials {
                println!("  lost serial revoked: {s}");
            }
            for (slug, g, n) in &r.crl_numbers {
                println!("  CRL number of {slug} g{g} moved to {n}");
            }
        }
        Cmd::MarkRestored { store, detail } => {
            let a = inspect(&store).await?;
            ca::restore::mark_restored(a.db(), &format!("{detail} (by {})", store.actor), now()).await?;
            println!("marked as restored: nothing is issued or revoked until `jpki ca reconcile`");
        }
        Cmd::Audit { store, limit } => {
            let a = inspect(&store).await?;
            let rows = ca::audit::read_and_verify(a.db(), limit).await?;
            for r in &rows {
                println!("{:>6}  {}  {:<16}  {:<14}  {}", r.seq, when(r.at), r.actor, r.action, r.detail);
            }
            println!("audit chain verified");
        }
    }
    Ok(())
}

/// The actor recorded in the audit trail must be a short id.
fn check_actor(actor: &str) -> Result<()> {
    if actor.is_empty() || actor.len() > 64 {
        bail!("--actor must be 1–64 characters");
    }
    Ok(())
}
