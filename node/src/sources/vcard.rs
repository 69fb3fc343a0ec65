//! vCard (versions 3 and 4) contacts as records of the collection `contacts`:
//!
//! | field | from |
//! |---|---|
//! | `uid` | `UID` |
//! | `name` | `FN`, else `N`'s given and family names |
//! | `family_name`, `given_name` | `N` |
//! | `email`, `phone` | the first `EMAIL`, the first `TEL` |
//! | `organization` | the first component of `ORG` |
//! | `birthday` | `BDAY` as `YYYY-MM-DD` when it is a full date, else as written |
//! | `city`, `country` | the first `ADR`'s locality and country |
//! | `categories` | `CATEGORIES`, comma separated |
//!
//! A card with neither `FN` nor `N` is skipped and reported.

use crate::sources::ical::{
    components, content_lines, insert_categories, split_unescaped, unescape, Object,
};
use serde_json::{Map, Value};

/// Parses a vCard file: its contacts, and one reason per card that was skipped.
pub fn parse(text: &str) -> Result<(Vec<Object>, Vec<String>), String> {
    let lines = content_lines(text)?;
    let cards = components(&lines, "VCARD")?;
    if cards.is_empty() {
        return Err("no BEGIN:VCARD: not a vCard file".into());
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, props) in cards.into_iter().enumerate() {
        let get = |name: &str| props.iter().find(|l| l.name == name);
        let mut r = Map::new();
        if let Some(l) = get("UID") {
            r.insert("uid".into(), Value::String(l.value.trim().to_string()));
        }
        let n = get("N").map(|l| split_unescaped(&l.value, ';'));
        if let Some(parts) = &n {
            for (field, idx) in [("family_name", 0), ("given_name", 1)] {
                if let Some(p) = parts.get(idx).filter(|p| !p.is_empty()) {
                    r.insert(field.into(), Value::String(p.clone()));
                }
            }
        }
        let name = get("FN")
            .map(|l| unescape(&l.value).trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                n.as_ref().map(|p| {
                    let given = p.get(1).map_or("", String::as_str);
                    let family = p.first().map_or("", String::as_str);
                    format!("{given} {family}").trim().to_string()
                })
            })
            .filter(|s| !s.is_empty());
        let Some(name) = name else {
            let at = props.first().map_or(0, |l| l.line);
            skipped.push(format!("card {} (line {at}) has no FN or N", i + 1));
            continue;
        };
        r.insert("name".into(), Value::String(name));
        for (field, prop) in [("email", "EMAIL"), ("phone", "TEL")] {
            if let Some(l) = get(prop) {
                let v = l.value.trim();
                let v = v
                    .strip_prefix("mailto:")
                    .or_else(|| v.strip_prefix("tel:"))
                    .unwrap_or(v);
                r.insert(field.into(), Value::String(v.to_string()));
            }
        }
        if let Some(l) = get("ORG") {
            if let Some(org) = split_unescaped(&l.value, ';').into_iter().next() {
                r.insert("organization".into(), Value::String(org));
            }
        }
        if let Some(l) = get("BDAY") {
            let v = l.value.trim();
            let compact: String = v.chars().filter(|c| *c != '-').collect();
            let b = if compact.len() == 8 && compact.chars().all(|c| c.is_ascii_digit()) {
                format!("{}-{}-{}", &compact[0..4], &compact[4..6], &compact[6..8])
            } else {
                v.to_string()
            };
            r.insert("birthday".into(), Value::String(b));
        }
        if let Some(l) = get("ADR") {
            let parts = split_unescaped(&l.value, ';');
            for (field, idx) in [("city", 3), ("country", 6)] {
                if let Some(p) = parts.get(idx).filter(|p| !p.is_empty()) {
                    r.insert(field.into(), Value::String(p.clone()));
                }
            }
        }
        insert_categories(&mut r, &props);
        out.push(r);
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_become_records() {
        let text = "BEGIN:VCARD\nVERSION:3.0\nUID:1\nFN:Zoé Martin\nN:Martin;Zoé;;;\nitem1.EMAIL;TYPE=INTERNET:zoe@example.org\nTEL;TYPE=cell:+33 6 12 34 56 78\nORG:Mairie de Lyon;Service\nBDAY:19850412\nADR;TYPE=home:;;3 rue Neuve;Lyon;;69001;France\nCATEGORIES:family,lyon\nEND:VCARD\nBEGIN:VCARD\nVERSION:4.0\nN:Dupont;Marc;;;\nEND:VCARD\nBEGIN:VCARD\nVERSION:4.0\nUID:3\nEND:VCARD\n";
        let (cards, skipped) = parse(text).unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0]["name"], "Zoé Martin");
        assert_eq!(cards[0]["email"], "zoe@example.org");
        assert_eq!(cards[0]["organization"], "Mairie de Lyon");
        assert_eq!(cards[0]["birthday"], "1985-04-12");
        assert_eq!(cards[0]["city"], "Lyon");
        assert_eq!(cards[0]["country"], "France");
        assert_eq!(cards[1]["name"], "Marc Dupont");
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("card 3"), "{skipped:?}");
        assert!(parse("nothing: here").is_err());
    }
}
