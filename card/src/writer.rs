//! The municipal window's card writer: personalisation ([`issue`], renewal included), the
//! clerk's PIN reset ([`pin_reset`]) and the wipe of an interrupted personalisation ([`wipe`]),
//! over [`reader::Jpki`](crate::reader::Jpki), with the CA service behind [`CaClient`].
//!
//! The writer holds no CA secret and no issuer key: the CA service answers the card's
//! issuer-authentication challenge (it derives the card's own key from the master it alone
//! holds and the card serial) and issues the certificates. Every input of an order is checked
//! before the reader is opened ([`Order::validate`]), so a typo never leaves a card half-done.
//! The byte contract is `docs/card-profile.md`.

use std::time::{Duration, Instant};

use der::{Decode, Encode};
use sha2::Digest;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use zeroize::Zeroizing;

use crate::jpki::{KeyAlg, KeyRef, Lifecycle, PinRef, TOKEN_LABEL, TokenInfo, presence_flags};
use crate::reader::{Connection, Jpki, Reader, pcsc_err};
use crate::{Error, Result};

/// Why the window asks the CA service to authenticate as the card issuer (audited by the CA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerPurpose {
    /// A first issuance.
    Issue,
    /// Finishing an interrupted first issuance (`card issue --resume`).
    Resume,
    /// New keys and certificates on an issued card.
    Renew,
    /// The clerk's PIN reset.
    PinReset,
    /// Wiping an interrupted personalisation back to blank.
    Wipe,
}

/// A certificate request for one card (identity items are never in it: the CA reads them from
/// the identity network).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardRequest {
    /// Idempotency key, `card-{serial hex}-{first 8 bytes of SHA-256 over the SPKIs, hex}`
    /// ([`request_id`]): a resumed issuance gets the same certificates.
    pub request_id: String,
    /// 住民票コード.
    pub resident: String,
    /// Card serial, hex.
    pub card_serial: String,
    /// Last day of the card, `YYYY-MM-DD` (checked by the writer before the card is touched).
    pub card_expiry: String,
    /// `prod` or `test` (checked by the writer before the card is touched).
    pub environment: String,
    /// A renewal (the CA supersedes the card's previous certificates).
    pub renew: bool,
    /// DER PKCS#10 for the signature key, signed on the card (base64 on the wire).
    #[serde(with = "b64_opt", default, skip_serializing_if = "Option::is_none")]
    pub signature_csr: Option<Vec<u8>>,
    /// DER PKCS#10 for the authentication key, signed on the card (base64 on the wire).
    #[serde(with = "b64_opt", default, skip_serializing_if = "Option::is_none")]
    pub authentication_csr: Option<Vec<u8>>,
}

/// One certificate for a card key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardCert {
    /// The key it certifies.
    pub kind: KeyRef,
    /// Serial, hex.
    pub serial: String,
    /// DER (base64 on the wire).
    #[serde(with = "b64")]
    pub der: Vec<u8>,
}

/// What the CA service issued for a card.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardCerts {
    /// One per requested key.
    pub certificates: Vec<CardCert>,
    /// The issuing CA certificates, then the roots (DER; base64 on the wire).
    #[serde(with = "b64_vec")]
    pub chain: Vec<Vec<u8>>,
}

impl CardCerts {
    /// The certificate for a key.
    pub fn get(&self, kind: KeyRef) -> Option<&CardCert> {
        self.certificates.iter().find(|c| c.kind == kind)
    }
}

/// What the CA service answered when it did not issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A decision (e.g. `resident_unknown`, `not_own_municipality`, `too_young`): asking again
    /// gets the same answer.
    #[error("refused ({code}): {detail}")]
    Refused {
        /// Stable code.
        code: String,
        /// For the clerk.
        detail: String,
    },
    /// No answer: the request may be retried.
    #[error("the CA service is unreachable: {0}")]
    Unavailable(String),
    /// The CA service failed, or answered something unusable.
    #[error("the CA service failed: {0}")]
    Failed(String),
}

/// The window's view of the CA service. Production: an HTTPS client of `jpki serve ca` (jpki
/// crate). Tests: an in-process double inside unit tests only.
#[allow(async_fn_in_trait)] // the window runs one card at a time; no Send bound is needed
pub trait CaClient {
    /// The issuer's answer (32-byte MAC) to the card's challenge; the CA derives the card's own
    /// issuer key from its master and the serial. `resident` is `Some` for Issue, Resume, Renew
    /// and PinReset.
    async fn issuer_auth(
        &self,
        purpose: IssuerPurpose,
        resident: Option<&str>,
        serial: &[u8],
        challenge: &[u8],
    ) -> Result<Vec<u8>, CaError>;
    /// Certificates for the card's keys (idempotent by `request_id`).
    async fn issue(&self, req: &CardRequest) -> Result<CardCerts, CaError>;
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

impl Mode {
    fn purpose(self) -> IssuerPurpose {
        match self {
            Mode::Issue { resume: false } => IssuerPurpose::Issue,
            Mode::Issue { resume: true } => IssuerPurpose::Resume,
            Mode::Renew => IssuerPurpose::Renew,
        }
    }
}

/// One card order at the window, as typed (checked by [`Order::validate`]).
pub struct Order {
    /// 住民票コード (11 digits).
    pub resident: String,
    /// Last day of the card, `YYYY-MM-DD`, not in the past.
    pub card_expiry: String,
    /// `prod` or `test`.
    pub env: String,
    /// `rsa2048` or `p384`.
    pub alg: String,
    /// Authentication certificate only (a resident under 15).
    pub no_signature: bool,
    /// Issuance: the new authentication PIN. Renewal: the resident's current one.
    pub auth_pin: Option<Zeroizing<String>>,
    /// Issuance: the new signature password (none under 15). Renewal: the current one (needed
    /// when the card has a signature password), or a new one for a card that has none.
    pub sign_pin: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Order {
    /// PINs are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Order")
            .field("resident", &self.resident)
            .field("card_expiry", &self.card_expiry)
            .field("env", &self.env)
            .field("alg", &self.alg)
            .field("no_signature", &self.no_signature)
            .field("auth_pin", &self.auth_pin.as_ref().map(|_| "…"))
            .field("sign_pin", &self.sign_pin.as_ref().map(|_| "…"))
            .finish()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput { field, reason: reason.into() }
}

/// A resident code's syntax: 11 digits. (Its check digit is the identity network's to judge;
/// the card crate does not depend on it.)
pub fn check_resident(resident: &str) -> Result<()> {
    if resident.len() == 11 && resident.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid("resident", format!("{resident:?} is not a 住民票コード (11 digits)")))
    }
}

fn check_pin(field: &'static str, p: PinRef, pin: &str) -> Result<()> {
    p.normalize(pin).map(drop).map_err(|e| invalid(field, e.to_string()))
}

/// Today in Japan (card expiry dates are JST calendar days).
pub fn today_jst() -> time::Date {
    time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+9)).date()
}

impl Order {
    /// Checks every input against its rule, as of `today`: the resident code's syntax, the card
    /// expiry (a real `YYYY-MM-DD` date, not before `today`), the environment, the key algorithm
    /// and the PINs' formats (those the mode needs must be there). Returns the key algorithm.
    pub fn validate(&self, mode: Mode, today: time::Date) -> Result<KeyAlg> {
        check_resident(&self.resident)?;
        let expiry = time::Date::parse(&self.card_expiry, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|e| invalid("card_expiry", format!("{:?} is not a YYYY-MM-DD date: {e}", self.card_expiry)))?;
        if expiry < today {
            return Err(invalid("card_expiry", format!("{expiry} is in the past (today is {today})")));
        }
        if !matches!(self.env.as_str(), "prod" | "test") {
            return Err(invalid("env", format!("{:?}: prod or test", self.env)));
        }
        let alg = KeyAlg::parse(&self.alg).ok_or_else(|| invalid("alg", format!("{:?}: rsa2048 or p384", self.alg)))?;
        match &self.auth_pin {
            Some(pin) => check_pin("auth_pin", PinRef::Auth, pin)?,
            None => return Err(invalid("auth_pin", "the authentication PIN is needed")),
        }
        match (&self.sign_pin, mode, self.no_signature) {
            (Some(pin), _, _) if !(matches!(mode, Mode::Issue { .. }) && self.no_signature) => {
                check_pin("sign_pin", PinRef::Sign, pin)?;
            }
            (Some(_), _, _) => {
                return Err(invalid("sign_pin", "a card without a signature key gets no signature password"));
            }
            (None, Mode::Issue { .. }, false) => {
                return Err(invalid("sign_pin", "the signature password is needed (or no signature key)"));
            }
            (None, _, _) => {}
        }
        Ok(alg)
    }
}

/// What a card issuance did, for the clerk and the benchmark.
#[derive(Debug)]
pub struct IssueReport {
    /// Card serial, hex.
    pub serial: String,
    /// APDUs sent.
    pub apdus: u32,
    /// Whole issuance.
    pub total: Duration,
    /// On-card key generation.
    pub keygen: Duration,
    /// The CA service's part of the issuance (identity lookup, signing, storing).
    pub ca: Duration,
    /// The certificates written, and the chain they came with.
    pub certificates: CardCerts,
}

/// The request id of a card and its key set: `card-{serial}-{first 8 bytes of SHA-256 over
/// the SPKIs in order, hex}`. The same keys give the same id, so a resumed issuance gets the
/// same certificates.
pub fn request_id(serial: &[u8], spkis: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for s in spkis {
        h.update(s);
    }
    format!("card-{}-{}", hex::encode(serial), hex::encode(&h.finalize()[..8]))
}

/// Finds, in `chain`, the CA certificate whose subjectKeyIdentifier is the `leaf`'s
/// authorityKeyIdentifier keyIdentifier (RFC 5280 §4.2.1.1, §4.2.1.2).
pub fn issuer_of<'a>(leaf: &[u8], chain: &'a [Vec<u8>]) -> Result<&'a [u8]> {
    let bad = |m: String| Error::Ca { op: "issue usable certificates", source: CaError::Failed(m), wiped: false };
    let leaf = Certificate::from_der(leaf)?;
    let aki = leaf
        .tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()?
        .and_then(|(_, a)| a.key_identifier)
        .ok_or_else(|| bad("a certificate has no authority key identifier".into()))?;
    for c in chain {
        let cert = Certificate::from_der(c)?;
        if let Some((_, ski)) = cert.tbs_certificate().get_extension::<SubjectKeyIdentifier>()?
            && ski.0.as_bytes() == aki.as_bytes()
        {
            return Ok(c);
        }
    }
    Err(bad(format!("the chain has no CA certificate with key identifier {}", hex::encode(aki.as_bytes()))))
}

/// Checks the CA's answer against what was asked before anything is written: one certificate
/// per requested key, each for the card's own public key, each with its CA in the chain.
fn check_certs(certs: &CardCerts, spkis: &[(KeyRef, Vec<u8>)]) -> Result<()> {
    let bad = |m: String| Error::Ca { op: "issue usable certificates", source: CaError::Failed(m), wiped: false };
    for (k, spki) in spkis {
        let mut of_k = certs.certificates.iter().filter(|c| c.kind == *k);
        let c = of_k.next().ok_or_else(|| bad(format!("no {} certificate", k.name())))?;
        if of_k.next().is_some() {
            return Err(bad(format!("two {} certificates", k.name())));
        }
        let x = Certificate::from_der(&c.der)?;
        if x.tbs_certificate().subject_public_key_info().to_der()? != *spki {
            return Err(bad(format!("the {} certificate is not for the card's key", k.name())));
        }
        issuer_of(&c.der, &certs.chain)?;
    }
    if let Some(c) = certs.certificates.iter().find(|c| !spkis.iter().any(|(k, _)| *k == c.kind)) {
        return Err(bad(format!("an unrequested {} certificate", c.kind.name())));
    }
    Ok(())
}

/// The reader, a card in it, connected.
fn connect(reader: &str, wait: Duration) -> Result<Connection> {
    let r = Reader::open(reader)?;
    r.wait_card(wait)?;
    r.connect()
}

fn select(j: &mut Jpki<'_>) -> Result<()> {
    j.select_ap().map_err(|e| match e {
        Error::Card { status, .. } => Error::NotJpki(status),
        e => e,
    })
}

/// Issuer authentication with the CA service's answer to the card's challenge.
async fn authenticate(
    j: &mut Jpki<'_>,
    ca: &impl CaClient,
    purpose: IssuerPurpose,
    resident: Option<&str>,
    serial: &[u8],
) -> Result<()> {
    let challenge = j.get_challenge()?;
    let mac = ca.issuer_auth(purpose, resident, serial, &challenge).await.map_err(|source| Error::Ca {
        op: "authenticate as the card issuer",
        source,
        wiped: false,
    })?;
    j.external_authenticate(&mac)
}

/// Ends the transaction of a successful session (then [`Connection::finish`] resets the card,
/// so no issuer or PIN session outlives the writer).
fn end(tx: pcsc::Transaction<'_>) -> Result<()> {
    tx.end(pcsc::Disposition::LeaveCard).map_err(|(_, e)| pcsc_err("releasing the card", e))
}

/// A step of an issuance, reported as it completes (the window's page shows them live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A JPKI card is in the reader and locked for this issuance.
    CardDetected,
    /// The key pairs were generated on the card (or, on a resume, found there).
    KeysGenerated,
    /// The CA service issued the certificates, checked against the card's keys.
    CertificatesIssued,
    /// The certificates, CA certificates and token files were written.
    Written,
    /// Every written file was read back from the card and is what was written;
    /// personalisation is closed.
    Checked,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] =
        [Step::CardDetected, Step::KeysGenerated, Step::CertificatesIssued, Step::Written, Step::Checked];
}

/// Issues (or renews) the card in `reader`, waiting up to `wait` for it. The order is checked
/// first ([`Order::validate`], as of [`today_jst`]); then everything on the card happens inside
/// one PC/SC transaction. The CA call is idempotent per card and key set ([`request_id`]), so a
/// resumed issuance gets the same certificates. A refused first issuance wipes the card back
/// to blank; a refused renewal keeps personalisation open (its old keys are gone; resume it).
pub async fn issue(reader: &str, wait: Duration, order: &Order, mode: Mode, ca: &impl CaClient) -> Result<IssueReport> {
    issue_with_progress(reader, wait, order, mode, ca, &|_| {}).await
}

/// [`issue`], calling `progress` as each [`Step`] completes.
pub async fn issue_with_progress(
    reader: &str,
    wait: Duration,
    order: &Order,
    mode: Mode,
    ca: &impl CaClient,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<IssueReport> {
    let start = Instant::now();
    let alg = order.validate(mode, today_jst())?;
    let resident = order.resident.as_str();
    let (auth_pin, sign_pin) = (order.auth_pin.as_deref(), order.sign_pin.as_deref());
    let mut conn = connect(reader, wait)?;
    let tx = conn.transaction().map_err(|e| pcsc_err("locking the card", e))?;
    let mut j = Jpki::new(&tx);
    select(&mut j)?;
    let st = j.status()?;
    let serial = hex::encode(st.serial);
    let wrong = |hint| Error::WrongLifecycle { serial: serial.clone(), lifecycle: st.lifecycle, hint };
    match (mode, st.lifecycle) {
        (Mode::Issue { .. }, Lifecycle::Issued) => return Err(Error::AlreadyIssued(serial)),
        (Mode::Issue { resume: false }, Lifecycle::Personalising) => return Err(Error::Interrupted(serial)),
        (Mode::Issue { resume: true }, Lifecycle::Blank) => return Err(wrong("nothing to resume")),
        (Mode::Renew, Lifecycle::Blank) => return Err(wrong("issue it first")),
        _ => {}
    }
    progress(Step::CardDetected);
    let kinds: &[KeyRef] = if order.no_signature { &[KeyRef::Auth] } else { &KeyRef::BOTH };
    if mode == Mode::Renew {
        // The resident's consent: the card reopens an issued card only with the PIN of every
        // key on it verified in this session, and then destroys those keys. We verify every
        // PIN the card has: a signature password reset at the window left the card without
        // its signature key, and the new key's CSR needs that password verified.
        let current = [(PinRef::Auth, st.auth_pin, auth_pin), (PinRef::Sign, st.sign_pin, sign_pin)];
        for (p, on_card, pin) in current {
            if on_card.is_some() {
                let pin = pin.ok_or(Error::PinNeeded { op: "renewal", pin: p.name() })?;
                j.verify(p, pin)?;
            }
        }
        // A new signature key on a card without a signature password needs a new one.
        if kinds.contains(&KeyRef::Sign) && st.sign_pin.is_none() && sign_pin.is_none() {
            return Err(Error::PinNeeded { op: "a new signature key", pin: PinRef::Sign.name() });
        }
    }
    authenticate(&mut j, ca, mode.purpose(), Some(resident), &st.serial).await?;
    j.open_personalisation()?;
    let mut keygen = Duration::ZERO;
    let mut spkis = Vec::new();
    for &k in kinds {
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
    progress(Step::KeysGenerated);
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
    let csr_of = |k: KeyRef| csrs.iter().find(|(x, _)| *x == k).map(|(_, c)| c.clone());
    let req = CardRequest {
        request_id: request_id(&st.serial, &spkis.iter().map(|(_, s)| s.as_slice()).collect::<Vec<_>>()),
        resident: resident.to_owned(),
        card_serial: serial.clone(),
        card_expiry: order.card_expiry.clone(),
        environment: order.env.clone(),
        renew: mode == Mode::Renew,
        signature_csr: csr_of(KeyRef::Sign),
        authentication_csr: csr_of(KeyRef::Auth),
    };
    let t = Instant::now();
    let certs = match ca.issue(&req).await {
        Ok(c) => c,
        Err(source) => {
            // Nothing was written yet: a first issuance goes back to a blank card, so the
            // refusal leaves nothing half-done. (A renewal keeps personalisation open: its old
            // keys are gone; `card issue --resume` finishes it.)
            let wiped = matches!(mode, Mode::Issue { .. }) && j.wipe().is_ok();
            return Err(Error::Ca { op: "issue the certificates", source, wiped });
        }
    };
    let ca_time = t.elapsed();
    check_certs(&certs, &spkis)?;
    progress(Step::CertificatesIssued);
    let mut written: Vec<(crate::jpki::Ef, Vec<u8>)> = Vec::new();
    for c in &certs.certificates {
        written.push((c.kind.cert(), c.der.clone()));
        written.push((c.kind.ca_cert(), issuer_of(&c.der, &certs.chain)?.to_vec()));
    }
    let info = TokenInfo {
        label: TOKEN_LABEL.into(),
        manufacturer: "jpki-rs".into(),
        model: "JPKI virtual".into(),
        serial: serial.clone(),
    };
    written.push((crate::jpki::Ef::TokenInfo, info.encode()));
    let present = |k| certs.get(k).is_some();
    written.push((crate::jpki::Ef::Presence, presence_flags(present(KeyRef::Sign), present(KeyRef::Auth)).to_vec()));
    for (ef, bytes) in &written {
        j.write_ef(*ef, bytes)?;
    }
    progress(Step::Written);
    // Read back before closing: a write the card acknowledged but did not keep is caught
    // while personalisation can still be finished or wiped.
    for (ef, bytes) in &written {
        if j.read_ef(*ef)? != *bytes {
            return Err(Error::ReadBack { serial, file: format!("EF {:04X}", ef.fid()) });
        }
    }
    j.close_personalisation()?;
    progress(Step::Checked);
    let apdus = j.apdus;
    end(tx)?;
    conn.finish()?;
    Ok(IssueReport { serial, apdus, total: start.elapsed(), keygen, ca: ca_time, certificates: certs })
}

/// The card in `reader` (waiting up to `wait`): its status, read without changing anything.
pub fn card_status(reader: &str, wait: Duration) -> Result<crate::jpki::CardStatus> {
    let mut conn = connect(reader, wait)?;
    let tx = conn.transaction().map_err(|e| pcsc_err("locking the card", e))?;
    let mut j = Jpki::new(&tx);
    select(&mut j)?;
    let st = j.status()?;
    end(tx)?;
    conn.finish()?;
    Ok(st)
}

/// What a PIN reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinReset {
    /// Card serial, hex.
    pub serial: String,
    /// The card destroyed its signature key and certificate (a new signature password on an
    /// issued card): a renewal brings new ones.
    pub signature_key_destroyed: bool,
}

/// The clerk's PIN reset: issuer authentication (answered by the CA service for `resident`),
/// then the new PIN with its counter at the maximum. On an issued card a new signature
/// password costs the signature key and certificate (`docs/card-profile.md`).
pub async fn pin_reset(
    reader: &str,
    wait: Duration,
    resident: &str,
    pin: PinRef,
    new_pin: &str,
    ca: &impl CaClient,
) -> Result<PinReset> {
    check_resident(resident)?;
    check_pin("new PIN", pin, new_pin)?;
    let mut conn = connect(reader, wait)?;
    let tx = conn.transaction().map_err(|e| pcsc_err("locking the card", e))?;
    let mut j = Jpki::new(&tx);
    select(&mut j)?;
    let st = j.status()?;
    authenticate(&mut j, ca, IssuerPurpose::PinReset, Some(resident), &st.serial).await?;
    j.set_pin(pin, new_pin)?;
    let destroyed = pin == PinRef::Sign && st.lifecycle == Lifecycle::Issued && st.sign_key.is_some();
    end(tx)?;
    conn.finish()?;
    Ok(PinReset { serial: hex::encode(st.serial), signature_key_destroyed: destroyed })
}

/// Wipes an interrupted personalisation back to a blank card (an issued or blank card is
/// refused before issuer authentication). Returns the card serial, hex.
pub async fn wipe(reader: &str, wait: Duration, resident: &str, ca: &impl CaClient) -> Result<String> {
    check_resident(resident)?;
    let mut conn = connect(reader, wait)?;
    let tx = conn.transaction().map_err(|e| pcsc_err("locking the card", e))?;
    let mut j = Jpki::new(&tx);
    select(&mut j)?;
    let st = j.status()?;
    let serial = hex::encode(st.serial);
    if st.lifecycle != Lifecycle::Personalising {
        return Err(Error::WrongLifecycle {
            serial,
            lifecycle: st.lifecycle,
            hint: "only an interrupted personalisation can be wiped",
        });
    }
    authenticate(&mut j, ca, IssuerPurpose::Wipe, Some(resident), &st.serial).await?;
    j.wipe()?;
    end(tx)?;
    conn.finish()?;
    Ok(serial)
}

/// Base64 (standard alphabet, padded) for DER on the wire.
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// [`b64`] for an optional field.
mod b64_opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = serde::Deserialize::deserialize(d)?;
        s.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// [`b64`] for a list.
mod b64_vec {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| STANDARD.encode(d)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v: Vec<String> = serde::Deserialize::deserialize(d)?;
        v.into_iter().map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            resident: "12345678903".into(),
            card_expiry: "2035-12-31".into(),
            env: "prod".into(),
            alg: "rsa2048".into(),
            no_signature: false,
            auth_pin: Some(Zeroizing::new("1234".into())),
            sign_pin: Some(Zeroizing::new("ABC123".into())),
        }
    }

    const TODAY: time::Date = time::macros::date!(2026 - 03 - 01);
    const ISSUE: Mode = Mode::Issue { resume: false };

    fn field_of(e: Error) -> &'static str {
        match e {
            Error::InvalidInput { field, .. } => field,
            e => panic!("not an input error: {e}"),
        }
    }

    /// A CA double that must never be reached.
    struct Unreachable;

    impl CaClient for Unreachable {
        async fn issuer_auth(&self, _: IssuerPurpose, _: Option<&str>, _: &[u8], _: &[u8]) -> Result<Vec<u8>, CaError> {
            panic!("the CA was asked")
        }
        async fn issue(&self, _: &CardRequest) -> Result<CardCerts, CaError> {
            panic!("the CA was asked")
        }
    }

    #[test]
    fn a_good_order_passes() {
        assert_eq!(order().validate(ISSUE, TODAY).unwrap(), KeyAlg::Rsa2048);
        let o = Order { alg: "p384".into(), env: "test".into(), card_expiry: "2026-03-01".into(), ..order() };
        assert_eq!(o.validate(Mode::Renew, TODAY).unwrap(), KeyAlg::EcP384);
        let child = Order { no_signature: true, sign_pin: None, ..order() };
        child.validate(ISSUE, TODAY).unwrap();
        // Renewal: the signature password may be absent (the card may have none).
        Order { sign_pin: None, ..order() }.validate(Mode::Renew, TODAY).unwrap();
    }

    #[test]
    fn every_bad_input_is_named() {
        let cases: [(Order, &str); 12] = [
            (Order { resident: "1234567890".into(), ..order() }, "resident"),
            (Order { resident: "1234567890a".into(), ..order() }, "resident"),
            (Order { card_expiry: "2035-02-30".into(), ..order() }, "card_expiry"),
            (Order { card_expiry: "2035/12/31".into(), ..order() }, "card_expiry"),
            (Order { card_expiry: "35-12-31".into(), ..order() }, "card_expiry"),
            (Order { card_expiry: "2026-02-28".into(), ..order() }, "card_expiry"),
            (Order { env: "production".into(), ..order() }, "env"),
            (Order { alg: "rsa4096".into(), ..order() }, "alg"),
            (Order { auth_pin: Some(Zeroizing::new("12345".into())), ..order() }, "auth_pin"),
            (Order { auth_pin: None, ..order() }, "auth_pin"),
            (Order { sign_pin: Some(Zeroizing::new("ABCDEF".into())), ..order() }, "sign_pin"),
            (Order { sign_pin: None, ..order() }, "sign_pin"),
        ];
        for (o, field) in cases {
            assert_eq!(field_of(o.validate(ISSUE, TODAY).unwrap_err()), field, "{o:?}");
        }
        // A child's card gets no signature password.
        let o = Order { no_signature: true, ..order() };
        assert_eq!(field_of(o.validate(ISSUE, TODAY).unwrap_err()), "sign_pin");
    }

    #[test]
    fn the_order_debug_hides_pins() {
        let s = format!("{:?}", order());
        assert!(!s.contains("1234\"") && !s.contains("ABC123"), "{s}");
    }

    /// Regression: a typo in `--card-expiry` used to surface only after the card's keys were
    /// regenerated, leaving it in `personalising`. Now it fails before any reader is opened.
    #[tokio::test]
    async fn a_bad_date_fails_before_the_reader_is_opened() {
        let o = Order { card_expiry: "2035-13-01".into(), ..order() };
        let e = issue("No Such Reader", Duration::ZERO, &o, ISSUE, &Unreachable).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "card_expiry", .. }), "{e}");
        assert!(e.to_string().contains("no card was touched"), "{e}");
        let o = Order { card_expiry: "2000-01-01".into(), ..order() };
        let e = issue("No Such Reader", Duration::ZERO, &o, Mode::Renew, &Unreachable).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "card_expiry", .. }), "{e}");
        let e = pin_reset("No Such Reader", Duration::ZERO, "12345678903", PinRef::Auth, "12a4", &Unreachable)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "new PIN", .. }), "{e}");
        let e =
            pin_reset("No Such Reader", Duration::ZERO, "123", PinRef::Auth, "1234", &Unreachable).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "resident", .. }), "{e}");
    }

    #[test]
    fn purposes_have_stable_wire_names() {
        let names = [
            (IssuerPurpose::Issue, "issue"),
            (IssuerPurpose::Resume, "resume"),
            (IssuerPurpose::Renew, "renew"),
            (IssuerPurpose::PinReset, "pin_reset"),
            (IssuerPurpose::Wipe, "wipe"),
        ];
        for (p, n) in names {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{n}\""));
            assert_eq!(serde_json::from_str::<IssuerPurpose>(&format!("\"{n}\"")).unwrap(), p);
        }
    }

    #[test]
    fn der_fields_are_base64_on_the_wire() {
        let req = CardRequest {
            request_id: "card-01-02".into(),
            resident: "12345678903".into(),
            card_serial: "01".into(),
            card_expiry: "2035-12-31".into(),
            environment: "prod".into(),
            renew: false,
            signature_csr: None,
            authentication_csr: Some(vec![0x30, 0x00, 0xFF]),
        };
        let j = serde_json::to_value(&req).unwrap();
        assert_eq!(j["authentication_csr"], "MAD/");
        assert!(j.get("signature_csr").is_none());
        assert_eq!(serde_json::from_value::<CardRequest>(j).unwrap(), req);
        let certs = CardCerts {
            certificates: vec![CardCert { kind: KeyRef::Auth, serial: "0a".into(), der: vec![1, 2] }],
            chain: vec![vec![3], vec![4, 5]],
        };
        let j = serde_json::to_value(&certs).unwrap();
        assert_eq!(j["chain"][1], "BAU=");
        assert_eq!(serde_json::from_value::<CardCerts>(j).unwrap(), certs);
    }

    #[test]
    fn the_request_id_is_the_serial_and_a_hash_of_the_keys() {
        let (a, b) = (b"spki-a".as_slice(), b"spki-b".as_slice());
        let id = request_id(&[0xAB, 0x01], &[a, b]);
        let mut h = openssl::sha::Sha256::new();
        h.update(a);
        h.update(b);
        assert_eq!(id, format!("card-ab01-{}", hex::encode(&h.finish()[..8])));
        assert_ne!(id, request_id(&[0xAB, 0x01], &[b, a]), "the order of the keys counts");
    }

    /// A CA certificate with a subjectKeyIdentifier and a leaf it signs with an
    /// authorityKeyIdentifier (OpenSSL as an independent encoder).
    fn ca_and_leaf(cn: &str) -> (Vec<u8>, Vec<u8>) {
        use openssl::{hash::MessageDigest, pkey::PKey, x509::X509, x509::extension as ext};
        let key = PKey::from_ec_key(
            openssl::ec::EcKey::generate(&openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
        let ski = ext::SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&key, MessageDigest::sha384()).unwrap();
        let ca = b.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
        let aki = ext::AuthorityKeyIdentifier::new().keyid(true).build(&b.x509v3_context(Some(&ca), None)).unwrap();
        b.append_extension(aki).unwrap();
        b.sign(&key, MessageDigest::sha384()).unwrap();
        (ca.to_der().unwrap(), b.build().to_der().unwrap())
    }

    #[test]
    fn the_issuer_is_found_by_key_identifier() {
        let (ca1, leaf1) = ca_and_leaf("one");
        let (ca2, leaf2) = ca_and_leaf("two");
        let chain = vec![ca2.clone(), ca1.clone()];
        assert_eq!(issuer_of(&leaf1, &chain).unwrap(), ca1.as_slice());
        assert_eq!(issuer_of(&leaf2, &chain).unwrap(), ca2.as_slice());
        let e = issuer_of(&leaf1, std::slice::from_ref(&ca2)).unwrap_err();
        assert!(e.to_string().contains("no CA certificate with key identifier"), "{e}");
        // A CA certificate has no AKI here: no issuer to find.
        let e = issuer_of(&ca1, &chain).unwrap_err();
        assert!(e.to_string().contains("no authority key identifier"), "{e}");
    }

    #[test]
    fn the_cas_answer_must_match_the_request() {
        let (ca, leaf) = ca_and_leaf("one");
        let spki = Certificate::from_der(&leaf).unwrap().tbs_certificate().subject_public_key_info().to_der().unwrap();
        let cert = |kind| CardCert { kind, serial: "01".into(), der: leaf.clone() };
        let ok = CardCerts { certificates: vec![cert(KeyRef::Auth)], chain: vec![ca.clone()] };
        check_certs(&ok, &[(KeyRef::Auth, spki.clone())]).unwrap();
        let msg = |c: &CardCerts, s: &[(KeyRef, Vec<u8>)]| check_certs(c, s).unwrap_err().to_string();
        assert!(msg(&ok, &[(KeyRef::Auth, vec![0x30, 0x00])]).contains("not for the card's key"));
        assert!(msg(&ok, &[(KeyRef::Auth, spki.clone()), (KeyRef::Sign, spki.clone())]).contains("no signature"));
        let extra = CardCerts { certificates: vec![cert(KeyRef::Auth), cert(KeyRef::Sign)], chain: vec![ca.clone()] };
        assert!(msg(&extra, &[(KeyRef::Auth, spki.clone())]).contains("unrequested signature"));
        let two = CardCerts { certificates: vec![cert(KeyRef::Auth), cert(KeyRef::Auth)], chain: vec![ca] };
        assert!(msg(&two, &[(KeyRef::Auth, spki)]).contains("two authentication"));
    }
}
