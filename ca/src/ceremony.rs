//! Key ceremonies (issue 11): a ceremony is a reviewed TOML file saying which CA gets a new key
//! generation, with which algorithm, where its key lives, when its certificate starts and when
//! issuance switches to it. [`plan`] checks the file against the CA's previous generation and
//! the overlap policy and gives exactly the steps a run takes (a dry run, pure);
//! [`Authority::ceremony_run`] executes them one at a time, each step committed and audited, so
//! that a run that dies at any point is resumed by running the same file again (a different
//! file for the same generation is refused); [`Authority::ceremony_status`] shows where every
//! generation stands.
//!
//! ```toml
//! ca = "sign-13"             # the CA (slug)
//! generation = 2             # the new generation: the newest one + 1
//! algorithm = "p384"         # rsa2048 | rsa3072 | rsa4096 | p384 | ml-dsa-65 (software keys)
//! key = "software"           # or "pkcs11" with module and token
//! not_before = "2027-01-01T00:00:00Z"
//! activation = "2027-02-01T00:00:00Z"
//! name = "same"              # "same" (JPKI: link certificates) or a new subject DN
//! ```
//!
//! Key states ([`KeyState`]) follow from the stored instants, never from a flag someone must
//! remember to flip: a generation is pending until its activation, issuing from then until a
//! newer generation's activation, retired (CRLs and OCSP material only) until the last
//! certificate it issued expires, then archived. Issuance therefore switches atomically at the
//! activation instant ([`Authority::current`] compares with it). Until the first certificate of
//! a new generation is issued, an operator may roll it back ([`Authority::rollback`]).

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_cert::name::Name;

use crate::audit;
use crate::authority::{AnyProfile, Authority, Generation, GenerationSpec, Plan, arl_url, new_serial};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::hierarchy::CaId;
use crate::key::{KeyAlgorithm, KeyBackend};
use crate::keystore::KeyStore;
use crate::profile::LinkCa;
use crate::revocation::CertKind;

/// The longest end-entity validity: up to the fifth birthday after issuance (≤ 5 years and a
/// day), and never past the card. A new issuing key must be active at least this long before
/// the old CA certificate expires, so that every certificate the old key issued expires first.
pub const LONGEST_END_ENTITY_SECS: i64 = (5 * 366 + 1) * 86_400;

/// A CA certificate's validity: ten years (3653 days), never past its parent's.
pub const CA_VALIDITY_SECS: i64 = 3653 * 86_400;

/// How far notBefore may lie in the past (clock skew between the reviewer and the run).
const BACKDATE_SECS: i64 = 3600;

/// A ceremony file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceremony {
    /// The CA's slug.
    pub ca: String,
    /// The new generation's number.
    pub generation: i64,
    /// Key algorithm name.
    pub algorithm: String,
    /// `software` or `pkcs11`.
    pub key: String,
    /// PKCS#11 module (with `key = "pkcs11"`).
    pub module: Option<String>,
    /// PKCS#11 token label (with `key = "pkcs11"`).
    pub token: Option<String>,
    /// notBefore of the new CA certificate (RFC 3339; may lie in the future).
    pub not_before: String,
    /// When issuance switches to the new key (RFC 3339).
    pub activation: String,
    /// `same` for a same-name re-key, or the new subject DN.
    pub name: String,
}

/// Which way a link certificate goes (RFC 4210 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The new public key, signed by the old private key.
    NewWithOld = 1,
    /// The old public key, signed by the new private key.
    OldWithNew = 2,
}

impl Direction {
    /// The name used in request ids and listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::NewWithOld => "new-with-old",
            Self::OldWithNew => "old-with-new",
        }
    }
}

/// One step of a ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate the key.
    GenerateKey {
        /// Algorithm.
        algorithm: KeyAlgorithm,
        /// Where.
        store: String,
    },
    /// Sign the new CA certificate.
    CaCertificate {
        /// Subject (`same name` or the new DN).
        subject: String,
        /// Who signs it (`self` for a root, the parent CA otherwise).
        signer: String,
        /// notBefore (unix seconds).
        not_before: i64,
        /// notAfter (unix seconds).
        not_after: i64,
    },
    /// A link certificate between the previous root generation and the new one; for a renamed
    /// root, the cross-certificate of the new root by the old.
    Link {
        /// Which way.
        direction: Direction,
        /// The algorithm that signs it.
        signed_with: KeyAlgorithm,
        /// A cross-certificate (new name) rather than a same-name link.
        cross: bool,
    },
    /// The new generation waits, pending, until its activation; then it issues and the
    /// previous one retires (CRLs and OCSP material only).
    Activate {
        /// Unix seconds.
        at: i64,
        /// The generation that retires, if any.
        retires: Option<i64>,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GenerateKey { algorithm, store } => write!(f, "generate a {} key in {store}", algorithm.name()),
            Self::CaCertificate { subject, signer, not_before, not_after } => write!(
                f,
                "sign the CA certificate ({subject}), signed by {signer}, notBefore {}, notAfter {}",
                rfc3339(*not_before),
                rfc3339(*not_after)
            ),
            Self::Link { direction: Direction::NewWithOld, signed_with, cross: false } => write!(
                f,
                "link certificate NewWithOld (the new key, certified by the old) signed with {}",
                signed_with.name()
            ),
            Self::Link { direction: Direction::OldWithNew, signed_with, .. } => write!(
                f,
                "link certificate OldWithNew (the old key, certified by the new) signed with {}",
                signed_with.name()
            ),
            Self::Link { signed_with, cross: true, .. } => write!(
                f,
                "cross-certificate of the new root (new name, new key) by the old root, signed with {}",
                signed_with.name()
            ),
            Self::Activate { at, retires: Some(g) } => {
                write!(
                    f,
                    "at {}: issuance switches to the new generation; g{g} retires (CRLs and OCSP only)",
                    rfc3339(*at)
                )
            }
            Self::Activate { at, retires: None } => write!(f, "at {}: the new generation starts issuing", rfc3339(*at)),
        }
    }
}

/// A checked ceremony: what it makes and the steps that make it.
#[derive(Debug, Clone)]
pub struct CeremonyPlan {
    /// The CA.
    pub ca: CaId,
    /// The new generation.
    pub generation: i64,
    /// Its key algorithm.
    pub algorithm: KeyAlgorithm,
    /// notBefore, activation and notAfter (unix seconds).
    pub not_before: i64,
    /// Activation.
    pub activation: i64,
    /// notAfter of the new CA certificate.
    pub not_after: i64,
    /// A new subject name, if the CA is renamed.
    pub name: Option<Name>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Made, waiting for its activation.
    Pending,
    /// The CA's issuing key.
    Issuing,
    /// Superseded: signs CRLs and OCSP material for what it issued, nothing new.
    Retired,
    /// Everything it issued has expired (or its own certificate has): nothing left to sign.
    Archived,
    /// Rolled back by an operator before it issued anything.
    RolledBack,
}

impl KeyState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issuing => "issuing",
            Self::Retired => "retired",
            Self::Archived => "archived",
            Self::RolledBack => "rolled back",
        }
    }

    /// Whether it still signs CRLs (and its responders OCSP answers).
    pub fn signs_status(self) -> bool {
        matches!(self, Self::Pending | Self::Issuing | Self::Retired)
    }
}

/// The state of `g` at `now`, given the generation of its CA that issues at `now` (if any) and
/// the latest notAfter of what `g` issued.
pub fn key_state(g: &Generation, issuing: Option<i64>, last_issued_not_after: Option<i64>, now: i64) -> KeyState {
    if g.rolled_back.is_some() {
        KeyState::RolledBack
    } else if now >= g.not_after {
        KeyState::Archived
    } else if now < g.activation {
        KeyState::Pending
    } else if issuing == Some(g.generation) {
        KeyState::Issuing
    } else if last_issued_not_after.is_some_and(|t| t > now) {
        KeyState::Retired
    } else {
        KeyState::Archived
    }
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| t.to_string())
}

fn instant(what: &'static str, s: &str) -> Result<i64> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.unix_timestamp()).map_err(|e| Error::invalid(what, e))
}

/// Parses a ceremony file.
pub fn parse(text: &str) -> Result<Ceremony> {
    toml::from_str(text).map_err(|e| Error::invalid("ceremony file", e))
}

/// What a ceremony is checked against: the CA's previous generation (the newest one not rolled
/// back; none for a new CA), the number the new one gets, and for an issuing CA the notAfter
/// of its root's current generation.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The previous generation.
    pub previous: Option<&'a Generation>,
    /// The next generation number.
    pub next: i64,
    /// The parent root's notAfter (issuing CAs).
    pub parent_not_after: Option<i64>,
}

/// Checks `c` in `cx` at `now` and gives its steps; or why the ceremony may not run.
pub fn plan(c: &Ceremony, cx: Context<'_>, now: i64) -> Result<CeremonyPlan> {
    let ca = CaId::parse(&c.ca)?;
    let algorithm = KeyAlgorithm::parse(&c.algorithm)?;
    store_description(c)?;
    if algorithm == KeyAlgorithm::MlDsa65 && c.key == "pkcs11" {
        return Err(Error::invalid("key", "no PKCS#11 token here has ML-DSA: ml-dsa-65 keys are software keys"));
    }
    if c.generation != cx.next {
        return Err(Error::invalid(
            "generation",
            format!("{}: the next generation of {} is {}", c.generation, c.ca, cx.next),
        ));
    }
    let (not_before, activation) = (instant("not_before", &c.not_before)?, instant("activation", &c.activation)?);
    if not_before < now - BACKDATE_SECS {
        return Err(Error::invalid("not_before", "lies in the past (a CA certificate is never backdated)"));
    }
    if activation < now {
        return Err(Error::invalid("activation", "lies in the past"));
    }
    if activation < not_before {
        return Err(Error::invalid("activation", "before the new certificate's notBefore"));
    }
    if let Some(old) = cx.previous {
        if old.activation > now {
            return Err(Error::refused(
                "generation_pending",
                format!("{} g{} is still pending; roll it back or let it activate first", c.ca, old.generation),
            ));
        }
        // Every certificate the old key issues until the switch must expire before the old CA
        // certificate does.
        let latest = old.not_after - LONGEST_END_ENTITY_SECS;
        if activation > latest {
            return Err(Error::refused(
                "overlap",
                format!(
                    "{} g{} expires at {}; its successor must take over issuance by {} (the longest end-entity validity before)",
                    c.ca,
                    old.generation,
                    rfc3339(old.not_after),
                    rfc3339(latest)
                ),
            ));
        }
    }
    let mut not_after = not_before + CA_VALIDITY_SECS;
    if let Some(parent) = cx.parent_not_after {
        not_after = not_after.min(parent);
    }
    if not_after < activation + LONGEST_END_ENTITY_SECS {
        return Err(Error::refused(
            "overlap",
            format!(
                "the new certificate would expire at {}, before certificates issued at its activation could; rotate the root first",
                rfc3339(not_after)
            ),
        ));
    }
    let name = match c.name.as_str() {
        "same" => None,
        dn => Some(dn.parse::<Name>().map_err(|e| Error::invalid("name", e))?),
    };
    let steps = steps(c, &ca, algorithm, cx.previous, not_before, not_after, activation)?;
    Ok(CeremonyPlan { ca, generation: c.generation, algorithm, not_before, activation, not_after, name, steps })
}

fn store_description(c: &Ceremony) -> Result<String> {
    match (c.key.as_str(), &c.module, &c.token) {
        ("software", None, None) => Ok("the software key store".to_owned()),
        ("pkcs11", Some(m), Some(t)) => Ok(format!("PKCS#11 token {t:?} ({m})")),
        ("software", _, _) => Err(Error::invalid("key", "a software key takes no module or token")),
        ("pkcs11", _, _) => Err(Error::invalid("key", "pkcs11 needs module and token")),
        (k, _, _) => Err(Error::invalid("key", format!("{k:?}: software or pkcs11"))),
    }
}

fn steps(
    c: &Ceremony,
    ca: &CaId,
    algorithm: KeyAlgorithm,
    previous: Option<&Generation>,
    not_before: i64,
    not_after: i64,
    activation: i64,
) -> Result<Vec<Step>> {
    let same = c.name == "same";
    let mut steps = vec![
        Step::GenerateKey { algorithm, store: store_description(c)? },
        Step::CaCertificate {
            subject: if same { "the CA's current name".into() } else { c.name.clone() },
            signer: if ca.prefecture.is_none() { "self".into() } else { "the root's current key".into() },
            not_before,
            not_after,
        },
    ];
    if let (Some(old), None) = (previous, &ca.prefecture) {
        // A root re-key: verifiers holding either root reach the other (same name), or the old
        // root vouches for the renamed new one (Let's Encrypt's cross-signing).
        steps.push(Step::Link { direction: Direction::NewWithOld, signed_with: old.algorithm, cross: !same });
        if same {
            steps.push(Step::Link { direction: Direction::OldWithNew, signed_with: algorithm, cross: false });
        }
    }
    steps.push(Step::Activate { at: activation, retires: previous.map(|g| g.generation) });
    Ok(steps)
}

/// One generation as `ceremony status` shows it.
#[derive(Debug, Clone)]
pub struct GenerationStatus {
    /// The generation.
    pub generation: Generation,
    /// Its state now.
    pub state: KeyState,
    /// Certificates it issued (any kind, issued state).
    pub issued: i64,
    /// Its link certificates: (serial, direction, signer generation).
    pub links: Vec<(String, Direction, i64)>,
    /// The ceremony that made it, if one did: (steps done, steps in all).
    pub ceremony: Option<(i64, i64)>,
}

/// What a run of a ceremony works with.
struct RunSteps {
    previous: Option<Generation>,
    algorithm: KeyAlgorithm,
    not_before: i64,
    activation: i64,
    steps: Vec<Step>,
}

/// Where one ceremony stands (`ca_ceremony`).
#[derive(Debug, Clone)]
pub struct CeremonyProgress {
    /// The CA.
    pub ca: CaId,
    /// The generation it makes.
    pub generation: i64,
    /// Steps done.
    pub done: i64,
    /// Steps in all.
    pub total: i64,
    /// When a step was last done (unix seconds).
    pub updated_at: i64,
    /// The steps, in order (`None` if they cannot be recomputed from the file now).
    pub steps: Option<Vec<Step>>,
}

impl Authority {
    /// The context a ceremony for `ca`'s generation `number` is checked in (the previous
    /// generation is the newest one below `number` not rolled back).
    async fn context_of(
        &self,
        ca: &CaId,
        number: Option<i64>,
        now: i64,
    ) -> Result<(Option<Generation>, i64, Option<i64>)> {
        let gens: Vec<Generation> = self
            .generations()
            .await?
            .into_iter()
            .filter(|g| g.ca == *ca && g.rolled_back.is_none() && number.is_none_or(|n| g.generation < n))
            .collect();
        let previous = gens.into_iter().max_by_key(|g| g.generation);
        let next = self.next_generation_number(ca).await?;
        let parent = match &ca.prefecture {
            Some(_) => Some(self.current(&CaId::root(ca.purpose, ca.env), now).await?.not_after),
            None => None,
        };
        Ok((previous, next, parent))
    }

    /// Checks a ceremony against this CA at `now` (the dry run).
    pub async fn ceremony_plan(&self, c: &Ceremony, now: i64) -> Result<CeremonyPlan> {
        let ca = CaId::parse(&c.ca)?;
        let (previous, next, parent) = self.context_of(&ca, None, now).await?;
        let p = plan(c, Context { previous: previous.as_ref(), next, parent_not_after: parent }, now)?;
        self.check_store(c)?;
        Ok(p)
    }

    fn check_store(&self, c: &Ceremony) -> Result<()> {
        match (self.key_store(), c.key.as_str()) {
            (KeyStore::Soft { .. }, "software") => Ok(()),
            (KeyStore::Pkcs11(p), "pkcs11") if c.token.as_deref() == Some(p.token()) => Ok(()),
            (s, _) => Err(Error::refused(
                "key_store",
                format!("the ceremony names a {} key ({:?}); this CA's key store is {s:?}", c.key, c.token),
            )),
        }
    }

    /// Runs (or resumes) the ceremony in `text`: every step committed and audited before the
    /// next starts. Gives the steps, each with whether this run did it (`false`: done before).
    pub async fn ceremony_run(&self, actor: &str, text: &str, now: i64) -> Result<Vec<(Step, bool)>> {
        self.ceremony_run_with(actor, text, now, identity::progress::SILENT).await
    }

    /// [`Authority::ceremony_run`], reporting (steps done, steps) after each step (steps done
    /// by an earlier run count as done).
    pub async fn ceremony_run_with(
        &self,
        actor: &str,
        text: &str,
        now: i64,
        progress: identity::progress::Progress<'_>,
    ) -> Result<Vec<(Step, bool)>> {
        let c = parse(text)?;
        let ca = CaId::parse(&c.ca)?;
        let sha = Sha256::digest(text.as_bytes()).to_vec();
        let row = sqlx::query("SELECT sha256, key_label, step FROM ca_ceremony WHERE slug = $1 AND generation = $2")
            .bind(ca.slug())
            .bind(c.generation)
            .fetch_optional(self.db().pool())
            .await?;
        let (label, done) = match row {
            Some(r) => {
                if r.try_get::<Vec<u8>, _>(0)? != sha {
                    return Err(Error::refused(
                        "ceremony_changed",
                        format!(
                            "a different file was run for {} g{}: a ceremony resumes only with the file it started with",
                            c.ca, c.generation
                        ),
                    ));
                }
                (r.try_get::<String, _>(1)?, r.try_get::<i64, _>(2)?)
            }
            None => {
                let p = self.ceremony_plan(&c, now).await?;
                let label = format!("{}-g{}-{}", ca.slug(), c.generation, hex::encode(rand::random::<[u8; 3]>()));
                let mut tx = self.db().write().await?;
                sqlx::query("INSERT INTO ca_ceremony (slug, generation, file, sha256, key_label, step, steps, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7)")
                    .bind(ca.slug())
                    .bind(c.generation)
                    .bind(text.to_owned())
                    .bind(sha.clone())
                    .bind(label.clone())
                    .bind(p.steps.len() as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let detail = format!("{} g{} started, file sha256 {}", ca, c.generation, hex::encode(&sha));
                audit::append(&mut tx, now, actor, "ceremony", &detail).await?;
                tx.commit().await?;
                (label, 0)
            }
        };
        let RunSteps { previous, algorithm, not_before, activation, steps } = self.run_steps(&c, &ca, now).await?;
        progress(0, steps.len() as u64);
        let mut out = Vec::new();
        let mut key: Option<Arc<dyn KeyBackend>> = None;
        let mut new: Option<Arc<Generation>> = None;
        for (i, step) in steps.iter().enumerate() {
            let i = i as i64;
            let this_run = i >= done;
            match step {
                Step::GenerateKey { .. } => {
                    let k = match self.key_store().find(&label)? {
                        Some(k) => k,
                        None => self.key_store().generate(&label, algorithm)?,
                    };
                    if k.algorithm() != algorithm {
                        return Err(Error::key(format!("key {label} is not {}", algorithm.name())));
                    }
                    key = Some(k);
                }
                Step::CaCertificate { .. } => {
                    let g = match self.generation_of(&ca.slug(), c.generation).await {
                        Ok(g) => g,
                        Err(Error::NotFound(_)) => {
                            let k = key.clone().ok_or_else(|| Error::corrupt("ceremony", "no key"))?;
                            let spec = GenerationSpec {
                                number: c.generation,
                                not_before,
                                activation,
                                name: match c.name.as_str() {
                                    "same" => None,
                                    dn => Some(dn.parse::<Name>().map_err(|e| Error::invalid("name", e))?),
                                },
                                request_id: Some(format!("ceremony:{}:g{}", ca.slug(), c.generation)),
                            };
                            self.certify_generation(actor, &ca, k, &spec, now).await?
                        }
                        Err(e) => return Err(e),
                    };
                    new = Some(Arc::new(g));
                }
                Step::Link { direction, .. } => {
                    if this_run {
                        let old = previous
                            .clone()
                            .ok_or_else(|| Error::corrupt("ceremony", "a link without an old generation"))?;
                        let new =
                            new.clone().ok_or_else(|| Error::corrupt("ceremony", "a link before its generation"))?;
                        self.link(actor, Arc::new(old), new, *direction, now).await?;
                    }
                }
                Step::Activate { .. } => {}
            }
            if this_run {
                let mut tx = self.db().write().await?;
                sqlx::query("UPDATE ca_ceremony SET step = $1, updated_at = $2 WHERE slug = $3 AND generation = $4")
                    .bind(i + 1)
                    .bind(now)
                    .bind(ca.slug())
                    .bind(c.generation)
                    .execute(&mut *tx)
                    .await?;
                audit::append(
                    &mut tx,
                    now,
                    actor,
                    "ceremony",
                    &format!("{} g{} step {}: {step}", ca, c.generation, i + 1),
                )
                .await?;
                tx.commit().await?;
                crash_point(i + 1);
            }
            out.push((step.clone(), this_run));
            progress(out.len() as u64, steps.len() as u64);
        }
        Ok(out)
    }

    /// The steps a run of `c` takes for `ca` at `now`, computed as every run computes them (the
    /// previous generation is the newest one below the ceremony's, not rolled back).
    async fn run_steps(&self, c: &Ceremony, ca: &CaId, now: i64) -> Result<RunSteps> {
        let (previous, _, parent) = self.context_of(ca, Some(c.generation), now).await?;
        let algorithm = KeyAlgorithm::parse(&c.algorithm)?;
        let (not_before, activation) = (instant("not_before", &c.not_before)?, instant("activation", &c.activation)?);
        let not_after = parent.map_or(not_before + CA_VALIDITY_SECS, |p| p.min(not_before + CA_VALIDITY_SECS));
        let steps = steps(c, ca, algorithm, previous.as_ref(), not_before, not_after, activation)?;
        Ok(RunSteps { previous, algorithm, not_before, activation, steps })
    }

    /// Every ceremony started on this CA, newest first, with its steps (recomputed from the
    /// stored file as a resumed run would) and how many are done.
    pub async fn ceremony_progress(&self, now: i64) -> Result<Vec<CeremonyProgress>> {
        let rows = sqlx::query(
            "SELECT slug, generation, file, step, steps, updated_at FROM ca_ceremony ORDER BY updated_at DESC, slug, generation",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let ca = CaId::parse(&r.try_get::<String, _>(0)?)?;
            let file: String = r.try_get(2)?;
            // A stored file was checked when its run started; if its steps cannot be computed
            // now (its CA's context changed since), the counts still stand.
            let steps = match parse(&file) {
                Ok(c) => match self.run_steps(&c, &ca, now).await {
                    Ok(s) => Some(s.steps),
                    Err(e) => {
                        tracing::warn!(ca = %ca, kind = e.kind(), error = %e, "ceremony steps not recomputable");
                        None
                    }
                },
                Err(e) => return Err(Error::corrupt("stored ceremony file", e)),
            };
            out.push(CeremonyProgress {
                ca,
                generation: r.try_get(1)?,
                done: r.try_get(3)?,
                total: r.try_get(4)?,
                updated_at: r.try_get(5)?,
                steps,
            });
        }
        Ok(out)
    }

    /// Issues one link certificate (idempotently: a resumed run finds the one it issued).
    async fn link(
        &self,
        actor: &str,
        old: Arc<Generation>,
        new: Arc<Generation>,
        d: Direction,
        now: i64,
    ) -> Result<()> {
        let rid = format!("ceremony:{}:g{}:{}", new.ca.slug(), new.generation, d.name());
        let serial = match self.issued_by_request(&rid).await? {
            Some(s) => s,
            None => {
                let (signer, subject) = match d {
                    Direction::NewWithOld => (old.clone(), new.clone()),
                    Direction::OldWithNew => (new.clone(), old.clone()),
                };
                let subject_cert = subject.cert()?;
                let t = |s: i64| OffsetDateTime::from_unix_timestamp(s).map_err(|e| Error::invalid("time", e));
                let plan = Plan {
                    kind: CertKind::Authority,
                    profile: AnyProfile::Link(LinkCa {
                        issuer: signer.cert()?.tbs_certificate().subject().clone(),
                        subject: subject_cert.tbs_certificate().subject().clone(),
                        arl_url: arl_url(&self.settings().crl_base, &signer.ca.slug(), signer.generation),
                    }),
                    shard: 0,
                    spki: der::Encode::to_der(subject_cert.tbs_certificate().subject_public_key_info())?,
                    not_before: t(new.not_before.max(now))?,
                    not_after: t(old.not_after)?,
                    resident_code: None,
                    issuance_id: None,
                    request_id: Some(rid),
                    feed_position: 0,
                    supersedes: Vec::new(),
                    issuer: signer,
                    serial: new_serial(),
                };
                self.run(actor, vec![plan], now).await?.remove(0).serial
            }
        };
        sqlx::query("INSERT INTO ca_link (serial, slug, old_generation, new_generation, direction) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (serial) DO NOTHING")
            .bind(serial)
            .bind(new.ca.slug())
            .bind(old.generation)
            .bind(new.generation)
            .bind(d as i64)
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    async fn issued_by_request(&self, rid: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT serial FROM ca_certificate WHERE request_id = $1 AND state = $2")
            .bind(rid)
            .bind(crate::authority::state::ISSUED)
            .fetch_optional(self.db().pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// The link and cross certificates of `ca` (DER), oldest first: what a verifier holding any
    /// one of its root generations needs to reach the others.
    pub async fn links(&self, ca: &CaId) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query("SELECT c.der FROM ca_link l JOIN ca_certificate c ON c.serial = l.serial WHERE l.slug = $1 AND c.state = $2 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = l.serial) ORDER BY l.new_generation, l.direction")
            .bind(ca.slug())
            .bind(crate::authority::state::ISSUED)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Every generation of `ca` (all CAs with `None`) with its state at `now`.
    pub async fn ceremony_status(&self, ca: Option<&CaId>, now: i64) -> Result<Vec<GenerationStatus>> {
        let gens: Vec<Generation> =
            self.generations().await?.into_iter().filter(|g| ca.is_none_or(|c| g.ca == *c)).collect();
        // The issuing generation of each CA, read once per CA (not once per generation).
        let mut issuing_of: std::collections::HashMap<String, Option<i64>> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for g in gens {
            let issuing = match issuing_of.get(&g.ca.slug()) {
                Some(i) => *i,
                None => {
                    let i = match self.current(&g.ca, now).await {
                        Ok(c) => Some(c.generation),
                        Err(Error::NotFound(_)) => None,
                        Err(e) => return Err(e),
                    };
                    issuing_of.insert(g.ca.slug(), i);
                    i
                }
            };
            let r = sqlx::query("SELECT COUNT(*), MAX(not_after) FROM ca_certificate WHERE issuer_slug = $1 AND issuer_generation = $2 AND state = $3")
                .bind(g.ca.slug())
                .bind(g.generation)
                .bind(crate::authority::state::ISSUED)
                .fetch_one(self.db().pool())
                .await?;
            let (issued, last): (i64, Option<i64>) = (r.try_get(0)?, r.try_get(1)?);
            let links = sqlx::query("SELECT l.serial, l.direction, c.issuer_generation FROM ca_link l JOIN ca_certificate c ON c.serial = l.serial WHERE l.slug = $1 AND l.new_generation = $2 ORDER BY l.direction")
                .bind(g.ca.slug())
                .bind(g.generation)
                .fetch_all(self.db().pool())
                .await?
                .iter()
                .map(|r| {
                    let d = match r.try_get::<i64, _>(1)? {
                        1 => Direction::NewWithOld,
                        2 => Direction::OldWithNew,
                        n => return Err(Error::corrupt("link direction", n)),
                    };
                    Ok((r.try_get(0)?, d, r.try_get(2)?))
                })
                .collect::<Result<Vec<_>>>()?;
            let ceremony = sqlx::query("SELECT step, steps FROM ca_ceremony WHERE slug = $1 AND generation = $2")
                .bind(g.ca.slug())
                .bind(g.generation)
                .fetch_optional(self.db().pool())
                .await?
                .map(|r| -> Result<(i64, i64)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
                .transpose()?;
            out.push(GenerationStatus {
                state: key_state(&g, issuing, last, now),
                generation: g,
                issued,
                links,
                ceremony,
            });
        }
        Ok(out)
    }

    /// Rolls back generation `number` of `ca`: allowed until it has issued its first
    /// certificate (link certificates and OCSP responders excepted). Its link certificates and
    /// (for an issuing CA) its own certificate are revoked (superseded) and the previous
    /// generation issues again.
    pub async fn rollback(&self, actor: &str, ca: &CaId, number: i64, now: i64) -> Result<Vec<String>> {
        let mut tx = self.db().write().await?;
        // The row lock first (it waits for issuances holding a share lock on it), then the
        // count, which then sees their reservations.
        let n = sqlx::query(
            "UPDATE ca_generation SET rolled_back = $1 WHERE slug = $2 AND generation = $3 AND rolled_back IS NULL",
        )
        .bind(now)
        .bind(ca.slug())
        .bind(number)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("{ca} g{number} (or it is rolled back already)")));
        }
        let used: i64 = sqlx::query("SELECT COUNT(*) FROM ca_certificate c WHERE c.issuer_slug = $1 AND c.issuer_generation = $2 AND c.state IN (1, 2, 3) AND c.kind IN ($3, $4, $5) AND NOT EXISTS (SELECT 1 FROM ca_link l WHERE l.serial = c.serial)")
            .bind(ca.slug())
            .bind(number)
            .bind(CertKind::Signature as i64)
            .bind(CertKind::Authentication as i64)
            .bind(CertKind::Authority as i64)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if used > 0 {
            return Err(Error::refused(
                "generation_in_use",
                format!("{ca} g{number} has issued {used} certificate(s); revoke instead of rolling back"),
            ));
        }
        audit::append(&mut tx, now, actor, "rollback", &format!("{ca} g{number} rolled back")).await?;
        tx.commit().await?;
        let mut revoked = Vec::new();
        let own = format!("ceremony:{}:g{number}", ca.slug());
        let serials = sqlx::query("SELECT serial FROM ca_certificate WHERE state = $1 AND (request_id = $2 OR serial IN (SELECT serial FROM ca_link WHERE slug = $3 AND new_generation = $4))")
            .bind(crate::authority::state::ISSUED)
            .bind(own)
            .bind(ca.slug())
            .bind(number)
            .fetch_all(self.db().pool())
            .await?;
        for r in serials {
            let s: String = r.try_get(0)?;
            match self.revoke(actor, &s, Reason::Superseded, "rollback", now).await {
                Ok(()) | Err(Error::Conflict(_)) => revoked.push(s),
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }
}

fn crash_point(step: i64) {
    // Fault injection for the ceremony tests: `JPKI_CEREMONY_CRASH_AFTER=N` aborts the process
    // right after step N is committed, as a power cut would.
    if std::env::var("JPKI_CEREMONY_CRASH_AFTER").is_ok_and(|v| v == step.to_string()) {
        eprintln!("JPKI_CEREMONY_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_478_400; // 2026-11-24

    fn file(extra: &str) -> String {
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\n\
             not_before = \"2026-12-01T00:00:00Z\"\nactivation = \"2027-01-01T00:00:00Z\"\n{extra}"
        )
    }

    fn old(not_after: i64) -> Generation {
        Generation {
            ca: CaId::parse("sign-root").unwrap_or_else(|e| panic!("{e}")),
            generation: 1,
            algorithm: KeyAlgorithm::Rsa2048,
            key_ref: String::new(),
            certificate: Vec::new(),
            key_id: Vec::new(),
            not_after,
            shards: 1,
            not_before: 0,
            activation: 0,
            rolled_back: None,
        }
    }

    fn cx(g: &Generation) -> Context<'_> {
        Context { previous: Some(g), next: 2, parent_not_after: None }
    }

    #[test]
    fn a_same_name_root_rekey_plans_both_link_certificates_signed_with_each_algorithm() {
        let c = parse(&file("name = \"same\"")).unwrap_or_else(|e| panic!("{e}"));
        let g = old(NOW + 10 * 365 * 86_400);
        let p = plan(&c, cx(&g), NOW).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(p.steps[0], Step::GenerateKey { algorithm: KeyAlgorithm::EcP384, .. }));
        let link = |direction, signed_with| Step::Link { direction, signed_with, cross: false };
        assert!(p.steps.contains(&link(Direction::NewWithOld, KeyAlgorithm::Rsa2048)));
        assert!(p.steps.contains(&link(Direction::OldWithNew, KeyAlgorithm::EcP384)));
        assert!(matches!(p.steps.last(), Some(Step::Activate { retires: Some(1), .. })));
        assert_eq!(p.not_after - p.not_before, CA_VALIDITY_SECS);
    }

    #[test]
    fn a_renamed_root_gets_one_cross_certificate_from_the_old_root() {
        let c = parse(&file("name = \"CN=JPKI Root R2,O=JPKI,C=JP\"")).unwrap_or_else(|e| panic!("{e}"));
        let g = old(NOW + 10 * 365 * 86_400);
        let p = plan(&c, cx(&g), NOW).unwrap_or_else(|e| panic!("{e}"));
        let links: Vec<&Step> = p.steps.iter().filter(|s| matches!(s, Step::Link { .. })).collect();
        assert_eq!(
            links,
            [&Step::Link { direction: Direction::NewWithOld, signed_with: KeyAlgorithm::Rsa2048, cross: true }]
        );
        assert!(p.name.is_some());
    }

    #[test]
    fn the_overlap_policy_refuses_a_successor_activated_too_late() {
        let c = parse(&file("name = \"same\"")).unwrap_or_else(|e| panic!("{e}"));
        // The old root expires two years after the activation: certificates it issued just
        // before the switch (up to five years) would outlive it.
        let g = old(NOW + 2 * 365 * 86_400);
        assert_eq!(plan(&c, cx(&g), NOW).map(|_| ()).map_err(|e| e.kind()), Err("overlap"));
    }

    #[test]
    fn an_issuing_ca_whose_root_expires_too_soon_is_refused() {
        let c = parse(&file("name = \"same\"").replace("sign-root", "sign-13")).unwrap_or_else(|e| panic!("{e}"));
        let g = old(NOW + 10 * 365 * 86_400);
        // The root ends three years after the activation: the new issuing CA could not issue
        // five-year certificates.
        let cx = Context { previous: Some(&g), next: 2, parent_not_after: Some(NOW + 3 * 365 * 86_400) };
        assert_eq!(plan(&c, cx, NOW).map(|_| ()).map_err(|e| e.kind()), Err("overlap"));
    }

    #[test]
    fn a_ceremony_waits_for_a_pending_generation() {
        let c = parse(&file("name = \"same\"")).unwrap_or_else(|e| panic!("{e}"));
        let mut g = old(NOW + 10 * 365 * 86_400);
        g.activation = NOW + 86_400;
        assert_eq!(plan(&c, cx(&g), NOW).map(|_| ()).map_err(|e| e.kind()), Err("generation_pending"));
    }

    #[test]
    fn key_states_follow_the_instants() {
        let mut g = old(NOW + 1000);
        g.activation = NOW - 10;
        assert_eq!(key_state(&g, Some(1), None, NOW), KeyState::Issuing);
        assert_eq!(key_state(&g, Some(2), Some(NOW + 5), NOW), KeyState::Retired);
        assert_eq!(key_state(&g, Some(2), Some(NOW - 5), NOW), KeyState::Archived);
        assert_eq!(key_state(&g, Some(2), None, NOW + 1000), KeyState::Archived);
        g.activation = NOW + 10;
        assert_eq!(key_state(&g, Some(1), None, NOW), KeyState::Pending);
        g.rolled_back = Some(NOW);
        assert_eq!(key_state(&g, None, None, NOW), KeyState::RolledBack);
        assert!(KeyState::Retired.signs_status() && !KeyState::Archived.signs_status());
    }

    #[test]
    fn bad_ceremonies_are_refused_before_anything_is_planned() {
        let bad = [
            file("name = \"same\"\nunknown = 1"),
            file("name = \"same\"")
                .replace("p384", "ml-dsa-65")
                .replace("key = \"software\"", "key = \"pkcs11\"\nmodule = \"m.so\"\ntoken = \"t\""),
            file("name = \"same\"").replace("p384", "rsa1024"),
            file("name = \"same\"").replace("generation = 2", "generation = 3"),
            file("name = \"same\"").replace("2027-01-01", "2026-01-01"),
            file("name = \"same\"").replace("2026-12-01", "2026-01-01"),
            file("name = \"same\"").replace("key = \"software\"", "key = \"pkcs11\""),
            file("name = \"not a DN\""),
        ];
        let g = old(NOW + 10 * 365 * 86_400);
        for b in bad {
            let r = parse(&b).and_then(|c| plan(&c, cx(&g), NOW));
            assert!(r.is_err(), "{b}");
        }
    }
}
