//! Certificate validity (jpki.md §1.4), pure: the earliest of the 5th birthday after issuance
//! (the 6th when the first birthday after issuance is less than 3 months away), the card's
//! expiry and — for the signature certificate — the authentication certificate's expiry; and
//! the age rule (no signature certificate before the 15th birthday).
//!
//! A 29 February birthday falls on 28 February in common years (the day a person born on
//! 29 February attains their age under 年齢計算ニ関スル法律 read with 民法 art. 143).
//! Validity ends at 23:59:59 JST of the final day (14:59:59Z), as J-LIS certificates do.

#![forbid(clippy::disallowed_methods)]

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{Error, Result};

/// Birthdays counted by the rule (5, or 6 near a birthday).
pub const BIRTHDAYS: u32 = 5;
/// Youngest age for a signature certificate.
pub const SIGNATURE_MIN_AGE: i32 = 15;

/// The birthday of someone born on `dob` in `year`.
pub fn birthday_in(dob: Date, year: i32) -> Result<Date> {
    let day = if dob.month() == Month::February && dob.day() == 29 && !time::util::is_leap_year(year) {
        28
    } else {
        dob.day()
    };
    Date::from_calendar_date(year, dob.month(), day).map_err(|e| Error::invalid("date", e))
}

/// `d` minus `months` calendar months, the day clamped to the month's end.
pub fn months_before(d: Date, months: u8) -> Result<Date> {
    let total = d.year() * 12 + i32::from(u8::from(d.month())) - 1 - i32::from(months);
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let month = Month::try_from(m as u8).map_err(|e| Error::invalid("date", e))?;
    let day = d.day().min(month.length(y));
    Date::from_calendar_date(y, month, day).map_err(|e| Error::invalid("date", e))
}

/// Completed years of age on `on`.
pub fn age_on(dob: Date, on: Date) -> Result<i32> {
    let mut age = on.year() - dob.year();
    if on < birthday_in(dob, on.year())? {
        age -= 1;
    }
    Ok(age)
}

/// The last day of a certificate issued on `issued` to someone born on `dob`: the 5th
/// birthday strictly after `issued`, or the 6th when the first one is less than 3 months away.
pub fn birthday_limit(dob: Date, issued: Date) -> Result<Date> {
    let mut year = issued.year();
    let mut first = birthday_in(dob, year)?;
    if first <= issued {
        year += 1;
        first = birthday_in(dob, year)?;
    }
    let n = if issued >= months_before(first, 3)? { BIRTHDAYS + 1 } else { BIRTHDAYS };
    birthday_in(dob, year + n as i32 - 1)
}

/// Inputs to the validity of one certificate.
#[derive(Debug, Clone, Copy)]
pub struct ValidityInput {
    /// Date of birth.
    pub date_of_birth: Date,
    /// When the certificate is issued.
    pub now: OffsetDateTime,
    /// Last day of the card.
    pub card_expiry: Date,
    /// For a signature certificate: the end of the authentication certificate it sits beside.
    pub auth_not_after: Option<OffsetDateTime>,
}

fn jst() -> UtcOffset {
    UtcOffset::from_whole_seconds(9 * 3600).unwrap_or(UtcOffset::UTC)
}

/// 23:59:59 JST of `d`, in UTC.
pub fn end_of_day_jst(d: Date) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT))
        .assume_offset(jst())
        .to_offset(UtcOffset::UTC)
}

/// The calendar date in Japan at `t`.
pub fn jst_date(t: OffsetDateTime) -> Date {
    t.to_offset(jst()).date()
}

/// `notAfter` for a certificate, or why none can be issued.
pub fn not_after(v: &ValidityInput) -> Result<OffsetDateTime> {
    let today = jst_date(v.now);
    if v.date_of_birth > today {
        return Err(Error::refused("bad_identity", "date of birth is in the future"));
    }
    if v.card_expiry <= today {
        return Err(Error::refused("card_expired", format!("the card expired on {}", v.card_expiry)));
    }
    let mut end = end_of_day_jst(birthday_limit(v.date_of_birth, today)?).min(end_of_day_jst(v.card_expiry));
    if let Some(auth) = v.auth_not_after {
        if auth <= v.now {
            return Err(Error::refused("auth_expired", "the authentication certificate has expired"));
        }
        end = end.min(auth);
    }
    Ok(end)
}

/// Refuses a signature certificate to someone under 15 on the day of issuance.
pub fn check_signature_age(dob: Date, now: OffsetDateTime) -> Result<()> {
    let age = age_on(dob, jst_date(now))?;
    if age < SIGNATURE_MIN_AGE {
        return Err(Error::refused(
            "under_age",
            format!("no signature certificate before the 15th birthday (age {age})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn birthday_limit_table() {
        // (date of birth, issued, last day)
        let table = [
            // The test card of jpki.md §1.2: issued 2025-10-27, born 1980-02-17 → 2030-02-17.
            (date!(1980 - 02 - 17), date!(2025 - 10 - 27), date!(2030 - 02 - 17)),
            // First birthday more than 3 months away: the 5th.
            (date!(1990 - 06 - 01), date!(2026 - 01 - 15), date!(2030 - 06 - 01)),
            // Exactly 3 months before the birthday: the 6th.
            (date!(1990 - 06 - 01), date!(2026 - 03 - 01), date!(2031 - 06 - 01)),
            // One day more than 3 months before: the 5th.
            (date!(1990 - 06 - 01), date!(2026 - 02 - 28), date!(2030 - 06 - 01)),
            // Issued on the birthday: that day does not count.
            (date!(1990 - 06 - 01), date!(2026 - 06 - 01), date!(2031 - 06 - 01)),
            // Issued the day after the birthday.
            (date!(1990 - 06 - 01), date!(2026 - 06 - 02), date!(2031 - 06 - 01)),
            // 29 February: 28 February in common years, 29 in leap years.
            (date!(2000 - 02 - 29), date!(2026 - 08 - 01), date!(2031 - 02 - 28)),
            (date!(2000 - 02 - 29), date!(2027 - 08 - 01), date!(2032 - 02 - 29)),
            // 29 February, first birthday less than 3 months away: the 6th.
            (date!(2000 - 02 - 29), date!(2026 - 12 - 10), date!(2032 - 02 - 29)),
            // 3 months before 31 May is 28/29 February (clamped).
            (date!(1970 - 05 - 31), date!(2027 - 02 - 28), date!(2032 - 05 - 31)),
            (date!(1970 - 05 - 31), date!(2027 - 02 - 27), date!(2031 - 05 - 31)),
        ];
        for (dob, issued, want) in table {
            assert_eq!(birthday_limit(dob, issued).unwrap(), want, "dob {dob} issued {issued}");
        }
    }

    #[test]
    fn age_rule_with_29_february() {
        assert_eq!(age_on(date!(2011 - 02 - 28), date!(2026 - 02 - 27)).unwrap(), 14);
        assert_eq!(age_on(date!(2011 - 02 - 28), date!(2026 - 02 - 28)).unwrap(), 15);
        // Born 29 Feb 2012: 15 on 28 Feb 2027 (a common year).
        assert_eq!(age_on(date!(2012 - 02 - 29), date!(2027 - 02 - 27)).unwrap(), 14);
        assert_eq!(age_on(date!(2012 - 02 - 29), date!(2027 - 02 - 28)).unwrap(), 15);
        let e = check_signature_age(date!(2012 - 02 - 29), datetime!(2027-02-27 12:00 UTC)).unwrap_err();
        assert_eq!(e.kind(), "under_age");
        // 2027-02-27 15:00Z is already 28 Feb in Japan.
        check_signature_age(date!(2012 - 02 - 29), datetime!(2027-02-27 15:00 UTC)).unwrap();
    }

    #[test]
    fn earliest_of_birthday_card_and_auth() {
        let now = datetime!(2026-01-15 03:00 UTC);
        let base = ValidityInput {
            date_of_birth: date!(1990 - 06 - 01),
            now,
            card_expiry: date!(2035 - 06 - 01),
            auth_not_after: None,
        };
        assert_eq!(not_after(&base).unwrap(), datetime!(2030-06-01 14:59:59 UTC));
        let card = ValidityInput { card_expiry: date!(2028 - 03 - 31), ..base };
        assert_eq!(not_after(&card).unwrap(), datetime!(2028-03-31 14:59:59 UTC));
        let auth = ValidityInput { auth_not_after: Some(datetime!(2029-01-01 00:00 UTC)), ..base };
        assert_eq!(not_after(&auth).unwrap(), datetime!(2029-01-01 00:00 UTC));
        let expired = ValidityInput { card_expiry: date!(2026 - 01 - 15), ..base };
        assert_eq!(not_after(&expired).unwrap_err().kind(), "card_expired");
        let auth_gone = ValidityInput { auth_not_after: Some(datetime!(2026-01-01 00:00 UTC)), ..base };
        assert_eq!(not_after(&auth_gone).unwrap_err().kind(), "auth_expired");
    }

    #[test]
    fn months_before_clamps() {
        assert_eq!(months_before(date!(2026 - 05 - 31), 3).unwrap(), date!(2026 - 02 - 28));
        assert_eq!(months_before(date!(2028 - 05 - 31), 3).unwrap(), date!(2028 - 02 - 29));
        assert_eq!(months_before(date!(2026 - 02 - 15), 3).unwrap(), date!(2025 - 11 - 15));
    }
}
