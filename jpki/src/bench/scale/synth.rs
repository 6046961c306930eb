//! Synthetic data for `jpki bench scale`, deterministic from a seed: residents (valid resident
//! and municipality codes through identity's types, check digits included), provision-log
//! rows, and certificate serials (with their CRL shard) for the OCSP and CRL curves. The same
//! seed and index always give the same value; different indices never give the same resident
//! code or serial.

use anyhow::Result;
use identity::ids::{LgCode, ResidentCode};
use identity::person::{FlaggedText, FourItems, Record, ResidentStatus, Sex};

/// Synthetic municipalities (the real count is 1,741; enough to spread the load).
pub const MUNICIPALITIES: usize = 1_692;

/// Codes of the synthetic residents start at this body value: the bench identity workload's
/// pool codes are 1,000,000,000 + …, below it, so the two never meet.
const CODE_BASE: u64 = 2_000_000_000;
/// Resident-code bodies used: 2,000,000,000 ..= 9,999,999,999.
const CODE_SPAN: u64 = 8_000_000_000;
/// Multiplier of the index permutation: odd and not a multiple of 5, so coprime with
/// [`CODE_SPAN`] (2^13 · 5^9) and `i ↦ (offset + i · MUL) mod CODE_SPAN` is a bijection.
const MUL: u64 = 2_654_435_761;

/// SplitMix64: a tiny, fixed PRNG step (the same sequence on every platform and version).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator of synthetic data, all of it a pure function of `(seed, index)`.
#[derive(Debug, Clone, Copy)]
pub struct Synth {
    seed: u64,
}

impl Synth {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    fn at(&self, stream: u64, i: u64) -> u64 {
        mix(self.seed ^ mix(stream.wrapping_mul(0x1000_0000_0000_0001) ^ i))
    }

    /// The resident code of resident `i` (distinct for every `i` below 8·10^9).
    pub fn resident_code(&self, i: u64) -> Result<ResidentCode> {
        let offset = mix(self.seed) % CODE_SPAN;
        let v = CODE_BASE + (offset + (i % CODE_SPAN) * MUL % CODE_SPAN) % CODE_SPAN;
        let body: [u8; 10] = std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8);
        Ok(ResidentCode::from_body(body)?)
    }

    /// Municipality `m` of the synthetic set: prefecture 1 + m mod 47, number 201 + m / 47
    /// (never one of the bench identity workload's 13101…13110), check digit by
    /// [`identity::check_digit::local_government_code`] and parsed by [`LgCode`].
    pub fn municipality(m: usize) -> Result<LgCode> {
        let n = (1 + m % 47) * 1000 + 201 + (m / 47) % 799;
        let body: [u8; 5] = std::array::from_fn(|k| ((n / 10usize.pow(4 - k as u32)) % 10) as u8);
        let check = identity::check_digit::local_government_code(&body);
        Ok(format!("{n:05}{check}").parse()?)
    }

    /// Which synthetic municipality resident `i` lives in.
    pub fn municipality_of(&self, i: u64) -> usize {
        (self.at(1, i) % MUNICIPALITIES as u64) as usize
    }

    /// Resident `i`'s projected record (active, version 1).
    pub fn resident(&self, i: u64) -> Result<Record> {
        let r = self.at(2, i);
        let m = self.municipality_of(i);
        let year = 1925 + i32::try_from(r % 100)?;
        let day = 1 + u16::try_from((r >> 8) % 365)?;
        Ok(Record {
            resident_code: self.resident_code(i)?,
            items: FourItems {
                name: FlaggedText::plain("name", &format!("合成　{:08x}", (r >> 16) as u32))?,
                address: FlaggedText::plain(
                    "address",
                    &format!("合成県{m}市{}丁目{}番", (r >> 48) % 9 + 1, i % 100 + 1),
                )?,
                date_of_birth: time::Date::from_ordinal_date(year, day)?,
                sex: if (r >> 40) & 1 == 0 { Sex::Female } else { Sex::Male },
            },
            status: ResidentStatus::Active,
            municipality: Self::municipality(m)?,
            version: 1,
        })
    }

    /// Certificate `i`'s serial: 16 octets, first octet 0x40..=0x7f (positive, no leading zero),
    /// octets 1..8 the index (so distinct for every `i` below 2^56), octets 8..16 from the seed
    /// (random-looking low bits, which the CA's `shard_of` reads, as in a real serial).
    pub fn serial(&self, i: u64) -> [u8; 16] {
        let r = self.at(3, i);
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&i.to_be_bytes());
        s[0] = 0x40 | (r >> 58) as u8;
        s[8..].copy_from_slice(&r.to_be_bytes());
        s
    }

    /// When certificate `i` was revoked: within the `span` seconds before `now`.
    pub fn revoked_at(&self, i: u64, now: i64, span: i64) -> i64 {
        now - i64::try_from(self.at(4, i) % u64::try_from(span.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    /// A 32-octet hash-like value for row `i` of `stream` (chain hashes of bulk-loaded notices).
    pub fn hash32(&self, stream: u64, i: u64) -> [u8; 32] {
        let mut h = [0u8; 32];
        for (k, c) in h.chunks_mut(8).enumerate() {
            c.copy_from_slice(&self.at(16 + stream * 4 + k as u64, i).to_be_bytes());
        }
        h
    }

    /// Which of `n` items row `i` picks (a provision-log row's resident, purpose, …).
    pub fn pick(&self, stream: u64, i: u64, n: u64) -> u64 {
        self.at(64 + stream, i) % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
        let (a, b, c) = (Synth::new(7), Synth::new(7), Synth::new(8));
        for i in [0, 1, 2, 999, 1_000_000, 9_999_999] {
            assert_eq!(a.resident(i).unwrap(), b.resident(i).unwrap());
            assert_eq!(a.serial(i), b.serial(i));
            assert_eq!(a.hash32(0, i), b.hash32(0, i));
            assert_eq!(a.revoked_at(i, 1_000, 100), b.revoked_at(i, 1_000, 100));
        }
        let differ = (0..100).filter(|&i| a.resident_code(i).unwrap() != c.resident_code(i).unwrap()).count();
        assert!(differ > 90, "seed 8 repeats seed 7's codes ({differ} of 100 differ)");
        assert_ne!(a.serial(5), c.serial(5));
    }

    #[test]
    fn resident_codes_are_valid_distinct_and_outside_the_workload_pools() {
        let s = Synth::new(42);
        let mut seen = std::collections::HashSet::new();
        for i in 0..50_000 {
            let code = s.resident_code(i).unwrap();
            // Parsing checks the check digit again, through identity's own type.
            let again: ResidentCode = code.as_str().parse().unwrap();
            assert_eq!(again, code);
            assert!(code.as_str() >= "2000000000", "{code} is in the workload's range");
            assert!(seen.insert(code), "resident {i} repeats a code");
        }
    }

    #[test]
    fn municipalities_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for m in 0..MUNICIPALITIES {
            let c = Synth::municipality(m).unwrap();
            assert!(!c.as_str().starts_with("1310"), "{c} collides with the workload's");
            assert!(seen.insert(c), "municipality {m} repeats a code");
        }
    }

    #[test]
    fn serials_are_positive_distinct_and_sixteen_octets() {
        let s = Synth::new(1);
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let x = s.serial(i);
            assert!((0x40..=0x7f).contains(&x[0]));
            assert!(seen.insert(x));
        }
    }

    #[test]
    fn records_round_trip_through_json_like_the_projection_stores_them() {
        let r = Synth::new(3).resident(12).unwrap();
        let bytes = serde_json::to_vec(&r).unwrap();
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.status, ResidentStatus::Active);
    }

    #[test]
    fn revocation_times_fall_in_the_span() {
        let s = Synth::new(9);
        for i in 0..1000 {
            let t = s.revoked_at(i, 1_000_000, 86_400);
            assert!((1_000_000 - 86_400..=1_000_000).contains(&t));
        }
    }
}
