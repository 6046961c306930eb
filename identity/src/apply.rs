//! The pure replication decision: given a source's cursor and a received notice, apply it,
//! ignore it as a duplicate, wait for a gap to fill, park it until its causal predecessor
//! arrives, or halt the source because the chain diverged. No I/O, no clock.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::notice::{ChangeNotice, GENESIS, Hash, NoticeRef};
use crate::person::Record;

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
        return Decision::Diverged { reason };
    }
    match n.key.seq.cmp(&(cur.applied_seq + 1)) {
        Ordering::Equal if n.prev_hash != cur.applied_hash => Decision::Diverged {
            reason: format!(
                "seq {} names prev_hash {} but the applied chain head is {}",
                n.key.seq,
                hex::encode(n.prev_hash),
                hex::encode(cur.applied_hash)
            ),
        },
        Ordering::Equal => match &n.body.predecessor {
            Some(p) if !predecessor_applied => Decision::Park { waiting_for: p.clone() },
            _ => Decision::Apply,
        },
        Ordering::Less if n.key.seq == 0 => Decision::Diverged { reason: "seq 0 does not exist".into() },
        Ordering::Less => match stored_hash {
            Some(h) if *h == n.hash => Decision::Duplicate,
            Some(h) => Decision::Diverged {
                reason: format!(
                    "seq {} was applied with hash {}, received {}",
                    n.key.seq,
                    hex::encode(h),
                    hex::encode(n.hash)
                ),
            },
            None => Decision::Diverged { reason: format!("seq {} is below the cursor but not stored", n.key.seq) },
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
}
