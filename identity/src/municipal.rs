//! The municipal node: the authoritative register of one municipality. Each change commits
//! in one transaction: the new record version, the change notice (gapless per-source seq
//! from a counter row, hash-chained, signed by the municipality's notice key) and the
//! operator-log row.
//!
//! A municipality without a notice key ([`Municipality::set_signer`]) refuses every change
//! ([`Error::NoNoticeKey`]): it never commits an unsigned notice. Reads, 転出証明書 and
//! received 転入通知 need no key. A key's certificate is stored in `notice_key` before the
//! key signs anything, so every signed notice's key is servable to replicas.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::Date;

use crate::error::{Error, Result};
use crate::ids::{LgCode, ResidentCode};
use crate::notice::{ChangeNotice, GENESIS, NoticeBody, NoticeKind, NoticeRef};
use crate::notice_sig::{MAX_KEY_CERT, NoticeSigner, check_key_id, sign_notice};
use crate::operator::{self, Operator, Role};
use crate::person::{FlaggedText, FourItems, Record, ResidentStatus};
use crate::provision::Lookup;
use crate::store::{self, Db, Tx, hash_from, i64_from, u64_from};

/// The 転出証明書情報 the old municipality hands to the new one: the record as it left and
/// the move-out notice that the move-in must follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoveOutCertificate {
    /// The record after the move-out.
    pub record: Record,
    /// The move-out notice.
    pub move_out: NoticeRef,
    /// Where the resident said they were going.
    pub destination: LgCode,
}

/// One municipality's node. Clones share the current notice key, so a rotation through any
/// clone (e.g. the operator's) is seen by all (e.g. the HTTP shell's).
#[derive(Debug, Clone)]
pub struct Municipality {
    db: Db,
    code: LgCode,
    signer: Arc<RwLock<Option<Arc<dyn NoticeSigner>>>>,
}

impl Municipality {
    /// Opens the node for `code` on `db`, claiming the database for it.
    pub async fn open(db: Db, code: LgCode) -> Result<Self> {
        store::claim_identity(&db, "municipality", code.as_str()).await?;
        let mut tx = db.write().await?;
        let exists = sqlx::query("SELECT 1 FROM source_counter WHERE source = $1")
            .bind(code.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            sqlx::query("INSERT INTO source_counter (source, last_seq, last_hash) VALUES ($1, 0, $2)")
                .bind(code.as_str())
                .bind(GENESIS.to_vec())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Self { db, code, signer: Arc::new(RwLock::new(None)) })
    }

    /// This node with `signer` installed as its notice key ([`Self::set_signer`]).
    pub async fn with_signer(self, signer: Arc<dyn NoticeSigner>) -> Result<Self> {
        self.set_signer(signer, crate::http::now()).await?;
        Ok(self)
    }

    /// Installs `signer` as the current notice key: its certificate is stored in `notice_key`
    /// first (append-only; the certificates of earlier keys stay, so their notices stay
    /// verifiable), then every later change is signed by it. A new key id is a rotation; the
    /// network CA has certified the key (replicas refuse certificates it did not issue).
    pub async fn set_signer(&self, signer: Arc<dyn NoticeSigner>, now: i64) -> Result<()> {
        let key_id = signer.key_id().to_owned();
        check_key_id(&key_id).map_err(|e| Error::invalid("key_id", e))?;
        let cert = signer.key_cert();
        if cert.is_empty() || cert.len() > MAX_KEY_CERT {
            return Err(Error::invalid("key_cert", format!("{} bytes (want 1–{MAX_KEY_CERT})", cert.len())));
        }
        let mut tx = self.db.write().await?;
        store::insert_notice_key(&mut tx, self.code.as_str(), &key_id, cert, now).await?;
        tx.commit().await?;
        *self.signer.write().map_err(|_| Error::corrupt("notice signer", "lock poisoned"))? = Some(signer);
        tracing::info!(municipality = %self.code, key_id = %key_id, "notice key installed");
        Ok(())
    }

    /// Key id of the current notice key, if one is installed.
    pub fn key_id(&self) -> Option<String> {
        self.current_signer().ok().map(|s| s.key_id().to_owned())
    }

    fn current_signer(&self) -> Result<Arc<dyn NoticeSigner>> {
        self.signer
            .read()
            .map_err(|_| Error::corrupt("notice signer", "lock poisoned"))?
            .clone()
            .ok_or_else(|| Error::NoNoticeKey { municipality: self.code.to_string() })
    }

    /// This municipality's code.
    pub fn code(&self) -> &LgCode {
        &self.code
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Begins a register change. Every change first takes this municipality's counter row
    /// (a no-op update), so concurrent clerks serialise on it from the start: on PostgreSQL
    /// two changes never race for the same pooled code or record (SQLite's `BEGIN
    /// IMMEDIATE` already serialises writers).
    async fn begin(&self) -> Result<Tx> {
        // Refuse before anything is read or drawn when there is no key to sign with.
        self.current_signer()?;
        let mut tx = self.db.write().await?;
        sqlx::query("UPDATE source_counter SET last_seq = last_seq WHERE source = $1")
            .bind(self.code.as_str())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Adds a pool of resident codes handed out by the national node (idempotent).
    pub async fn add_pool(&self, codes: &[ResidentCode]) -> Result<u64> {
        let mut tx = self.db.write().await?;
        let mut added = 0;
        for c in codes {
            added += sqlx::query("INSERT INTO code_pool (code) VALUES ($1) ON CONFLICT (code) DO NOTHING")
                .bind(c.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Codes left in the pool.
    pub async fn pool_remaining(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM code_pool WHERE drawn_at IS NULL")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        u64_from(n, "pool count")
    }

    /// The current record of a resident on this register (any status).
    pub async fn get(&self, code: &ResidentCode) -> Result<Record> {
        let row = sqlx::query("SELECT record FROM resident WHERE resident_code = $1")
            .bind(code.as_str())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::not_found("resident", code))?;
        decode_record(row.try_get(0)?)
    }

    /// Registers a new resident by birth or first registration; the code is drawn from the pool.
    pub async fn register(
        &self,
        op: &Operator,
        kind: NoticeKind,
        items: FourItems,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        if !matches!(kind, NoticeKind::Birth | NoticeKind::FirstRegistration) {
            return Err(Error::invalid(
                "kind",
                format!("{kind:?} is not a registration by birth or first registration"),
            ));
        }
        op.require(Role::MunicipalClerk, "register residents")?;
        let mut tx = self.begin().await?;
        let code = draw_code(&mut tx, &self.code, now).await?;
        let record = Record {
            resident_code: code,
            items,
            status: ResidentStatus::Active,
            municipality: self.code.clone(),
            version: 1,
        };
        let body = body(kind, op, effective, now, record);
        self.commit(tx, op, body).await
    }

    /// The newest notice of `kind` this municipality recorded about `code`, if any.
    pub async fn last_notice(&self, code: &ResidentCode, kind: NoticeKind) -> Result<Option<ChangeNotice>> {
        let row = sqlx::query(
            "SELECT seq, body, prev_hash, hash FROM change_notice
             WHERE source = $1 AND resident_code = $2 AND kind = $3 ORDER BY seq DESC LIMIT 1",
        )
        .bind(self.code.as_str())
        .bind(code.as_str())
        .bind(i64::from(kind.code()))
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            ChangeNotice::decode(
                &row.try_get::<Vec<u8>, _>(1)?,
                hash_from(row.try_get(2)?)?,
                hash_from(row.try_get(3)?)?,
            )
        })
        .transpose()
    }

    /// A clerk's lookup on this register (the window's find): by 住民票コード or by an exact
    /// match of all four items, any status; there is no other search. The lookup and the codes
    /// it found are written to the operator log under `op` before the records are returned
    /// (a miss too); a miss is [`Error::NotFound`].
    pub async fn find(&self, op: &Operator, by: &Lookup, now: i64) -> Result<Vec<Record>> {
        op.require(Role::MunicipalClerk, "look up residents")?;
        let (how, rows) = match by {
            Lookup::ResidentCode(code) => (
                "resident_code",
                sqlx::query("SELECT record FROM resident WHERE resident_code = $1 AND municipality = $2")
                    .bind(code.as_str())
                    .bind(self.code.as_str())
                    .fetch_all(self.db.pool())
                    .await?,
            ),
            Lookup::FourItems(items) => (
                "four_items",
                sqlx::query(
                    "SELECT record FROM resident WHERE municipality = $1 AND name = $2 AND date_of_birth = $3
                     AND sex = $4 AND address = $5 ORDER BY resident_code",
                )
                .bind(self.code.as_str())
                .bind(items.name.text())
                .bind(crate::notice::format_date(items.date_of_birth))
                .bind(i64::from(u8::from(items.sex)))
                .bind(items.address.text())
                .fetch_all(self.db.pool())
                .await?,
            ),
        };
        let records = rows.into_iter().map(|r| decode_record(r.try_get(0)?)).collect::<Result<Vec<_>>>()?;
        let found = records.iter().map(|r| r.resident_code.as_str()).collect::<Vec<_>>().join(",");
        let subject = format!("by {how}: {}", if found.is_empty() { "none found" } else { &found });
        let mut tx = self.db.write().await?;
        operator::log(&mut tx, op, "find", &subject, now).await?;
        tx.commit().await?;
        if records.is_empty() {
            return Err(Error::not_found("resident", format!("(by {how}) on the register of {}", self.code)));
        }
        Ok(records)
    }

    /// The 転出証明書情報 for a resident who moved out of this municipality.
    pub async fn move_out_certificate(&self, code: &ResidentCode) -> Result<MoveOutCertificate> {
        let record = self.get(code).await?;
        if record.status != ResidentStatus::MovedOut {
            return Err(Error::Conflict(format!("resident {code} has not moved out of {}", self.code)));
        }
        let n = self
            .last_notice(code, NoticeKind::MoveOut)
            .await?
            .ok_or_else(|| Error::not_found("move-out notice", code))?;
        let destination =
            n.body.destination.clone().ok_or_else(|| Error::corrupt("move-out notice", "no destination"))?;
        Ok(MoveOutCertificate { record, move_out: n.key, destination })
    }

    /// Registers a resident moving in with the old municipality's certificate.
    pub async fn move_in(
        &self,
        op: &Operator,
        cert: &MoveOutCertificate,
        address: FlaggedText,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        op.require(Role::MunicipalClerk, "register move-ins")?;
        if cert.destination != self.code {
            return Err(Error::Conflict(format!(
                "certificate says the resident moves to {}, not {}",
                cert.destination, self.code
            )));
        }
        if cert.move_out.source == self.code {
            return Err(Error::Conflict("a move within the municipality is a 転居, not a 転入".into()));
        }
        let mut tx = self.begin().await?;
        if let Some(existing) = load(&mut tx, &cert.record.resident_code).await?
            && existing.status == ResidentStatus::Active
        {
            return Err(Error::Conflict(format!("resident {} is already registered here", existing.resident_code)));
        }
        let mut record = cert.record.clone();
        record.items.address = address;
        record.status = ResidentStatus::Active;
        record.municipality = self.code.clone();
        record.version += 1;
        let mut b = body(NoticeKind::MoveIn, op, effective, now, record);
        b.predecessor = Some(cert.move_out.clone());
        self.commit(tx, op, b).await
    }

    /// 転居: a new address within this municipality.
    pub async fn move_within(
        &self,
        op: &Operator,
        code: &ResidentCode,
        address: FlaggedText,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        self.change(op, code, NoticeKind::MoveWithin, effective, now, |r| {
            r.items.address = address;
            Ok(())
        })
        .await
    }

    /// 転出 to another municipality.
    pub async fn move_out(
        &self,
        op: &Operator,
        code: &ResidentCode,
        destination: LgCode,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        if destination == self.code {
            return Err(Error::invalid("destination", "a move within the municipality is a 転居".into()));
        }
        let dest = destination.clone();
        self.change_with(op, code, NoticeKind::MoveOut, effective, now, |b| {
            b.record.status = ResidentStatus::MovedOut;
            b.destination = Some(dest);
            Ok(())
        })
        .await
    }

    /// Removal from the register: death, emigration or ex-officio removal.
    pub async fn remove(
        &self,
        op: &Operator,
        code: &ResidentCode,
        kind: NoticeKind,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        if !matches!(kind, NoticeKind::Death | NoticeKind::Emigration | NoticeKind::RemovalExOfficio) {
            return Err(Error::invalid("kind", format!("{kind:?} is not a removal")));
        }
        self.change(op, code, kind, effective, now, |r| {
            r.status = kind.status_after();
            Ok(())
        })
        .await
    }

    /// 職権修正: corrects the four items.
    pub async fn correct(
        &self,
        op: &Operator,
        code: &ResidentCode,
        items: FourItems,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        self.change(op, code, NoticeKind::Correction, effective, now, |r| {
            if r.items == items {
                return Err(Error::invalid("items", "the correction changes nothing".into()));
            }
            r.items = items;
            Ok(())
        })
        .await
    }

    /// 住民票コード変更 on request: a new code from the pool; the old one is retired forever.
    pub async fn change_code(
        &self,
        op: &Operator,
        code: &ResidentCode,
        effective: Date,
        now: i64,
    ) -> Result<ChangeNotice> {
        op.require(Role::MunicipalClerk, "change resident codes")?;
        let mut tx = self.begin().await?;
        let mut record = active(&mut tx, code).await?;
        let new_code = draw_code(&mut tx, &self.code, now).await?;
        sqlx::query("INSERT INTO retired_code (code, replaced_by, retired_at) VALUES ($1, $2, $3)")
            .bind(code.as_str())
            .bind(new_code.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM resident WHERE resident_code = $1").bind(code.as_str()).execute(&mut *tx).await?;
        record.resident_code = new_code;
        record.version += 1;
        let mut b = body(NoticeKind::CodeChange, op, effective, now, record);
        b.previous_code = Some(code.clone());
        self.commit(tx, op, b).await
    }

    /// Receives a 転入通知 from the new municipality: idempotent (a retry returns `false`).
    pub async fn receive_move_in_notice(
        &self,
        code: &ResidentCode,
        new_municipality: &LgCode,
        notice_seq: u64,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.db.write().await?;
        let rec = load(&mut tx, code).await?.ok_or_else(|| Error::not_found("resident", code))?;
        if rec.status != ResidentStatus::MovedOut {
            return Err(Error::Conflict(format!("resident {code} has not moved out of {}", self.code)));
        }
        let inserted = sqlx::query(
            "INSERT INTO move_in_notification (resident_code, new_municipality, notice_seq, received_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(code.as_str())
        .bind(new_municipality.as_str())
        .bind(i64_from(notice_seq, "notice_seq")?)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn change(
        &self,
        op: &Operator,
        code: &ResidentCode,
        kind: NoticeKind,
        effective: Date,
        now: i64,
        f: impl FnOnce(&mut Record) -> Result<()>,
    ) -> Result<ChangeNotice> {
        self.change_with(op, code, kind, effective, now, |b| f(&mut b.record)).await
    }

    async fn change_with(
        &self,
        op: &Operator,
        code: &ResidentCode,
        kind: NoticeKind,
        effective: Date,
        now: i64,
        f: impl FnOnce(&mut NoticeBody) -> Result<()>,
    ) -> Result<ChangeNotice> {
        op.require(Role::MunicipalClerk, "change the register")?;
        let mut tx = self.begin().await?;
        let record = active(&mut tx, code).await?;
        let mut b = body(kind, op, effective, now, record);
        f(&mut b)?;
        b.record.version += 1;
        self.commit(tx, op, b).await
    }

    /// Seals the body with the next seq and chain hash, signs it with the current notice key,
    /// stores record + signed notice + log, commits: one transaction, so no unsigned notice
    /// is ever committed.
    async fn commit(&self, mut tx: Tx, op: &Operator, body: NoticeBody) -> Result<ChangeNotice> {
        let signer = self.current_signer()?;
        let row = sqlx::query(
            "UPDATE source_counter SET last_seq = last_seq + 1 WHERE source = $1 RETURNING last_seq, last_hash",
        )
        .bind(self.code.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let seq = u64_from(row.try_get(0)?, "seq")?;
        let prev = hash_from(row.try_get(1)?)?;
        let mut n = ChangeNotice::seal(self.code.clone(), seq, prev, body);
        sign_notice(signer.as_ref(), &mut n)
            .map_err(|reason| Error::Signing { key_id: signer.key_id().to_owned(), reason })?;
        sqlx::query("UPDATE source_counter SET last_hash = $1 WHERE source = $2")
            .bind(n.hash.to_vec())
            .bind(self.code.as_str())
            .execute(&mut *tx)
            .await?;
        store::insert_notices(&mut tx, &[&n]).await?;
        upsert_residents(&mut tx, &[(&n.body.record, &n.key)]).await?;
        let subject = format!("{} {} seq {}", n.body.kind.label(), n.body.record.resident_code, seq);
        operator::log(&mut tx, op, &format!("{:?}", n.body.kind), &subject, n.body.recorded_at).await?;
        tx.commit().await?;
        self.db.changed();
        Ok(n)
    }
}

fn body(kind: NoticeKind, op: &Operator, effective: Date, now: i64, record: Record) -> NoticeBody {
    NoticeBody {
        kind,
        effective_date: effective,
        recorded_at: now,
        operator: op.id.clone(),
        previous_code: None,
        predecessor: None,
        destination: None,
        record,
    }
}

/// Draws one unused code from the municipality's pool.
async fn draw_code(tx: &mut Tx, municipality: &LgCode, now: i64) -> Result<ResidentCode> {
    let row = sqlx::query("SELECT code FROM code_pool WHERE drawn_at IS NULL ORDER BY code LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::PoolExhausted(municipality.to_string()))?;
    let code: String = row.try_get(0)?;
    let n = sqlx::query("UPDATE code_pool SET drawn_at = $1 WHERE code = $2 AND drawn_at IS NULL")
        .bind(now)
        .bind(code.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(Error::Conflict("a concurrent registration drew the same pooled code; retry".into()));
    }
    code.parse().map_err(|e| Error::corrupt("code pool", e))
}

pub(crate) fn decode_record(bytes: Vec<u8>) -> Result<Record> {
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("record", e))
}

pub(crate) async fn load(tx: &mut Tx, code: &ResidentCode) -> Result<Option<Record>> {
    sqlx::query("SELECT record FROM resident WHERE resident_code = $1")
        .bind(code.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| decode_record(r.try_get(0)?))
        .transpose()
}

async fn active(tx: &mut Tx, code: &ResidentCode) -> Result<Record> {
    let r = load(tx, code).await?.ok_or_else(|| Error::not_found("resident", code))?;
    if r.status != ResidentStatus::Active {
        return Err(Error::Conflict(format!("resident {code} is not on the active register ({:?})", r.status)));
    }
    Ok(r)
}

/// Writes current record rows (register or projection), many per statement. Codes must be
/// distinct within one call.
pub(crate) async fn upsert_residents(tx: &mut Tx, rows: &[(&Record, &NoticeRef)]) -> Result<()> {
    for chunk in rows.chunks(store::ROWS_PER_STATEMENT / 2) {
        let sql = format!(
            "INSERT INTO resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)
             VALUES {}
             ON CONFLICT (resident_code) DO UPDATE SET municipality = excluded.municipality, status = excluded.status,
               version = excluded.version, name = excluded.name, date_of_birth = excluded.date_of_birth,
               sex = excluded.sex, address = excluded.address, record = excluded.record,
               last_source = excluded.last_source, last_seq = excluded.last_seq",
            store::values_clause(chunk.len(), 11)
        );
        // Built from placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (r, from) in chunk {
            q = q
                .bind(r.resident_code.as_str().to_owned())
                .bind(r.municipality.as_str().to_owned())
                .bind(i64::from(u8::from(r.status)))
                .bind(i64_from(r.version, "version")?)
                .bind(r.items.name.text().to_owned())
                .bind(crate::notice::format_date(r.items.date_of_birth))
                .bind(i64::from(u8::from(r.items.sex)))
                .bind(r.items.address.text().to_owned())
                .bind(serde_json::to_vec(r).map_err(|e| Error::corrupt("record", e))?)
                .bind(from.source.as_str().to_owned())
                .bind(i64_from(from.seq, "seq")?);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Current records of `codes` (those that exist), keyed by code.
pub(crate) async fn load_many(
    conn: &mut sqlx::AnyConnection,
    codes: &[&str],
) -> Result<std::collections::HashMap<String, Record>> {
    let mut out = std::collections::HashMap::with_capacity(codes.len());
    for chunk in codes.chunks(store::ROWS_PER_STATEMENT * 5) {
        let sql = format!(
            "SELECT resident_code, record FROM resident WHERE resident_code IN ({})",
            store::in_list(chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind((*c).to_owned());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.try_get::<String, _>(0)?, decode_record(r.try_get(1)?)?);
        }
    }
    Ok(out)
}
