//! The stateless responder's hot set: the pre-signed responses it served recently, bounded by a
//! byte budget and evicted by CLOCK (second chance), split into shards (each its own lock,
//! budget and hand) so that hits on different keys touch different locks. A hit takes one
//! shard's read lock, sets one flag and takes references: it copies and allocates nothing.
//! Only inserts, removals and evictions take a write lock.
//!
//! Everything a hit needs is made once, when a response enters the set (after
//! [`crate::stateless`] checked it against the CertID asked): its ETag, its `Last-Modified` and
//! `Expires` dates, the issuerNameHash of its CertID (a hit compares it with the request's), and
//! its DER. The bytes every response of one responder ends with (its certificate) are kept once
//! and shared; an entry keeps the bytes before them, and the answer is the two pieces in order
//! (written out together, never copied into one buffer). Each entry is charged its key, its own
//! bytes (head, ETag, dates, name hash) and a fixed overhead for the map, the slot and the
//! reference counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::http::HeaderValue;

use crate::responder::{Cached, Status};

/// Bytes charged per entry besides key and its own bytes (map entry, slot, key and buffer
/// headers, reference counts).
pub const OVERHEAD: usize = 224;

/// Most shared tails kept (one per responder certificate in use).
const MAX_TAILS: usize = 64;

/// Most shards; a small budget gets fewer (each shard at least [`MIN_SHARD`] bytes), so that one
/// large entry still fits in a shard.
const MAX_SHARDS: usize = 16;
const MIN_SHARD: usize = 1 << 20;

/// An IMF-fixdate (RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT") of unix seconds.
pub fn http_date(unix: i64) -> Option<String> {
    use time::format_description::well_known::Rfc2822;
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    Some(t.format(&Rfc2822).ok()?.replace("+0000", "GMT"))
}

/// A hot response as served: references into the entry's buffer and the shared tail.
#[derive(Debug, Clone)]
pub struct Hit {
    /// ETag, Last-Modified, Expires, issuerNameHash, DER head (in this order).
    buf: Bytes,
    /// The shared DER tail (empty when the response is kept whole).
    tail: Bytes,
    /// Lengths of the ETag, the two dates and the name hash in `buf`.
    lens: [u8; 4],
    /// thisUpdate (unix seconds).
    pub this_update: i64,
    /// nextUpdate (unix seconds).
    pub next_update: i64,
    /// The status it says.
    pub status: Status,
}

impl Hit {
    fn part(&self, i: usize) -> Bytes {
        let start: usize = self.lens[..i].iter().map(|&l| usize::from(l)).sum();
        self.buf.slice(start..start + usize::from(self.lens[i]))
    }

    fn header(&self, i: usize) -> Option<HeaderValue> {
        let b = self.part(i);
        if b.is_empty() { None } else { HeaderValue::from_maybe_shared(b).ok() }
    }

    /// The strong ETag (quoted).
    pub fn etag(&self) -> Bytes {
        self.part(0)
    }

    /// The ETag as a header value.
    pub fn etag_header(&self) -> Option<HeaderValue> {
        self.header(0)
    }

    /// `Last-Modified` (thisUpdate).
    pub fn last_modified(&self) -> Option<HeaderValue> {
        self.header(1)
    }

    /// `Expires` (nextUpdate).
    pub fn expires(&self) -> Option<HeaderValue> {
        self.header(2)
    }

    /// The issuerNameHash of the response's CertID.
    pub fn name_hash(&self) -> Bytes {
        self.part(3)
    }

    /// The DER in its two pieces: the entry's own bytes, then the shared tail (maybe empty).
    pub fn der_parts(&self) -> (Bytes, Bytes) {
        let start: usize = self.lens.iter().map(|&l| usize::from(l)).sum();
        (self.buf.slice(start..), self.tail.clone())
    }

    /// Length of the DER.
    pub fn der_len(&self) -> usize {
        let start: usize = self.lens.iter().map(|&l| usize::from(l)).sum();
        self.buf.len() - start + self.tail.len()
    }

    /// The response as one [`Cached`] (one copy of the DER).
    pub fn to_cached(&self) -> Cached {
        let (head, tail) = self.der_parts();
        let mut der = Vec::with_capacity(head.len() + tail.len());
        der.extend_from_slice(&head);
        der.extend_from_slice(&tail);
        let etag = String::from_utf8_lossy(&self.etag()).into_owned();
        Cached::stored(Bytes::from(der), self.this_update, self.next_update, etag, self.status)
    }
}

#[derive(Debug)]
struct Slot {
    key: Arc<[u8]>,
    hit: Hit,
    cost: usize,
    referenced: AtomicBool,
}

#[derive(Debug, Default)]
struct Clock {
    map: HashMap<Arc<[u8]>, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

impl Clock {
    fn remove_slot(&mut self, i: usize) {
        if let Some(s) = self.slots[i].take() {
            self.map.remove(&s.key);
            self.bytes -= s.cost;
            self.free.push(i);
        }
    }

    /// Evicts one entry that was not referenced since the hand last passed; false if empty.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        // At most two turns: the first clears every flag.
        for _ in 0..2 * self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            match &self.slots[i] {
                None => {}
                Some(s) if s.referenced.swap(false, Ordering::Relaxed) => {}
                Some(_) => {
                    self.remove_slot(i);
                    return true;
                }
            }
        }
        false
    }
}

#[derive(Debug, Default)]
struct Shard {
    clock: RwLock<Clock>,
}

/// Responses by store key, at most `budget` bytes of them.
#[derive(Debug)]
pub struct HotSet {
    budget: usize,
    /// Each shard's budget.
    per_shard: usize,
    shards: Box<[Shard]>,
    tails: Mutex<Vec<Bytes>>,
}

/// What an entry is charged: its key, its DER but the last `shared_tail` bytes (kept once for
/// all entries), its ETag, its two dates, its name hash and [`OVERHEAD`].
pub fn cost(key: &[u8], value: &Cached, shared_tail: usize, name_hash: usize) -> usize {
    key.len() + value.der.len().saturating_sub(shared_tail) + value.etag.len() + dates_len(value) + name_hash + OVERHEAD
}

fn dates_len(value: &Cached) -> usize {
    http_date(value.this_update).map_or(0, |d| d.len()) + http_date(value.next_update).map_or(0, |d| d.len())
}

/// The shard of a key (FNV-1a).
fn shard_of(key: &[u8], n: usize) -> usize {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (h % n as u64) as usize
}

impl HotSet {
    /// An empty set of at most `budget` bytes (0: nothing is kept).
    pub fn new(budget: usize) -> HotSet {
        let n = (budget / MIN_SHARD).clamp(1, MAX_SHARDS);
        HotSet {
            budget,
            per_shard: budget / n,
            shards: (0..n).map(|_| Shard::default()).collect(),
            tails: Mutex::new(Vec::new()),
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[shard_of(key, self.shards.len())]
    }

    /// The entry for `key`, marked as used.
    pub fn get(&self, key: &[u8]) -> Option<Hit> {
        let c = self.shard(key).clock.read().ok()?;
        let s = c.slots[*c.map.get(key)?].as_ref()?;
        if !s.referenced.load(Ordering::Relaxed) {
            s.referenced.store(true, Ordering::Relaxed);
        }
        Some(s.hit.clone())
    }

    /// The shared copy of `tail` (interned; `None` when too many different tails are in use).
    fn tail(&self, tail: &[u8]) -> Option<Bytes> {
        if tail.is_empty() {
            return None;
        }
        let mut t = self.tails.lock().ok()?;
        if let Some(found) = t.iter().find(|x| x[..] == *tail) {
            return Some(found.clone());
        }
        if t.len() >= MAX_TAILS {
            return None;
        }
        let new = Bytes::copy_from_slice(tail);
        t.push(new.clone());
        Some(new)
    }

    /// Keeps `value` (a response checked for the CertID whose issuerNameHash is `name_hash`)
    /// under `key`, evicting what CLOCK picks until it fits; its last `shared_tail` bytes (the
    /// responder certificate) are kept once for every entry that ends with them. An entry
    /// larger than a shard's budget, or whose headers cannot be made, is not kept.
    pub fn insert(&self, key: &[u8], value: &Cached, shared_tail: usize, name_hash: &[u8]) {
        let split = value.der.len().saturating_sub(shared_tail);
        let tail = self.tail(&value.der[split..]);
        let head_len = if tail.is_some() { split } else { value.der.len() };
        let (Some(lm), Some(exp)) = (http_date(value.this_update), http_date(value.next_update)) else { return };
        let lens = [value.etag.len(), lm.len(), exp.len(), name_hash.len()];
        let Ok(lens) = lens.map(u8::try_from).into_iter().collect::<Result<Vec<u8>, _>>() else { return };
        let Ok(lens) = <[u8; 4]>::try_from(lens) else { return };
        let mut buf = Vec::with_capacity(lens.iter().map(|&l| usize::from(l)).sum::<usize>() + head_len);
        for part in [value.etag.as_bytes(), lm.as_bytes(), exp.as_bytes(), name_hash, &value.der[..head_len]] {
            buf.extend_from_slice(part);
        }
        let cost = key.len() + buf.len() + OVERHEAD;
        if cost > self.per_shard {
            return;
        }
        let hit = Hit {
            buf: Bytes::from(buf),
            tail: tail.unwrap_or_default(),
            lens,
            this_update: value.this_update,
            next_update: value.next_update,
            status: value.status,
        };
        let key: Arc<[u8]> = key.into();
        let Ok(mut c) = self.shard(&key).clock.write() else { return };
        if let Some(&i) = c.map.get(&key) {
            c.remove_slot(i);
        }
        while c.bytes + cost > self.per_shard {
            if !c.evict_one() {
                return;
            }
        }
        let slot = Slot { key: key.clone(), hit, cost, referenced: AtomicBool::new(false) };
        let i = match c.free.pop() {
            Some(i) => {
                c.slots[i] = Some(slot);
                i
            }
            None => {
                c.slots.push(Some(slot));
                c.slots.len() - 1
            }
        };
        c.map.insert(key, i);
        c.bytes += cost;
    }

    /// Drops `key` (an invalidation). Returns whether it was there.
    pub fn remove(&self, key: &[u8]) -> bool {
        let Ok(mut c) = self.shard(key).clock.write() else { return false };
        match c.map.get(key).copied() {
            Some(i) => {
                c.remove_slot(i);
                true
            }
            None => false,
        }
    }

    /// Drops everything (after a lost invalidation channel).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut c) = s.clock.write() {
                *c = Clock::default();
            }
        }
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.clock.read().map(|c| c.map.len()).unwrap_or(0)).sum()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged (never above the budget).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.clock.read().map(|c| c.bytes).unwrap_or(0)).sum()
    }

    /// The budget.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responder::Status;

    const NH: &[u8] = &[7; 20];

    fn entry(n: usize) -> Arc<Cached> {
        Arc::new(Cached::stored(vec![0x30; n].into(), 0, 10, "\"e\"".into(), Status::Good))
    }

    fn der(h: &HotSet, k: &[u8]) -> Option<Vec<u8>> {
        h.get(k).map(|x| x.to_cached().der.to_vec())
    }

    #[test]
    fn the_budget_is_never_exceeded_and_unused_entries_go_first() {
        let per = cost(b"k0", &entry(1000), 0, NH.len());
        let h = HotSet::new(per * 3);
        assert_eq!(h.shards.len(), 1);
        for k in [b"k0", b"k1", b"k2"] {
            h.insert(k, &entry(1000), 0, NH);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.bytes(), per * 3);
        // k0 and k2 are used; k1 is not: k1 is the one evicted.
        assert!(h.get(b"k0").is_some());
        assert!(h.get(b"k2").is_some());
        h.insert(b"k3", &entry(1000), 0, NH);
        assert_eq!(h.len(), 3);
        assert!(h.bytes() <= per * 3);
        assert!(h.get(b"k1").is_none(), "the unreferenced entry was evicted");
        assert!(h.get(b"k0").is_some() && h.get(b"k2").is_some() && h.get(b"k3").is_some());
        // A large entry evicts as many as it needs.
        let big = cost(b"kb", &entry(2500), 0, NH.len());
        assert!(big <= per * 3);
        h.insert(b"kb", &entry(2500), 0, NH);
        assert!(h.bytes() <= per * 3, "{} > {}", h.bytes(), per * 3);
        assert!(h.get(b"kb").is_some());
        // Larger than the budget: not kept, nothing evicted for it.
        let before = h.len();
        h.insert(b"kx", &entry(per * 4), 0, NH);
        assert!(h.get(b"kx").is_none());
        assert_eq!(h.len(), before);
    }

    #[test]
    fn many_inserts_stay_within_budget_and_removal_frees_bytes() {
        let h = HotSet::new(50_000);
        for i in 0..1000u32 {
            h.insert(&i.to_be_bytes(), &entry(300 + (i as usize % 7) * 50), 0, NH);
            assert!(h.bytes() <= 50_000);
        }
        assert!(h.len() > 50, "{}", h.len());
        let k = 999u32.to_be_bytes();
        assert!(h.get(&k).is_some(), "the newest entry is kept");
        let b = h.bytes();
        assert!(h.remove(&k));
        assert!(!h.remove(&k));
        assert_eq!(h.bytes(), b - cost(&k, &entry(300 + (999 % 7) * 50), 0, NH.len()));
        h.clear();
        assert_eq!((h.len(), h.bytes()), (0, 0));
        // Replacing an entry charges it once.
        h.insert(b"a", &entry(100), 0, NH);
        h.insert(b"a", &entry(200), 0, NH);
        assert_eq!(h.bytes(), cost(b"a", &entry(200), 0, NH.len()));
    }

    #[test]
    fn a_large_budget_is_sharded_and_every_shard_stays_within_its_part() {
        let h = HotSet::new(64 << 20);
        assert_eq!(h.shards.len(), MAX_SHARDS);
        for i in 0..20_000u32 {
            h.insert(&i.to_be_bytes(), &entry(4000), 0, NH);
        }
        assert!(h.bytes() <= 64 << 20);
        for s in h.shards.iter() {
            let c = s.clock.read().unwrap();
            assert!(c.bytes <= h.per_shard && !c.map.is_empty(), "{} of {}", c.bytes, h.per_shard);
        }
        assert!(h.get(&19_999u32.to_be_bytes()).is_some());
    }

    #[test]
    fn a_shared_tail_is_kept_once_and_answers_are_whole() {
        let h = HotSet::new(1 << 20);
        let der = |head: u8| -> Vec<u8> { [vec![head; 300], vec![0xCE; 900]].concat() };
        let c = |d: Vec<u8>| Cached::stored(d.into(), 1, 10, "\"e\"".into(), Status::Good);
        h.insert(b"a", &c(der(1)), 900, NH);
        h.insert(b"b", &c(der(2)), 900, &[9; 32]);
        assert_eq!(der_of(&h, b"a"), der(1), "put together again, byte for byte");
        assert_eq!(der_of(&h, b"b"), der(2));
        let dates = 2 * "Thu, 01 Jan 1970 00:00:01 GMT".len();
        assert_eq!(
            h.bytes(),
            2 * (1 + 300 + 3 + dates + OVERHEAD) + 20 + 32,
            "the 900 shared bytes are not charged per entry"
        );
        assert_eq!(h.tails.lock().unwrap().len(), 1, "one copy of the tail");
        // A different tail is another copy; a response kept whole still answers whole.
        h.insert(b"c", &c(der(3)), 0, NH);
        assert_eq!(der_of(&h, b"c"), der(3));
        // What a hit serves: the ETag, the dates and the name hash it was kept with.
        let hit = h.get(b"b").unwrap();
        assert_eq!(&hit.etag()[..], b"\"e\"");
        assert_eq!(hit.last_modified().unwrap(), "Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(hit.expires().unwrap(), "Thu, 01 Jan 1970 00:00:10 GMT");
        assert_eq!(&hit.name_hash()[..], &[9; 32]);
        assert_eq!(hit.der_len(), 1200);
        assert_eq!(hit.der_parts().1.len(), 900);
        assert!(h.get(b"zz").is_none());
    }

    fn der_of(h: &HotSet, k: &[u8]) -> Vec<u8> {
        der(h, k).unwrap()
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784111777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
