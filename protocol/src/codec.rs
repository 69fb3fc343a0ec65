//! The wire codec: a 4-byte magic, a version byte, then the postcard body; size-checked both
//! ways and validated against the named limits after decoding.

use crate::limits::MAX_MESSAGE_BYTES;
use crate::message::Message;
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"GRV\0";
/// 2: requests carry the cells of their contribution spec, root members open the cells'
/// counts among themselves (`CountShare`), and release shares carry their cell mask.
pub const WIRE_VERSION: u8 = 2;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("not a Grove message")]
    BadMagic,
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message violates a limit: {0}")]
    Limit(String),
}

/// Length of the header (magic and version) in front of the postcard body.
pub const HEADER_LEN: usize = MAGIC.len() + 1;

pub fn encode(message: &Message) -> Result<Vec<u8>, CodecError> {
    // Room for most messages (a share is about 250 bytes) without growing step by step.
    let mut out = Vec::with_capacity(HEADER_LEN + 507);
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    let out =
        postcard::to_extend(message, out).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    match bytes.get(MAGIC.len()) {
        None => return Err(CodecError::Malformed("missing wire version".into())),
        Some(&WIRE_VERSION) => {}
        Some(&v) => return Err(CodecError::UnsupportedVersion(v)),
    }
    let (message, rest) = postcard::take_from_bytes::<Message>(&bytes[HEADER_LEN..])
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    message.check_limits().map_err(CodecError::Limit)?;
    Ok(message)
}

/// One small, valid message of every body kind (for tests, fuzz seeds and benchmarks).
#[cfg(any(test, feature = "test-util"))]
pub fn sample_messages() -> Vec<Message> {
    use crate::encoding::{BoundRange, CellLayout, ContributionSpec, CountedCell};
    use crate::field::{FieldVec, Fp};
    use crate::ids::{ComputationId, Digest, GroupId, Micros, NodeId, Version};
    use crate::message::*;
    use crate::request::*;

    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let computation = ComputationId([1u8; 32]);
    let request = Request {
        id: computation,
        commissioner: CommissionerKey(key.verifying_key().to_bytes()),
        commissioner_node: NodeId([2u8; 32]),
        directory: None,
        beacon: None,
        created_at: Micros(1_000_000),
        deadline: Micros(61_000_000),
        query: "SELECT sum(x) FROM local".into(),
        contribution: ContributionSpec {
            length: 3,
            bounds: vec![
                BoundRange {
                    count: 1,
                    min: 0.0,
                    max: 1.0,
                },
                BoundRange {
                    count: 2,
                    min: -1.0,
                    max: 1.0,
                },
            ],
            scale_digits: 3,
            cells: CellLayout {
                width: 3,
                cells: vec![CountedCell {
                    indicator: 0,
                    start: 0,
                    len: 3,
                }],
            },
            noise: None,
        },
        max_contributors: 100,
        privacy: PrivacyParams {
            g: 5,
            t: 3,
            k_min: 2,
        },
        tree: TreeParams {
            leaf_groups: 4,
            fan_in: 2,
            backups: 1,
            timeouts: Timeouts {
                share_window: 1,
                collect_window: 2,
                level_span: 3,
                report_window: 4,
                manifest_timeout: 5,
                heal_attempt: 6,
                release_window: 7,
            },
        },
    };
    let leaf = GroupId { level: 0, index: 3 };
    let inner = GroupId { level: 1, index: 1 };
    let digest = Digest([9u8; 32]);
    let version = Version { digest, count: 42 };
    let vec3 = FieldVec(vec![Fp::ONE, Fp::ZERO, Fp::ONE]);
    let manifest = Manifest {
        items: vec![
            Item::Contributor(NodeId([3u8; 32])),
            Item::Child {
                group: leaf,
                version,
            },
        ],
    };
    let bodies = vec![
        Body::Request(Box::new(SignedRequest::sign(request, &key))),
        Body::Share(ShareMsg {
            group: leaf,
            position: 1,
            contributor: NodeId([4u8; 32]),
            sealed: vec![0xAA; 40],
        }),
        Body::ShareQuery(ShareQueryMsg {
            group: leaf,
            position: 4,
        }),
        Body::Partial(PartialMsg {
            child: leaf,
            position: 2,
            version,
            sum: vec3.clone(),
        }),
        Body::Report(ReportMsg {
            group: leaf,
            position: 3,
            serving: true,
            items: manifest.items.clone(),
            accepted: Some((2, manifest.clone())),
            adopted: Some(manifest.clone()),
            certificate: Some(AdoptionCertificate {
                round: 2,
                accepts: vec![SignedAccept {
                    voter: NodeId([6u8; 32]),
                    position: 3,
                    serving: true,
                    signature: vec![0x5A; 64],
                }],
            }),
        }),
        Body::Report(ReportMsg {
            group: inner,
            position: 32,
            serving: false,
            items: vec![],
            accepted: None,
            adopted: None,
            certificate: None,
        }),
        Body::Solicit(SolicitMsg {
            group: inner,
            leader: 4,
        }),
        Body::Manifest(ManifestMsg {
            group: inner,
            leader: 5,
            manifest: manifest.clone(),
        }),
        Body::Vote(VoteMsg {
            group: inner,
            position: 6,
            manifest,
            serving: false,
            signature: vec![0xA5; 64],
        }),
        Body::HealQuery(HealQueryMsg {
            child: leaf,
            target: 2,
        }),
        Body::Decline(DeclineMsg { group: leaf }),
        Body::PartialAhead(PartialMsg {
            child: leaf,
            position: 3,
            version,
            sum: vec3.clone(),
        }),
        Body::PartialConfirm(PartialConfirmMsg {
            child: leaf,
            position: 3,
            version,
            key: [5; 32],
        }),
        Body::HealOffer(HealOfferMsg {
            child: leaf,
            target: 2,
            helper: 3,
            version,
        }),
        Body::HealGo(HealGoMsg {
            child: leaf,
            target: 2,
            version: digest,
            helpers: vec![1, 3, 4],
            helper_nodes: vec![NodeId([5; 32]), NodeId([6; 32]), NodeId([7; 32])],
        }),
        Body::HealPart(HealPartMsg {
            child: leaf,
            target: 2,
            helper: 4,
            version: digest,
            value: FieldVec(vec![]),
        }),
        Body::RootReady(RootReadyMsg {
            position: 1,
            version,
        }),
        Body::ReleaseAsk(ReleaseAskMsg { version: digest }),
        Body::RootQuery,
        Body::ReleaseShare(ReleaseShareMsg {
            position: 5,
            version: digest,
            released: vec![0b101],
            share: vec3.clone(),
        }),
        Body::CountShare(CountShareMsg {
            position: 4,
            version: digest,
            counts: vec3,
            ask: true,
        }),
        Body::Finish(FinishMsg {
            signature: vec![0x55; 64],
        }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Message {
            computation,
            round: i as u32,
            body,
            to: (i % 2 == 0).then_some(crate::message::Slot {
                group: crate::ids::GroupId { level: 1, index: 2 },
                position: 3,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::FieldVec;
    use crate::message::{Body, ShareMsg};

    #[test]
    fn every_body_kind_round_trips() {
        let samples = sample_messages();
        let mut kinds: Vec<&str> = samples.iter().map(|m| m.kind()).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), 21, "one sample of every body kind");
        for m in &samples {
            let bytes = encode(m).unwrap();
            assert_eq!(bytes[..4], MAGIC);
            assert_eq!(bytes[4], WIRE_VERSION);
            assert_eq!(bytes[HEADER_LEN..], postcard::to_allocvec(m).unwrap()[..]);
            assert_eq!(decode(&bytes).as_ref(), Ok(m), "{}", m.kind());
        }
    }

    #[test]
    fn header_is_checked() {
        let bytes = encode(&sample_messages()[0]).unwrap();
        assert_eq!(decode(&[]), Err(CodecError::BadMagic));
        assert_eq!(decode(b"GRV"), Err(CodecError::BadMagic));
        assert!(matches!(decode(b"GRV\0"), Err(CodecError::Malformed(_))));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(decode(&b), Err(CodecError::BadMagic));
        let mut b = bytes.clone();
        b[4] = WIRE_VERSION + 1;
        assert_eq!(
            decode(&b),
            Err(CodecError::UnsupportedVersion(WIRE_VERSION + 1))
        );
        assert!(matches!(decode(&bytes[..5]), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn trailing_and_missing_bytes_are_malformed() {
        for m in sample_messages() {
            let bytes = encode(&m).unwrap();
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(decode(&longer), Err(CodecError::Malformed(_))));
            assert!(matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(CodecError::Malformed(_))
            ));
        }
    }

    #[test]
    fn limits_are_checked_after_decoding() {
        let mut m = sample_messages().remove(1);
        let Body::Share(ShareMsg { position, .. }) = &mut m.body else {
            panic!("sample 1 is a share")
        };
        *position = 0;
        let bytes = encode(&m).unwrap();
        assert!(matches!(decode(&bytes), Err(CodecError::Limit(_))));
        let mut m = sample_messages().pop().unwrap();
        let Body::Finish(f) = &mut m.body else {
            panic!("last sample is a finish")
        };
        f.signature.pop();
        assert!(matches!(
            decode(&encode(&m).unwrap()),
            Err(CodecError::Limit(_))
        ));
    }

    #[test]
    fn size_is_checked_both_ways() {
        let share = |len: usize| {
            let mut m = sample_messages().remove(1);
            let Body::Share(s) = &mut m.body else {
                panic!("sample 1 is a share")
            };
            s.sealed = vec![0; len];
            m
        };
        let m = share(MAX_MESSAGE_BYTES);
        assert!(matches!(encode(&m), Err(CodecError::TooLarge(_))));
        let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            decode(&huge),
            Err(CodecError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        // Exactly at the limit is accepted by the size check (and then parsed).
        let m = share(MAX_MESSAGE_BYTES - 200);
        let bytes = encode(&m).unwrap();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(decode(&bytes), Ok(m));
    }

    #[test]
    fn non_canonical_field_elements_are_rejected() {
        let mut m = sample_messages()
            .into_iter()
            .find(|m| m.kind() == "partial")
            .expect("a partial sample");
        let Body::Partial(p) = &mut m.body else {
            unreachable!("found by kind")
        };
        let marker = 0x0123_4567_89ab_cdefu64;
        p.sum = FieldVec(vec![crate::field::Fp::new(marker)]);
        let mut bytes = encode(&m).unwrap();
        assert_eq!(decode(&bytes), Ok(m.clone()));
        // Find the element's 8 bytes and set them to P (non-canonical).
        let at = bytes
            .windows(8)
            .rposition(|w| w == marker.to_le_bytes())
            .expect("the element is in the encoding");
        bytes[at..at + 8].copy_from_slice(&crate::field::P.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(CodecError::Malformed(_))));
    }
}
