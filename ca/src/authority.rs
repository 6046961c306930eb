//! The CA shell: hierarchies and generations in the database, keys in the key store, issuance
//! in Boulder's crash-safe order (reserve serial → store the exact TBS → sign → check the
//! signed TBS is the stored one → store the certificate, every step committed and audited),
//! operator revocation, and crash recovery. CRL publication is in [`crate::publish`], the
//! change-feed follower in [`crate::follow`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use der::{Decode, Encode};
use sqlx::Row;
use time::{Date, OffsetDateTime};
use x509_cert::certificate::Certificate;
use x509_cert::request::CertReq;

use crate::audit;
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::hierarchy::{CaId, Environment, Purpose, prefecture_name};
use crate::identity_source::IdentitySource;
use crate::key::{KeyAlgorithm, KeyBackend, key_identifier};
use crate::keystore::KeyStore;
use crate::profile::{
    AuthenticationCert, IssuingCa, LinkCa, OcspResponder, Prepared, RootCa, SanItems, SignatureCert, StatusUrls,
    prepare,
};
use crate::revocation::CertKind;
use crate::validity::{self, ValidityInput};
use identity::person::ResidentStatus;
use identity::store::Db;

macro_rules! cert_select {
    () => {
        "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.kind, c.state, c.resident_code, c.shard, c.not_before, c.not_after, c.der, r.revoked_at, r.reason, r.cause FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial"
    };
}

/// A certificate as recorded.
#[derive(Debug, Clone)]
pub struct CertRecord {
    /// Serial (hex).
    pub serial: String,
    /// Issuing CA.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// Kind.
    pub kind: CertKind,
    /// State (see [`state`]).
    pub state: i64,
    /// Resident.
    pub resident_code: Option<String>,
    /// CRL shard.
    pub shard: i64,
    /// notBefore.
    pub not_before: Option<i64>,
    /// notAfter.
    pub not_after: Option<i64>,
    /// DER, once issued.
    pub der: Option<Vec<u8>>,
    /// Revocation (time, reason, cause).
    pub revoked: Option<(i64, Reason, String)>,
}

fn record(r: &sqlx::any::AnyRow) -> Result<CertRecord> {
    let revoked = match r.try_get::<Option<i64>, _>(10)? {
        Some(at) => Some((at, Reason::from_code(r.try_get(11)?)?, r.try_get(12)?)),
        None => None,
    };
    Ok(CertRecord {
        serial: r.try_get(0)?,
        ca: r.try_get(1)?,
        generation: r.try_get(2)?,
        kind: CertKind::from_code(r.try_get(3)?)?,
        state: r.try_get(4)?,
        resident_code: r.try_get(5)?,
        shard: r.try_get(6)?,
        not_before: r.try_get(7)?,
        not_after: r.try_get(8)?,
        der: r.try_get(9)?,
        revoked,
    })
}

/// Inserts a revocation row (idempotent on the serial: a replay changes nothing and takes no
/// sequence number). The row gets the next revocation sequence number from the counter row,
/// taken and advanced in this transaction: the counter row's lock orders concurrent
/// revocations, so sequence order is commit order and there are no gaps (what
/// [`crate::status`] readers poll by).
#[allow(clippy::too_many_arguments)]
pub async fn insert_revocation(
    tx: &mut identity::store::Tx,
    serial: &str,
    issuer: String,
    generation: i64,
    shard: i64,
    now: i64,
    reason: Reason,
    cause: &str,
) -> Result<bool> {
    let bytes = hex::decode(serial).map_err(|e| Error::corrupt("serial", e))?;
    let ca_label = issuer.clone();
    // Lock the counter row first (a no-op update), so the existence check below and the
    // numbering see every revocation committed before ours.
    let last: i64 = sqlx::query("UPDATE ca_revocation_counter SET last_seq = last_seq WHERE id = 1 RETURNING last_seq")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let r = sqlx::query("INSERT INTO ca_revocation (serial, serial_bytes, issuer_slug, issuer_generation, shard, revoked_at, reason, cause, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (serial) DO NOTHING")
        .bind(serial.to_owned())
        .bind(bytes)
        .bind(issuer)
        .bind(generation)
        .bind(shard)
        .bind(now)
        .bind(reason as i64)
        .bind(cause.to_owned())
        .bind(last + 1)
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    metrics::counter!("jpki_ca_revocations_total", "ca" => ca_label, "reason" => reason.name()).increment(1);
    sqlx::query("UPDATE ca_revocation_counter SET last_seq = $1 WHERE id = 1")
        .bind(last + 1)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// `SELECT` of a [`Generation`] (read by [`gen_from_row`]) followed by `$tail`.
macro_rules! select_generation {
    ($tail:literal) => {
        concat!(
            "SELECT generation, algorithm, key_ref, certificate, key_id, not_after, shards, not_before, activation, rolled_back, slug FROM ca_generation ",
            $tail
        )
    };
}

pub(crate) fn gen_from_row(r: &sqlx::any::AnyRow) -> Result<Generation> {
    Ok(Generation {
        ca: CaId::parse(&r.try_get::<String, _>(10)?)?,
        generation: r.try_get(0)?,
        algorithm: KeyAlgorithm::from_code(r.try_get(1)?)?,
        key_ref: r.try_get(2)?,
        certificate: r.try_get(3)?,
        key_id: r.try_get(4)?,
        not_after: r.try_get(5)?,
        shards: r.try_get(6)?,
        not_before: r.try_get(7)?,
        activation: r.try_get(8)?,
        rolled_back: r.try_get(9)?,
    })
}

/// The key algorithm new cards get under an issuing generation of `alg`: P-384 once the
/// issuing CA has moved off RSA (the next-generation card), RSA-2048 before.
pub fn card_key_algorithm(alg: KeyAlgorithm) -> KeyAlgorithm {
    if alg.rsa_bits().is_some() { KeyAlgorithm::Rsa2048 } else { KeyAlgorithm::EcP384 }
}

/// After the switch to a non-RSA issuing generation, cards get P-384 keys: an RSA card key is
/// refused (`card_algorithm`). Before it, any allowed key is certified (a P-384 pilot card).
fn check_card_key(g: &Generation, spki: &[u8]) -> Result<()> {
    let want = card_key_algorithm(g.algorithm);
    let got = KeyAlgorithm::of_spki(spki)?;
    if want != KeyAlgorithm::Rsa2048 && got != want {
        return Err(Error::refused(
            "card_algorithm",
            format!("{} g{} certifies {} card keys, not {}", g.ca, g.generation, want.name(), got.name()),
        ));
    }
    Ok(())
}

/// Checks a PKCS#10 request's self-signature (the proof of possession) and the key policy;
/// returns the SubjectPublicKeyInfo DER. The CSR's subject is ignored.
pub fn proof_of_possession(csr: &[u8], which: &str) -> Result<Vec<u8>> {
    let req = CertReq::from_der(csr)
        .map_err(|e| Error::refused("bad_pop", format!("{which} CSR is not PKCS#10 DER: {e}")))?;
    let spki = req.info.public_key.to_der()?;
    let alg = KeyAlgorithm::of_spki(&spki)?;
    if req.algorithm.oid != alg.signature_algorithm().oid {
        return Err(Error::refused(
            "bad_pop",
            format!("{which} CSR must be signed with {:?}", alg.signature_algorithm().oid),
        ));
    }
    let info = req.info.to_der()?;
    let sig = req.signature.as_bytes().ok_or_else(|| Error::refused("bad_pop", "signature has unused bits"))?;
    if !crate::key::verify(&spki, &info, sig)? {
        return Err(Error::refused(
            "bad_pop",
            format!("the {which} CSR's signature does not verify: no proof of possession"),
        ));
    }
    Ok(spki)
}

/// [`proof_of_possession`] for a resident's card key: RSA or ECDSA P-384 only. ML-DSA-65 is
/// for CA and OCSP responder keys; no card holds one.
fn card_proof_of_possession(csr: &[u8], which: &str) -> Result<Vec<u8>> {
    let spki = proof_of_possession(csr, which)?;
    if KeyAlgorithm::of_spki(&spki)? == KeyAlgorithm::MlDsa65 {
        return Err(Error::refused("bad_key", format!("the {which} key is ML-DSA-65: card keys are RSA or P-384")));
    }
    Ok(spki)
}

/// A prepared certificate of any profile.
pub enum AnyPrepared {
    /// Issuing CA.
    Ca(Prepared<IssuingCa>),
    /// Link or cross certificate.
    Link(Prepared<LinkCa>),
    /// Signature.
    Signature(Prepared<SignatureCert>),
    /// Authentication.
    Authentication(Prepared<AuthenticationCert>),
    /// OCSP responder.
    Responder(Prepared<OcspResponder>),
}

impl std::fmt::Debug for AnyPrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyPrepared({} bytes)", self.tbs().len())
    }
}

/// Certificate states (stored numbers, forever).
pub mod state {
    /// Serial reserved; nothing else stored.
    pub const RESERVED: i64 = 1;
    /// Exact TBS stored; not yet signed (or signed but not stored).
    pub const TBS_STORED: i64 = 2;
    /// Signed and stored.
    pub const ISSUED: i64 = 3;
    /// Reserved but never stored: abandoned by recovery, nothing to revoke.
    pub const ABANDONED: i64 = 4;
    /// TBS stored but never delivered: revoked by recovery (reason unspecified).
    pub const VOID: i64 = 5;
}

/// Where relying parties will find CRLs and OCSP, the shard count and CRL lifetime; fixed at
/// `init` and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of CRL publication (`{base}/crl/{ca}/g{n}/{shard}.crl`).
    pub crl_base: String,
    /// OCSP responder URL written into AIA.
    pub ocsp_url: String,
    /// CRL shards per issuing CA generation.
    pub shards: u32,
    /// Hours from thisUpdate to nextUpdate.
    pub crl_hours: i64,
    /// Algorithm for new CA keys.
    pub ca_algorithm: KeyAlgorithm,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            crl_base: "http://127.0.0.1:8180".into(),
            ocsp_url: "http://127.0.0.1:8180/ocsp".into(),
            shards: 16,
            crl_hours: 24,
            ca_algorithm: KeyAlgorithm::Rsa2048,
        }
    }
}

/// The URL of a CRL shard.
pub fn crl_url(base: &str, slug: &str, generation: i64, shard: i64) -> String {
    format!("{base}/crl/{slug}/g{generation}/{shard}.crl")
}

/// The URL of an issuing CA generation's caIssuers bundle (its certificate and its root's
/// link certificates, certs-only CMS).
pub fn ca_issuers_url(base: &str, slug: &str, generation: i64) -> String {
    format!("{base}/ca/{slug}/g{generation}.p7c")
}

/// The URL of a root generation's ARL.
pub fn arl_url(base: &str, slug: &str, generation: i64) -> String {
    format!("{base}/crl/{slug}/g{generation}/arl.crl")
}

/// One CA generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The CA.
    pub ca: CaId,
    /// Generation number (from 1).
    pub generation: i64,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Where the key lives.
    pub key_ref: String,
    /// The CA certificate (DER).
    pub certificate: Vec<u8>,
    /// Its subject key identifier.
    pub key_id: Vec<u8>,
    /// End of validity (unix seconds).
    pub not_after: i64,
    /// CRL shards.
    pub shards: i64,
    /// Start of validity (unix seconds; 0 for generations made before ceremonies).
    pub not_before: i64,
    /// When it starts issuing (unix seconds): from then until a newer generation's activation.
    pub activation: i64,
    /// When an operator rolled it back (before it issued anything), if so.
    pub rolled_back: Option<i64>,
}

impl Generation {
    /// The CA certificate, decoded.
    pub fn cert(&self) -> Result<Certificate> {
        Ok(Certificate::from_der(&self.certificate)?)
    }
}

/// What a new generation is: its number, notBefore and activation instant (unix seconds), a
/// new subject name (none: the CA's current one), and the idempotency key of the issuing CA's
/// certificate (a resumed ceremony finds the certificate it already issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationSpec {
    /// Generation number.
    pub number: i64,
    /// notBefore.
    pub not_before: i64,
    /// When it starts issuing.
    pub activation: i64,
    /// A new subject name.
    pub name: Option<x509_cert::name::Name>,
    /// Idempotency key of the CA certificate (issuing CAs).
    pub request_id: Option<String>,
}

/// An issuance request from a window (card writer). Identity items are not in it.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// 住民票コード.
    pub resident_code: String,
    /// Issuing window id (受付窓口識別記号): 1–9 of A–Z 0–9.
    pub window: String,
    /// Last day of the card.
    pub card_expiry: Date,
    /// Production or test hierarchy.
    pub environment: Environment,
    /// PKCS#10 CSR (DER) for the signature key: its self-signature is the proof of possession.
    pub signature_csr: Option<Vec<u8>>,
    /// PKCS#10 CSR (DER) for the authentication key.
    pub authentication_csr: Option<Vec<u8>>,
    /// Idempotency key: a retried request with the same id gets the same certificates.
    pub request_id: Option<String>,
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial, hex.
    pub serial: String,
    /// Kind.
    pub kind: CertKind,
    /// Issuing CA.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// DER.
    pub der: Vec<u8>,
    /// End of validity (unix seconds).
    pub not_after: i64,
    /// CRL shard.
    pub shard: i64,
}

/// What an issuance returns: the certificates and the CA chain (issuing CA certificates, then
/// roots).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificates.
    pub certificates: Vec<IssuedCert>,
    /// CA certificates (DER).
    pub chain: Vec<Vec<u8>>,
}

impl Issued {
    /// The certificate of a kind.
    pub fn get(&self, kind: CertKind) -> Option<&IssuedCert> {
        self.certificates.iter().find(|c| c.kind == kind)
    }
}

/// A profile of any kind, for the batch pipeline.
#[derive(Debug, Clone)]
pub enum AnyProfile {
    /// Issuing CA.
    Ca(IssuingCa),
    /// Link or cross certificate between root generations.
    Link(LinkCa),
    /// Signature certificate.
    Signature(SignatureCert),
    /// Authentication certificate.
    Authentication(AuthenticationCert),
    /// OCSP responder.
    Responder(OcspResponder),
}

/// One certificate to issue.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What it is.
    pub kind: CertKind,
    /// Who signs it.
    pub issuer: Arc<Generation>,
    /// Serial bytes (positive, minimal INTEGER content).
    pub serial: Vec<u8>,
    /// CRL shard.
    pub shard: i64,
    /// Subject public key (SPKI DER).
    pub spki: Vec<u8>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Resident, for certificates of residents.
    pub resident_code: Option<String>,
    /// The subject CN.
    pub issuance_id: Option<String>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// The national feed head read before the identity lookup.
    pub feed_position: u64,
    /// Certificates this one replaces (renewal): revoked as superseded in the same commit
    /// that stores this certificate.
    pub supersedes: Vec<String>,
    /// Profile.
    pub profile: AnyProfile,
}

/// A fresh serial: 16 random bytes, top bit clear and second bit set (126 random bits,
/// positive, always 16 content bytes).
pub fn new_serial() -> Vec<u8> {
    let mut s: [u8; 16] = rand::random();
    s[0] = (s[0] & 0x3f) | 0x40;
    s.to_vec()
}

/// The shard of a serial: its last two bytes modulo the shard count (fixed at issuance).
pub fn shard_of(serial: &[u8], shards: i64) -> i64 {
    let n = serial.len();
    let low = i64::from(u16::from_be_bytes([serial[n.saturating_sub(2)], serial[n - 1]]));
    low % shards.max(1)
}

fn crash_point(step: &str) {
    // Fault injection for the crash tests: `JPKI_CA_CRASH_AFTER=reserve|tbs|sign` aborts the
    // process right after that step, as a power cut would.
    if std::env::var("JPKI_CA_CRASH_AFTER").is_ok_and(|v| v == step) {
        eprintln!("JPKI_CA_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

/// A certificate authority service over one database and key store.
#[derive(Debug)]
pub struct Authority {
    db: Db,
    keys: KeyStore,
    settings: Settings,
    loaded: Mutex<HashMap<String, Arc<dyn KeyBackend>>>,
    create: tokio::sync::Mutex<()>,
}

async fn setting(db: &Db, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

impl Authority {
    /// Opens the CA over `db`, running the CA's migrations on it ([`crate::schema`]) and
    /// resolving whatever a crash left half-done (see [`Self::recover`]).
    pub async fn open(db: Db, keys: KeyStore, now: i64) -> Result<Self> {
        let a = Self::open_inspect(db, keys).await?;
        a.recover("system:recovery", now).await?;
        Ok(a)
    }

    /// Opens the CA for reading (listing, showing, auditing) without recovery: safe while the
    /// CA service runs, whose in-flight reservations recovery would abandon.
    pub async fn open_inspect(db: Db, keys: KeyStore) -> Result<Self> {
        crate::schema::migrate(&db).await?;
        let mut settings = Settings::default();
        if let Some(v) = setting(&db, "crl_base").await? {
            settings.crl_base = v;
        }
        if let Some(v) = setting(&db, "ocsp_url").await? {
            settings.ocsp_url = v;
        }
        if let Some(v) = setting(&db, "shards").await? {
            settings.shards = v.parse().map_err(|_| Error::corrupt("setting shards", v))?;
        }
        if let Some(v) = setting(&db, "crl_hours").await? {
            settings.crl_hours = v.parse().map_err(|_| Error::corrupt("setting crl_hours", v))?;
        }
        if let Some(v) = setting(&db, "ca_algorithm").await? {
            settings.ca_algorithm = KeyAlgorithm::parse(&v)?;
        }
        Ok(Self { db, keys, settings, loaded: Mutex::default(), create: tokio::sync::Mutex::new(()) })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// How a key is protected (for the operator's eyes).
    pub fn key_protection(&self, key_ref: &str) -> Result<String> {
        self.keys.protection(key_ref)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Creates the roots of both hierarchies in `env` and fixes the settings. Refused if that
    /// environment is already initialised.
    pub async fn init(
        &mut self,
        actor: &str,
        env: Environment,
        settings: Settings,
        now: i64,
    ) -> Result<Vec<Generation>> {
        if settings.shards == 0 || settings.shards > 4096 {
            return Err(Error::invalid("shards", "1–4096"));
        }
        self.keys.check_algorithm(settings.ca_algorithm)?;
        for url in [&settings.crl_base, &settings.ocsp_url] {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(Error::invalid("URL", format!("{url}: http(s)://host[:port][/path], no trailing /")));
            }
        }
        for p in Purpose::ALL {
            if self.current(&CaId::root(p, env), now).await.is_ok() {
                return Err(Error::Conflict(format!("{} is already initialised", CaId::root(p, env))));
            }
        }
        let any_ca: i64 =
            sqlx::query("SELECT COUNT(*) FROM ca_authority").fetch_one(self.db.pool()).await?.try_get(0)?;
        if any_ca == 0 {
            let mut tx = self.db.write().await?;
            for (k, v) in [
                ("crl_base", settings.crl_base.clone()),
                ("ocsp_url", settings.ocsp_url.clone()),
                ("shards", settings.shards.to_string()),
                ("crl_hours", settings.crl_hours.to_string()),
                ("ca_algorithm", settings.ca_algorithm.name().to_owned()),
            ] {
                sqlx::query(
                    "INSERT INTO ca_setting (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
                )
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            audit::append(&mut tx, now, actor, "settings", &format!("{settings:?}")).await?;
            tx.commit().await?;
            self.settings = settings;
        }
        let mut out = Vec::new();
        for p in Purpose::ALL {
            out.push(self.new_generation(actor, &CaId::root(p, env), self.settings.ca_algorithm, now).await?);
        }
        Ok(out)
    }

    /// The current generation of a CA: the newest one still valid.
    pub async fn current(&self, ca: &CaId, now: i64) -> Result<Generation> {
        // The switch is one comparison with the activation instant: atomic, whoever asks.
        let r = sqlx::query(select_generation!(
            "WHERE slug = $1 AND not_after > $2 AND activation <= $2 AND rolled_back IS NULL ORDER BY generation DESC LIMIT 1"
        ))
        .bind(ca.slug())
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no valid generation of {ca} (run `jpki ca init`)")))?;
        gen_from_row(&r)
    }

    /// Every generation of every CA.
    pub async fn generations(&self) -> Result<Vec<Generation>> {
        let rows = sqlx::query(select_generation!("ORDER BY slug, generation")).fetch_all(self.db.pool()).await?;
        rows.iter().map(gen_from_row).collect()
    }

    /// The generation whose key identifier is `key_id` (issuers are found by key, not name).
    pub async fn by_key_id(&self, key_id: &[u8]) -> Result<Generation> {
        let r = sqlx::query(select_generation!("WHERE key_id = $1"))
            .bind(key_id.to_vec())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no CA generation with key id {}", hex::encode(key_id))))?;
        gen_from_row(&r)
    }

    /// The signing key of a generation (loaded once).
    pub fn key(&self, g: &Generation) -> Result<Arc<dyn KeyBackend>> {
        let mut cache = self.loaded.lock().map_err(|_| Error::key("key cache poisoned"))?;
        if let Some(k) = cache.get(&g.key_ref) {
            return Ok(k.clone());
        }
        let k = self.keys.load(&g.key_ref)?;
        if k.public_key_der() != g.cert()?.tbs_certificate().subject_public_key_info().to_der()? {
            return Err(Error::key(format!(
                "key {} does not match the certificate of {} g{}",
                g.key_ref, g.ca, g.generation
            )));
        }
        cache.insert(g.key_ref.clone(), k.clone());
        Ok(k)
    }

    /// Creates a new generation (key + certificate) of `ca`, issuing at once: a root signs
    /// itself; an issuing CA is certified by its root's current generation (as a CA certificate
    /// the ARL can revoke). Rotations go through ceremonies ([`crate::ceremony`]) instead.
    pub async fn new_generation(&self, actor: &str, ca: &CaId, alg: KeyAlgorithm, now: i64) -> Result<Generation> {
        let _guard = self.create.lock().await;
        let next = self.next_generation_number(ca).await?;
        let label = format!("{}-g{next}-{}", ca.slug(), hex::encode(rand::random::<[u8; 3]>()));
        let key = self.keys.generate(&label, alg)?;
        let spec = GenerationSpec { number: next, not_before: now, activation: now, name: None, request_id: None };
        self.certify_generation(actor, ca, key, &spec, now).await
    }

    /// The number the next generation of `ca` gets (rolled-back numbers are never reused).
    pub async fn next_generation_number(&self, ca: &CaId) -> Result<i64> {
        Ok(sqlx::query("SELECT COALESCE(MAX(generation), 0) + 1 FROM ca_generation WHERE slug = $1")
            .bind(ca.slug())
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?)
    }

    /// The key store.
    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    /// The CA certificate of a new generation for `key` (self-signed for a root; certified by
    /// the root's current generation for an issuing CA, idempotently under
    /// `spec.request_id`), stored with its activation instant, audited.
    pub async fn certify_generation(
        &self,
        actor: &str,
        ca: &CaId,
        key: Arc<dyn KeyBackend>,
        spec: &GenerationSpec,
        now: i64,
    ) -> Result<Generation> {
        let alg = key.algorithm();
        let name = match &spec.name {
            Some(n) => n.clone(),
            None => self.name_of(ca).await?,
        };
        let start = OffsetDateTime::from_unix_timestamp(spec.not_before).map_err(|e| Error::invalid("time", e))?;
        let ten_years = start + time::Duration::days(3653);
        let (cert, shards) = match &ca.prefecture {
            None => {
                let serial = new_serial();
                let p = prepare(
                    RootCa { name, path_len: None },
                    &serial,
                    start,
                    ten_years,
                    key.public_key_der(),
                    key.as_ref(),
                )?;
                (p.sign(key.as_ref())?, 1)
            }
            Some(_) => {
                let root = Arc::new(self.current(&CaId::root(ca.purpose, ca.env), now).await?);
                let issued = match &spec.request_id {
                    Some(rid) => self.by_request(rid).await?.map(|mut i| i.certificates.remove(0)),
                    None => None,
                };
                let der = match issued {
                    Some(c) => c.der,
                    None => {
                        let end = ten_years.min(
                            OffsetDateTime::from_unix_timestamp(root.not_after)
                                .map_err(|e| Error::invalid("time", e))?,
                        );
                        let serial = new_serial();
                        let plan = Plan {
                            kind: CertKind::Authority,
                            shard: 0,
                            spki: key.public_key_der().to_vec(),
                            not_before: start,
                            not_after: end,
                            resident_code: None,
                            issuance_id: None,
                            request_id: spec.request_id.clone(),
                            feed_position: 0,
                            supersedes: Vec::new(),
                            profile: AnyProfile::Ca(IssuingCa {
                                issuer: root.cert()?.tbs_certificate().subject().clone(),
                                subject: name,
                                policy: ca.policy(),
                                arl_url: arl_url(&self.settings.crl_base, &root.ca.slug(), root.generation),
                            }),
                            issuer: root,
                            serial,
                        };
                        self.run(actor, vec![plan], now).await?.remove(0).der
                    }
                };
                (der, i64::from(self.settings.shards))
            }
        };
        let parsed = Certificate::from_der(&cert)?;
        let not_after = parsed.tbs_certificate().validity().not_after.to_unix_duration().as_secs() as i64;
        let key_id = key_identifier(key.public_key_der())?.to_vec();
        let mut tx = self.db.write().await?;
        sqlx::query("INSERT INTO ca_authority (slug, purpose, environment, prefecture, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slug) DO NOTHING")
            .bind(ca.slug())
            .bind(ca.purpose as i64)
            .bind(ca.env as i64)
            .bind(ca.prefecture.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ca_generation (slug, generation, key_ref, algorithm, certificate, key_id, not_after, shards, created_at, not_before, activation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(ca.slug())
            .bind(spec.number)
            .bind(key.key_ref())
            .bind(alg as i64)
            .bind(cert.clone())
            .bind(key_id.clone())
            .bind(not_after)
            .bind(shards)
            .bind(now)
            .bind(spec.not_before)
            .bind(spec.activation)
            .execute(&mut *tx)
            .await?;
        let detail = format!(
            "{ca} g{} {} key {} key-id {} activation {}",
            spec.number,
            alg.name(),
            key.key_ref(),
            hex::encode(&key_id),
            spec.activation
        );
        audit::append(&mut tx, now, actor, "ca_generation", &detail).await?;
        tx.commit().await?;
        self.loaded.lock().map_err(|_| Error::key("key cache poisoned"))?.insert(key.key_ref(), key.clone());
        Ok(Generation {
            ca: ca.clone(),
            generation: spec.number,
            algorithm: alg,
            key_ref: key.key_ref(),
            certificate: cert,
            key_id,
            not_after,
            shards,
            not_before: spec.not_before,
            activation: spec.activation,
            rolled_back: None,
        })
    }

    /// The subject name of `ca`'s next generation: its current generation's (a renamed CA keeps
    /// its new name), or the name the hierarchy gives it.
    async fn name_of(&self, ca: &CaId) -> Result<x509_cert::name::Name> {
        match self.newest(ca).await? {
            Some(g) => Ok(g.cert()?.tbs_certificate().subject().clone()),
            None => ca.name(),
        }
    }

    /// The newest generation of `ca` that was not rolled back, whatever its state.
    pub async fn newest(&self, ca: &CaId) -> Result<Option<Generation>> {
        sqlx::query(select_generation!("WHERE slug = $1 AND rolled_back IS NULL ORDER BY generation DESC LIMIT 1"))
            .bind(ca.slug())
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(gen_from_row)
            .transpose()
    }

    /// The current generation of a prefecture's issuing CA, created on first use.
    pub async fn issuing(
        &self,
        actor: &str,
        purpose: Purpose,
        env: Environment,
        prefecture: &str,
        now: i64,
    ) -> Result<Generation> {
        let ca = CaId::issuing(purpose, env, prefecture)?;
        match self.current(&ca, now).await {
            Ok(g) => Ok(g),
            Err(Error::NotFound(_)) => {
                let _ = self.current(&CaId::root(purpose, env), now).await?;
                // Another task may have created it while we waited for the lock.
                match self.current(&ca, now).await {
                    Ok(g) => Ok(g),
                    Err(_) => self.new_generation(actor, &ca, self.settings.ca_algorithm, now).await,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Issues the certificates of `plans` in Boulder's order, as one batch: every serial is
    /// reserved in one commit; then, a step of at most `STEP` (256) certificates at a time, the
    /// exact TBS of each is stored (one commit per step), signed on the signing threads (the
    /// signed TBS checked against the stored one) and the certificates stored (one commit per
    /// step). While one step is being signed the database stores the previous step's
    /// certificates and the next step's TBS, so the signing threads are not left waiting on
    /// the database. Per certificate the order is unchanged: its serial is durably reserved,
    /// then its TBS durably stored, before it is handed to a signing thread.
    ///
    /// A failure part-way leaves the earlier steps issued and the rest reserved or
    /// TBS-stored, which [`Self::recover`] resolves as after a crash.
    pub async fn run(&self, actor: &str, plans: Vec<Plan>, now: i64) -> Result<Vec<IssuedCert>> {
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let serials: Vec<String> = plans.iter().map(|p| hex::encode(&p.serial)).collect();
        let key = self.key(&plans[0].issuer)?;
        let mut keys = Vec::with_capacity(plans.len());
        for p in &plans {
            keys.push(if p.issuer.key_ref == plans[0].issuer.key_ref { key.clone() } else { self.key(&p.issuer)? });
        }
        let plans: Arc<[Plan]> = plans.into();
        let keys: Arc<[Arc<dyn KeyBackend>]> = keys.into();
        // The TBS are built (pure CPU work, on other threads) while the serials are reserved;
        // nothing is stored or signed before the reservation is committed.
        let building = tokio::task::spawn_blocking({
            let (plans, keys) = (plans.clone(), keys.clone());
            move || prepare_all(&plans, &keys)
        });
        // 1. Reserve every serial in one commit (unique forever by the primary key): a
        // reused serial refuses the whole batch before anything is stored.
        let reserved = self.reserve(actor, &plans, &serials, now).await;
        let prepared = building.await.map_err(|e| Error::key(format!("the TBS-building task failed: {e}")))?;
        reserved?;
        crash_point("reserve");
        let mut prepared: Vec<Option<AnyPrepared>> = prepared?.into_iter().map(Some).collect();
        // 2.–4. Per step: store the TBS, sign, store the certificates; pipelined.
        let steps = steps(plans.len());
        let mut pool = SignerPool::start(plans.len());
        let mut ders: Vec<Option<Vec<u8>>> = vec![None; plans.len()];
        for (i, step) in steps.iter().enumerate() {
            let tbs: Vec<&[u8]> = prepared[step.clone()].iter().flatten().map(AnyPrepared::tbs).collect();
            self.store_tbs(actor, &plans[step.clone()], &serials[step.clone()], &tbs, now).await?;
            if i == 0 {
                crash_point("tbs");
            }
            for j in step.clone() {
                let p = prepared[j].take().ok_or_else(|| Error::corrupt("batch", "a TBS handed to sign twice"))?;
                pool.submit(j, p, keys[j].clone())?;
            }
            // The previous step is being signed meanwhile (or done): wait for it and store it,
            // while this step's signatures are made.
            if i > 0 {
                let prev = steps[i - 1].clone();
                pool.wait_for(prev.clone(), &mut ders).await?;
                if i == 1 {
                    crash_point("sign");
                }
                self.store_issued(actor, &plans[prev.clone()], &serials[prev.clone()], &ders[prev], now).await?;
            }
        }
        if let Some(last) = steps.last().cloned() {
            pool.wait_for(last.clone(), &mut ders).await?;
            if steps.len() == 1 {
                crash_point("sign");
            }
            self.store_issued(actor, &plans[last.clone()], &serials[last.clone()], &ders[last], now).await?;
        }
        for p in plans.iter() {
            metrics::counter!("jpki_ca_issued_total", "ca" => p.issuer.ca.slug(), "kind" => p.kind.name()).increment(1);
        }
        Ok(plans
            .iter()
            .zip(serials)
            .zip(ders)
            .map(|((p, serial), der)| IssuedCert {
                serial,
                kind: p.kind,
                ca: p.issuer.ca.slug(),
                generation: p.issuer.generation,
                der: der.unwrap_or_default(),
                not_after: p.not_after.unix_timestamp(),
                shard: p.shard,
            })
            .collect())
    }

    /// Before any serial is reserved: every issuer generation of the batch is still usable (not
    /// rolled back; for residents' certificates, active), read under a share lock on
    /// PostgreSQL (SQLite's writer is already exclusive) so that a rollback cannot slip between
    /// this check and the reservation; and no certificate outlives its CA certificate.
    async fn check_issuers(&self, tx: &mut identity::store::Tx, plans: &[Plan], now: i64) -> Result<()> {
        let sql = match self.db.backend() {
            identity::store::Backend::Postgres => {
                "SELECT activation, rolled_back FROM ca_generation WHERE slug = $1 AND generation = $2 FOR SHARE"
            }
            identity::store::Backend::Sqlite => {
                "SELECT activation, rolled_back FROM ca_generation WHERE slug = $1 AND generation = $2"
            }
        };
        let mut seen: Vec<(&str, i64, i64)> = Vec::new();
        for p in plans {
            let g = &p.issuer;
            let activation = match seen.iter().find(|(k, n, _)| *k == g.key_ref && *n == g.generation) {
                Some((_, _, a)) => *a,
                None => {
                    let r = sqlx::query(sql)
                        .bind(g.ca.slug())
                        .bind(g.generation)
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("{} g{}", g.ca, g.generation)))?;
                    if r.try_get::<Option<i64>, _>(1)?.is_some() {
                        return Err(Error::refused(
                            "generation_rolled_back",
                            format!("{} g{} was rolled back; nothing issued", g.ca, g.generation),
                        ));
                    }
                    let a: i64 = r.try_get(0)?;
                    seen.push((&g.key_ref, g.generation, a));
                    a
                }
            };
            if matches!(p.kind, CertKind::Signature | CertKind::Authentication) && activation > now {
                return Err(Error::refused(
                    "generation_pending",
                    format!("{} g{} issues from its activation ({activation})", g.ca, g.generation),
                ));
            }
            if p.not_after.unix_timestamp() > g.not_after {
                return Err(Error::refused(
                    "ca_expires_first",
                    format!("{} g{} expires before the certificate would; nothing issued", g.ca, g.generation),
                ));
            }
        }
        Ok(())
    }

    /// Step 1 of [`Self::run`]: reserves every serial of the batch in one commit (multi-row
    /// INSERTs), audited.
    async fn reserve(&self, actor: &str, plans: &[Plan], serials: &[String], now: i64) -> Result<()> {
        const COLUMNS: usize = 11;
        let mut tx = self.db.write().await?;
        self.check_issuers(&mut tx, plans, now).await?;
        let rows = rows_per_statement(COLUMNS);
        for (ps, ss) in plans.chunks(rows).zip(serials.chunks(rows)) {
            let sql = format!(
                "INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, resident_code, issuance_id, request_id, shard, created_at, feed_position) VALUES {}",
                identity::store::placeholders(ps.len(), COLUMNS, 1)
            );
            // Built from placeholders only; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (p, s) in ps.iter().zip(ss) {
                q = q
                    .bind(s.clone())
                    .bind(p.issuer.ca.slug())
                    .bind(p.issuer.generation)
                    .bind(p.kind as i64)
                    .bind(state::RESERVED)
                    .bind(p.resident_code.clone())
                    .bind(p.issuance_id.clone())
                    .bind(p.request_id.clone())
                    .bind(p.shard)
                    .bind(now)
                    .bind(i64::try_from(p.feed_position).map_err(|e| Error::corrupt("feed position", e))?);
            }
            let r = q.execute(&mut *tx).await;
            if let Err(sqlx::Error::Database(e)) = &r
                && e.is_unique_violation()
            {
                let which = if ss.len() == 1 { format!("serial {}", ss[0]) } else { "a serial of the batch".into() };
                return Err(Error::Conflict(format!("{which} was used before; nothing issued")));
            }
            r?;
        }
        audit::append(&mut tx, now, actor, "reserve", &serials.join(",")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Step 2 of [`Self::run`] for one step: stores the exact TBS of reserved serials in one
    /// commit (multi-row UPDATEs), audited. Refused unless every one was still reserved:
    /// nothing is signed whose TBS is not stored.
    async fn store_tbs(&self, actor: &str, plans: &[Plan], serials: &[String], tbs: &[&[u8]], now: i64) -> Result<()> {
        const COLUMNS: usize = 4;
        let mut tx = self.db.write().await?;
        let rows = rows_per_statement(COLUMNS);
        for ((ps, ss), ts) in plans.chunks(rows).zip(serials.chunks(rows)).zip(tbs.chunks(rows)) {
            // `VALUES` rows name their columns column1, column2, … on SQLite and PostgreSQL alike.
            let sql = format!(
                "UPDATE ca_certificate SET state = $1, tbs = v.column2, not_before = v.column3, not_after = v.column4 FROM (VALUES {}) AS v WHERE ca_certificate.serial = v.column1 AND ca_certificate.state = $2",
                identity::store::placeholders(ps.len(), COLUMNS, 3)
            );
            // Built from placeholders only; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state::TBS_STORED).bind(state::RESERVED);
            for ((p, s), t) in ps.iter().zip(ss).zip(ts) {
                q = q
                    .bind(s.clone())
                    .bind(t.to_vec())
                    .bind(p.not_before.unix_timestamp())
                    .bind(p.not_after.unix_timestamp());
            }
            let r = q.execute(&mut *tx).await?;
            if r.rows_affected() != ps.len() as u64 {
                return Err(Error::Conflict(format!(
                    "{} of {} reserved serials changed state before their TBS was stored (recovered by another process?); nothing signed",
                    ps.len() as u64 - r.rows_affected(),
                    ps.len()
                )));
            }
        }
        audit::append(&mut tx, now, actor, "tbs_stored", &serials.join(",")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Step 4 of [`Self::run`] for one step: stores the signed certificates in one commit
    /// (multi-row UPDATEs), audited, with the revocation of what they supersede.
    async fn store_issued(
        &self,
        actor: &str,
        plans: &[Plan],
        serials: &[String],
        ders: &[Option<Vec<u8>>],
        now: i64,
    ) -> Result<()> {
        const COLUMNS: usize = 2;
        let mut tx = self.db.write().await?;
        let rows = rows_per_statement(COLUMNS);
        for (ss, ds) in serials.chunks(rows).zip(ders.chunks(rows)) {
            let sql = format!(
                "UPDATE ca_certificate SET state = $1, der = v.column2 FROM (VALUES {}) AS v WHERE ca_certificate.serial = v.column1 AND ca_certificate.state = $2",
                identity::store::placeholders(ss.len(), COLUMNS, 3)
            );
            // Built from placeholders only; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state::ISSUED).bind(state::TBS_STORED);
            for (s, d) in ss.iter().zip(ds) {
                let der =
                    d.clone().ok_or_else(|| Error::corrupt("batch", format!("certificate {s} was not signed")))?;
                q = q.bind(s.clone()).bind(der);
            }
            let r = q.execute(&mut *tx).await?;
            if r.rows_affected() != ss.len() as u64 {
                return Err(Error::Conflict(format!(
                    "{} of {} certificates changed state during issuance (recovered by another process?)",
                    ss.len() as u64 - r.rows_affected(),
                    ss.len()
                )));
            }
        }
        audit::append(&mut tx, now, actor, "issued", &serials.join(",")).await?;
        for (p, s) in plans.iter().zip(serials) {
            for old in &p.supersedes {
                let r =
                    sqlx::query("SELECT issuer_slug, issuer_generation, shard FROM ca_certificate WHERE serial = $1")
                        .bind(old.clone())
                        .fetch_one(&mut *tx)
                        .await?;
                let cause = format!("renewal: superseded by {s}");
                if insert_revocation(
                    &mut tx,
                    old,
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    now,
                    Reason::Superseded,
                    &cause,
                )
                .await?
                {
                    audit::append(&mut tx, now, actor, "revoke", &format!("{old} superseded ({cause})")).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Issues a resident's certificates from a window's request. Identity items come from the
    /// identity network (a logged provision under B1-020), never from the request.
    pub async fn issue(&self, actor: &str, req: &IssueRequest, id: &IdentitySource, now: i64) -> Result<Issued> {
        self.issue_checked(actor, None, req, id, now).await
    }

    /// [`Authority::issue`] for a window of `municipality` (named by the window's certificate):
    /// refused with `not_own_municipality` unless the national node says, at this moment, that
    /// the resident is registered there. (The CA service prefixes request ids with the
    /// window's party, so a retry finds only that window's own requests.)
    pub async fn issue_at_window(
        &self,
        actor: &str,
        municipality: &str,
        req: &IssueRequest,
        id: &IdentitySource,
        now: i64,
    ) -> Result<Issued> {
        self.issue_checked(actor, Some(municipality), req, id, now).await
    }

    /// Records, in one transaction, the audit row of a card's issuance (`action`, `detail`)
    /// and that card `card_serial` (hex) was personalised for `resident` at `window` of
    /// `municipality` (the card inventory; the latest issuance wins).
    #[allow(clippy::too_many_arguments, reason = "one audit row and one inventory row, each field named")]
    pub async fn record_card(
        &self,
        actor: &str,
        action: &str,
        detail: &str,
        card_serial: &str,
        resident: &str,
        municipality: &str,
        window: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO ca_card (card_serial, resident_code, municipality, window_party, issued_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (card_serial) DO UPDATE SET resident_code = $2, \
             municipality = $3, window_party = $4, issued_at = $5",
        )
        .bind(card_serial)
        .bind(resident)
        .bind(municipality)
        .bind(window)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, now, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The resident card `card_serial` (hex) was last personalised for, if any.
    pub async fn card_holder(&self, card_serial: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT resident_code FROM ca_card WHERE card_serial = $1")
            .bind(card_serial)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Appends one row to the audit trail in its own transaction (refusals, card-issuer
    /// authentications: what the CA service answers without changing any certificate).
    pub async fn audit(&self, actor: &str, action: &str, detail: &str, now: i64) -> Result<()> {
        let mut tx = self.db.write().await?;
        audit::append(&mut tx, now, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn issue_checked(
        &self,
        actor: &str,
        municipality: Option<&str>,
        req: &IssueRequest,
        id: &IdentitySource,
        now: i64,
    ) -> Result<Issued> {
        if req.window.is_empty()
            || req.window.len() > 9
            || !req.window.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(Error::invalid("window", "1–9 characters of A–Z 0–9"));
        }
        if req.signature_csr.is_none() && req.authentication_csr.is_none() {
            return Err(Error::invalid("request", "no key to certify"));
        }
        if let Some(rid) = &req.request_id
            && let Some(done) = self.by_request(rid).await?
        {
            return Ok(done);
        }
        let sig_key = req.signature_csr.as_deref().map(|c| card_proof_of_possession(c, "signature")).transpose()?;
        let auth_key =
            req.authentication_csr.as_deref().map(|c| card_proof_of_possession(c, "authentication")).transpose()?;
        if let (Some(a), Some(b)) = (&sig_key, &auth_key)
            && a == b
        {
            return Err(Error::refused("key_reuse", "the signature and authentication keys must differ"));
        }
        // The feed head first: every change up to it is in the record we are about to read.
        let feed_position = id.feed_head().await?;
        let resident = id
            .resident(&req.resident_code, now)
            .await?
            .ok_or_else(|| Error::refused("resident_unknown", "no such resident on the national register"))?;
        if resident.status != ResidentStatus::Active {
            return Err(Error::refused(
                "resident_removed",
                format!("the resident is not on a register (status {:?})", resident.status),
            ));
        }
        if let Some(m) = municipality
            && resident.municipality != m
        {
            return Err(Error::refused(
                "not_own_municipality",
                // The resident is not named: refusals reach the window's screen and logs.
                format!("the resident is not registered in municipality {m}"),
            ));
        }
        let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e))?;
        if sig_key.is_some() {
            validity::check_signature_age(resident.date_of_birth, t)?;
        }
        let base = ValidityInput {
            date_of_birth: resident.date_of_birth,
            now: t,
            card_expiry: req.card_expiry,
            auth_not_after: None,
        };
        let auth_end = match &auth_key {
            Some(_) => Some(validity::not_after(&base)?),
            None => self.valid_auth_not_after(&resident.resident_code, now).await?,
        };
        let sig_end = sig_key
            .as_ref()
            .map(|_| validity::not_after(&ValidityInput { auth_not_after: auth_end, ..base }))
            .transpose()?;
        let prefecture =
            resident.municipality.get(..2).ok_or_else(|| Error::Identity("bad municipality code".into()))?.to_owned();
        let pref_name = prefecture_name(&prefecture)?;
        let mut plans = Vec::new();
        let stamp = validity::jst_date(t);
        let clock = t.to_offset(time::UtcOffset::from_whole_seconds(9 * 3600).unwrap_or(time::UtcOffset::UTC));
        let cn = |serial: &[u8]| {
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}{:05}{}",
                stamp.year(),
                u8::from(stamp.month()),
                stamp.day(),
                clock.hour(),
                clock.minute(),
                clock.second(),
                u16::from_be_bytes([serial[14], serial[15]]) % 10000 + u16::from(serial[13] % 6) * 10000,
                req.window
            )
        };
        if let (Some(spki), Some(end)) = (auth_key, auth_end) {
            let g = Arc::new(self.issuing(actor, Purpose::Authentication, req.environment, &prefecture, now).await?);
            check_card_key(&g, &spki)?;
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            let issuance_id = cn(&serial);
            plans.push(Plan {
                kind: CertKind::Authentication,
                profile: AnyProfile::Authentication(AuthenticationCert {
                    issuer: g.cert()?.tbs_certificate().subject().clone(),
                    subject: AuthenticationCert::subject_name(&issuance_id)?,
                    policy: g.ca.policy(),
                    urls: self.urls(&g, shard),
                }),
                issuer: g,
                serial,
                shard,
                spki,
                not_before: t,
                not_after: end,
                resident_code: Some(resident.resident_code.clone()),
                issuance_id: Some(issuance_id),
                request_id: req.request_id.clone(),
                feed_position,
                supersedes: Vec::new(),
            });
        }
        if let (Some(spki), Some(end)) = (sig_key, sig_end) {
            let g = Arc::new(self.issuing(actor, Purpose::Signature, req.environment, &prefecture, now).await?);
            check_card_key(&g, &spki)?;
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            let issuance_id = cn(&serial);
            plans.push(Plan {
                kind: CertKind::Signature,
                profile: AnyProfile::Signature(SignatureCert {
                    issuer: g.cert()?.tbs_certificate().subject().clone(),
                    subject: SignatureCert::subject_name(pref_name, &resident.municipality, &issuance_id)?,
                    items: SanItems {
                        name: resident.name.0.clone(),
                        name_flags: resident.name.1.clone(),
                        sex: resident.sex,
                        date_of_birth: resident.date_of_birth,
                        address: resident.address.0.clone(),
                        address_flags: resident.address.1.clone(),
                    },
                    policy: g.ca.policy(),
                    urls: self.urls(&g, shard),
                }),
                issuer: g,
                serial,
                shard,
                spki,
                not_before: t,
                not_after: end,
                resident_code: Some(resident.resident_code.clone()),
                issuance_id: Some(issuance_id),
                request_id: req.request_id.clone(),
                feed_position,
                supersedes: Vec::new(),
            });
        }
        for p in &mut plans {
            p.supersedes = self.valid_serials(&resident.resident_code, p.kind, now).await?;
        }
        let chain = self.chain_of(&plans, now).await?;
        let certificates = self.run(actor, plans, now).await?;
        // A resident called in after a compromise (crate::emergency) has been re-issued.
        for c in &certificates {
            sqlx::query("UPDATE ca_reissue SET done_at = $1 WHERE resident_code = $2 AND slug = $3 AND generation <> $4 AND done_at IS NULL")
                .bind(now)
                .bind(resident.resident_code.clone())
                .bind(c.ca.clone())
                .bind(c.generation)
                .execute(self.db.pool())
                .await?;
        }
        Ok(Issued { certificates, chain })
    }

    /// Certifies a delegated OCSP responder key for generation `generation` of `ca` (none:
    /// the issuing one), which must still sign status (pending, issuing or retired); validity
    /// `days`, at most the CA's.
    pub async fn issue_responder(
        &self,
        actor: &str,
        ca: &CaId,
        generation: Option<i64>,
        spki: &[u8],
        days: i64,
        now: i64,
    ) -> Result<IssuedCert> {
        KeyAlgorithm::of_spki(spki)?;
        let g = match generation {
            None => self.current(ca, now).await?,
            Some(n) => {
                let st = self.ceremony_status(Some(ca), now).await?;
                let s = st
                    .into_iter()
                    .find(|s| s.generation.generation == n)
                    .ok_or_else(|| Error::NotFound(format!("{ca} g{n}")))?;
                if !s.state.signs_status() {
                    return Err(Error::refused(
                        "generation_not_live",
                        format!("{ca} g{n} is {}: it has no responders", s.state.name()),
                    ));
                }
                s.generation
            }
        };
        let g = Arc::new(g);
        let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e))?;
        let end = (t + time::Duration::days(days.clamp(1, 366)))
            .min(OffsetDateTime::from_unix_timestamp(g.not_after).map_err(|e| Error::invalid("time", e))?);
        let serial = new_serial();
        let subject = format!("CN=OCSP responder {} g{},O=JPKI,C=JP", ca.slug(), g.generation)
            .parse()
            .map_err(|e| Error::invalid("subject", e))?;
        let plan = Plan {
            kind: CertKind::OcspResponder,
            profile: AnyProfile::Responder(OcspResponder {
                issuer: g.cert()?.tbs_certificate().subject().clone(),
                subject,
            }),
            shard: shard_of(&serial, g.shards),
            issuer: g,
            serial,
            spki: spki.to_vec(),
            not_before: t,
            not_after: end,
            resident_code: None,
            issuance_id: None,
            request_id: None,
            feed_position: 0,
            supersedes: Vec::new(),
        };
        Ok(self.run(actor, vec![plan], now).await?.remove(0))
    }

    fn urls(&self, g: &Generation, shard: i64) -> StatusUrls {
        StatusUrls {
            crl: crl_url(&self.settings.crl_base, &g.ca.slug(), g.generation, shard),
            ocsp: self.settings.ocsp_url.clone(),
            ca_issuers: Some(ca_issuers_url(&self.settings.crl_base, &g.ca.slug(), g.generation)),
        }
    }

    async fn chain_of(&self, plans: &[Plan], now: i64) -> Result<Vec<Vec<u8>>> {
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for p in plans {
            if !chain.contains(&p.issuer.certificate) {
                chain.push(p.issuer.certificate.clone());
            }
        }
        for p in plans {
            let root = self.current(&CaId::root(p.issuer.ca.purpose, p.issuer.ca.env), now).await?;
            if !chain.contains(&root.certificate) {
                chain.push(root.certificate);
            }
        }
        Ok(chain)
    }

    /// Valid (issued, unrevoked, unexpired) certificates of a resident and kind.
    async fn valid_serials(&self, resident: &str, kind: CertKind, now: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT c.serial FROM ca_certificate c WHERE c.resident_code = $1 AND c.kind = $2 AND c.state = $3 AND c.not_after > $4 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)")
            .bind(resident)
            .bind(kind as i64)
            .bind(state::ISSUED)
            .bind(now)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn valid_auth_not_after(&self, resident: &str, now: i64) -> Result<Option<OffsetDateTime>> {
        let r = sqlx::query("SELECT MAX(c.not_after) FROM ca_certificate c WHERE c.resident_code = $1 AND c.kind = $2 AND c.state = $3 AND c.not_after > $4 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)")
            .bind(resident)
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .bind(now)
            .fetch_one(self.db.pool())
            .await?;
        let v: Option<i64> = r.try_get(0)?;
        v.map(|s| OffsetDateTime::from_unix_timestamp(s).map_err(|e| Error::invalid("time", e))).transpose()
    }

    async fn by_request(&self, rid: &str) -> Result<Option<Issued>> {
        let rows =
            sqlx::query("SELECT serial FROM ca_certificate WHERE request_id = $1 AND state = $2 ORDER BY kind DESC")
                .bind(rid)
                .bind(state::ISSUED)
                .fetch_all(self.db.pool())
                .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut certificates = Vec::new();
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for r in rows {
            let s: String = r.try_get(0)?;
            let rec = self.show(&s).await?;
            let g = self.generation_of(&rec.ca, rec.generation).await?;
            if !chain.contains(&g.certificate) {
                chain.push(g.certificate.clone());
            }
            certificates.push(IssuedCert {
                serial: rec.serial,
                kind: rec.kind,
                ca: rec.ca,
                generation: rec.generation,
                der: rec.der.unwrap_or_default(),
                not_after: rec.not_after.unwrap_or_default(),
                shard: rec.shard,
            });
        }
        Ok(Some(Issued { certificates, chain }))
    }

    /// A generation by slug and number.
    pub async fn generation_of(&self, slug: &str, generation: i64) -> Result<Generation> {
        let r = sqlx::query(select_generation!("WHERE slug = $1 AND generation = $2"))
            .bind(slug)
            .bind(generation)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("{slug} g{generation}")))?;
        gen_from_row(&r)
    }

    /// Revokes a certificate (operator action or rule). Revocations are final: an already
    /// revoked certificate is refused with its existing reason (certificateHold is never released).
    pub async fn revoke(&self, actor: &str, serial: &str, reason: Reason, cause: &str, now: i64) -> Result<()> {
        let serial = serial.to_ascii_lowercase();
        let mut tx = self.db.write().await?;
        let r =
            sqlx::query("SELECT state, issuer_slug, issuer_generation, shard FROM ca_certificate WHERE serial = $1")
                .bind(serial.clone())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("certificate {serial}")))?;
        let st: i64 = r.try_get(0)?;
        if st == state::RESERVED || st == state::ABANDONED {
            return Err(Error::Conflict(format!("certificate {serial} was never issued")));
        }
        if let Some(prev) = sqlx::query("SELECT reason, revoked_at FROM ca_revocation WHERE serial = $1")
            .bind(serial.clone())
            .fetch_optional(&mut *tx)
            .await?
        {
            let reason = Reason::from_code(prev.try_get(0)?)?;
            return Err(Error::Conflict(format!("certificate {serial} is already revoked ({})", reason.name())));
        }
        insert_revocation(&mut tx, &serial, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, now, reason, cause).await?;
        audit::append(&mut tx, now, actor, "revoke", &format!("{serial} {} ({cause})", reason.name())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Resolves what a crash left: reserved serials without a stored TBS are abandoned (no
    /// certificate can exist); a stored TBS without a stored certificate may have been signed,
    /// so it is revoked (reason unspecified: "destroyed before delivery") and marked void.
    pub async fn recover(&self, actor: &str, now: i64) -> Result<(u64, u64)> {
        let mut tx = self.db.write().await?;
        let abandoned = sqlx::query("UPDATE ca_certificate SET state = $1 WHERE state = $2")
            .bind(state::ABANDONED)
            .bind(state::RESERVED)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rows =
            sqlx::query("SELECT serial, issuer_slug, issuer_generation, shard FROM ca_certificate WHERE state = $1")
                .bind(state::TBS_STORED)
                .fetch_all(&mut *tx)
                .await?;
        for r in &rows {
            let serial: String = r.try_get(0)?;
            insert_revocation(
                &mut tx,
                &serial,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                now,
                Reason::Unspecified,
                "recovery: TBS stored, issuance not completed",
            )
            .await?;
            sqlx::query("UPDATE ca_certificate SET state = $1 WHERE serial = $2")
                .bind(state::VOID)
                .bind(serial)
                .execute(&mut *tx)
                .await?;
        }
        if abandoned > 0 || !rows.is_empty() {
            audit::append(
                &mut tx,
                now,
                actor,
                "recover",
                &format!("{abandoned} reserved serials abandoned, {} stored TBS revoked", rows.len()),
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(abandoned, voided = rows.len(), "recovered an interrupted issuance");
        }
        Ok((abandoned, rows.len() as u64))
    }

    /// One certificate's record.
    pub async fn show(&self, serial: &str) -> Result<CertRecord> {
        let serial = serial.to_ascii_lowercase();
        let r = sqlx::query(concat!(cert_select!(), " WHERE c.serial = $1"))
            .bind(serial.clone())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("certificate {serial}")))?;
        record(&r)
    }

    /// Certificates, newest first, optionally of one resident or one CA.
    pub async fn list(&self, resident: Option<&str>, ca: Option<&str>, limit: i64) -> Result<Vec<CertRecord>> {
        let rows = sqlx::query(concat!(
            cert_select!(),
            " WHERE ($1 IS NULL OR c.resident_code = $1) AND ($2 IS NULL OR c.issuer_slug = $2) ORDER BY c.created_at DESC, c.serial LIMIT $3"
        ))
        .bind(resident.map(str::to_owned))
        .bind(ca.map(str::to_owned))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(record).collect()
    }
}

impl AnyPrepared {
    /// The TBS bytes.
    pub fn tbs(&self) -> &[u8] {
        match self {
            Self::Ca(p) => &p.tbs,
            Self::Link(p) => &p.tbs,
            Self::Signature(p) => &p.tbs,
            Self::Authentication(p) => &p.tbs,
            Self::Responder(p) => &p.tbs,
        }
    }
    fn sign(self, key: &dyn KeyBackend) -> Result<Vec<u8>> {
        match self {
            Self::Ca(p) => p.sign(key),
            Self::Link(p) => p.sign(key),
            Self::Signature(p) => p.sign(key),
            Self::Authentication(p) => p.sign(key),
            Self::Responder(p) => p.sign(key),
        }
    }
}

fn prepare_any(p: &Plan, key: &dyn KeyBackend) -> Result<AnyPrepared> {
    let (s, a, b, k) = (&p.serial, p.not_before, p.not_after, &p.spki);
    Ok(match &p.profile {
        AnyProfile::Ca(x) => AnyPrepared::Ca(prepare(x.clone(), s, a, b, k, key)?),
        AnyProfile::Link(x) => AnyPrepared::Link(prepare(x.clone(), s, a, b, k, key)?),
        AnyProfile::Signature(x) => AnyPrepared::Signature(prepare(x.clone(), s, a, b, k, key)?),
        AnyProfile::Authentication(x) => AnyPrepared::Authentication(prepare(x.clone(), s, a, b, k, key)?),
        AnyProfile::Responder(x) => AnyPrepared::Responder(prepare(x.clone(), s, a, b, k, key)?),
    })
}

/// Rows per multi-row statement of [`Authority::run`] with `columns` bound parameters a row:
/// about 256 parameters a statement. Far below SQLite's (32,766) and PostgreSQL's (65,535)
/// limits, and small enough for binding to stay cheap (sqlx finds each SQLite parameter by
/// name, `sqlite3_bind_parameter_name`, a scan of the statement's parameter list: binding is
/// quadratic in the parameters of one statement, and 2,816 of them cost more than the rows).
fn rows_per_statement(columns: usize) -> usize {
    (256 / columns.max(1)).max(1)
}

/// Certificates per pipelined step of [`Authority::run`] (the first step is [`FIRST_STEP`], so
/// the signing threads start early): one step is signed while the database stores the one
/// before it and the one after it.
const STEP: usize = 256;

/// The size of [`Authority::run`]'s first step.
const FIRST_STEP: usize = 64;

/// The steps of a batch of `n`: [`FIRST_STEP`], then [`STEP`] at a time.
fn steps(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = if start == 0 { FIRST_STEP } else { STEP };
        let end = n.min(start + len);
        out.push(start..end);
        start = end;
    }
    out
}

/// Builds every TBS (on all cores for a large batch; pure CPU work).
fn prepare_all(plans: &[Plan], keys: &[Arc<dyn KeyBackend>]) -> Result<Vec<AnyPrepared>> {
    if plans.len() < 64 {
        return plans.iter().zip(keys).map(|(p, k)| prepare_any(p, k.as_ref())).collect();
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    let chunk = plans.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .chunks(chunk)
            .zip(keys.chunks(chunk))
            .map(|(ps, ks)| {
                scope.spawn(move || {
                    ps.iter().zip(ks).map(|(p, k)| prepare_any(p, k.as_ref())).collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(plans.len());
        for h in handles {
            out.extend(h.join().map_err(|_| Error::key("a TBS-building thread panicked"))??);
        }
        Ok(out)
    })
}

/// One certificate to sign: its index in the batch, its stored TBS, the issuer's key.
type SignJob = (usize, AnyPrepared, Arc<dyn KeyBackend>);

/// The signing threads of one [`Authority::run`]: one per core (at most 8, at most one per
/// certificate), taking certificates from a queue in the order they are submitted and
/// returning each signed and checked ([`Prepared::sign`]). Dropping the pool stops the
/// threads: what is still queued is not signed.
struct SignerPool {
    jobs: Option<std::sync::mpsc::Sender<SignJob>>,
    done: tokio::sync::mpsc::UnboundedReceiver<(usize, Result<Vec<u8>>)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for SignerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerPool").finish_non_exhaustive()
    }
}

impl SignerPool {
    /// Starts the threads for a batch of `n` certificates.
    fn start(n: usize) -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8).min(n.max(1));
        let (jobs, queue) = std::sync::mpsc::channel::<SignJob>();
        let queue = Arc::new(Mutex::new(queue));
        let (results, done) = tokio::sync::mpsc::unbounded_channel();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..threads {
            let (queue, results, stop) = (queue.clone(), results.clone(), stop.clone());
            let spawned = std::thread::Builder::new().name("ca-signer".into()).spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok((i, prepared, key)) = job else { return };
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepared.sign(key.as_ref())))
                        .unwrap_or_else(|_| Err(Error::key("a signing thread panicked")));
                    if results.send((i, signed)).is_err() {
                        return;
                    }
                }
            });
            if let Err(e) = spawned {
                // Fewer threads than cores still sign everything; none at all is an error
                // that `wait_for` reports.
                tracing::warn!(error = %e, "could not start a signing thread");
            }
        }
        Self { jobs: Some(jobs), done, stop }
    }

    /// Queues certificate `i` of the batch for signing.
    fn submit(&self, i: usize, prepared: AnyPrepared, key: Arc<dyn KeyBackend>) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send((i, prepared, key)).ok())
            .ok_or_else(|| Error::key("the signing threads have stopped"))
    }

    /// Waits until every certificate of `range` is signed, putting each into `ders` (others
    /// finished meanwhile are put there too).
    async fn wait_for(&mut self, range: std::ops::Range<usize>, ders: &mut [Option<Vec<u8>>]) -> Result<()> {
        while ders[range.clone()].iter().any(Option::is_none) {
            let (i, signed) = self.done.recv().await.ok_or_else(|| Error::key("the signing threads have stopped"))?;
            ders[i] = Some(signed?);
        }
        Ok(())
    }
}

impl Drop for SignerPool {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.jobs = None;
    }
}
