//! Trusting a commissioner: the one validation that every way of adding or editing a trust
//! goes through. `grove trust add` and the console's trust page both send
//! `ControlRequest::TrustAdd`; the daemon builds the entry here, so the two cannot disagree on
//! what a valid trust is.

use crate::control::TrustLimits;
use crate::owner::consent;
use crate::store::{validate_collection_name, TrustEntry};

/// Longest name an owner may give a commissioner, in bytes.
pub const MAX_TRUST_LABEL_BYTES: usize = 200;
/// Largest number of collections or fields one trust may list.
pub const MAX_TRUST_LIST: usize = 256;
/// Longest field name, in bytes (the query language's identifier limit).
pub const MAX_FIELD_NAME_BYTES: usize = grove_protocol::limits::MAX_QUERY_IDENTIFIER_BYTES;

/// A commissioner key as the trust list keeps it: 64 lowercase hex digits of a valid ed25519
/// public key.
pub fn parse_commissioner_key(key: &str) -> Result<String, String> {
    let k = key.trim().to_ascii_lowercase();
    let bytes: Vec<u8> = (0..k.len())
        .step_by(2)
        .filter_map(|i| k.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    let bytes: [u8; 32] = bytes
        .try_into()
        .ok()
        .filter(|_| k.len() == 64)
        .ok_or_else(|| format!("{key:?} is not a commissioner key (64 hex digits)"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format!("{key:?} is not a valid ed25519 key"))?;
    Ok(k)
}

/// Whether `name` can name a field in a query (`[A-Za-z_][A-Za-z0-9_]*`, within the
/// identifier limit): a trust listing any other name could never match a query.
fn validate_field_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.len() > MAX_FIELD_NAME_BYTES
    {
        return Err(format!(
            "field name {name:?} is not a query identifier (a letter or '_', then letters, \
             digits or '_', at most {MAX_FIELD_NAME_BYTES} bytes)"
        ));
    }
    Ok(())
}

/// The trust entry a `TrustAdd` asks for, or why it is not valid: the key, the name, the
/// collections and fields are checked here, and absent limits take the node's defaults
/// ([`consent::trust_entry`]).
pub fn entry(
    key: &str,
    collections: Vec<String>,
    label: String,
    min_contributors: u64,
    limits: TrustLimits,
    now_micros: u64,
) -> Result<TrustEntry, String> {
    let key = parse_commissioner_key(key)?;
    if label.len() > MAX_TRUST_LABEL_BYTES {
        return Err(format!(
            "a commissioner's name has at most {MAX_TRUST_LABEL_BYTES} bytes"
        ));
    }
    if collections.len() > MAX_TRUST_LIST || limits.fields.len() > MAX_TRUST_LIST {
        return Err(format!(
            "a trust lists at most {MAX_TRUST_LIST} collections and {MAX_TRUST_LIST} fields"
        ));
    }
    for c in &collections {
        validate_collection_name(c).map_err(|e| e.to_string())?;
    }
    for f in &limits.fields {
        validate_field_name(f)?;
    }
    if let Some(e) = limits.epsilon_per_month {
        let (lo, hi) = (
            crate::owner::budget::MIN_BUDGET_EPSILON,
            crate::owner::budget::MAX_BUDGET_EPSILON,
        );
        if !(lo..=hi).contains(&e) {
            return Err(format!(
                "a privacy budget is an epsilon from {lo} to {hi} per 30 days, not {e}"
            ));
        }
    }
    Ok(consent::trust_entry(
        key,
        collections,
        label,
        min_contributors,
        limits,
        now_micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TrustMode;

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn a_valid_trust_takes_the_defaults_it_does_not_name() {
        let e = entry(
            KEY,
            vec!["bank.operations".into()],
            "study".into(),
            0,
            TrustLimits::default(),
            7,
        )
        .unwrap();
        assert_eq!(e.key, KEY);
        assert_eq!(e.min_contributors, 1);
        assert_eq!(e.min_t, crate::owner::defaults::DEFAULT_MIN_T);
        assert_eq!(e.max_per_day, crate::owner::defaults::DEFAULT_MAX_PER_DAY);
        assert_eq!(e.mode, TrustMode::Auto);
        assert_eq!(e.added_at_micros, 7);
    }

    #[test]
    fn bad_keys_collections_fields_and_names_are_refused() {
        let ok = || TrustLimits::default();
        assert!(entry("abc", vec![], String::new(), 1, ok(), 0).is_err());
        assert!(entry(&KEY.replace('d', "x"), vec![], String::new(), 1, ok(), 0).is_err());
        assert!(entry(KEY, vec!["bad name".into()], String::new(), 1, ok(), 0).is_err());
        let fields = |f: &str| TrustLimits {
            fields: vec![f.into()],
            ..TrustLimits::default()
        };
        assert!(entry(KEY, vec![], String::new(), 1, fields("amount,date"), 0).is_err());
        assert!(entry(KEY, vec![], String::new(), 1, fields("1x"), 0).is_err());
        assert!(entry(KEY, vec![], String::new(), 1, fields("amount_2"), 0).is_ok());
        let long = "x".repeat(MAX_TRUST_LABEL_BYTES + 1);
        assert!(entry(KEY, vec![], long, 1, ok(), 0).is_err());
    }
}
