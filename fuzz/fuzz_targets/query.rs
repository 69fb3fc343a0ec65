//! Parses arbitrary text as a query; whatever parses must print canonically, parse back to the
//! same query, print to the same text, and compile (or be refused) without panicking.
#![no_main]

use grove_protocol::query::Query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let printed = query.to_string();
    let again = Query::parse(&printed).expect("a printed query parses");
    assert_eq!(again, query);
    assert_eq!(again.to_string(), printed);
    if let Ok(compiled) = query.compile() {
        let _ = compiled.evaluate(&[]);
    }
});
