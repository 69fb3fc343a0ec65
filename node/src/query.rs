//! The interim query: the sum of one numeric field over one collection, carried as JSON in the
//! request's query text. Each consenting node contributes `[sum, count]`. Declarative queries
//! replace this in a later issue.

use crate::control::ComputeParams;
use grove_protocol::encoding::{BoundRange, ContributionSpec};
use grove_protocol::ids::{ComputationId, Micros, NodeId};
use grove_protocol::request::{CommissionerKey, PrivacyParams, Request, Timeouts, TreeParams};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumQuery {
    /// Always `"sum"` for now.
    pub op: String,
    pub collection: String,
    pub field: String,
}

impl SumQuery {
    pub fn to_text(&self) -> String {
        // Invariant: a struct of strings always serialises.
        serde_json::to_string(self).expect("a SumQuery serialises")
    }

    pub fn parse(text: &str) -> Option<SumQuery> {
        serde_json::from_str::<SumQuery>(text)
            .ok()
            .filter(|q| q.op == "sum")
    }
}

/// Timeouts scaled from the share window (every other phase is a fraction of it).
pub fn timeouts(share_window_ms: u64) -> Timeouts {
    let w = share_window_ms.max(100) * 1000;
    Timeouts {
        share_window: w,
        collect_window: w / 2,
        level_span: w,
        report_window: w / 4,
        manifest_timeout: w / 2,
        heal_attempt: w / 2,
        release_window: w / 4,
    }
}

/// The largest number of leaf groups whose plan fits `peers` distinct peers (every position
/// of every group is a distinct peer), at least 1.
pub fn fitting_leaf_groups(peers: usize, g: u8, fan_in: u32) -> u32 {
    let mut best = 1;
    for leaves in 1..=4096u32 {
        match grove_protocol::request::plan_group_count(leaves, fan_in) {
            Some(groups) if groups.saturating_mul(g as u64) <= peers as u64 => best = leaves,
            _ => break,
        }
    }
    best
}

pub fn build_request(
    p: &ComputeParams,
    id: ComputationId,
    commissioner: CommissionerKey,
    commissioner_node: NodeId,
    now: Micros,
    directory_size: usize,
) -> Request {
    let query = SumQuery {
        op: "sum".into(),
        collection: p.collection.clone(),
        field: p.field.clone(),
    };
    let leaf_groups = p
        .leaf_groups
        .unwrap_or_else(|| fitting_leaf_groups(directory_size, p.g, p.fan_in));
    Request {
        id,
        commissioner,
        commissioner_node,
        directory: None,
        created_at: now,
        deadline: now.plus(p.lifetime_secs.saturating_mul(1_000_000)),
        query: query.to_text(),
        contribution: ContributionSpec {
            length: 2,
            bounds: vec![
                BoundRange {
                    count: 1,
                    min: -p.bound,
                    max: p.bound,
                },
                BoundRange {
                    count: 1,
                    min: 0.0,
                    max: p.max_records as f64,
                },
            ],
            scale_digits: p.scale_digits,
        },
        max_contributors: p.max_contributors,
        privacy: PrivacyParams {
            g: p.g,
            t: p.t,
            k_min: p.k_min,
        },
        tree: TreeParams {
            leaf_groups,
            fan_in: p.fan_in,
            backups: 2,
            timeouts: timeouts(p.share_window_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_groups_fit_the_directory() {
        // 20 peers, g = 5, fan-in 2: 2 leaves + 1 root = 15 positions; 3 leaves need 30.
        assert_eq!(fitting_leaf_groups(20, 5, 2), 2);
        // g = 3: 3 leaves + 2 + 1 = 6 groups = 18 positions.
        assert_eq!(fitting_leaf_groups(20, 3, 2), 3);
        assert_eq!(fitting_leaf_groups(2, 5, 2), 1);
    }

    #[test]
    fn query_text_round_trips() {
        let q = SumQuery {
            op: "sum".into(),
            collection: "c".into(),
            field: "f".into(),
        };
        assert_eq!(SumQuery::parse(&q.to_text()), Some(q));
        assert_eq!(SumQuery::parse("SELECT 1"), None);
    }
}
