//! The Boulder batch: serials reserved in one commit, then per step the exact TBS stored, signed
//! on the signing threads (the signed TBS checked against the stored one) and the
//! certificates stored, pipelined so the signers never wait for the database.

use std::sync::{Arc, Mutex};

use sqlx::Row;
use time::OffsetDateTime;

use super::{Authority, Generation, IssuedCert, insert_revocation, state};
use crate::audit;
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::key::KeyBackend;
use crate::profile::{AuthenticationCert, IssuingCa, LinkCa, OcspResponder, Prepared, SignatureCert, prepare};
use crate::revocation::CertKind;

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

impl Authority {
    /// Issues the certificates of `plans` in Boulder's order, as one batch: every serial is
    /// reserved in one commit; then, a step of at most `STEP` certificates at a time, the
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
        crate::restore::check_reconciled(&mut tx).await?;
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
        // Each serial with its issuer and kind: what a restore reconciles lost serials by
        // (crate::restore).
        let detail: Vec<String> = plans
            .iter()
            .zip(serials)
            .map(|(p, s)| format!("{s}@{}/g{}/{}", p.issuer.ca.slug(), p.issuer.generation, p.kind as i64))
            .collect();
        audit::append(&mut tx, now, actor, "reserve", &detail.join(",")).await?;
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
