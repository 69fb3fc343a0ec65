//! Helpers shared by the protocol's scenario tests (each test file that needs them declares
//! `mod common;`; a file uses only some of them).
#![allow(dead_code)]

use grove_protocol::query::{CompiledQuery, Query, Record, Value};

/// `query` parsed and compiled (a test's queries are valid).
pub fn compiled(query: &str) -> CompiledQuery {
    Query::parse(query).unwrap().compile().unwrap()
}

/// Contributor `i`'s one record for the scalar `sum(x)` queries: `x = 7 i mod 90`, inside
/// their `CLIP x TO [0, 100]`.
pub fn scalar_record(i: usize) -> Record {
    [("x".to_string(), Value::Number((i * 7 % 90) as f64))]
        .into_iter()
        .collect()
}
