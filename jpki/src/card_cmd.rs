//! `jpki card …` (the municipal window's card writer) and `jpki card-sim` (the virtual card
//! behind vpcd): argument parsing, printing and dispatch; the flow itself is
//! `card::writer`. Secrets come from the environment only and are never printed: the
//! resident's PINs (`JPKI_CARD_AUTH_PIN`, `JPKI_CARD_SIGN_PIN`; typed by the resident on the
//! window's PIN pad in real life): the new PINs on issuance, the current ones on renewal.
//!
//! The window holds no CA secret: issuance, renewal, PIN resets and wipes go to the CA service
//! (`jpki serve ca`) as this window (its network credential) and this clerk (the clerk's own
//! key), see [`window::ca_client`]; the CA service answers the card's issuer challenge. Only
//! `jpki card-sim` (the card factory's side: a new blank card is made with its own issuer key)
//! reads the issuer master key `JPKI_CARD_ISSUER_KEY`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use card::applet::{Applet, CardState};
use card::jpki::{CardStatus, Ef, KeyAlg, Lifecycle, PinRef};
use card::reader::{Jpki, Reader};
use card::vpcd::{self, Ended, SimOptions};
use card::writer::{self, IssueReport, Mode, Order};
use clap::{Args, Subcommand};
use der::Decode;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use window::ca_client::CaHttps;

use crate::netargs::NetArgs;

/// Where the window's CA service is and who acts.
#[derive(Debug, Args, Clone)]
pub struct WindowArgs {
    /// The CA service (`https://HOST:PORT`).
    #[arg(long = "ca", env = "JPKI_CA_URL")]
    pub ca_url: String,
    /// The party the CA service's certificate must name.
    #[arg(long, env = "JPKI_CA_PARTY", default_value = "ca:jpki-ca")]
    pub ca_party: String,
    /// The clerk's request-signing key (PREFIX.pem, PREFIX.key from `jpki net issue --party
    /// clerk:LGCODE:ID`); passphrase from JPKI_CLERK_PASSPHRASE.
    #[arg(long, env = "JPKI_CLERK")]
    pub clerk: PathBuf,
    #[command(flatten)]
    pub net: NetArgs,
}

impl WindowArgs {
    /// Loads the window's credential and the clerk's key (passphrase from
    /// `JPKI_CLERK_PASSPHRASE`); nothing is sent yet.
    pub fn connect(&self) -> Result<CaHttps> {
        let net = self.net.load()?;
        let ca: identity::party::Party = self.ca_party.parse().context("--ca-party")?;
        let pass = net::secret::Secret::from_env("JPKI_CLERK_PASSPHRASE")?;
        let clerk = net::clerk::ClerkKey::load(&self.clerk, &pass)
            .with_context(|| format!("clerk key {}", self.clerk.display()))?;
        let client = net::client::client(&net.cred, &net.trust, Some(ca))?;
        CaHttps::new(client, &self.ca_url, net.cred.party.clone(), clerk)
    }
}

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

/// The order's flags and where the certificates come from.
#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    /// Last day of the card (YYYY-MM-DD).
    #[arg(long)]
    pub card_expiry: String,
    /// prod or test.
    #[arg(long, default_value = "prod")]
    pub env: String,
    /// Key algorithm on the card: auto (what the CA service's issuing CA certifies now:
    /// rsa2048 before a switch to P-384, p384 after), rsa2048 (what OpenSC reads) or p384
    /// (the next-generation profile).
    #[arg(long, default_value = "auto")]
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
        /// Also write the certificates to DIR (`authentication.pem`, `signature.pem`,
        /// `chain.pem`) for the clerk's records.
        #[arg(long)]
        out: Option<PathBuf>,
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
        /// Also write the certificates to DIR (as for `card issue`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the card: lifecycle, keys, PIN tries, certificates.
    Status {
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Clerk PIN reset (issuer authentication, answered by the CA for the resident): sets the
    /// new PIN from JPKI_CARD_AUTH_PIN or JPKI_CARD_SIGN_PIN and resets its counter. On an
    /// issued card a new signature password costs the signature key and certificate (renew the
    /// card for new ones).
    PinReset {
        #[command(flatten)]
        reader: ReaderArgs,
        /// 住民票コード of the card's holder.
        #[arg(long)]
        resident: String,
        /// auth or sign.
        #[arg(long)]
        pin: String,
        #[command(flatten)]
        window: WindowArgs,
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
        /// 住民票コード of the resident whose personalisation was interrupted.
        #[arg(long)]
        resident: String,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// The residents this window is to call in for a new card after a CA generation was
    /// declared compromised (`jpki ca-op emergency plan`), oldest first.
    Queue {
        #[command(flatten)]
        window: WindowArgs,
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
        // The card factory makes a blank card from the issuer master key.
        let master =
            crate::ca_serve::issuer_master()?.ok_or_else(|| anyhow!("set JPKI_CARD_ISSUER_KEY (64 hex digits)"))?;
        let s = CardState::blank(&master)?;
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

fn subject_of(cert: &[u8]) -> String {
    Certificate::from_der(cert)
        .map(|c| format!("{} (serial {})", c.tbs_certificate().subject(), c.tbs_certificate().serial_number()))
        .unwrap_or_else(|e| format!("unparsable certificate: {e}"))
}

/// The order at the window: the flags and the resident's PINs from the environment.
fn order(ca: &CaArgs, resident: String, mode: Mode) -> Result<Order> {
    let issuing = mode != Mode::Renew;
    let pin = |p| pin_env(p).map(Zeroizing::new);
    Ok(Order {
        resident,
        card_expiry: ca.card_expiry.clone(),
        env: ca.env.clone(),
        alg: ca.alg.clone(),
        no_signature: ca.no_signature,
        auth_pin: Some(pin(PinRef::Auth)?),
        sign_pin: if issuing && !ca.no_signature {
            Some(pin(PinRef::Sign)?)
        } else if issuing {
            None
        } else {
            // Renewal: needed only if the card has a signature password or gets one (the
            // writer checks which).
            pin(PinRef::Sign).ok()
        },
    })
}

/// Issues or renews through the CA service.
async fn issue(reader: ReaderArgs, ca: CaArgs, resident: String, mode: Mode) -> Result<IssueReport> {
    let mut order = order(&ca, resident, mode)?;
    let service = ca.window.connect()?;
    if order.alg == "auto" {
        order.alg = service.card_algorithm(&order.env).await?;
    }
    Ok(writer::issue(&reader.reader, Duration::from_secs(reader.wait), &order, mode, &service).await?)
}

/// Writes the certificates of an issuance as PEM files under `dir`.
fn write_out(dir: Option<&std::path::Path>, r: &IssueReport) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pem =
        |d: &[u8]| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, d).map_err(|e| anyhow!("PEM: {e}"));
    for c in &r.certificates.certificates {
        std::fs::write(dir.join(format!("{}.pem", c.kind.name())), pem(&c.der)?)?;
    }
    let chain: String = r.certificates.chain.iter().map(|d| pem(d)).collect::<Result<_>>()?;
    std::fs::write(dir.join("chain.pem"), chain)?;
    Ok(())
}

/// Prints what an issuance wrote and how long it took.
pub fn print_report(r: &IssueReport) {
    for c in &r.certificates.certificates {
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
        Cmd::Queue { window } => {
            let service = window.connect()?;
            let q = service.reissue_queue().await?;
            println!("{} residents to call in for a new card", q.len());
            for e in &q {
                println!("  {}  ({} g{} compromised; queued {})", e.resident, e.ca, e.generation, e.queued_at);
            }
        }
        Cmd::Status { reader } => with_card(&reader, |j| {
            let st = j.status()?;
            print_status(&st, j)
        })?,
        Cmd::Issue { reader, ca, resident, resume, out } => {
            let r = issue(reader, ca, resident, Mode::Issue { resume }).await?;
            print_report(&r);
            write_out(out.as_deref(), &r)?;
        }
        Cmd::Renew { reader, ca, resident, out } => {
            let r = issue(reader, ca, resident, Mode::Renew).await?;
            print_report(&r);
            write_out(out.as_deref(), &r)?;
            println!("the previous certificates are revoked as superseded");
        }
        Cmd::PinReset { reader, resident, pin, window } => {
            let p = pin_ref(&pin)?;
            let new = Zeroizing::new(pin_env(p)?);
            let service = window.connect()?;
            let wait = Duration::from_secs(reader.wait);
            let r = writer::pin_reset(&reader.reader, wait, &resident, p, &new, &service).await?;
            println!("{} of card {} reset ({} tries)", p.name(), r.serial, p.max_tries());
            if r.signature_key_destroyed {
                println!("the card destroyed its signature key and certificate: renew the card for a new one");
            }
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
        Cmd::Wipe { reader, resident, window } => {
            let service = window.connect()?;
            let serial = writer::wipe(&reader.reader, Duration::from_secs(reader.wait), &resident, &service).await?;
            println!("card {serial} wiped back to blank");
        }
    }
    Ok(())
}
