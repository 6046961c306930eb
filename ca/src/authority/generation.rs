//! CA generations and the settings fixed at `init`: where CRLs and OCSP are published, the
//! roots, the current generation of a CA (one comparison with the activation instant), new
//! generations and their CA certificates, and issuing CAs created on first use.

use std::sync::Arc;

use der::Decode;
use sqlx::Row;
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;

use super::{AnyProfile, Authority, Plan, new_serial};
use crate::audit;
use crate::error::{Error, Result};
use crate::hierarchy::{CaId, Environment, Purpose};
use crate::key::{KeyAlgorithm, KeyBackend, key_identifier};
use crate::profile::{IssuingCa, RootCa, prepare};
use crate::revocation::CertKind;

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

impl Authority {
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
}
