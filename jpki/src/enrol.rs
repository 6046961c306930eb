//! Responder enrolment at the CA service, one code path for `jpki validator enroll` and for a
//! running validator or OCSP signer that enrols a CA generation created after it started
//! (`--auto-enroll`, docs/validator.md "Responders"): a responder key generated in the
//! responder directory (encrypted PKCS#8, JPKI_VALIDATOR_PASSPHRASE), a CSR signed with it, and
//! `POST /v1/responders` with the process's own `validator:<name>` credential for the delegated
//! responder certificate. A directory lock (`.enroll.lock`) keeps processes that share a
//! directory from writing over each other's keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use ca::key::{KeyAlgorithm, SoftKey};
use ca::service::CaCertBody;
use clap::Args;
use net::secret::Secret;
use tokio::time::Instant;
use validator::responder::{Responder, Service};

use crate::ca_remote::answer;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How a running validator (or OCSP signer) enrols CA generations created after it started.
#[derive(Debug, Clone, Args)]
pub struct AutoEnrollArgs {
    /// Enrol, while running, every live CA generation without a responder here (a new
    /// prefecture's CA, a rollover's new key), as `jpki validator enroll` would, and serve it
    /// without a restart. Default: on with --ca-service (the service that certifies
    /// responders), and it needs --ca-service.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub auto_enroll: Option<bool>,
    /// Seconds between two reads of the CA service's list of generations; a request naming an
    /// issuer without a responder makes the next read come sooner (at most one read per 2 s).
    #[arg(long, default_value_t = 60)]
    pub auto_enroll_interval_secs: u64,
    /// Validity of the responder certificates enrolled while running (days, at most 366).
    #[arg(long, default_value_t = 90)]
    pub enroll_days: i64,
    /// Key algorithm of the responder keys enrolled while running (as `validator enroll
    /// --algorithm`).
    #[arg(long, default_value = "ca")]
    pub enroll_algorithm: String,
}

impl AutoEnrollArgs {
    /// Whether to enrol while running, given the CA service the status is read from (if any).
    pub(crate) fn enabled(&self, ca_service: Option<&str>) -> Result<bool> {
        match (self.auto_enroll, ca_service) {
            (Some(true), None) => {
                bail!("--auto-enroll needs --ca-service (the CA service certifies the responders)")
            }
            (Some(on), _) => Ok(on),
            (None, service) => Ok(service.is_some()),
        }
    }
}

/// A CA generation's responder files in `dir`: `<ca>-g<n>.key` and `<ca>-g<n>.pem`.
fn key_path(dir: &Path, c: &CaCertBody) -> PathBuf {
    dir.join(format!("{}-g{}.key", c.ca, c.generation))
}

/// Whether a generation still has certificates to answer for (pending, issuing or retired).
pub(crate) fn live(c: &CaCertBody) -> bool {
    matches!(c.state.as_str(), "pending" | "issuing" | "retired")
}

/// What [`Enroller::enrol`] did.
#[derive(Debug)]
pub(crate) enum Enrolled {
    /// A certificate was issued (serial, hex) for the key at the path.
    Issued { serial: String, key: PathBuf },
    /// The directory already held a key and a certificate for the generation.
    Present { key: PathBuf },
}

impl Enrolled {
    /// The key file (its certificate is beside it, `.pem`).
    pub(crate) fn key(&self) -> &Path {
        match self {
            Enrolled::Issued { key, .. } | Enrolled::Present { key } => key,
        }
    }
}

/// An exclusive lock on a responder directory (`flock` on `.enroll.lock`), released on drop.
struct DirLock(std::fs::File);

impl DirLock {
    async fn take(dir: &Path) -> Result<DirLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(".enroll.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(DirLock(f)),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    bail!("{} is held by another process for more than 60 s", path.display())
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Enrols responders at one CA service into one directory.
pub(crate) struct Enroller {
    client: reqwest::Client,
    base: String,
    dir: PathBuf,
    days: i64,
    fixed: Option<KeyAlgorithm>,
    pass: Secret,
}

impl std::fmt::Debug for Enroller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enroller").field("ca", &self.base).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Enroller {
    /// An enroller at the CA service `ca_url` (pinned as `ca_party`), with the credential
    /// `net` (a `validator:<name>` party), writing into `dir`: certificates valid `days`, keys in
    /// `algorithm` (`ca`: the algorithm of the generation answered for), sealed with `pass`.
    pub(crate) fn new(
        ca_url: &str,
        ca_party: &str,
        net: &crate::netargs::Net,
        dir: &Path,
        days: i64,
        algorithm: &str,
        pass: Secret,
    ) -> Result<Enroller> {
        let fixed = match algorithm {
            "ca" => None,
            name => Some(KeyAlgorithm::parse(name)?),
        };
        net::client::require_https(ca_url)?;
        let client = net::client::client(&net.cred, &net.trust, Some(ca_party.parse().context("--ca-party")?))?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Enroller {
            client,
            base: ca_url.trim_end_matches('/').to_owned(),
            dir: dir.to_path_buf(),
            days,
            fixed,
            pass,
        })
    }

    /// Every CA generation the CA service lists (`GET /v1/status/ca-certificates`), with its
    /// key state.
    pub(crate) async fn generations(&self) -> Result<Vec<CaCertBody>> {
        let r = self.client.get(format!("{}/v1/status/ca-certificates", self.base)).send().await?;
        Ok(serde_json::from_str(&answer(r).await?)?)
    }

    /// Enrols generation `c` unless the directory already holds its key and certificate: a
    /// responder key (new, or the key of an enrolment that stopped before its certificate
    /// arrived), a CSR signed with it, `POST /v1/responders`, the certificate written beside
    /// the key. Under the directory's lock, so two processes never write one generation's files.
    pub(crate) async fn enrol(&self, c: &CaCertBody) -> Result<Enrolled> {
        let _lock = DirLock::take(&self.dir).await?;
        let key_path = key_path(&self.dir, c);
        let cert_path = key_path.with_extension("pem");
        let key = match (key_path.exists(), cert_path.exists()) {
            (true, true) => return Ok(Enrolled::Present { key: key_path }),
            // Ours (the lock is held): an enrolment that stopped between the key and its
            // certificate (the CA service refused or did not answer). The key is used again.
            (true, false) => SoftKey::load(&key_path, &self.pass)?,
            (false, _) => {
                let alg = match self.fixed {
                    Some(alg) => alg,
                    None => {
                        use der::{Decode, Encode};
                        let der = B64.decode(&c.certificate).context("the CA certificate is not base64")?;
                        let cert = x509_cert::Certificate::from_der(&der).context("the CA certificate")?;
                        KeyAlgorithm::of_spki(&cert.tbs_certificate().subject_public_key_info().to_der()?)?
                    }
                };
                SoftKey::create(&key_path, alg, &self.pass)?
            }
        };
        // The request is signed through the key backend, in the algorithm the CA's proof of
        // possession expects (ecdsa-with-SHA384 for P-384, ML-DSA-65 for ML-DSA).
        let subject = format!("CN=OCSP responder {} g{},O=JPKI,C=JP", c.ca, c.generation)
            .parse()
            .map_err(|e| anyhow::anyhow!("subject: {e}"))?;
        let csr = ca::key::csr(&key, subject)?;
        let body = ca::service::ResponderBody {
            ca: c.ca.clone(),
            csr: B64.encode(csr),
            days: self.days,
            generation: Some(c.generation),
        };
        let r: ca::service::ResponderAnswer = serde_json::from_str(
            &answer(self.client.post(format!("{}/v1/responders", self.base)).json(&body).send().await?).await?,
        )?;
        let der = B64.decode(&r.certificate).context("the responder certificate is not base64")?;
        let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der)
            .map_err(|e| anyhow::anyhow!("PEM: {e}"))?;
        ca::key::write_durably(&cert_path, pem.as_bytes())?;
        Ok(Enrolled::Issued { serial: r.serial, key: key_path })
    }

    /// Enrols generation `c` ([`Enroller::enrol`]) and adds its responder to the running
    /// service `svc` (checked as at start-up, then pre-signed). Returns the certificate's
    /// serial if one was issued now, and the number of certificates pre-signed.
    async fn enrol_into(&self, svc: &Arc<Service>, c: &CaCertBody) -> Result<(Option<String>, usize)> {
        let e = self.enrol(c).await?;
        let r = load_responder(e.key(), &self.pass)?;
        let n = svc.add_responder(r, identity::http::now()).await?.unwrap_or(0);
        Ok((if let Enrolled::Issued { serial, .. } = e { Some(serial) } else { None }, n))
    }
}

/// A responder key (`.key`, encrypted) and its certificate (`.pem` beside it).
pub(crate) fn load_responder(key_path: &Path, pass: &Secret) -> Result<Responder> {
    let cert_path = key_path.with_extension("pem");
    let key = SoftKey::load(key_path, pass)?;
    let pem = std::fs::read(&cert_path).with_context(|| format!("cannot read {}", cert_path.display()))?;
    let (_, der) = der::pem::decode_vec(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?;
    Responder::new(Arc::new(key), &der).with_context(|| format!("{}", cert_path.display()))
}

/// The least time between two reads of the CA service's list of generations.
const MIN_GAP: Duration = Duration::from_secs(2);
/// The first wait before a failed enrolment is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait between two tries of one generation.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A generation whose enrolment failed: when to try again, and how long the wait after the
/// next failure.
struct Backoff {
    next: Instant,
    delay: Duration,
    attempts: u32,
}

/// Runs for the life of the process: enrols every live CA generation the CA service lists that
/// `svc` has no responder for, and adds it to `svc`. It reads the list at start, every
/// `interval`, and when a request names an issuer without a responder (at most once per
/// [`MIN_GAP`], however many such requests). A failure is logged and that generation tried
/// again after a back-off (2 s, doubling up to 5 min); meanwhile its requests are answered
/// `unauthorized`, and other generations are answered as before.
pub(crate) async fn auto_enroll(svc: Arc<Service>, e: Enroller, interval: Duration) {
    let mut backoff: HashMap<(String, i64), Backoff> = HashMap::new();
    let mut last: Option<Instant> = None;
    loop {
        if let Some(t) = last {
            let due = backoff.values().map(|b| b.next).min().map_or(t + interval, |n| n.min(t + interval));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = svc.unknown_issuer_asked() => {}
            }
            tokio::time::sleep_until(t + MIN_GAP).await;
        }
        last = Some(Instant::now());
        let list = match e.generations().await {
            Ok(l) => l,
            Err(err) => {
                tracing::warn!(error = %err, "auto-enroll: cannot read the CA service's generations; tried again later");
                continue;
            }
        };
        for c in list.iter().filter(|c| live(c)) {
            if svc.serves(&c.ca, c.generation) {
                backoff.remove(&(c.ca.clone(), c.generation));
                continue;
            }
            let k = (c.ca.clone(), c.generation);
            if backoff.get(&k).is_some_and(|b| b.next > Instant::now()) {
                continue;
            }
            match e.enrol_into(&svc, c).await {
                Ok((serial, presigned)) => {
                    backoff.remove(&k);
                    metrics::counter!("jpki_validator_enrolments_total", "result" => "enrolled").increment(1);
                    tracing::info!(
                        ca = %c.ca,
                        generation = c.generation,
                        responder_serial = serial.as_deref().unwrap_or("(already in the directory)"),
                        presigned,
                        "auto-enroll: responder enrolled and serving, without a restart"
                    );
                }
                Err(err) => {
                    metrics::counter!("jpki_validator_enrolments_total", "result" => "failed").increment(1);
                    let b =
                        backoff.entry(k).or_insert(Backoff { next: Instant::now(), delay: FIRST_BACKOFF, attempts: 0 });
                    b.attempts += 1;
                    b.next = Instant::now() + b.delay;
                    tracing::warn!(
                        ca = %c.ca,
                        generation = c.generation,
                        attempt = b.attempts,
                        retry_in_secs = b.delay.as_secs(),
                        error = %format!("{err:#}"),
                        "auto-enroll: enrolment failed; the generation is answered unauthorized until it succeeds"
                    );
                    b.delay = (b.delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
