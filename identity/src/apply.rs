//! The pure replication decisions: given a source's cursor and a received notice, apply it,
//! ignore it as a duplicate, wait for a gap to fill, park it until its causal predecessor
//! arrives, or halt the source because the chain diverged ([`decide`]); and whether the
//! source is entitled to write what the notice writes ([`check_ownership`]). No I/O, no clock.

#![forbid(clippy::disallowed_methods)]

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::ids::LgCode;
use crate::notice::{ChangeNotice, GENESIS, Hash, NoticeKind, NoticeRef};
use crate::person::{Record, ResidentStatus};

/// The replica tier. Both keep the full history and project it into current records (the
/// prefecture server answers its own bodies' lawful queries) and a change feed; only the
/// national tier enforces the causal order of moves between prefectures, because only it
/// sees both sides of such a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// 都道府県サーバ: its municipalities' history, their projection, cursors.
    Prefecture,
    /// 全国サーバ: every history, the national projection, change feed, retired codes.
    National,
}

/// How far a receiver has applied one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Highest applied seq (0 = nothing yet).
    pub applied_seq: u64,
    /// Hash of that notice ([`GENESIS`] when nothing is applied).
    pub applied_hash: Hash,
}

impl Cursor {
    /// The cursor of a source nothing has been applied from.
    pub const START: Cursor = Cursor { applied_seq: 0, applied_hash: GENESIS };
}

/// What to do with a received notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The next notice of the chain: apply it (and advance the cursor) in one transaction.
    Apply,
    /// Already applied with the same hash: acknowledge, change nothing.
    Duplicate,
    /// Notices are missing before this one: do not apply; re-pull from `expected`.
    Gap {
        /// The seq that must come next.
        expected: u64,
    },
    /// Next in the chain, but its causal predecessor (the old municipality's move-out) is
    /// not applied yet: keep it for a later round.
    Park {
        /// The notice that must be applied first.
        waiting_for: NoticeRef,
    },
    /// Contradicts the stored history (forged, corrupted or split-brain): halt the source.
    Diverged {
        /// What did not match.
        reason: String,
        /// The hash this node's history calls for, where one hash contradicts another: the
        /// hash of the notice's content, the applied chain head, or the hash applied for
        /// that seq.
        expected: Option<Hash>,
        /// The hash the notice carries in its place (its `hash` or its `prev_hash`).
        received: Option<Hash>,
    },
}

/// Decides what to do with `n` given the source's cursor, the hash stored for `n.seq` if
/// that seq was already applied, and whether `n`'s causal predecessor is applied.
pub fn decide(cur: &Cursor, n: &ChangeNotice, stored_hash: Option<&Hash>, predecessor_applied: bool) -> Decision {
    if let Err(e) = n.verify_hash() {
        let reason = match e {
            crate::error::Error::Diverged { reason, .. } => reason,
            other => other.to_string(),
        };
        let want = crate::notice::chain_hash(&n.prev_hash, &n.encoding());
        return Decision::Diverged { reason, expected: Some(want), received: Some(n.hash) };
    }
    match n.key.seq.cmp(&(cur.applied_seq + 1)) {
        Ordering::Equal if n.prev_hash != cur.applied_hash => Decision::Diverged {
            reason: format!(
                "seq {} names prev_hash {} but the applied chain head is {}",
                n.key.seq,
                hex::encode(n.prev_hash),
                hex::encode(cur.applied_hash)
            ),
            expected: Some(cur.applied_hash),
            received: Some(n.prev_hash),
        },
        Ordering::Equal => match &n.body.predecessor {
            Some(p) if !predecessor_applied => Decision::Park { waiting_for: p.clone() },
            _ => Decision::Apply,
        },
        Ordering::Less if n.key.seq == 0 => {
            Decision::Diverged { reason: "seq 0 does not exist".into(), expected: None, received: None }
        }
        Ordering::Less => match stored_hash {
            Some(h) if *h == n.hash => Decision::Duplicate,
            Some(h) => Decision::Diverged {
                reason: format!(
                    "seq {} was applied with hash {}, received {}",
                    n.key.seq,
                    hex::encode(h),
                    hex::encode(n.hash)
                ),
                expected: Some(*h),
                received: Some(n.hash),
            },
            None => Decision::Diverged {
                reason: format!("seq {} is below the cursor but not stored", n.key.seq),
                expected: None,
                received: None,
            },
        },
        Ordering::Greater => Decision::Gap { expected: cur.applied_seq + 1 },
    }
}

/// An item of 本人確認情報 that a change touched (the change-information feed's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// 氏名 (text or substitute flags).
    Name,
    /// 住所 (text or substitute flags).
    Address,
    /// 生年月日.
    DateOfBirth,
    /// 性別.
    Sex,
    /// 住民票コード.
    ResidentCode,
    /// Register status.
    Status,
    /// Owning municipality.
    Municipality,
}

impl Item {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Address => "address",
            Self::DateOfBirth => "date_of_birth",
            Self::Sex => "sex",
            Self::ResidentCode => "resident_code",
            Self::Status => "status",
            Self::Municipality => "municipality",
        }
    }
}

/// Which items differ between the previous projection of a resident and the new record
/// (all of them for a first appearance).
pub fn changed_items(prev: Option<&Record>, next: &Record) -> Vec<Item> {
    let Some(p) = prev else {
        return vec![
            Item::Name,
            Item::Address,
            Item::DateOfBirth,
            Item::Sex,
            Item::ResidentCode,
            Item::Status,
            Item::Municipality,
        ];
    };
    let mut v = Vec::new();
    if p.items.name != next.items.name {
        v.push(Item::Name);
    }
    if p.items.address != next.items.address {
        v.push(Item::Address);
    }
    if p.items.date_of_birth != next.items.date_of_birth {
        v.push(Item::DateOfBirth);
    }
    if p.items.sex != next.items.sex {
        v.push(Item::Sex);
    }
    if p.resident_code != next.resident_code {
        v.push(Item::ResidentCode);
    }
    if p.status != next.status {
        v.push(Item::Status);
    }
    if p.municipality != next.municipality {
        v.push(Item::Municipality);
    }
    v
}

/// A page asked for `source` must hold only notices of `source`, in strictly increasing seq
/// order: a peer that answers with another municipality's notices (to have them applied
/// under that municipality's chain) or with a shuffled page gets nothing applied. Pure; the
/// refusal names codes and seqs only.
pub fn check_page(source: &str, page: &[ChangeNotice]) -> Result<(), String> {
    if let Some(other) = page.iter().find(|n| n.key.source.as_str() != source) {
        return Err(format!("peer returned notices of {} when asked for {source}; page refused", other.key.source));
    }
    if let Some(w) = page.windows(2).find(|w| w[1].key.seq <= w[0].key.seq) {
        return Err(format!(
            "peer returned seq {} after seq {} of {source}; seqs must increase strictly; page refused",
            w[1].key.seq, w[0].key.seq
        ));
    }
    Ok(())
}

/// What a replica knows when it checks one notice against the ownership rule. The shell
/// gathers it inside the batch's transaction and folds it over the earlier notices of the
/// same batch (a registration earlier in the batch owns the resident for a later move within).
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The projected record of the resident the notice acts on: under `previous_code` for a
    /// [`NoticeKind::CodeChange`], under the record's code for every other kind.
    pub current: Option<&'a Record>,
    /// Whether that code is retired on this replica.
    pub retired: bool,
    /// [`NoticeKind::CodeChange`] only: the projected record under the new code, if any.
    pub new_code_holder: Option<&'a Record>,
    /// [`NoticeKind::CodeChange`] only: whether the new code is retired on this replica.
    pub new_code_retired: bool,
    /// The municipality the national node issued the notice's new code to (registrations
    /// and code changes), when its `issued_code` table records one.
    pub issued_to: Option<&'a str>,
    /// [`NoticeKind::MoveIn`] only: the predecessor notice, if this replica holds it.
    pub predecessor: Option<&'a ChangeNotice>,
}

/// A notice that passes the ownership rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The source owns what the notice writes: store it, project it, feed it.
    Owned,
    /// Prefecture tier only: the projection already holds this resident at the same or a
    /// later version (the resident moved on through another prefecture, which this replica
    /// does not see, and came back before the older notice was pulled), or the code is
    /// retired here. Store and relay it unchanged; do not project or feed it. The national
    /// tier, which sees every side, checks it in full.
    Stale,
}

/// The ownership rule: may `n`'s source write what `n` writes, given what the replica knows
/// (`f`)? `Err` says why not; the caller halts the source. Pure.
///
/// 1. Shape, as the municipal register writes each kind: the record belongs to the source
///    (`record.municipality == source`, a move-out included: the old municipality keeps the
///    moved-out record), its status is the kind's status after, a move-out (only) names a
///    destination other than the source, a move-in (only) names a predecessor at another
///    municipality, a code change (only) names a previous code other than the new one, and a
///    registration starts at version 1.
/// 2. Birth and first registration: the code belongs to no projected record and is not
///    retired; at the national tier, if `issued_code` records the code, it was issued to
///    the source.
/// 3. Move within, move-out, death, correction, code change (on its previous code),
///    emigration and ex-officio removal: the resident is projected here, owned by the
///    source and active; at the national tier its version grows by exactly one. A code
///    change's new code belongs to no record, is not retired and (national) was issued to
///    the source.
/// 4. Move-in: its predecessor is a move-out of the same resident code whose destination is
///    the source, and the move-in's version follows it; the projected resident is owned by
///    the predecessor's source with status moved out. At the prefecture tier a predecessor
///    in another prefecture cannot be seen: the move-in is accepted there on its shape alone
///    (the national tier checks it).
///
/// At the prefecture tier a notice older than the projection is [`Ownership::Stale`] (see
/// there); at the national tier, which applies moves in causal order, it is refused.
pub fn check_ownership(n: &ChangeNotice, f: &Facts<'_>, tier: Tier) -> Result<Ownership, String> {
    check_shape(n)?;
    let prefecture = tier == Tier::Prefecture;
    let (s, b) = (&n.key.source, &n.body);
    let r = &b.record;
    let code = &r.resident_code;
    // At the prefecture tier the projection may be ahead of this notice (see `Stale`).
    let stale = |held: &Record| prefecture && held.version >= r.version;
    match b.kind {
        NoticeKind::Birth | NoticeKind::FirstRegistration => {
            if let Some(cur) = f.current {
                if stale(cur) {
                    return Ok(Ownership::Stale);
                }
                return Err(format!("resident code {code} already belongs to {} ({:?})", cur.municipality, cur.status));
            }
            if f.retired {
                return if prefecture { Ok(Ownership::Stale) } else { Err(format!("resident code {code} is retired")) };
            }
            issued_to_source(f, tier, s, code.as_str())?;
            Ok(Ownership::Owned)
        }
        NoticeKind::MoveIn => {
            if f.current.is_some_and(stale) {
                return Ok(Ownership::Stale);
            }
            let Some(p) = &b.predecessor else { return Err("a move-in without predecessor".into()) };
            let Some(pn) = f.predecessor else {
                if prefecture && p.source.prefecture() != s.prefecture() {
                    // The move-out is in another prefecture: only the national tier sees it.
                    return Ok(Ownership::Owned);
                }
                return Err(format!("its predecessor {}/{} is not held here", p.source, p.seq));
            };
            if pn.key != *p {
                return Err(format!(
                    "its predecessor {}/{} was looked up as {}/{}",
                    p.source, p.seq, pn.key.source, pn.key.seq
                ));
            }
            if pn.body.kind != NoticeKind::MoveOut {
                return Err(format!("its predecessor {}/{} is a {:?}, not a move-out", p.source, p.seq, pn.body.kind));
            }
            if pn.body.record.resident_code != *code {
                return Err(format!(
                    "its predecessor {}/{} moved out resident {}, not {code}",
                    p.source, p.seq, pn.body.record.resident_code
                ));
            }
            if pn.body.destination.as_ref() != Some(s) {
                let to = pn.body.destination.as_ref().map_or_else(|| "nowhere".to_owned(), ToString::to_string);
                return Err(format!("its predecessor {}/{} moved resident {code} to {to}, not {s}", p.source, p.seq));
            }
            if r.version != pn.body.record.version + 1 {
                return Err(format!(
                    "version {} does not follow the move-out's version {}",
                    r.version, pn.body.record.version
                ));
            }
            let Some(cur) = f.current else { return Err(format!("resident {code} is not known here")) };
            if cur.municipality != p.source || cur.status != ResidentStatus::MovedOut {
                return Err(format!(
                    "resident {code} is {:?} at {}, not moved out of {}",
                    cur.status, cur.municipality, p.source
                ));
            }
            if !prefecture && r.version != cur.version + 1 {
                return Err(format!("version {} does not follow the projected version {}", r.version, cur.version));
            }
            Ok(Ownership::Owned)
        }
        NoticeKind::MoveWithin
        | NoticeKind::MoveOut
        | NoticeKind::Death
        | NoticeKind::Correction
        | NoticeKind::CodeChange
        | NoticeKind::Emigration
        | NoticeKind::RemovalExOfficio => {
            let acting = b.previous_code.as_ref().unwrap_or(code);
            let Some(cur) = f.current else {
                if prefecture && f.retired {
                    return Ok(Ownership::Stale);
                }
                return Err(format!("resident {acting} is not known here"));
            };
            if stale(cur) {
                return Ok(Ownership::Stale);
            }
            if cur.municipality != *s {
                return Err(format!("resident {acting} belongs to {}, not {s}", cur.municipality));
            }
            if cur.status != ResidentStatus::Active {
                return Err(format!("resident {acting} is {:?}, not active", cur.status));
            }
            if !prefecture && r.version != cur.version + 1 {
                return Err(format!("version {} does not follow the projected version {}", r.version, cur.version));
            }
            if b.kind == NoticeKind::CodeChange {
                if let Some(h) = f.new_code_holder {
                    if stale(h) {
                        return Ok(Ownership::Stale);
                    }
                    return Err(format!("new code {code} already belongs to {} ({:?})", h.municipality, h.status));
                }
                if f.new_code_retired {
                    return if prefecture { Ok(Ownership::Stale) } else { Err(format!("new code {code} is retired")) };
                }
                issued_to_source(f, tier, s, code.as_str())?;
            }
            Ok(Ownership::Owned)
        }
    }
}

/// Rule 1 of [`check_ownership`]: the notice has the shape the municipal register gives its kind.
fn check_shape(n: &ChangeNotice) -> Result<(), String> {
    let (s, b) = (&n.key.source, &n.body);
    let (kind, r) = (b.kind, &b.record);
    if r.municipality != *s {
        return Err(format!("a {kind:?} of {s} carries a record of municipality {}", r.municipality));
    }
    if r.status != kind.status_after() {
        return Err(format!("a {kind:?} leaves status {:?}, not {:?}", r.status, kind.status_after()));
    }
    match (kind, &b.destination) {
        (NoticeKind::MoveOut, None) => return Err("a move-out without destination".into()),
        (NoticeKind::MoveOut, Some(d)) if d == s => return Err("a move-out to its own municipality".into()),
        (NoticeKind::MoveOut, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(format!("a {kind:?} with a destination")),
    }
    match (kind, &b.predecessor) {
        (NoticeKind::MoveIn, None) => return Err("a move-in without predecessor".into()),
        (NoticeKind::MoveIn, Some(p)) if p.source == *s => return Err("a move-in from its own municipality".into()),
        (NoticeKind::MoveIn, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(format!("a {kind:?} with a predecessor")),
    }
    match (kind, &b.previous_code) {
        (NoticeKind::CodeChange, None) => return Err("a code change without previous code".into()),
        (NoticeKind::CodeChange, Some(p)) if *p == r.resident_code => {
            return Err("a code change to the same code".into());
        }
        (NoticeKind::CodeChange, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(format!("a {kind:?} with a previous code")),
    }
    if kind.is_registration() && kind != NoticeKind::MoveIn && r.version != 1 {
        return Err(format!("a registration starts at version 1, not {}", r.version));
    }
    Ok(())
}

/// At the national tier, a code the national node recorded as issued must have gone to `s`.
fn issued_to_source(f: &Facts<'_>, tier: Tier, s: &LgCode, code: &str) -> Result<(), String> {
    match f.issued_to {
        Some(m) if tier == Tier::National && m != s.as_str() => {
            Err(format!("resident code {code} was issued to {m}, not {s}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::NoticeKind;
    use crate::notice::tests::sample_body;

    fn chain(n: u64) -> Vec<ChangeNotice> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let c = ChangeNotice::seal(
                    "131016".parse().unwrap_or_else(|e| panic!("{e}")),
                    seq,
                    prev,
                    sample_body("12345678903", NoticeKind::MoveWithin),
                );
                prev = c.hash;
                c
            })
            .collect()
    }

    #[test]
    fn next_in_chain_applies_and_duplicates_are_acknowledged() {
        let c = chain(3);
        assert_eq!(decide(&Cursor::START, &c[0], None, true), Decision::Apply);
        let cur = Cursor { applied_seq: 2, applied_hash: c[1].hash };
        assert_eq!(decide(&cur, &c[2], None, true), Decision::Apply);
        assert_eq!(decide(&cur, &c[1], Some(&c[1].hash), true), Decision::Duplicate);
    }

    #[test]
    fn gaps_wait_and_forgeries_diverge() {
        let c = chain(3);
        assert_eq!(decide(&Cursor::START, &c[2], None, true), Decision::Gap { expected: 1 });
        let cur = Cursor { applied_seq: 1, applied_hash: c[0].hash };
        // Content changed after sealing: the hash no longer matches.
        let mut forged = c[1].clone();
        forged.body.operator = "mallory".into();
        assert!(matches!(decide(&cur, &forged, None, true), Decision::Diverged { .. }));
        // Re-sealed on a different history: prev_hash mismatch.
        let other = ChangeNotice::seal(c[1].key.source.clone(), 2, [7; 32], c[1].body.clone());
        assert!(matches!(decide(&cur, &other, None, true), Decision::Diverged { .. }));
        // A different notice for an applied seq.
        let cur2 = Cursor { applied_seq: 2, applied_hash: c[1].hash };
        assert!(matches!(decide(&cur2, &c[0], Some(&c[1].hash), true), Decision::Diverged { .. }));
    }

    #[test]
    fn a_divergence_names_the_hash_expected_and_the_hash_received() {
        let c = chain(3);
        let cur = Cursor { applied_seq: 1, applied_hash: c[0].hash };
        let hashes = |d: Decision| match d {
            Decision::Diverged { expected, received, .. } => (expected, received),
            other => panic!("{other:?}"),
        };
        // Another history: the applied head was expected as prev_hash.
        let other = ChangeNotice::seal(c[1].key.source.clone(), 2, [7; 32], c[1].body.clone());
        assert_eq!(hashes(decide(&cur, &other, None, true)), (Some(c[0].hash), Some([7; 32])));
        // Content changed after sealing: the content's hash was expected.
        let mut forged = c[1].clone();
        forged.body.operator = "mallory".into();
        let want = crate::notice::chain_hash(&forged.prev_hash, &forged.encoding());
        assert_eq!(hashes(decide(&cur, &forged, None, true)), (Some(want), Some(c[1].hash)));
        // An applied seq received again with another hash: the stored one was expected.
        let cur2 = Cursor { applied_seq: 2, applied_hash: c[1].hash };
        assert_eq!(hashes(decide(&cur2, &c[0], Some(&c[1].hash), true)), (Some(c[1].hash), Some(c[0].hash)));
    }

    #[test]
    fn a_move_in_parks_until_its_move_out_is_applied() {
        let mut body = sample_body("12345678903", NoticeKind::MoveIn);
        let pred = NoticeRef { source: "011002".parse().unwrap_or_else(|e| panic!("{e}")), seq: 4 };
        body.predecessor = Some(pred.clone());
        let n = ChangeNotice::seal("131016".parse().unwrap_or_else(|e| panic!("{e}")), 1, GENESIS, body);
        assert_eq!(decide(&Cursor::START, &n, None, false), Decision::Park { waiting_for: pred });
        assert_eq!(decide(&Cursor::START, &n, None, true), Decision::Apply);
    }

    #[test]
    fn changed_items_names_exactly_the_differences() {
        let a = sample_body("12345678903", NoticeKind::Birth).record;
        let mut b = a.clone();
        assert!(changed_items(Some(&a), &b).is_empty());
        b.items.address =
            crate::person::FlaggedText::plain("address", "大阪府大阪市北区1").unwrap_or_else(|e| panic!("{e}"));
        b.municipality = "271004".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(changed_items(Some(&a), &b), vec![Item::Address, Item::Municipality]);
        assert_eq!(changed_items(None, &b).len(), 7);
    }

    fn lgc(s: &str) -> LgCode {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    const TOKYO: &str = "131016";
    const SHINJUKU: &str = "131041";
    const OSAKA: &str = "271004";
    const CODE: &str = "12345678903";

    /// A projected record of `CODE` owned by `muni`.
    fn held(muni: &str, status: ResidentStatus, version: u64) -> Record {
        let mut r = sample_body(CODE, NoticeKind::Birth).record;
        r.municipality = lgc(muni);
        r.status = status;
        r.version = version;
        r
    }

    /// A notice of `kind` sealed by `source` for `CODE` at `version`, shaped as the municipal
    /// register writes that kind.
    fn sealed(source: &str, kind: NoticeKind, version: u64) -> ChangeNotice {
        let mut b = sample_body(CODE, kind);
        b.record.municipality = lgc(source);
        b.record.version = version;
        match kind {
            NoticeKind::MoveOut => b.destination = Some(lgc(if source == OSAKA { TOKYO } else { OSAKA })),
            NoticeKind::MoveIn => b.predecessor = Some(NoticeRef { source: lgc(OSAKA), seq: 4 }),
            NoticeKind::CodeChange => {
                b.previous_code = Some(CODE.parse().unwrap_or_else(|e| panic!("{e}")));
                b.record.resident_code = "98765432103".parse().unwrap_or_else(|e| panic!("{e}"));
            }
            _ => {}
        }
        ChangeNotice::seal(lgc(source), 9, GENESIS, b)
    }

    fn owned(n: &ChangeNotice, f: &Facts<'_>, tier: Tier) -> Result<Ownership, String> {
        check_ownership(n, f, tier)
    }

    fn refused(n: &ChangeNotice, f: &Facts<'_>, tier: Tier, why: &str) {
        match check_ownership(n, f, tier) {
            Err(e) => assert!(e.contains(why), "{e:?} should say {why:?}"),
            Ok(o) => {
                panic!("{:?} of {} accepted as {o:?}; expected a refusal saying {why:?}", n.body.kind, n.key.source)
            }
        }
    }

    #[test]
    fn a_notice_carries_a_record_of_its_own_source_in_the_shape_of_its_kind() {
        let f = Facts::default();
        let mut n = sealed(TOKYO, NoticeKind::Birth, 1);
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        n.body.record.municipality = lgc(OSAKA);
        refused(&n, &f, Tier::National, "carries a record of municipality 271004");
        refused(&n, &f, Tier::Prefecture, "carries a record of municipality 271004");
        let mut n = sealed(TOKYO, NoticeKind::Birth, 2);
        refused(&n, &f, Tier::National, "starts at version 1");
        n.body.record.version = 1;
        n.body.record.status = ResidentStatus::Deceased;
        refused(&n, &f, Tier::National, "leaves status Deceased");
        let cur = held(TOKYO, ResidentStatus::Active, 1);
        let f = Facts { current: Some(&cur), ..Facts::default() };
        let mut n = sealed(TOKYO, NoticeKind::MoveWithin, 2);
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        n.body.destination = Some(lgc(OSAKA));
        refused(&n, &f, Tier::National, "with a destination");
        let mut n = sealed(TOKYO, NoticeKind::MoveOut, 2);
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        n.body.destination = None;
        refused(&n, &f, Tier::National, "without destination");
        n.body.destination = Some(lgc(TOKYO));
        refused(&n, &f, Tier::National, "its own municipality");
        let mut n = sealed(TOKYO, NoticeKind::Correction, 2);
        n.body.predecessor = Some(NoticeRef { source: lgc(OSAKA), seq: 1 });
        refused(&n, &f, Tier::National, "with a predecessor");
        let mut n = sealed(TOKYO, NoticeKind::Death, 2);
        n.body.previous_code = Some(CODE.parse().unwrap_or_else(|e| panic!("{e}")));
        refused(&n, &f, Tier::National, "with a previous code");
    }

    #[test]
    fn only_the_owning_municipality_changes_an_active_resident() {
        let osakan = held(OSAKA, ResidentStatus::Active, 1);
        let f = Facts { current: Some(&osakan), ..Facts::default() };
        for kind in [
            NoticeKind::MoveWithin,
            NoticeKind::MoveOut,
            NoticeKind::Death,
            NoticeKind::Correction,
            NoticeKind::Emigration,
            NoticeKind::RemovalExOfficio,
            NoticeKind::CodeChange,
        ] {
            // Tokyo writes about an Osaka resident: refused at both tiers.
            refused(&sealed(TOKYO, kind, 2), &f, Tier::National, "belongs to 271004, not 131016");
            refused(&sealed(TOKYO, kind, 2), &f, Tier::Prefecture, "belongs to 271004, not 131016");
            // Osaka writes about its own resident.
            assert_eq!(owned(&sealed(OSAKA, kind, 2), &f, Tier::National), Ok(Ownership::Owned), "{kind:?}");
            // Nobody writes about a resident the replica does not know.
            refused(&sealed(OSAKA, kind, 2), &Facts::default(), Tier::National, "is not known here");
            refused(&sealed(OSAKA, kind, 2), &Facts::default(), Tier::Prefecture, "is not known here");
        }
        // The owner, but the resident is no longer active there.
        let dead = held(OSAKA, ResidentStatus::Deceased, 2);
        let f = Facts { current: Some(&dead), ..Facts::default() };
        refused(&sealed(OSAKA, NoticeKind::Correction, 3), &f, Tier::National, "is Deceased, not active");
        let gone = held(OSAKA, ResidentStatus::MovedOut, 2);
        let f = Facts { current: Some(&gone), ..Facts::default() };
        refused(&sealed(OSAKA, NoticeKind::Death, 3), &f, Tier::National, "is MovedOut, not active");
        // At the national tier the version grows by exactly one.
        let f = Facts { current: Some(&osakan), ..Facts::default() };
        refused(&sealed(OSAKA, NoticeKind::Death, 5), &f, Tier::National, "does not follow");
        refused(&sealed(OSAKA, NoticeKind::Death, 1), &f, Tier::National, "does not follow");
    }

    #[test]
    fn at_the_prefecture_tier_a_notice_older_than_the_projection_is_stale_not_projected() {
        // Moved on through another prefecture and back: the projection is at version 5.
        let ahead = held(SHINJUKU, ResidentStatus::Active, 5);
        let f = Facts { current: Some(&ahead), ..Facts::default() };
        for n in [
            sealed(TOKYO, NoticeKind::Birth, 1),
            sealed(TOKYO, NoticeKind::MoveWithin, 2),
            sealed(TOKYO, NoticeKind::MoveOut, 3),
        ] {
            assert_eq!(owned(&n, &f, Tier::Prefecture), Ok(Ownership::Stale), "{:?}", n.body.kind);
            assert!(owned(&n, &f, Tier::National).is_err(), "{:?}", n.body.kind);
        }
        // A newer notice about someone else's resident is still refused there.
        refused(&sealed(TOKYO, NoticeKind::Death, 6), &f, Tier::Prefecture, "belongs to 131041");
        // A retired code: older history of a code changed since.
        let f = Facts { retired: true, ..Facts::default() };
        assert_eq!(owned(&sealed(TOKYO, NoticeKind::MoveWithin, 2), &f, Tier::Prefecture), Ok(Ownership::Stale));
        refused(&sealed(TOKYO, NoticeKind::MoveWithin, 2), &f, Tier::National, "is not known here");
    }

    #[test]
    fn a_registration_takes_a_free_code_issued_to_its_source() {
        let n = sealed(TOKYO, NoticeKind::FirstRegistration, 1);
        let other = held(OSAKA, ResidentStatus::Active, 1);
        let f = Facts { current: Some(&other), ..Facts::default() };
        refused(&n, &f, Tier::National, "already belongs to 271004");
        let f = Facts { retired: true, ..Facts::default() };
        refused(&n, &f, Tier::National, "is retired");
        let f = Facts { issued_to: Some(OSAKA), ..Facts::default() };
        refused(&n, &f, Tier::National, "was issued to 271004, not 131016");
        // The prefecture does not hold the issued-code table.
        assert_eq!(owned(&n, &f, Tier::Prefecture), Ok(Ownership::Owned));
        let f = Facts { issued_to: Some(TOKYO), ..Facts::default() };
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        // A code the national node has no record of (a pool loaded offline, a rebuilt node).
        assert_eq!(owned(&n, &Facts::default(), Tier::National), Ok(Ownership::Owned));
    }

    #[test]
    fn a_code_change_takes_a_free_code_issued_to_its_source() {
        let mine = held(TOKYO, ResidentStatus::Active, 1);
        let n = sealed(TOKYO, NoticeKind::CodeChange, 2);
        let f = Facts { current: Some(&mine), ..Facts::default() };
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        let taken = held(OSAKA, ResidentStatus::Active, 1);
        let f = Facts { current: Some(&mine), new_code_holder: Some(&taken), ..Facts::default() };
        refused(&n, &f, Tier::National, "new code 98765432103 already belongs to 271004");
        let f = Facts { current: Some(&mine), new_code_retired: true, ..Facts::default() };
        refused(&n, &f, Tier::National, "new code 98765432103 is retired");
        let f = Facts { current: Some(&mine), issued_to: Some(OSAKA), ..Facts::default() };
        refused(&n, &f, Tier::National, "was issued to 271004");
    }

    #[test]
    fn a_move_in_follows_a_move_out_of_the_same_resident_to_its_source() {
        let mut out = sealed(OSAKA, NoticeKind::MoveOut, 2);
        out.key.seq = 4;
        let gone = held(OSAKA, ResidentStatus::MovedOut, 2);
        let n = sealed(TOKYO, NoticeKind::MoveIn, 3);
        let f = Facts { current: Some(&gone), predecessor: Some(&out), ..Facts::default() };
        assert_eq!(owned(&n, &f, Tier::National), Ok(Ownership::Owned));
        // The predecessor is not a move-out.
        let mut death = sealed(OSAKA, NoticeKind::Death, 2);
        death.key.seq = 4;
        let f = Facts { current: Some(&gone), predecessor: Some(&death), ..Facts::default() };
        refused(&n, &f, Tier::National, "is a Death, not a move-out");
        // A move-out of someone else.
        let mut someone = out.clone();
        someone.body.record.resident_code = "98765432103".parse().unwrap_or_else(|e| panic!("{e}"));
        let f = Facts { current: Some(&gone), predecessor: Some(&someone), ..Facts::default() };
        refused(&n, &f, Tier::National, "moved out resident 98765432103, not 12345678903");
        // A move-out to another municipality.
        let mut elsewhere = out.clone();
        elsewhere.body.destination = Some(lgc(SHINJUKU));
        let f = Facts { current: Some(&gone), predecessor: Some(&elsewhere), ..Facts::default() };
        refused(&n, &f, Tier::National, "to 131041, not 131016");
        // The resident is still active at the old municipality (or owned by a third one).
        let active = held(OSAKA, ResidentStatus::Active, 2);
        let f = Facts { current: Some(&active), predecessor: Some(&out), ..Facts::default() };
        refused(&n, &f, Tier::National, "is Active at 271004, not moved out of 271004");
        let third = held(SHINJUKU, ResidentStatus::MovedOut, 2);
        let f = Facts { current: Some(&third), predecessor: Some(&out), ..Facts::default() };
        refused(&n, &f, Tier::National, "at 131041, not moved out of 271004");
        // The version must follow the move-out's.
        let f = Facts { current: Some(&gone), predecessor: Some(&out), ..Facts::default() };
        refused(&sealed(TOKYO, NoticeKind::MoveIn, 7), &f, Tier::National, "does not follow the move-out");
        // The national tier must hold the predecessor.
        let f = Facts { current: Some(&gone), ..Facts::default() };
        refused(&n, &f, Tier::National, "predecessor 271004/4 is not held here");
        // A prefecture cannot see a move-out in another prefecture: shape only.
        assert_eq!(owned(&n, &Facts::default(), Tier::Prefecture), Ok(Ownership::Owned));
        // Within the prefecture it can, and must.
        let mut within = sealed(TOKYO, NoticeKind::MoveIn, 3);
        within.body.predecessor = Some(NoticeRef { source: lgc(SHINJUKU), seq: 4 });
        refused(&within, &Facts::default(), Tier::Prefecture, "predecessor 131041/4 is not held here");
    }

    #[test]
    fn a_page_holds_only_the_asked_source_in_increasing_seq_order() {
        let c = chain(3);
        assert_eq!(check_page(TOKYO, &c), Ok(()));
        let e = check_page(OSAKA, &c).unwrap_err();
        assert_eq!(e, "peer returned notices of 131016 when asked for 271004; page refused");
        let e = check_page(TOKYO, &[c[0].clone(), c[2].clone(), c[1].clone()]).unwrap_err();
        assert!(e.contains("seq 2 after seq 3"), "{e}");
        assert!(check_page(TOKYO, &[c[0].clone(), c[0].clone()]).is_err());
    }
}
