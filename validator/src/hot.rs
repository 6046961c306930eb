//! The stateless responder's hot set: the pre-signed responses it served recently, bounded by a
//! byte budget and evicted by CLOCK (second chance). A hit takes a read lock and sets one
//! flag; only inserts, removals and evictions take the write lock. Each entry is charged its
//! key, its DER, its ETag and a fixed overhead for the map, the slot and the reference count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::responder::Cached;

/// Bytes charged per entry besides key, DER and ETag (map entry, slot, `Cached` fields, Arc).
pub const OVERHEAD: usize = 160;

#[derive(Debug)]
struct Slot {
    key: Box<[u8]>,
    value: Arc<Cached>,
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
}

/// What an entry is charged.
pub fn cost(key: &[u8], value: &Cached) -> usize {
    key.len() + value.der.len() + value.etag.len() + OVERHEAD
}

impl HotSet {
    /// An empty set of at most `budget` bytes (0: nothing is kept).
    pub fn new(budget: usize) -> HotSet {
        HotSet { budget, inner: RwLock::new(Clock::default()) }
    }

    /// The entry for `key`, marked as used.
    pub fn get(&self, key: &[u8]) -> Option<Arc<Cached>> {
        let c = self.inner.read().ok()?;
        let s = c.slots[*c.map.get(key)?].as_ref()?;
        s.referenced.store(true, Ordering::Relaxed);
        Some(s.value.clone())
    }

    /// Keeps `value` under `key`, evicting what CLOCK picks until it fits. An entry larger
    /// than the whole budget is not kept.
    pub fn insert(&self, key: &[u8], value: Arc<Cached>) {
        let cost = cost(key, &value);
        if cost > self.budget {
            return;
        }
        let Ok(mut c) = self.inner.write() else { return };
        if let Some(&i) = c.map.get(key) {
            c.remove_slot(i);
        }
        while c.bytes + cost > self.budget {
            if !c.evict_one() {
                return;
            }
        }
        let slot = Slot { key: key.into(), value, cost, referenced: AtomicBool::new(false) };
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
        let per = cost(b"k0", &entry(1000));
        let h = HotSet::new(per * 3);
        for k in [b"k0", b"k1", b"k2"] {
            h.insert(k, entry(1000));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.bytes(), per * 3);
        // k0 and k2 are used; k1 is not: k1 is the one evicted.
        assert!(h.get(b"k0").is_some());
        assert!(h.get(b"k2").is_some());
        h.insert(b"k3", entry(1000));
        assert_eq!(h.len(), 3);
        assert!(h.bytes() <= per * 3);
        assert!(h.get(b"k1").is_none(), "the unreferenced entry was evicted");
        assert!(h.get(b"k0").is_some() && h.get(b"k2").is_some() && h.get(b"k3").is_some());
        // A large entry evicts as many as it needs.
        let big = cost(b"kb", &entry(2500));
        assert!(big <= per * 3);
        h.insert(b"kb", entry(2500));
        assert!(h.bytes() <= per * 3, "{} > {}", h.bytes(), per * 3);
        assert!(h.get(b"kb").is_some());
        // Larger than the budget: not kept, nothing evicted for it.
        let before = h.len();
        h.insert(b"kx", entry(per * 4));
        assert!(h.get(b"kx").is_none());
        assert_eq!(h.len(), before);
    }

    #[test]
    fn many_inserts_stay_within_budget_and_removal_frees_bytes() {
        let h = HotSet::new(50_000);
        for i in 0..1000u32 {
            h.insert(&i.to_be_bytes(), entry(300 + (i as usize % 7) * 50));
            assert!(h.bytes() <= 50_000);
        }
        assert!(h.len() > 50, "{}", h.len());
        let k = 999u32.to_be_bytes();
        assert!(h.get(&k).is_some(), "the newest entry is kept");
        let b = h.bytes();
        assert!(h.remove(&k));
        assert!(!h.remove(&k));
        assert_eq!(h.bytes(), b - cost(&k, &entry(300 + (999 % 7) * 50)));
        h.clear();
        assert_eq!((h.len(), h.bytes()), (0, 0));
        // Replacing an entry charges it once.
        h.insert(b"a", entry(100));
        h.insert(b"a", entry(200));
        assert_eq!(h.bytes(), cost(b"a", &entry(200)));
    }
}
