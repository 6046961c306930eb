//! `jpki card …` (the municipal window's card writer) and `jpki card-sim` (the virtual card
//! behind vpcd). Secrets come from the environment only and are never printed: the issuer
//! master key (`JPKI_CARD_ISSUER_KEY`, 64 hex digits; each card holds only the key diversified
//! from it for its serial — moving the master into the CA service is issue 10's later work),
//! and the resident's PINs (`JPKI_CARD_AUTH_PIN`, `JPKI_CARD_SIGN_PIN`; typed by the resident
//! on the window's PIN pad in real life): the new PINs on issuance, the current ones on
//! renewal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ca::authority::{Authority, IssueRequest, Issued};
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use card::applet::{Applet, CardState, card_issuer_key};
use card::jpki::{CardStatus, Ef, KeyAlg, KeyRef, Lifecycle, PinRef, TOKEN_LABEL, TokenInfo, presence_flags};
use card::reader::{Jpki, Reader};
use card::vpcd::{self, Ended, SimOptions};
use clap::{Args, Subcommand};
use der::Decode;
use identity::http::now;
use x509_cert::Certificate;

use crate::ca_cmd::Store;

/// Which reader and how long to wait for a card.
#[derive(Debug, Args, Clone)]
pub struct ReaderArgs {
    /// Reader name (exact, or a part matching exactly one reader).
    #[arg(long, env = "JPKI_CARD_READER", default_value = "Virtual PCD 00 00")]
    pub reader: String,
    /// Seconds to wait for a card to be inserted.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}

/// Where the resident's certificates come from.
#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(flatten)]
    pub store: Store,
    /// National node URL (identity items for the certificates).
    #[arg(long, env = "JPKI_NATIONAL_URL")]
    pub national: String,
    /// Issuing window id (1–9 of A–Z 0–9).
    #[arg(long)]
    pub window: String,
    /// Last day of the card (YYYY-MM-DD).
    #[arg(long)]
    pub card_expiry: String,
    /// prod or test.
    #[arg(long, default_value = "prod")]
    pub env: String,
    /// Key algorithm on the card: rsa2048 (what OpenSC reads) or p384 (next-generation profile).
    #[arg(long, default_value = "rsa2048")]
    pub alg: String,
    /// Resident under 15: authentication certificate only.
    #[arg(long)]
    pub no_signature: bool,
}

/// Card commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Issue a resident's card: generate both key pairs on the card, prove possession, obtain
    /// both certificates from the CA, write them with the CA certificates, set both PINs (from
    /// JPKI_CARD_AUTH_PIN / JPKI_CARD_SIGN_PIN) and close personalisation.
    Issue {
        #[command(flatten)]
        reader: ReaderArgs,
        #[command(flatten)]
        ca: CaArgs,
        /// 住民票コード.
        #[arg(long)]
        resident: String,
        /// Finish a personalisation that was interrupted (card pulled, writer stopped).
        #[arg(long)]
        resume: bool,
    },
    /// New keys and certificates on an issued card (the CA revokes the old ones as
    /// superseded); PINs are kept. The resident's current PINs (JPKI_CARD_AUTH_PIN, and
    /// JPKI_CARD_SIGN_PIN if the card has a signature password) are verified first: the card
    /// reopens personalisation only then, and destroys the old keys when it does.
    Renew {
        #[command(flatten)]
        reader: ReaderArgs,
        #[command(flatten)]
        ca: CaArgs,
        /// 住民票コード.
        #[arg(long)]
        resident: String,
    },
    /// Show the card: lifecycle, keys, PIN tries, certificates.
    Status {
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Clerk PIN reset (issuer authentication): sets the new PIN from JPKI_CARD_AUTH_PIN or
    /// JPKI_CARD_SIGN_PIN and resets its counter. On an issued card a new signature password
    /// costs the signature key and certificate (renew the card for new ones).
    PinReset {
        #[command(flatten)]
        reader: ReaderArgs,
        /// auth or sign.
        #[arg(long)]
        pin: String,
    },
    /// Verify a PIN (from JPKI_CARD_AUTH_PIN / JPKI_CARD_SIGN_PIN); prints the tries left.
    VerifyPin {
        #[command(flatten)]
        reader: ReaderArgs,
        /// auth or sign.
        #[arg(long)]
        pin: String,
    },
    /// Wipe an interrupted personalisation back to a blank card (issued cards are refused).
    Wipe {
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// List the readers pcscd knows.
    Readers,
    /// Wait until a card is in the reader (or, with --absent, until it is taken out).
    Wait {
        #[command(flatten)]
        reader: ReaderArgs,
        /// Wait for removal instead.
        #[arg(long)]
        absent: bool,
    },
}

/// `jpki card-sim`: a virtual JPKI card connected to vpcd.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// vpcd port: 35963 is reader "Virtual PCD 00 00", 35964 "Virtual PCD 00 01".
    #[arg(long, default_value_t = 35963)]
    pub port: u16,
    /// vpcd host (IPv4).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Card state file; created blank if absent, with the issuer key diversified for its serial
    /// from the master in JPKI_CARD_ISSUER_KEY.
    #[arg(long)]
    pub state: PathBuf,
    /// ATR in hex (default: the JPKI ATR OpenSC recognises).
    #[arg(long)]
    pub atr: Option<String>,
    /// Test fault injection: pull the card (exit) instead of answering APDU number N+1.
    #[arg(long)]
    pub pull_after: Option<u64>,
}

/// The issuer master key (`JPKI_CARD_ISSUER_KEY`).
fn issuer_key() -> Result<[u8; 32]> {
    let h = net::secret::Secret::from_env("JPKI_CARD_ISSUER_KEY")?;
    let text = h.expose_str().ok_or_else(|| anyhow!("JPKI_CARD_ISSUER_KEY is not hex"))?;
    let b = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| anyhow!("JPKI_CARD_ISSUER_KEY is not hex"))?);
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| anyhow!("JPKI_CARD_ISSUER_KEY must be 32 bytes (64 hex digits)"))
}

fn pin_env(p: PinRef) -> Result<String> {
    let var = match p {
        PinRef::Auth => "JPKI_CARD_AUTH_PIN",
        PinRef::Sign => "JPKI_CARD_SIGN_PIN",
    };
    let v = std::env::var(var).with_context(|| format!("set {var} (the resident's {})", p.name()))?;
    p.normalize(&v)?;
    Ok(v)
}

fn pin_ref(s: &str) -> Result<PinRef> {
    match s {
        "auth" => Ok(PinRef::Auth),
        "sign" => Ok(PinRef::Sign),
        _ => bail!("--pin must be auth or sign"),
    }
}

/// Runs the virtual card until vpcd goes away for good or the card is pulled.
pub fn run_sim(a: SimArgs) -> Result<()> {
    let state = if a.state.exists() {
        CardState::load(&a.state)?
    } else {
        let s = CardState::blank(&issuer_key()?)?;
        s.save(&a.state)?;
        eprintln!("card-sim: new blank card, serial {}", s.serial);
        s
    };
    let atr = match &a.atr {
        Some(h) => hex::decode(h.replace([' ', ':'], "")).map_err(|_| anyhow!("--atr is not hex"))?,
        None => card::jpki::ATR_JPKI.to_vec(),
    };
    if atr.is_empty() || atr.len() > 33 {
        bail!("--atr must be 1 to 33 bytes");
    }
    let opts = SimOptions {
        addr: format!("{}:{}", a.host, a.port),
        atr,
        state_file: a.state.clone(),
        pull_after: a.pull_after,
    };
    let mut applet = Applet::new(state);
    eprintln!(
        "card-sim: card {} ({}) inserting into vpcd at {}",
        applet.state().serial,
        applet.state().lifecycle,
        opts.addr
    );
    loop {
        let mut s = vpcd::connect(&opts.addr, Duration::from_secs(30))?;
        applet.reset();
        match vpcd::serve(&mut s, &mut applet, &opts)? {
            Ended::Pulled => {
                eprintln!("card-sim: card pulled (fault injection)");
                std::process::exit(3);
            }
            Ended::ReaderGone => eprintln!("card-sim: vpcd closed the connection; reconnecting"),
        }
    }
}

/// Finds, in the chain, the CA certificate whose SKI is the leaf's AKI.
fn issuer_of<'a>(leaf: &[u8], chain: &'a [Vec<u8>]) -> Result<&'a [u8]> {
    let aki = validator::responder::authority_key_id(&Certificate::from_der(leaf)?)
        .ok_or_else(|| anyhow!("certificate has no AKI key identifier"))?;
    for c in chain {
        let cert = Certificate::from_der(c)?;
        if let Some((_, ski)) = cert.tbs_certificate().get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()?
            && ski.0.as_bytes() == aki.as_slice()
        {
            return Ok(c);
        }
    }
    bail!("the CA chain has no certificate with the leaf's key identifier")
}

fn subject_of(cert: &[u8]) -> String {
    Certificate::from_der(cert)
        .map(|c| format!("{} (serial {})", c.tbs_certificate().subject(), c.tbs_certificate().serial_number()))
        .unwrap_or_else(|e| format!("unparsable certificate: {e}"))
}

/// What a card issuance did, for the clerk and the benchmark.
#[derive(Debug)]
pub struct IssueReport {
    /// Card serial.
    pub serial: String,
    /// APDUs sent.
    pub apdus: u32,
    /// Whole issuance.
    pub total: Duration,
    /// On-card key generation.
    pub keygen: Duration,
    /// The CA's part (identity lookup, signing, storing).
    pub ca: Duration,
    /// Certificates written.
    pub issued: Issued,
}

/// Issues (or renews) a card in the reader. Everything on the card happens inside one PC/SC
/// transaction; the CA call is idempotent per card and key pair, so a resumed issuance
/// gets the same certificates.
pub async fn issue_card(
    reader: &ReaderArgs,
    a: &Authority,
    source: &IdentitySource,
    order: &Order,
    mode: Mode,
) -> Result<IssueReport> {
    let actor = order.actor.clone();
    personalise(reader, order, mode, async |req: IssueRequest| {
        a.issue(&actor, &req, source, now()).await.map_err(|e| match e {
            ca::error::Error::Refused { code, detail } => anyhow!("resident not eligible ({code}): {detail}"),
            e => anyhow!("the CA failed: {e}"),
        })
    })
    .await
}

/// The card side of an issuance, with the CA as `issue` (the benchmark passes its own).
pub async fn personalise(
    reader: &ReaderArgs,
    order: &Order,
    mode: Mode,
    issue: impl AsyncFnOnce(IssueRequest) -> Result<Issued>,
) -> Result<IssueReport> {
    let start = Instant::now();
    let ca = order;
    let alg = KeyAlg::parse(&ca.alg).ok_or_else(|| anyhow!("--alg must be rsa2048 or p384"))?;
    let resident = order.resident.as_str();
    let (auth_pin, sign_pin) = (&order.auth_pin, &order.sign_pin);
    let r = Reader::open(&reader.reader)?;
    r.wait_card(Duration::from_secs(reader.wait))?;
    let mut conn = r.connect()?;
    let tx = conn.transaction().map_err(|e| anyhow!("cannot lock the card: {e}"))?;
    let mut j = Jpki::new(&tx);
    j.select_ap().context("not a JPKI card")?;
    let st = j.status()?;
    let serial = hex::encode(st.serial);
    match (mode, st.lifecycle) {
        (Mode::Issue { .. }, Lifecycle::Issued) => return Err(card::Error::AlreadyIssued(serial).into()),
        (Mode::Issue { resume: false }, Lifecycle::Personalising) => {
            return Err(card::Error::Interrupted(serial).into());
        }
        (Mode::Issue { resume: true }, Lifecycle::Blank) => bail!("nothing to resume: card {serial} is blank"),
        (Mode::Renew, Lifecycle::Blank) => bail!("card {serial} is blank; issue it first"),
        _ => {}
    }
    if mode == Mode::Renew {
        // The resident's consent: the card reopens an issued card only with the PIN of every
        // key on it verified in this session, and then destroys those keys. We verify every
        // PIN the card has: a signature password reset at the window left the card without
        // its signature key, and the new key's CSR needs that password verified.
        let current = [(PinRef::Auth, st.auth_pin, auth_pin), (PinRef::Sign, st.sign_pin, sign_pin)];
        for (p, on_card, pin) in current {
            if on_card.is_some() {
                let pin = pin.as_ref().ok_or_else(|| anyhow!("renewal needs the resident's {}", p.name()))?;
                j.verify(p, pin)?;
            }
        }
    }
    j.issuer_auth(&card_issuer_key(&order.issuer_master, &st.serial)?, &st.serial)?;
    j.open_personalisation()?;
    let kinds: Vec<KeyRef> = if ca.no_signature { vec![KeyRef::Auth] } else { vec![KeyRef::Auth, KeyRef::Sign] };
    let mut keygen = Duration::ZERO;
    let mut spkis = Vec::new();
    for &k in &kinds {
        let existing = match k {
            KeyRef::Auth => st.auth_key,
            KeyRef::Sign => st.sign_key,
        };
        let reuse = matches!(mode, Mode::Issue { resume: true }) && existing == Some(alg);
        let spki = if reuse {
            j.public_key(k)?
        } else {
            let t = Instant::now();
            let s = j.generate(k, alg)?;
            keygen += t.elapsed();
            s
        };
        spkis.push((k, spki));
    }
    // New PINs before the CSRs: the card signs only with a key whose PIN is verified in this
    // session, the issuer's included. A renewal keeps the PINs (verified above) and sets only
    // one the card does not have yet (a signature key for a resident who has turned 15).
    for (p, pin, on_card) in [(PinRef::Auth, auth_pin, st.auth_pin), (PinRef::Sign, sign_pin, st.sign_pin)] {
        if let Some(pin) = pin
            && (mode != Mode::Renew || on_card.is_none())
        {
            j.set_pin(p, pin)?;
            j.verify(p, pin)?;
        }
    }
    let mut csrs = Vec::new();
    for (k, spki) in &spkis {
        csrs.push((*k, j.csr(*k, alg, spki)?));
    }
    // One request id per card and key set: a resumed issuance gets the same certificates.
    let mut h = openssl::sha::Sha256::new();
    for (_, s) in &spkis {
        h.update(s);
    }
    let request_id = format!("card-{serial}-{}", hex::encode(&h.finish()[..8]));
    let csr_of = |k: KeyRef| csrs.iter().find(|(x, _)| *x == k).map(|(_, c)| c.clone());
    let req = IssueRequest {
        resident_code: resident.to_string(),
        window: ca.window.clone(),
        card_expiry: identity::notice::parse_date("card expiry", &ca.card_expiry)?,
        environment: Environment::parse(&ca.env)?,
        signature_csr: csr_of(KeyRef::Sign),
        authentication_csr: csr_of(KeyRef::Auth),
        request_id: Some(request_id),
    };
    let t = Instant::now();
    let issued = match issue(req).await {
        Ok(i) => i,
        Err(e) => {
            // Nothing was written yet: a first issuance goes back to a blank card, so the
            // refusal leaves nothing half-done. (A renewal keeps personalisation open: its old
            // keys are gone; `card issue --resume` finishes it.)
            let wiped = matches!(mode, Mode::Issue { .. }) && j.wipe().is_ok();
            let after = if wiped { "; the card was wiped back to blank" } else { "" };
            return Err(anyhow!("{e}{after}"));
        }
    };
    let ca_time = t.elapsed();
    let mut present = (false, false);
    for c in &issued.certificates {
        let k = match c.kind {
            ca::revocation::CertKind::Signature => KeyRef::Sign,
            ca::revocation::CertKind::Authentication => KeyRef::Auth,
            other => bail!("the CA returned an unexpected {other:?} certificate"),
        };
        j.write_ef(k.cert(), &c.der)?;
        j.write_ef(k.ca_cert(), issuer_of(&c.der, &issued.chain)?)?;
        match k {
            KeyRef::Sign => present.0 = true,
            KeyRef::Auth => present.1 = true,
        }
    }
    let info = TokenInfo {
        label: TOKEN_LABEL.into(),
        manufacturer: "jpki-rs".into(),
        model: "JPKI virtual".into(),
        serial: serial.clone(),
    };
    j.write_ef(Ef::TokenInfo, &info.encode())?;
    j.write_ef(Ef::Presence, &presence_flags(present.0, present.1))?;
    j.close_personalisation()?;
    let apdus = j.apdus;
    // Reset on release: no session (issuer or PIN) outlives the writer.
    tx.end(pcsc::Disposition::LeaveCard).map_err(|(_, e)| anyhow!("releasing the card: {e}"))?;
    conn.finish()?;
    Ok(IssueReport { serial, apdus, total: start.elapsed(), keygen, ca: ca_time, issued })
}

/// One card order at the window.
#[derive(Debug)]
pub struct Order {
    /// 住民票コード.
    pub resident: String,
    /// Who acts (audit).
    pub actor: String,
    /// Window id.
    pub window: String,
    /// Last day of the card.
    pub card_expiry: String,
    /// prod or test.
    pub env: String,
    /// rsa2048 or p384.
    pub alg: String,
    /// Authentication certificate only.
    pub no_signature: bool,
    /// The issuer master key; each card's own key is derived from it and the card serial.
    pub issuer_master: [u8; 32],
    /// Issuance: the new authentication PIN. Renewal: the resident's current one.
    pub auth_pin: Option<String>,
    /// Issuance: the new signature password (none under 15). Renewal: the current one (if
    /// set in the environment; needed when the card has a signature key).
    pub sign_pin: Option<String>,
}

impl Order {
    fn new(ca: CaArgs, resident: String, mode: Mode) -> Result<Order> {
        let issuing = mode != Mode::Renew;
        Ok(Order {
            actor: ca.store.actor.clone(),
            resident,
            window: ca.window,
            card_expiry: ca.card_expiry,
            env: ca.env,
            alg: ca.alg,
            issuer_master: issuer_key()?,
            auth_pin: Some(pin_env(PinRef::Auth)?),
            sign_pin: if issuing && !ca.no_signature {
                Some(pin_env(PinRef::Sign)?)
            } else if issuing {
                None
            } else {
                // Renewal: needed only if the card has a signature password or gets one
                // (checked there).
                pin_env(PinRef::Sign).ok()
            },
            no_signature: ca.no_signature,
        })
    }
}

/// Issue or renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// First issuance (or its resumption).
    Issue {
        /// Resume an interrupted personalisation.
        resume: bool,
    },
    /// New keys and certificates on an issued card.
    Renew,
}

pub fn print_report(r: &IssueReport) {
    for c in &r.issued.certificates {
        println!("   {} certificate {} written ({} bytes)", c.kind.name(), c.serial, c.der.len());
    }
    println!(
        "   card {} issued: {} APDUs, {:.0} ms in all ({:.0} ms on-card key generation, {:.0} ms at the CA, {:.0} ms other card I/O)",
        r.serial,
        r.apdus,
        r.total.as_secs_f64() * 1e3,
        r.keygen.as_secs_f64() * 1e3,
        r.ca.as_secs_f64() * 1e3,
        (r.total - r.keygen - r.ca).as_secs_f64() * 1e3
    );
}

fn with_card<T>(reader: &ReaderArgs, f: impl FnOnce(&mut Jpki<'_>) -> Result<T>) -> Result<T> {
    let r = Reader::open(&reader.reader)?;
    r.wait_card(Duration::from_secs(reader.wait))?;
    let mut conn = r.connect()?;
    let tx = conn.transaction().map_err(|e| anyhow!("cannot lock the card: {e}"))?;
    let mut j = Jpki::new(&tx);
    j.select_ap().context("not a JPKI card")?;
    let out = f(&mut j)?;
    tx.end(pcsc::Disposition::LeaveCard).map_err(|(_, e)| anyhow!("releasing the card: {e}"))?;
    conn.finish()?;
    Ok(out)
}

fn print_status(st: &CardStatus, j: &mut Jpki<'_>) -> Result<()> {
    println!("card {} ({})", hex::encode(st.serial), st.lifecycle);
    let alg = |a: Option<KeyAlg>| a.map_or("none".to_string(), |a| format!("{a:?}"));
    println!("  keys: authentication {}, signature {}", alg(st.auth_key), alg(st.sign_key));
    let pin = |p: Option<u8>, max: u8| {
        p.map_or("not set".to_string(), |n| if n == 0 { "BLOCKED".into() } else { format!("{n}/{max} tries left") })
    };
    println!("  authentication PIN: {}", pin(st.auth_pin, 3));
    println!("  signature password: {}", pin(st.sign_pin, 5));
    if st.lifecycle == Lifecycle::Personalising {
        println!(
            "  personalisation is open: written {:?}; finish with `card issue --resume` or `card wipe`",
            st.files.iter().map(|e| format!("{:04X}", e.fid())).collect::<Vec<_>>()
        );
    }
    if st.lifecycle == Lifecycle::Issued {
        for (ef, what) in [
            (Ef::AuthCert, "authentication certificate"),
            (Ef::AuthCaCert, "authentication CA"),
            (Ef::SignCaCert, "signature CA"),
        ] {
            if st.files.contains(&ef) {
                println!("  {what}: {}", subject_of(&j.read_ef(ef)?));
            }
        }
        if st.files.contains(&Ef::SignCert) {
            println!("  signature certificate: present (readable after the signature password)");
        }
    }
    Ok(())
}

/// Runs a card command.
pub async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Readers => {
            for r in Reader::list()? {
                println!("{r}");
            }
        }
        Cmd::Wait { reader, absent } => {
            let r = Reader::open(&reader.reader)?;
            if absent {
                r.wait_absent(Duration::from_secs(reader.wait))?;
                println!("{}: empty", r.name());
            } else {
                r.wait_card(Duration::from_secs(reader.wait))?;
                println!("{}: card present", r.name());
            }
        }
        Cmd::Status { reader } => with_card(&reader, |j| {
            let st = j.status()?;
            print_status(&st, j)
        })?,
        Cmd::Issue { reader, ca, resident, resume } => {
            let a = crate::ca_cmd::open(&ca.store).await?;
            let source = crate::ca_cmd::source(&ca.national)?;
            let mode = Mode::Issue { resume };
            let r = issue_card(&reader, &a, &source, &Order::new(ca, resident, mode)?, mode).await?;
            print_report(&r);
        }
        Cmd::Renew { reader, ca, resident } => {
            let a = crate::ca_cmd::open(&ca.store).await?;
            let source = crate::ca_cmd::source(&ca.national)?;
            let r = issue_card(&reader, &a, &source, &Order::new(ca, resident, Mode::Renew)?, Mode::Renew).await?;
            print_report(&r);
            println!("the previous certificates are revoked as superseded");
        }
        Cmd::PinReset { reader, pin } => {
            let p = pin_ref(&pin)?;
            let new = pin_env(p)?;
            let master = issuer_key()?;
            with_card(&reader, |j| {
                let st = j.status()?;
                j.issuer_auth(&card_issuer_key(&master, &st.serial)?, &st.serial)?;
                j.set_pin(p, &new)?;
                println!("{} of card {} reset ({} tries)", p.name(), hex::encode(st.serial), p.max_tries());
                if p == PinRef::Sign && st.lifecycle == Lifecycle::Issued && st.sign_key.is_some() {
                    println!("the card destroyed its signature key and certificate: renew the card for a new one");
                }
                Ok(())
            })?;
        }
        Cmd::VerifyPin { reader, pin } => {
            let p = pin_ref(&pin)?;
            let value = pin_env(p)?;
            with_card(&reader, |j| {
                j.verify(p, &value)?;
                println!("{} verified ({} tries left)", p.name(), j.tries_left(p)?);
                Ok(())
            })?;
        }
        Cmd::Wipe { reader } => {
            let master = issuer_key()?;
            with_card(&reader, |j| {
                let st = j.status()?;
                if st.lifecycle != Lifecycle::Personalising {
                    bail!(
                        "card {} is {}: only an interrupted personalisation can be wiped",
                        hex::encode(st.serial),
                        st.lifecycle
                    );
                }
                j.issuer_auth(&card_issuer_key(&master, &st.serial)?, &st.serial)?;
                j.wipe()?;
                println!("card {} wiped back to blank", hex::encode(st.serial));
                Ok(())
            })?;
        }
    }
    Ok(())
}
