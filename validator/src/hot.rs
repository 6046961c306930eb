//! The stateless responder's hot set: the pre-signed responses it served recently, bounded by a
//! byte budget and evicted by CLOCK (second chance). A hit takes a read lock and sets one
//! flag; only inserts, removals and evictions take the write lock. The bytes every response of
//! one responder ends with (its certificate) are kept once and shared; an entry keeps the bytes
//! before them, and a hit puts the two together again (one copy). Each entry is charged its key,
//! its own bytes, its ETag and a fixed overhead for the map, the slot and the reference count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;

use crate::responder::{Cached, Status};

/// Bytes charged per entry besides key, DER and ETag (map entry, slot, `Cached` fields, Arc).
pub const OVERHEAD: usize = 160;

/// Most shared tails kept (one per responder certificate in use).
const MAX_TAILS: usize = 64;

#[derive(Debug)]
struct Entry {
    head: Box<[u8]>,
    tail: Option<Arc<[u8]>>,
    this_update: i64,
    next_update: i64,
    etag: Box<str>,
    status: Status,
}

impl Entry {
    fn cached(&self) -> Cached {
        let tail = self.tail.as_deref().unwrap_or_default();
        let mut der = Vec::with_capacity(self.head.len() + tail.len());
        der.extend_from_slice(&self.head);
        der.extend_from_slice(tail);
        Cached::stored(Bytes::from(der), self.this_update, self.next_update, self.etag.to_string(), self.status)
    }
}

#[derive(Debug)]
struct Slot {
    key: Box<[u8]>,
    entry: Entry,
    cost: usize,
    referenced: AtomicBool,
}

#[derive(Debug, Default)]
struct Clock {
    map: HashMap<Box<[u8]>, usize>,
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

/// Responses by store key, at most `budget` bytes of them.
#[derive(Debug)]
pub struct HotSet {
    budget: usize,
    inner: RwLock<Clock>,
    tails: std::sync::Mutex<Vec<Arc<[u8]>>>,
}

/// What an entry is charged: its key, its DER but the last `shared_tail` bytes (kept once for
/// all entries), its ETag and [`OVERHEAD`].
pub fn cost(key: &[u8], value: &Cached, shared_tail: usize) -> usize {
    key.len() + value.der.len().saturating_sub(shared_tail) + value.etag.len() + OVERHEAD
}

impl HotSet {
    /// An empty set of at most `budget` bytes (0: nothing is kept).
    pub fn new(budget: usize) -> HotSet {
        HotSet { budget, inner: RwLock::new(Clock::default()), tails: std::sync::Mutex::new(Vec::new()) }
    }

    /// The entry for `key`, marked as used (its DER put together again).
    pub fn get(&self, key: &[u8]) -> Option<Arc<Cached>> {
        let c = self.inner.read().ok()?;
        let s = c.slots[*c.map.get(key)?].as_ref()?;
        s.referenced.store(true, Ordering::Relaxed);
        Some(Arc::new(s.entry.cached()))
    }

    /// The shared copy of `tail` (interned; `None` when too many different tails are in use).
    fn tail(&self, tail: &[u8]) -> Option<Arc<[u8]>> {
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
        let new: Arc<[u8]> = tail.into();
        t.push(new.clone());
        Some(new)
    }

    /// Keeps `value` under `key`, evicting what CLOCK picks until it fits; its last
    /// `shared_tail` bytes (the responder certificate) are kept once for every entry that ends
    /// with them. An entry larger than the whole budget is not kept.
    pub fn insert(&self, key: &[u8], value: &Cached, shared_tail: usize) {
        let split = value.der.len().saturating_sub(shared_tail);
        let tail = self.tail(&value.der[split..]);
        let head_len = if tail.is_some() { split } else { value.der.len() };
        let cost = cost(key, value, value.der.len() - head_len);
        if cost > self.budget {
            return;
        }
        let entry = Entry {
            head: value.der[..head_len].into(),
            tail,
            this_update: value.this_update,
            next_update: value.next_update,
            etag: value.etag.as_str().into(),
            status: value.status,
        };
        let Ok(mut c) = self.inner.write() else { return };
        if let Some(&i) = c.map.get(key) {
            c.remove_slot(i);
        }
        while c.bytes + cost > self.budget {
            if !c.evict_one() {
                return;
            }
        }
        let slot = Slot { key: key.into(), entry, cost, referenced: AtomicBool::new(false) };
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
        c.map.insert(key.into(), i);
        c.bytes += cost;
    }

    /// Drops `key` (an invalidation). Returns whether it was there.
    pub fn remove(&self, key: &[u8]) -> bool {
        let Ok(mut c) = self.inner.write() else { return false };
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
        if let Ok(mut c) = self.inner.write() {
            *c = Clock::default();
        }
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.inner.read().map(|c| c.map.len()).unwrap_or(0)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged (never above the budget).
    pub fn bytes(&self) -> usize {
        self.inner.read().map(|c| c.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responder::Status;

    fn entry(n: usize) -> Arc<Cached> {
        Arc::new(Cached::stored(vec![0x30; n].into(), 0, 10, "\"e\"".into(), Status::Good))
    }

    #[test]
    fn the_budget_is_never_exceeded_and_unused_entries_go_first() {
        let per = cost(b"k0", &entry(1000), 0);
        let h = HotSet::new(per * 3);
        for k in [b"k0", b"k1", b"k2"] {
            h.insert(k, &entry(1000), 0);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.bytes(), per * 3);
        // k0 and k2 are used; k1 is not: k1 is the one evicted.
        assert!(h.get(b"k0").is_some());
        assert!(h.get(b"k2").is_some());
        h.insert(b"k3", &entry(1000), 0);
        assert_eq!(h.len(), 3);
        assert!(h.bytes() <= per * 3);
        assert!(h.get(b"k1").is_none(), "the unreferenced entry was evicted");
        assert!(h.get(b"k0").is_some() && h.get(b"k2").is_some() && h.get(b"k3").is_some());
        // A large entry evicts as many as it needs.
        let big = cost(b"kb", &entry(2500), 0);
        assert!(big <= per * 3);
        h.insert(b"kb", &entry(2500), 0);
        assert!(h.bytes() <= per * 3, "{} > {}", h.bytes(), per * 3);
        assert!(h.get(b"kb").is_some());
        // Larger than the budget: not kept, nothing evicted for it.
        let before = h.len();
        h.insert(b"kx", &entry(per * 4), 0);
        assert!(h.get(b"kx").is_none());
        assert_eq!(h.len(), before);
    }

    #[test]
    fn many_inserts_stay_within_budget_and_removal_frees_bytes() {
        let h = HotSet::new(50_000);
        for i in 0..1000u32 {
            h.insert(&i.to_be_bytes(), &entry(300 + (i as usize % 7) * 50), 0);
            assert!(h.bytes() <= 50_000);
        }
        assert!(h.len() > 50, "{}", h.len());
        let k = 999u32.to_be_bytes();
        assert!(h.get(&k).is_some(), "the newest entry is kept");
        let b = h.bytes();
        assert!(h.remove(&k));
        assert!(!h.remove(&k));
        assert_eq!(h.bytes(), b - cost(&k, &entry(300 + (999 % 7) * 50), 0));
        h.clear();
        assert_eq!((h.len(), h.bytes()), (0, 0));
        // Replacing an entry charges it once.
        h.insert(b"a", &entry(100), 0);
        h.insert(b"a", &entry(200), 0);
        assert_eq!(h.bytes(), cost(b"a", &entry(200), 0));
    }

    #[test]
    fn a_shared_tail_is_kept_once_and_answers_are_whole() {
        let h = HotSet::new(1 << 20);
        let der = |head: u8| -> Vec<u8> { [vec![head; 300], vec![0xCE; 900]].concat() };
        let c = |d: Vec<u8>| Cached::stored(d.into(), 1, 10, "\"e\"".into(), Status::Good);
        h.insert(b"a", &c(der(1)), 900);
        h.insert(b"b", &c(der(2)), 900);
        assert_eq!(h.get(b"a").unwrap().der[..], der(1)[..], "put together again, byte for byte");
        assert_eq!(h.get(b"b").unwrap().der[..], der(2)[..]);
        assert_eq!(h.bytes(), 2 * (1 + 300 + 3 + OVERHEAD), "the 900 shared bytes are not charged per entry");
        assert_eq!(h.tails.lock().unwrap().len(), 1, "one copy of the tail");
        // A different tail is another copy; a response kept whole still answers whole.
        h.insert(b"c", &c(der(3)), 0);
        assert_eq!(h.get(b"c").unwrap().der[..], der(3)[..]);
    }
}
