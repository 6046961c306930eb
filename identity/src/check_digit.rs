//! Check-digit formulas of the three identity numbers, each in one replaceable place.
//!
//! All three are members of the modulus-11 family used by Japanese public registers:
//! multiply each body digit by a weight, sum, take the remainder modulo 11, and subtract
//! it from 11, with special cases for the remainders that would give 10 or 11.

#![forbid(clippy::disallowed_methods)]

/// My Number (個人番号) check digit, 総務省令第85号 (2014) art. 5.
///
/// `check = 11 − (Σ Pn·Qn mod 11)`, or 0 when `Σ mod 11 ≤ 1`, where Pn is the n-th digit
/// counted from the right of the 11 body digits and Qn = n+1 (n ≤ 6), n−5 (n ≥ 7).
/// Read left to right the weights are `6 5 4 3 2 7 6 5 4 3 2`.
pub fn my_number(body: &[u8; 11]) -> u8 {
    const WEIGHTS: [u32; 11] = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    mod11(body, &WEIGHTS)
}

/// Resident code (住民票コード) check digit.
///
/// 住基法施行規則 art. 1 says the 11th digit is a check digit computed "by a formula the
/// Minister sets"; the 告示 text was not available to us (see `shared/reference/jpki.md`
/// §4.2). We use the family's formula: weights 2–7 repeating from the rightmost body digit
/// (left to right `5 4 3 2 7 6 5 4 3 2`), `check = 11 − (Σ mod 11)`, and 0 when
/// `Σ mod 11 ≤ 1`. **This is the one place to change when the 告示 is confirmed**; the
/// formula is not part of any stored hash (codes are stored as text), so changing it only
/// changes which new codes validate.
pub fn resident_code(body: &[u8; 10]) -> u8 {
    const WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    mod11(body, &WEIGHTS)
}

/// Local government code (全国地方公共団体コード) check digit (JIS X 0401/0402 practice):
/// weights `6 5 4 3 2` over the 5 body digits, `check = (11 − Σ mod 11) mod 10`
/// (remainder 0 gives 1, remainder 1 gives 0). Example: 13101 (千代田区) → 6.
pub fn local_government_code(body: &[u8; 5]) -> u8 {
    const WEIGHTS: [u32; 5] = [6, 5, 4, 3, 2];
    let sum: u32 = body.iter().zip(WEIGHTS).map(|(d, w)| u32::from(*d) * w).sum();
    ((11 - sum % 11) % 10) as u8
}

fn mod11(body: &[u8], weights: &[u32]) -> u8 {
    let sum: u32 = body.iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (o, c) in out.iter_mut().zip(s.bytes()) {
            *o = c - b'0';
        }
        out
    }

    #[test]
    fn my_number_vectors_from_the_ordinance() {
        // jpki.md §4.1: valid 123456789018, 983205673214, 111111111118, 000111111111.
        assert_eq!(my_number(&digits("12345678901")), 8);
        assert_eq!(my_number(&digits("98320567321")), 4);
        assert_eq!(my_number(&digits("11111111111")), 8);
        assert_eq!(my_number(&digits("00011111111")), 1);
    }

    #[test]
    fn local_government_codes_of_real_municipalities() {
        assert_eq!(local_government_code(&digits("13101")), 6); // 千代田区 131016
        assert_eq!(local_government_code(&digits("01100")), 2); // 札幌市 011002
        assert_eq!(local_government_code(&digits("27100")), 4); // 大阪市 271004
    }

    #[test]
    fn resident_code_remainders_zero_and_one_map_to_zero() {
        // Σ = 0 → remainder 0 → 0; body 0000000001 → Σ = 2 → 9.
        assert_eq!(resident_code(&digits("0000000000")), 0);
        assert_eq!(resident_code(&digits("0000000001")), 9);
        // 0000000006: Σ = 12, remainder 1 → 0.
        assert_eq!(resident_code(&digits("0000000006")), 0);
    }
}
