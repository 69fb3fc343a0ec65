//! What a node's records hold, as the query evaluator sees them.
//!
//! A record is a map from field names to [`Value`]s. The evaluator never fails on a record: a
//! field that is missing, `Null`, of the wrong type, a non-finite number, a text that is not a
//! date where a date is needed, or an array of the wrong dimension makes the predicate that
//! reads it *unknown* (SQL's three-valued logic: `NOT unknown` is still unknown, and a record
//! whose `WHERE` is not true is not used) and makes the aggregate that reads it skip the record
//! (`count(*)` still counts it; `avg` divides by the number of records it could read).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// One record of a node's local collection.
pub type Record = BTreeMap<String, Value>;

/// A field's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    /// Text. A text of the form `YYYY-MM-DD`, optionally followed by `T` or a space and a time,
    /// also counts as a date (its day) wherever the query compares it with a date literal or
    /// takes a date part of it.
    Text(String),
    Date(Date),
    NumberArray(Vec<f64>),
}

/// A calendar date (proleptic Gregorian, years 0000 to 9999).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A valid date, or `None`.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        if year > 9999 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month)
        {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Parses exactly `YYYY-MM-DD`.
    pub fn parse_iso(text: &str) -> Option<Date> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            let mut v = 0u16;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u16::from(c - b'0');
            }
            Some(v)
        };
        let year = digits(0..4)?;
        let month = u8::try_from(digits(5..7)?).ok()?;
        let day = u8::try_from(digits(8..10)?).ok()?;
        Date::new(year, month, day)
    }

    /// Parses `YYYY-MM-DD`, or `YYYY-MM-DD` followed by `T` or a space and anything (a
    /// date-time, of which the day is kept).
    pub fn parse_prefix(text: &str) -> Option<Date> {
        match text.len() {
            10 => Date::parse_iso(text),
            n if n > 10 => {
                let rest = &text.as_bytes()[10..];
                if rest[0] == b'T' || rest[0] == b' ' {
                    // Byte 10 is ASCII, so 10 is a char boundary.
                    Date::parse_iso(text.get(..10)?)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// `YYYY-MM`.
    pub fn month_text(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl Value {
    /// The value as a date: a `Date`, or a text that starts with one (see [`Value::Text`]).
    pub fn as_date(&self) -> Option<Date> {
        match self {
            Value::Date(d) => Some(*d),
            Value::Text(t) => Date::parse_prefix(t),
            _ => None,
        }
    }

    /// The value as a finite number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(x) if x.is_finite() => Some(*x),
            _ => None,
        }
    }
}

/// Total order on finite numbers (callers only pass finite values).
pub(crate) fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            Date::parse_iso("2024-02-29"),
            Some(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert_eq!(Date::parse_iso("2023-02-29"), None);
        assert_eq!(Date::parse_iso("2023-13-01"), None);
        assert_eq!(Date::parse_iso("2023-1-01"), None);
        assert_eq!(Date::parse_iso("２０２３-01-01"), None);
        assert_eq!(
            Date::parse_prefix("2026-01-05T10:00:00Z").map(|d| d.day),
            Some(5)
        );
        assert_eq!(
            Date::parse_prefix("2026-01-05 10:00").map(|d| d.day),
            Some(5)
        );
        assert_eq!(Date::parse_prefix("2026-01-05x"), None);
        assert_eq!(Date::parse_prefix("2026-01-0é"), None);
        assert_eq!(Date::parse_prefix("2026-01-05é"), None);
        let d = Date::new(2026, 3, 9).unwrap();
        assert_eq!(d.to_string(), "2026-03-09");
        assert_eq!(d.month_text(), "2026-03");
        assert!(Date::new(1900, 2, 29).is_none());
        assert!(Date::new(2000, 2, 29).is_some());
    }
}
