//! The interim query: the sum of one numeric field over one collection, carried as JSON in the
//! request's query text. Each consenting node contributes `[sum, count]`; with a `dimension`
//! (`op` `"sum_vector"`), the field holds arrays of that many numbers and a node contributes
//! their element-wise sum followed by the count. Declarative queries replace this in a later
//! issue.

use crate::control::ComputeParams;
use grove_protocol::encoding::{BoundRange, ContributionSpec};
use grove_protocol::ids::{ComputationId, Micros, NodeId};
use grove_protocol::limits::MAX_VECTOR_LEN;
use grove_protocol::request::{CommissionerKey, PrivacyParams, Request, Timeouts, TreeParams};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumQuery {
    /// `"sum"`, or `"sum_vector"` with a dimension.
    pub op: String,
    pub collection: String,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
}

impl SumQuery {
    pub fn to_text(&self) -> String {
        // Invariant: a struct of strings always serialises.
        serde_json::to_string(self).expect("a SumQuery serialises")
    }

    pub fn parse(text: &str) -> Option<SumQuery> {
        serde_json::from_str::<SumQuery>(text)
            .ok()
            .filter(|q| match q.dimension {
                None => q.op == "sum",
                Some(d) => q.op == "sum_vector" && (1..MAX_VECTOR_LEN).contains(&d),
            })
    }

    /// What a node contributes: the sum (or element-wise sum of `dimension` numbers) of the
    /// field over the records that have it, then the number of those records.
    pub fn contribution(&self, records: &[serde_json::Map<String, serde_json::Value>]) -> Vec<f64> {
        let Some(d) = self.dimension else {
            let (sum, count) = crate::import::sum_field(records, &self.field);
            return vec![sum, count as f64];
        };
        let mut out = vec![0.0; d as usize + 1];
        for r in records {
            let Some(serde_json::Value::Array(a)) = r.get(&self.field) else {
                continue;
            };
            let values: Option<Vec<f64>> = a
                .iter()
                .map(|v| v.as_f64().filter(|v| v.is_finite()))
                .collect();
            match values {
                Some(v) if v.len() == d as usize => {
                    for (o, v) in out.iter_mut().zip(v) {
                        *o += v;
                    }
                    out[d as usize] += 1.0;
                }
                _ => {}
            }
        }
        out
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
        op: if p.dimension.is_some() {
            "sum_vector"
        } else {
            "sum"
        }
        .into(),
        collection: p.collection.clone(),
        field: p.field.clone(),
        dimension: p.dimension,
    };
    let sums = p.dimension.unwrap_or(1);
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
            length: sums.saturating_add(1),
            bounds: vec![
                BoundRange {
                    count: sums,
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
            dimension: None,
        };
        assert_eq!(SumQuery::parse(&q.to_text()), Some(q));
        assert_eq!(SumQuery::parse("SELECT 1"), None);
        let v = SumQuery {
            op: "sum_vector".into(),
            collection: "c".into(),
            field: "v".into(),
            dimension: Some(3),
        };
        assert_eq!(SumQuery::parse(&v.to_text()), Some(v));
    }

    #[test]
    fn vector_contribution_sums_element_by_element() {
        let q = SumQuery {
            op: "sum_vector".into(),
            collection: "c".into(),
            field: "v".into(),
            dimension: Some(3),
        };
        let records: Vec<serde_json::Map<String, serde_json::Value>> = [
            serde_json::json!({"v": [1.0, 2.0, 3.0]}),
            serde_json::json!({"v": [0.5, -2.0, 1.0]}),
            serde_json::json!({"v": [9.0, 9.0]}),
            serde_json::json!({"w": 1}),
        ]
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .collect();
        // The short array and the record without the field are not used.
        assert_eq!(q.contribution(&records), vec![1.5, 0.0, 4.0, 2.0]);
    }
}
