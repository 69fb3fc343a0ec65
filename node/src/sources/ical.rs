//! iCalendar (RFC 5545) events as records, and the content-line reader vCard shares.
//!
//! Each `VEVENT` becomes one record of the collection `calendar.events`:
//!
//! | field | from |
//! |---|---|
//! | `uid`, `summary`, `location`, `description`, `status` | the properties of those names |
//! | `start`, `end` | `DTSTART`, `DTEND` as `YYYY-MM-DD` (all-day) or `YYYY-MM-DDTHH:MM:SS[Z]` |
//! | `all_day` | whether `DTSTART` is a date |
//! | `timezone` | the `TZID` parameter of `DTSTART`, if any |
//! | `duration_minutes` | `DTEND - DTSTART`, or `DURATION` |
//! | `categories` | `CATEGORIES`, comma separated |
//! | `recurrence` | `RRULE` as written (occurrences are not expanded) |
//!
//! An event without `DTSTART` is skipped and reported; a file whose `BEGIN`/`END` lines do not
//! nest is malformed as a whole.

use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// One unfolded content line: `NAME;PARAM=V;...:VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentLine {
    /// Upper-cased name, without a group prefix (`item1.EMAIL` is `EMAIL`).
    pub name: String,
    /// Upper-cased parameter names with their values.
    pub params: Vec<(String, String)>,
    pub value: String,
    /// 1-based line of the file where the content line starts.
    pub line: u64,
}

impl ContentLine {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Unfolds (a line starting with a space or tab continues the previous one) and splits
/// content lines. A non-empty line without `:` is an error naming its line.
pub fn content_lines(text: &str) -> Result<Vec<ContentLine>, String> {
    let mut logical: Vec<(u64, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            match logical.last_mut() {
                Some((_, l)) => l.push_str(rest),
                None => return Err(format!("line {}: continuation of nothing", i + 1)),
            }
        } else if !raw.trim().is_empty() {
            logical.push((i as u64 + 1, raw.to_string()));
        }
    }
    let mut out = Vec::with_capacity(logical.len());
    for (line, l) in logical {
        // The value starts at the first ':' outside a quoted parameter value.
        let mut quoted = false;
        let mut colon = None;
        for (i, c) in l.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ':' if !quoted => {
                    colon = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(colon) = colon else {
            return Err(format!("line {line}: no ':' in {:?}", truncate(&l)));
        };
        let (head, value) = (&l[..colon], &l[colon + 1..]);
        let mut parts = head.split(';');
        let name = parts.next().unwrap_or_default();
        let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
        let params = parts
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_ascii_uppercase(), v.trim_matches('"').to_string()),
                None => (p.to_ascii_uppercase(), String::new()),
            })
            .collect();
        out.push(ContentLine {
            name,
            params,
            value: value.to_string(),
            line,
        });
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Undoes TEXT escaping: `\n`, `\,`, `\;`, `\\`.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on unescaped `sep` and unescapes each part.
pub fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(unescape(&cur));
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(unescape(&cur));
    parts
}

/// The components `BEGIN:kind` .. `END:kind` at any depth, as their own content lines
/// (nested components excluded), checking that every `BEGIN` has its `END`.
/// Sets `categories` to the values of every `CATEGORIES` line (comma-separated, unescaped),
/// if there are any; shared by iCalendar events and vCards.
pub fn insert_categories(r: &mut Object, props: &[ContentLine]) {
    let categories: Vec<Value> = props
        .iter()
        .filter(|l| l.name == "CATEGORIES")
        .flat_map(|l| split_unescaped(&l.value, ','))
        .filter(|c| !c.is_empty())
        .map(Value::String)
        .collect();
    if !categories.is_empty() {
        r.insert("categories".into(), Value::Array(categories));
    }
}

pub fn components(lines: &[ContentLine], kind: &str) -> Result<Vec<Vec<ContentLine>>, String> {
    let mut stack: Vec<(String, u64)> = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<Vec<ContentLine>> = None;
    for l in lines {
        match l.name.as_str() {
            "BEGIN" => {
                let k = l.value.trim().to_ascii_uppercase();
                if k == kind && current.is_none() {
                    current = Some(Vec::new());
                }
                stack.push((k, l.line));
            }
            "END" => {
                let k = l.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == k => {
                        if k == kind && stack.iter().all(|(o, _)| o != kind) {
                            if let Some(c) = current.take() {
                                out.push(c);
                            }
                        }
                    }
                    Some((open, at)) => {
                        return Err(format!(
                            "line {}: END:{k} closes BEGIN:{open} of line {at}",
                            l.line
                        ))
                    }
                    None => return Err(format!("line {}: END:{k} without BEGIN", l.line)),
                }
            }
            _ => {
                // Properties of a nested component (a VALARM) are not the event's.
                if let Some(c) = current.as_mut() {
                    if stack.last().is_some_and(|(k, _)| k == kind) {
                        c.push(l.clone());
                    }
                }
            }
        }
    }
    if let Some((open, at)) = stack.pop() {
        return Err(format!("BEGIN:{open} of line {at} is never closed"));
    }
    Ok(out)
}

/// A date or date-time value as text, and whether it is a date.
fn date_value(l: &ContentLine) -> Option<(String, bool)> {
    let v = l.value.trim();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if v.len() == 8 && digits(v) {
        return Some((format!("{}-{}-{}", &v[0..4], &v[4..6], &v[6..8]), true));
    }
    let (date, rest) = v.split_once('T')?;
    let (time, utc) = match rest.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (rest, false),
    };
    if date.len() != 8 || !digits(date) || time.len() != 6 || !digits(time) {
        return None;
    }
    Some((
        format!(
            "{}-{}-{}T{}:{}:{}{}",
            &date[0..4],
            &date[4..6],
            &date[6..8],
            &time[0..2],
            &time[2..4],
            &time[4..6],
            if utc { "Z" } else { "" }
        ),
        false,
    ))
}

/// Minutes since 1970-01-01 of `YYYY-MM-DD[THH:MM:SS]` (no time zone arithmetic).
fn minutes(s: &str) -> Option<i64> {
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: i64 = s.get(5..7)?.parse().ok()?;
    let d: i64 = s.get(8..10)?.parse().ok()?;
    let (hh, mm) = if s.len() >= 16 {
        (s.get(11..13)?.parse().ok()?, s.get(14..16)?.parse().ok()?)
    } else {
        (0i64, 0i64)
    };
    // Days from civil (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 1440 + hh * 60 + mm)
}

/// `DURATION` such as `PT1H30M`, `P1D`, `P2W`, in minutes.
fn duration_minutes(v: &str) -> Option<i64> {
    let v = v.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let v = v.strip_prefix('P')?;
    let mut total = 0i64;
    let mut num = String::new();
    let mut in_time = false;
    for c in v.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => num.push(c),
            unit => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                total += match (unit, in_time) {
                    ('W', false) => n * 7 * 1440,
                    ('D', false) => n * 1440,
                    ('H', true) => n * 60,
                    ('M', true) => n,
                    ('S', true) => n / 60,
                    _ => return None,
                };
            }
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(if neg { -total } else { total })
}

/// Parses a calendar file: its events, and one reason per event that was skipped.
pub fn parse(text: &str) -> Result<(Vec<Object>, Vec<String>), String> {
    let lines = content_lines(text)?;
    if !lines
        .iter()
        .any(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCALENDAR"))
    {
        return Err("no BEGIN:VCALENDAR: not an iCalendar file".into());
    }
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (i, props) in components(&lines, "VEVENT")?.into_iter().enumerate() {
        let get = |name: &str| props.iter().find(|l| l.name == name);
        let Some(start_line) = get("DTSTART") else {
            skipped.push(format!("event {} has no DTSTART", i + 1));
            continue;
        };
        let Some((start, all_day)) = date_value(start_line) else {
            skipped.push(format!(
                "event {} (line {}): DTSTART {:?} is not a date or date-time",
                i + 1,
                start_line.line,
                start_line.value
            ));
            continue;
        };
        let mut r = Map::new();
        for (field, name) in [
            ("uid", "UID"),
            ("summary", "SUMMARY"),
            ("location", "LOCATION"),
            ("description", "DESCRIPTION"),
            ("status", "STATUS"),
        ] {
            if let Some(l) = get(name) {
                r.insert(field.into(), Value::String(unescape(&l.value)));
            }
        }
        r.insert("start".into(), Value::String(start.clone()));
        r.insert("all_day".into(), Value::Bool(all_day));
        if let Some(tz) = start_line.param("TZID") {
            r.insert("timezone".into(), Value::String(tz.to_string()));
        }
        let end = get("DTEND").and_then(date_value).map(|(e, _)| e);
        let duration = match &end {
            Some(e) => minutes(e).zip(minutes(&start)).map(|(b, a)| b - a),
            None => get("DURATION").and_then(|l| duration_minutes(&l.value)),
        };
        if let Some(e) = end {
            r.insert("end".into(), Value::String(e));
        }
        if let Some(d) = duration {
            r.insert("duration_minutes".into(), Value::from(d));
        }
        insert_categories(&mut r, &props);
        if let Some(l) = get("RRULE") {
            r.insert("recurrence".into(), Value::String(l.value.clone()));
        }
        events.push(r);
    }
    Ok((events, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAL: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a@x\r\nSUMMARY:Dentist\\, Dr\r\n  Roux\r\nDTSTART;TZID=Europe/Paris:20240105T093000\r\nDTEND;TZID=Europe/Paris:20240105T101500\r\nCATEGORIES:health,appointment\r\nBEGIN:VALARM\r\nSUMMARY:alarm\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b@x\r\nDTSTART;VALUE=DATE:20240229\r\nDURATION:P1D\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:c@x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn events_become_records() {
        let (events, skipped) = parse(CAL).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["summary"], "Dentist, Dr Roux");
        assert_eq!(events[0]["start"], "2024-01-05T09:30:00");
        assert_eq!(events[0]["timezone"], "Europe/Paris");
        assert_eq!(events[0]["duration_minutes"], 45);
        assert_eq!(
            events[0]["categories"],
            serde_json::json!(["health", "appointment"])
        );
        assert_eq!(events[1]["start"], "2024-02-29");
        assert_eq!(events[1]["all_day"], true);
        assert_eq!(events[1]["duration_minutes"], 1440);
        assert_eq!(skipped, vec!["event 3 has no DTSTART".to_string()]);
    }

    #[test]
    fn broken_nesting_is_an_error() {
        let e =
            parse("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20240101\nEND:VCALENDAR\n").unwrap_err();
        assert!(e.contains("line 4"), "{e}");
        assert!(parse("hello").is_err());
        assert_eq!(minutes("1970-01-02"), Some(1440));
        assert_eq!(duration_minutes("PT1H30M"), Some(90));
    }
}
