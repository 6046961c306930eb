//! A CRL's revoked serials as a verifier looks them up: parsed with der's reader in one pass
//! over the DER (no per-entry structures beyond a fixed-size record), kept sorted for binary
//! search. Serials of up to 16 octets (all of ours, and RFC 5280's maximum of 20 rarely
//! used) are stored inline; longer ones in a side table.

#![forbid(clippy::disallowed_methods)]

use der::asn1::{AnyRef, UintRef};
use der::{Decode, Header, Reader, SliceReader, Tag};
use x509_cert::time::Time;

/// One revoked serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    serial: u128,
    len: u8,
    revoked_at: i64,
}

/// A CRL's revoked certificates, indexed by serial. Signature and issuer are the caller's
/// business (path validation checks them); this is the lookup.
#[derive(Debug, Default)]
pub struct CrlIndex {
    recs: Vec<Rec>,
    long: Vec<(Vec<u8>, i64)>,
}

fn unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

fn key(serial: &[u8]) -> Option<(u128, u8)> {
    if serial.len() > 16 {
        return None;
    }
    let mut b = [0u8; 16];
    b[16 - serial.len()..].copy_from_slice(serial);
    Some((u128::from_be_bytes(b), serial.len() as u8))
}

impl CrlIndex {
    /// Parses a DER CRL and indexes its entries.
    pub fn parse(der: &[u8]) -> der::Result<CrlIndex> {
        let mut outer = SliceReader::new(der)?;
        let cl = Header::decode(&mut outer)?;
        cl.tag().assert_eq(Tag::Sequence)?;
        let tbs_h = Header::decode(&mut outer)?;
        tbs_h.tag().assert_eq(Tag::Sequence)?;
        let mut t = SliceReader::new(outer.read_slice(tbs_h.length())?)?;
        if Tag::peek(&t)? == Tag::Integer {
            u8::decode(&mut t)?; // version v2
        }
        AnyRef::decode(&mut t)?; // signature algorithm
        AnyRef::decode(&mut t)?; // issuer
        Time::decode(&mut t)?; // thisUpdate
        if !t.is_finished() && matches!(Tag::peek(&t)?, Tag::UtcTime | Tag::GeneralizedTime) {
            Time::decode(&mut t)?; // nextUpdate
        }
        let mut idx = CrlIndex::default();
        if !t.is_finished() && Tag::peek(&t)? == Tag::Sequence {
            let list_h = Header::decode(&mut t)?;
            let mut list = SliceReader::new(t.read_slice(list_h.length())?)?;
            // ~40 bytes per entry is typical; a hint, not a bound.
            idx.recs.reserve(usize::try_from(u32::from(list_h.length())).unwrap_or(0) / 40);
            while !list.is_finished() {
                let eh = Header::decode(&mut list)?;
                eh.tag().assert_eq(Tag::Sequence)?;
                let mut e = SliceReader::new(list.read_slice(eh.length())?)?;
                let serial = UintRef::decode(&mut e)?;
                let at = unix(&Time::decode(&mut e)?);
                // Entry extensions (reason code) are not needed for the lookup.
                match key(serial.as_bytes()) {
                    Some((s, len)) => idx.recs.push(Rec { serial: s, len, revoked_at: at }),
                    None => idx.long.push((serial.as_bytes().to_vec(), at)),
                }
            }
        }
        idx.recs.sort_unstable();
        idx.long.sort();
        Ok(idx)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.recs.len() + self.long.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When `serial` (INTEGER content octets, leading zeros allowed) was revoked, if it is on
    /// this CRL.
    pub fn revoked_at(&self, serial: &[u8]) -> Option<i64> {
        let mut s = serial;
        while s.len() > 1 && s[0] == 0 {
            s = &s[1..];
        }
        match key(s) {
            Some((k, len)) => {
                let i = self.recs.partition_point(|r| (r.serial, r.len) < (k, len));
                self.recs.get(i).filter(|r| r.serial == k && r.len == len).map(|r| r.revoked_at)
            }
            None => self.long.iter().find(|(l, _)| l == s).map(|(_, at)| *at),
        }
    }

    /// Whether `serial` is on this CRL.
    pub fn contains(&self, serial: &[u8]) -> bool {
        self.revoked_at(serial).is_some()
    }

    /// Some serial on the list (for self-checks), or an empty one.
    pub fn sample_serial(&self) -> Vec<u8> {
        match self.recs.get(self.recs.len() / 2) {
            Some(r) => r.serial.to_be_bytes()[16 - usize::from(r.len)..].to_vec(),
            None => self.long.first().map(|(s, _)| s.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ca::crl::{CrlParams, Entry, Reason, Scope, build};
    use ca::key::{KeyAlgorithm, SoftKey};

    #[test]
    fn entries_of_our_crls_are_found_and_others_are_not() {
        let key = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
        let serials: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let mut s = vec![0x40, 1, 2, 3];
                s.extend_from_slice(&i.to_be_bytes());
                s
            })
            .chain([vec![0x7f; 20], vec![0x01]])
            .collect();
        let entries: Vec<Entry<'_>> = serials
            .iter()
            .enumerate()
            .map(|(i, s)| Entry { serial: s, revoked_at: 1_789_000_000 + i as i64, reason: Reason::ALL[i % 7] })
            .collect();
        let p = CrlParams {
            issuer: "CN=Test CA,C=JP".parse().unwrap(),
            issuer_key_id: vec![7; 20],
            number: 1,
            this_update: 1_790_000_000,
            next_update: 1_790_086_400,
            scope: Scope::Shard { url: "http://127.0.0.1/crl/sign-13/g1/0.crl".into() },
        };
        let idx = CrlIndex::parse(&build(&p, &key, &entries).unwrap()).unwrap();
        assert_eq!(idx.len(), 302);
        for (i, s) in serials.iter().enumerate() {
            assert_eq!(idx.revoked_at(s), Some(1_789_000_000 + i as i64), "{}", hex::encode(s));
        }
        assert_eq!(idx.revoked_at(&[0x00, 0x01]), Some(1_789_000_301), "leading zero ignored");
        assert!(!idx.contains(&[0x40, 1, 2, 3, 0, 0, 9, 9]));
        assert!(!idx.contains(&[0x02]));
        assert!(!idx.contains(&[0x7f; 19]));
        let empty = CrlIndex::parse(&build(&p, &key, &[]).unwrap()).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CrlIndex::parse(&[]).is_err());
        assert!(CrlIndex::parse(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(CrlIndex::parse(&[0x04, 0x00]).is_err());
    }
}
