//! Parsing record files: CSV with a header, a JSON array of objects, or NDJSON (one object a
//! line). A file is parsed whole before anything is imported, and an error names its line, so
//! a file with an error imports nothing.

use serde_json::{Map, Value};
use std::path::Path;
use thiserror::Error;

pub type Object = Map<String, Value>;

#[derive(Debug, Error, PartialEq)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    AtLine { line: u64, message: String },
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    /// From the file extension: `.csv`, `.json`, `.ndjson` or `.jsonl`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

pub fn parse(text: &str, format: Format) -> Result<Vec<Object>, ImportError> {
    match format {
        Format::Csv => parse_csv(text),
        Format::Json => parse_json(text),
        Format::Ndjson => parse_ndjson(text),
    }
}

/// A CSV cell becomes an integer, a float, `true`/`false`, `null` when empty, else a string.
fn cell(s: &str) -> Value {
    let t = s.trim();
    if t.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(s.to_string()),
    }
}

fn parse_csv(text: &str) -> Result<Vec<Object>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::AtLine {
            line: 1,
            message: format!("bad header: {e}"),
        })?
        .clone();
    if headers.is_empty() || headers.iter().any(|h| h.trim().is_empty()) {
        return Err(ImportError::AtLine {
            line: 1,
            message: "the header must name every column".into(),
        });
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| ImportError::AtLine {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = row.position().map_or(0, |p| p.line());
        if row.len() != headers.len() {
            return Err(ImportError::AtLine {
                line,
                message: format!("{} fields, the header has {}", row.len(), headers.len()),
            });
        }
        let mut obj = Map::new();
        for (h, v) in headers.iter().zip(row.iter()) {
            obj.insert(h.trim().to_string(), cell(v));
        }
        out.push(obj);
    }
    Ok(out)
}

fn parse_json(text: &str) -> Result<Vec<Object>, ImportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ImportError::AtLine {
        line: e.line() as u64,
        message: e.to_string(),
    })?;
    let Value::Array(items) = value else {
        return Err(ImportError::Other(
            "a JSON file must hold an array of objects".into(),
        ));
    };
    // serde_json's Value keeps no positions: locate each element's line by re-reading the
    // array with a streaming deserializer is costly, so report the element's index and the
    // line of its start, found by scanning for top-level elements.
    let starts = element_lines(text);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(m) => out.push(m),
            other => {
                return Err(ImportError::AtLine {
                    line: starts.get(i).copied().unwrap_or(0),
                    message: format!("element {i} is not an object but {}", kind(&other)),
                })
            }
        }
    }
    Ok(out)
}

/// Line numbers (1-based) where each top-level element of a JSON array starts.
fn element_lines(text: &str) -> Vec<u64> {
    let mut lines = Vec::new();
    let mut line = 1u64;
    let mut depth = 0i64;
    let mut in_string = false;
    let mut escaped = false;
    let mut expecting = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if expecting && !c.is_whitespace() && c != ']' {
            lines.push(line);
            expecting = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                }
            }
            ']' | '}' => depth -= 1,
            ',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    lines
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_ndjson(text: &str) -> Result<Vec<Object>, ImportError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => out.push(m),
            Ok(other) => {
                return Err(ImportError::AtLine {
                    line,
                    message: format!("expected an object, found {}", kind(&other)),
                })
            }
            Err(e) => {
                // serde_json counts lines inside this one line; keep only its column.
                let text = e.to_string();
                let text = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(head, _)| head);
                return Err(ImportError::AtLine {
                    line,
                    message: format!("{text} (column {})", e.column()),
                });
            }
        }
    }
    Ok(out)
}

/// The sum of a numeric field over records, and how many records had a number there. Numbers
/// written as strings count; records without the field, or with a non-numeric value, do not.
pub fn sum_field(records: &[Object], field: &str) -> (f64, u64) {
    let mut sum = 0.0;
    let mut count = 0;
    for r in records {
        let v = match r.get(field) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if let Some(v) = v.filter(|v| v.is_finite()) {
            sum += v;
            count += 1;
        }
    }
    (sum, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header() {
        let r = parse("name,steps\nann,10\nbob,2.5\n", Format::Csv).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["name"], "ann");
        assert_eq!(r[0]["steps"], 10);
        assert_eq!(sum_field(&r, "steps"), (12.5, 2));
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = parse("a,b\n1,2\n3\n4,5\n", Format::Csv).unwrap_err();
        assert!(matches!(e, ImportError::AtLine { line: 3, .. }), "{e}");
    }

    #[test]
    fn json_array_errors_name_the_line() {
        let r = parse("[\n {\"a\": 1},\n {\"a\": 2}\n]", Format::Json).unwrap();
        assert_eq!(r.len(), 2);
        let e = parse("[\n {\"a\": 1},\n 7\n]", Format::Json).unwrap_err();
        assert_eq!(
            e,
            ImportError::AtLine {
                line: 3,
                message: "element 1 is not an object but a number".into()
            }
        );
        let e = parse("[\n {\"a\": 1},\n {\"a\" 2}\n]", Format::Json).unwrap_err();
        assert!(matches!(e, ImportError::AtLine { line: 3, .. }), "{e}");
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let r = parse("{\"a\":1}\n\n{\"a\":\"2\"}\n", Format::Ndjson).unwrap();
        assert_eq!(sum_field(&r, "a"), (3.0, 2));
        let e = parse("{\"a\":1}\n{oops}\n", Format::Ndjson).unwrap_err();
        assert!(matches!(e, ImportError::AtLine { line: 2, .. }), "{e}");
    }
}
