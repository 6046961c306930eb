//! Per-agency rate limits of a provision point: token buckets (a sustained rate and a burst)
//! per agency id — one for every request, a much lower one for four-item lookups (so that a
//! known name and address cannot be completed by walking dates of birth), and one for the
//! residents of bulk batches. Pure: no clock (callers pass `now`, unix seconds) and no I/O;
//! the provider keeps one [`Limiter`] in memory per process.
//!
//! Refill is in whole seconds: a bucket gains `per_second` tokens for every second of `now`
//! since it was last charged, up to `burst`; a clock that went back refills nothing. Over any
//! interval of `t` seconds an agency is admitted at most `burst + t × per_second` units, which
//! is the token-bucket bound; integer arithmetic keeps it exact.

use std::collections::HashMap;

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (the sustained rate).
    pub per_second: u32,
    /// Largest number of tokens a bucket holds (what an idle agency may spend at once).
    pub burst: u32,
}

impl Rate {
    /// No effective limit (`u32::MAX` per second and burst).
    pub const UNLIMITED: Rate = Rate { per_second: u32::MAX, burst: u32::MAX };

    /// `per_second` sustained, `burst` at once.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// The limits of a provision point, the same for every agency (each has its own buckets).
///
/// Every request (a single query or a batch) costs one `queries` token; a four-item lookup
/// costs one `four_items` token as well, and a batch one `batch_residents` token per resident.
/// A request is admitted only if every bucket it draws on has the tokens, and then charged to
/// all of them; a refused request is charged nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Every request. Default 200/s, burst 400.
    pub queries: Rate,
    /// Lookups by an exact match of the four items. Default 2/s, burst 10.
    pub four_items: Rate,
    /// Residents of bulk batches. Default 1,000/s, burst 50,000 (five full batches of 10,000).
    pub batch_residents: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self { queries: Rate::new(200, 400), four_items: Rate::new(2, 10), batch_residents: Rate::new(1_000, 50_000) }
    }
}

impl Limits {
    /// No effective limits: for in-process benchmarks of the provision path, never for a node
    /// that serves agencies.
    pub const fn unlimited() -> Self {
        Self { queries: Rate::UNLIMITED, four_items: Rate::UNLIMITED, batch_residents: Rate::UNLIMITED }
    }

    /// Checks that every rate and burst is at least 1 and that a batch of `largest_batch`
    /// residents fits into the batch bucket's burst (otherwise the largest lawful batch could
    /// never be admitted).
    pub fn validate(&self, largest_batch: u32) -> Result<(), String> {
        for (limit, r) in [
            (Limit::Queries, self.queries),
            (Limit::FourItems, self.four_items),
            (Limit::BatchResidents, self.batch_residents),
        ] {
            if r.per_second == 0 || r.burst == 0 {
                return Err(format!("{}: rate and burst must be at least 1", limit.as_str()));
            }
        }
        if self.batch_residents.burst < largest_batch {
            return Err(format!(
                "{}: burst {} is below the largest batch ({largest_batch})",
                Limit::BatchResidents.as_str(),
                self.batch_residents.burst
            ));
        }
        Ok(())
    }

    fn rate(&self, limit: Limit) -> Rate {
        match limit {
            Limit::Queries => self.queries,
            Limit::FourItems => self.four_items,
            Limit::BatchResidents => self.batch_residents,
        }
    }
}

/// Which bucket refused. Names are stable (they appear in refusals and the provision log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::queries`].
    Queries,
    /// [`Limits::four_items`].
    FourItems,
    /// [`Limits::batch_residents`].
    BatchResidents,
}

impl Limit {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queries => "queries",
            Self::FourItems => "four_item_lookups",
            Self::BatchResidents => "batch_residents",
        }
    }
}

/// What a request costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// A single query by resident code.
    Query,
    /// A single query by an exact match of the four items.
    FourItemLookup,
    /// A bulk batch of this many residents.
    Batch(u64),
}

impl Cost {
    /// The buckets the request draws on, with how much from each.
    fn charges(self) -> Vec<(Limit, u64)> {
        match self {
            Self::Query => vec![(Limit::Queries, 1)],
            Self::FourItemLookup => vec![(Limit::Queries, 1), (Limit::FourItems, 1)],
            Self::Batch(n) => vec![(Limit::Queries, 1), (Limit::BatchResidents, n)],
        }
    }
}

/// One token bucket. The rate is not stored: it is passed in, so a change of limits applies
/// to existing buckets at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u64,
    /// When `tokens` was last brought up to date (unix seconds).
    at: i64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: i64) -> Self {
        Self { tokens: u64::from(rate.burst), at: now }
    }

    /// Tokens available at `now`: refilled for the whole seconds since the bucket was last
    /// charged, at most the burst. A clock that went back refills nothing.
    pub fn available(&self, rate: Rate, now: i64) -> u64 {
        let elapsed = u64::try_from(now.saturating_sub(self.at)).unwrap_or(0);
        self.tokens.saturating_add(elapsed.saturating_mul(u64::from(rate.per_second))).min(u64::from(rate.burst))
    }

    /// Whole seconds from `now` until `cost` tokens are available (0: available now). A cost
    /// above the burst waits for a full bucket (see [`TokenBucket::take`]).
    pub fn wait(&self, rate: Rate, now: i64, cost: u64) -> u64 {
        let cost = cost.min(u64::from(rate.burst));
        let have = self.available(rate, now);
        if have >= cost { 0 } else { (cost - have).div_ceil(u64::from(rate.per_second).max(1)) }
    }

    /// Takes `cost` tokens at `now` (after [`TokenBucket::wait`] said 0). A cost above the
    /// burst empties a full bucket: [`Limits::validate`] keeps the largest lawful batch within
    /// the burst, so this only bounds a misconfiguration.
    pub fn take(&mut self, rate: Rate, now: i64, cost: u64) {
        self.tokens = self.available(rate, now).saturating_sub(cost);
        self.at = self.at.max(now);
    }
}

/// A refused request: which bucket, its rate, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The bucket that refused (the one with the longest wait when several did).
    pub limit: Limit,
    /// Its rate.
    pub rate: Rate,
    /// Whole seconds until the request would be admitted (at least 1).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AgencyBuckets {
    queries: TokenBucket,
    four_items: TokenBucket,
    batch_residents: TokenBucket,
}

impl AgencyBuckets {
    fn full(l: &Limits, now: i64) -> Self {
        Self {
            queries: TokenBucket::full(l.queries, now),
            four_items: TokenBucket::full(l.four_items, now),
            batch_residents: TokenBucket::full(l.batch_residents, now),
        }
    }

    fn bucket(&mut self, limit: Limit) -> &mut TokenBucket {
        match limit {
            Limit::Queries => &mut self.queries,
            Limit::FourItems => &mut self.four_items,
            Limit::BatchResidents => &mut self.batch_residents,
        }
    }

    fn is_full(&self, l: &Limits, now: i64) -> bool {
        self.queries.available(l.queries, now) == u64::from(l.queries.burst)
            && self.four_items.available(l.four_items, now) == u64::from(l.four_items.burst)
            && self.batch_residents.available(l.batch_residents, now) == u64::from(l.batch_residents.burst)
    }
}

/// Agencies tracked before idle ones (all buckets full: they carry no state) are dropped.
const PRUNE_AT: usize = 10_000;

/// The buckets of every agency that has asked, under one set of [`Limits`].
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: Limits,
    agencies: HashMap<String, AgencyBuckets>,
}

impl Limiter {
    /// No agency has asked yet.
    pub fn new(limits: Limits) -> Self {
        Self { limits, agencies: HashMap::new() }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// New limits; existing buckets keep their tokens (capped at the new bursts).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Agencies with buckets.
    pub fn tracked(&self) -> usize {
        self.agencies.len()
    }

    /// Admits `agency`'s request of `cost` at `now` and charges it, or refuses it and charges
    /// nothing. A new agency starts with full buckets.
    pub fn admit(&mut self, agency: &str, cost: Cost, now: i64) -> Result<(), Limited> {
        let limits = self.limits;
        if !self.agencies.contains_key(agency) && self.agencies.len() >= PRUNE_AT {
            self.agencies.retain(|_, b| !b.is_full(&limits, now));
        }
        let buckets = self.agencies.entry(agency.to_owned()).or_insert_with(|| AgencyBuckets::full(&limits, now));
        let charges = cost.charges();
        let mut refused: Option<Limited> = None;
        for &(limit, n) in &charges {
            let rate = limits.rate(limit);
            let wait = buckets.bucket(limit).wait(rate, now, n);
            if wait > 0 && refused.is_none_or(|r| wait > r.retry_after) {
                refused = Some(Limited { limit, rate, retry_after: wait });
            }
        }
        if let Some(r) = refused {
            return Err(r);
        }
        for (limit, n) in charges {
            buckets.bucket(limit).take(limits.rate(limit), now, n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_775_000_000;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate_up_to_the_burst() {
        let r = Rate::new(2, 10);
        let mut b = TokenBucket::full(r, T0);
        for _ in 0..10 {
            assert_eq!(b.wait(r, T0, 1), 0);
            b.take(r, T0, 1);
        }
        assert_eq!(b.available(r, T0), 0);
        assert_eq!(b.wait(r, T0, 1), 1, "2/s: one token within a second");
        assert_eq!(b.wait(r, T0, 3), 2);
        assert_eq!(b.available(r, T0 + 1), 2);
        assert_eq!(b.available(r, T0 + 100), 10, "capped at the burst");
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let r = Rate::new(5, 5);
        let mut b = TokenBucket::full(r, T0);
        b.take(r, T0, 5);
        assert_eq!(b.available(r, T0 - 3600), 0);
        b.take(r, T0 - 3600, 0);
        assert_eq!(b.available(r, T0), 0, "going back did not move the refill point back");
        assert_eq!(b.available(r, T0 + 1), 5);
    }

    #[test]
    fn a_cost_above_the_burst_waits_for_a_full_bucket_and_empties_it() {
        let r = Rate::new(10, 100);
        let mut b = TokenBucket::full(r, T0);
        b.take(r, T0, 50);
        assert_eq!(b.wait(r, T0, 1_000), 5);
        assert_eq!(b.wait(r, T0 + 5, 1_000), 0);
        b.take(r, T0 + 5, 1_000);
        assert_eq!(b.available(r, T0 + 5), 0);
    }

    #[test]
    fn over_a_long_run_an_agency_gets_burst_plus_rate_times_time() {
        let l = Limits::default();
        let mut lim = Limiter::new(l);
        let mut admitted = 0u64;
        // Ten attempts per second for 60 s at the four-item limit.
        for s in 0..60 {
            for _ in 0..10 {
                if lim.admit("a", Cost::FourItemLookup, T0 + s).is_ok() {
                    admitted += 1;
                }
            }
        }
        assert_eq!(admitted, u64::from(l.four_items.burst) + 59 * u64::from(l.four_items.per_second));
    }

    #[test]
    fn four_item_lookups_hit_their_own_limit_first_and_refusals_cost_nothing() {
        let l = Limits::default();
        let mut lim = Limiter::new(l);
        for _ in 0..l.four_items.burst {
            lim.admit("a", Cost::FourItemLookup, T0).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let e = lim.admit("a", Cost::FourItemLookup, T0).err();
        assert_eq!(e, Some(Limited { limit: Limit::FourItems, rate: l.four_items, retry_after: 1 }));
        // The refused lookups were charged nothing: the query budget has burst − 10 left.
        for _ in 0..100 {
            assert!(lim.admit("a", Cost::FourItemLookup, T0).is_err());
        }
        for _ in 0..(l.queries.burst - l.four_items.burst) {
            lim.admit("a", Cost::Query, T0).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let e = lim.admit("a", Cost::Query, T0).err().map(|e| e.limit);
        assert_eq!(e, Some(Limit::Queries));
        // Another agency has its own buckets.
        assert!(lim.admit("b", Cost::FourItemLookup, T0).is_ok());
        assert!(lim.admit("b", Cost::Query, T0).is_ok());
    }

    #[test]
    fn batches_draw_on_the_residents_bucket_and_one_query() {
        let l = Limits::default();
        let mut lim = Limiter::new(l);
        for _ in 0..5 {
            lim.admit("jps", Cost::Batch(10_000), T0).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let e = lim.admit("jps", Cost::Batch(10_000), T0).err();
        assert_eq!(e, Some(Limited { limit: Limit::BatchResidents, rate: l.batch_residents, retry_after: 10 }));
        assert!(lim.admit("jps", Cost::Batch(1_000), T0 + 1).is_ok());
        // Single queries still have their budget, less the five batches.
        for _ in 0..(l.queries.burst - 6) {
            assert!(lim.admit("jps", Cost::Query, T0 + 1).is_ok());
        }
    }

    #[test]
    fn the_longest_wait_is_reported() {
        let l = Limits { queries: Rate::new(1, 1), four_items: Rate::new(1, 1), batch_residents: Rate::new(1, 5) };
        let mut lim = Limiter::new(l);
        assert!(lim.admit("a", Cost::Batch(5), T0).is_ok());
        // The query bucket needs 1 s, the residents bucket 5 s: the answer is 5 s.
        let e = lim.admit("a", Cost::Batch(5), T0).err();
        assert_eq!(e, Some(Limited { limit: Limit::BatchResidents, rate: l.batch_residents, retry_after: 5 }));
        let e = lim.admit("a", Cost::Query, T0).err();
        assert_eq!(e, Some(Limited { limit: Limit::Queries, rate: l.queries, retry_after: 1 }));
        // New limits apply to the existing buckets at once.
        lim.set_limits(Limits { batch_residents: Rate::new(5, 5), ..l });
        assert_eq!(lim.limits().batch_residents, Rate::new(5, 5));
        assert!(lim.admit("a", Cost::Batch(5), T0 + 1).is_ok());
    }

    #[test]
    fn idle_agencies_are_pruned_when_many_are_tracked() {
        let mut lim = Limiter::new(Limits::default());
        for i in 0..PRUNE_AT {
            assert!(lim.admit(&format!("a{i}"), Cost::Query, T0).is_ok());
        }
        assert_eq!(lim.tracked(), PRUNE_AT);
        // A minute later every bucket is full again: the next new agency drops them all.
        assert!(lim.admit("late", Cost::Query, T0 + 60).is_ok());
        assert_eq!(lim.tracked(), 1);
    }

    #[test]
    fn the_defaults_validate_and_bad_limits_do_not() {
        assert_eq!(Limits::default().validate(10_000), Ok(()));
        assert_eq!(Limits::unlimited().validate(10_000), Ok(()));
        let l = Limits::default();
        assert!(Limits { four_items: Rate::new(0, 10), ..l }.validate(10_000).is_err());
        assert!(Limits { queries: Rate::new(1, 0), ..l }.validate(10_000).is_err());
        let e = Limits { batch_residents: Rate::new(100, 5_000), ..l }.validate(10_000);
        assert!(e.is_err_and(|e| e.contains("batch_residents")));
    }

    #[test]
    fn unlimited_admits_a_bench_at_one_instant() {
        let mut lim = Limiter::new(Limits::unlimited());
        for _ in 0..100_000 {
            assert!(lim.admit("bench", Cost::Query, T0).is_ok());
        }
    }
}
