//! The validity circuit of a compiled query: what every valid contribution vector satisfies,
//! element by element and across elements, in field units (values times `10^scale_digits`,
//! as [`crate::encoding::ContributionSpec::encode`] writes them).
//!
//! This is the statement a contributor's validity proof must establish (`crate::validity`);
//! [`ValidityCircuit::holds`] evaluates it on a plaintext vector, which is what the tests (and
//! a reference checker) use. The checks and the prio circuits that prove them:
//!
//! - [`Check::Range`]: each element of a run is an integer in `[min, max]`: `value - min` by
//!   bits (prio's `Sum`, or `SumVec` for a run). Sums of clipped values (`CLIP` bounds times
//!   `LIMIT PER CONTRIBUTOR`), counts, squares, histogram counts (not `sum_vector`
//!   coordinates: their norm bounds each).
//! - [`Check::Indicator`]: an element is `0` or `one` (`10^scale_digits`): every row's
//!   contributor indicator, every histogram bucket's (prio's `Count`).
//! - [`Check::IndicatorOf`]: an indicator is `one` exactly when a count in the same block is
//!   non-zero (`count(*)` for the row's indicator, a bucket's count for its indicator).
//! - [`Check::AtMost`]: the sum of some elements is at most a bound: the rows' indicators and
//!   `count(*)` over all rows (a contributor's `LIMIT PER CONTRIBUTOR` records have one `GROUP
//!   BY` key each), and a histogram's buckets in a row (one bucket per record; with a limit of
//!   1, prio's `Histogram` one-hot check).
//! - [`Check::NormAtMost`]: a `sum_vector` run has L2 norm at most its `CLIP NORM` (prio 0.18 has
//!   no circuit for it: `validity::circuit` proves it after the PINE draft, the sum of squares
//!   by the gadget, its slack by bits, and random projections against the field's wraparound).

use super::ast::{Aggregate, GroupBy};
use super::column::ColumnKind;
use super::compile::CompiledQuery;
use crate::field::Fp;

/// One check of a [`ValidityCircuit`]; indices are into the contribution vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Elements `start..start + len` are integers in `[min, max]`.
    Range {
        start: u32,
        len: u32,
        min: i64,
        max: i64,
    },
    /// Element `index` is `0` or `one`.
    Indicator { index: u32, one: i64 },
    /// Element `indicator` is `one` if element `count` is non-zero, else `0`.
    IndicatorOf {
        indicator: u32,
        count: u32,
        one: i64,
    },
    /// The sum of `elements` is at most `max`.
    AtMost { elements: Vec<u32>, max: i64 },
    /// Elements `start..start + len` have an L2 norm at most `bound` (rounding included).
    NormAtMost { start: u32, len: u32, bound: i64 },
}

/// Everything a valid contribution to one query satisfies (see the module text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidityCircuit {
    pub length: u32,
    pub checks: Vec<Check>,
}

fn scaled(x: f64, scale: f64) -> i64 {
    // Bounds come from a compiled query: the overflow budget keeps them far below 2^62.
    (x * scale).round() as i64
}

impl CompiledQuery {
    /// The validity circuit of this query's contributions.
    pub fn validity_circuit(&self) -> ValidityCircuit {
        let spec = self.spec();
        let scale = 10f64.powi(i32::from(spec.scale_digits));
        let one = scaled(1.0, scale);
        let n = i64::from(self.records_per_contributor());
        let columns = self.columns();
        let width = columns.len() as u32;
        let rows = self.rows().len() as u32;
        let row_indicator = columns
            .iter()
            .position(|c| c.kind == ColumnKind::Contributor)
            .unwrap_or(columns.len().saturating_sub(1)) as u32;
        let records = columns
            .iter()
            .position(|c| c.kind == ColumnKind::Records)
            .map(|c| c as u32);
        let mut checks = Vec::new();
        for r in 0..rows {
            let base = r * width;
            // Runs of range columns with equal bounds.
            let mut c = 0usize;
            while c < columns.len() {
                let col = &columns[c];
                // A `sum_vector`'s coordinates have no range of their own: the norm bounds
                // each (`|x_i| <= ||x||`), and its proof has nothing per coordinate.
                if matches!(col.kind, ColumnKind::Coordinate(_)) {
                    c += 1;
                    continue;
                }
                if matches!(
                    col.kind,
                    ColumnKind::Contributor | ColumnKind::BucketContributor(_)
                ) {
                    checks.push(Check::Indicator {
                        index: base + c as u32,
                        one,
                    });
                    c += 1;
                    continue;
                }
                let mut end = c + 1;
                while end < columns.len()
                    && columns[end].min == col.min
                    && columns[end].max == col.max
                    && !matches!(
                        columns[end].kind,
                        ColumnKind::Contributor
                            | ColumnKind::BucketContributor(_)
                            | ColumnKind::Coordinate(_)
                    )
                {
                    end += 1;
                }
                checks.push(Check::Range {
                    start: base + c as u32,
                    len: (end - c) as u32,
                    min: scaled(col.min, scale),
                    max: scaled(col.max, scale),
                });
                c = end;
            }
            if let Some(rc) = records {
                checks.push(Check::IndicatorOf {
                    indicator: base + row_indicator,
                    count: base + rc,
                    one,
                });
            }
            for (c, col) in columns.iter().enumerate() {
                if let ColumnKind::BucketContributor(b) = col.kind {
                    let bucket = columns.iter().position(|x| {
                        x.kind == ColumnKind::Bucket(b) && x.aggregate == col.aggregate
                    });
                    if let Some(bc) = bucket {
                        checks.push(Check::IndicatorOf {
                            indicator: base + c as u32,
                            count: base + bc as u32,
                            one,
                        });
                    }
                }
            }
            for (i, a) in self.query().aggregates.iter().enumerate() {
                let of = |pred: &dyn Fn(ColumnKind) -> bool| -> Vec<u32> {
                    columns
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.aggregate == Some(i) && pred(x.kind))
                        .map(|(c, _)| base + c as u32)
                        .collect()
                };
                match a {
                    Aggregate::Histogram { .. } => {
                        checks.push(Check::AtMost {
                            elements: of(&|k| matches!(k, ColumnKind::Bucket(_))),
                            max: n * one,
                        });
                        checks.push(Check::AtMost {
                            elements: of(&|k| matches!(k, ColumnKind::BucketContributor(_))),
                            max: n * one,
                        });
                    }
                    Aggregate::SumVector { dimension, .. } => {
                        let coords = of(&|k| matches!(k, ColumnKind::Coordinate(_)));
                        let bound = columns[coords[0] as usize - base as usize].max * scale;
                        // Rounding moves each coordinate by at most 1/2.
                        let slack = f64::from(*dimension).sqrt() / 2.0;
                        checks.push(Check::NormAtMost {
                            start: coords[0],
                            len: *dimension,
                            bound: (bound + slack).ceil() as i64,
                        });
                    }
                    _ => {}
                }
            }
        }
        if matches!(self.query().group_by, Some(GroupBy::Keys { .. })) || rows > 1 {
            checks.push(Check::AtMost {
                elements: (0..rows).map(|r| r * width + row_indicator).collect(),
                max: n * one,
            });
            if let Some(rc) = records {
                checks.push(Check::AtMost {
                    elements: (0..rows).map(|r| r * width + rc).collect(),
                    max: n * one,
                });
            }
        }
        ValidityCircuit {
            length: spec.length,
            checks,
        }
    }
}

impl ValidityCircuit {
    /// Whether `v` (a contribution in field units, centered) satisfies every check; the
    /// index of the first check that fails otherwise.
    pub fn holds(&self, v: &[Fp]) -> Result<(), usize> {
        if v.len() != self.length as usize {
            return Err(usize::MAX);
        }
        let x = |i: u32| i128::from(v[i as usize].to_i64_centered());
        for (k, c) in self.checks.iter().enumerate() {
            let ok = match c {
                Check::Range {
                    start,
                    len,
                    min,
                    max,
                } => (*start..start + len)
                    .all(|i| (i128::from(*min)..=i128::from(*max)).contains(&x(i))),
                Check::Indicator { index, one } => x(*index) == 0 || x(*index) == i128::from(*one),
                Check::IndicatorOf {
                    indicator,
                    count,
                    one,
                } => x(*indicator) == if x(*count) != 0 { i128::from(*one) } else { 0 },
                Check::AtMost { elements, max } => {
                    elements.iter().map(|i| x(*i)).sum::<i128>() <= i128::from(*max)
                }
                Check::NormAtMost { start, len, bound } => {
                    (*start..start + len).map(|i| x(i) * x(i)).sum::<i128>()
                        <= i128::from(*bound) * i128::from(*bound)
                }
            };
            if !ok {
                return Err(k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Query, Record, Value};
    use std::collections::BTreeMap;

    fn rec(fields: &[(&str, Value)]) -> Record {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    }

    fn compiled(text: &str) -> (CompiledQuery, ValidityCircuit) {
        let c = Query::parse(text).unwrap().compile().unwrap();
        let circuit = c.validity_circuit();
        (c, circuit)
    }

    /// The kind of the check that `v` fails, if any.
    fn failing(circuit: &ValidityCircuit, v: &[Fp]) -> Option<&'static str> {
        circuit.holds(v).err().map(|k| match &circuit.checks[k] {
            Check::Range { .. } => "range",
            Check::Indicator { .. } => "indicator",
            Check::IndicatorOf { .. } => "indicator-of",
            Check::AtMost { .. } => "at-most",
            Check::NormAtMost { .. } => "norm",
        })
    }

    fn set(v: &mut [Fp], i: usize, x: i64) {
        v[i] = Fp::from_i64(x);
    }

    #[test]
    fn scalar_sum_within_its_clip_and_indicator_in_0_1() {
        let (c, circuit) =
            compiled("SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 2");
        // sum, hidden indicator.
        assert_eq!(c.columns().len(), 2);
        for records in [
            vec![],
            vec![rec(&[("x", Value::Number(42.5))])],
            vec![rec(&[("x", Value::Number(1e9))])],
            vec![rec(&[("x", Value::Number(-3.0))])],
        ] {
            let v = c.contribution(&records).unwrap();
            assert_eq!(failing(&circuit, &v), None, "{records:?}");
        }
        let honest = c
            .contribution(&[rec(&[("x", Value::Number(7.0))])])
            .unwrap();
        let mut v = honest.clone();
        set(&mut v, 0, 10_001); // 100.01, over the clip
        assert_eq!(failing(&circuit, &v), Some("range"));
        let mut v = honest.clone();
        set(&mut v, 0, -1);
        assert_eq!(failing(&circuit, &v), Some("range"));
        let mut v = honest.clone();
        set(&mut v, 1, 1000 * 100); // an indicator of 1,000
        assert_eq!(failing(&circuit, &v), Some("indicator"));
    }

    #[test]
    fn group_by_keys_one_key_per_record_and_indicator_matches_count() {
        let keys: Vec<String> = (0..16).map(|i| format!("'k{i}'")).collect();
        let text = format!(
            "SELECT count(*), sum(x) FROM t GROUP BY k IN ({}) CLIP x TO [-5, 5] \
             LIMIT PER CONTRIBUTOR 1",
            keys.join(", ")
        );
        let (c, circuit) = compiled(&text);
        let width = c.columns().len();
        assert_eq!(c.rows().len(), 16);
        let honest = c
            .contribution(&[rec(&[
                ("k", Value::Text("k3".into())),
                ("x", Value::Number(-2.0)),
            ])])
            .unwrap();
        assert_eq!(failing(&circuit, &honest), None);
        let none = c.contribution(&[]).unwrap();
        assert_eq!(failing(&circuit, &none), None);
        // The same record counted under a second key: every row looks fine on its own.
        let mut v = honest.clone();
        let (r3, r9) = (3 * width, 9 * width);
        v[r9..r9 + width].copy_from_slice(&honest[r3..r3 + width]);
        assert_eq!(failing(&circuit, &v), Some("at-most"));
        // An indicator of 1,000 (inflating a cell towards k_min).
        let ind = c
            .columns()
            .iter()
            .position(|x| x.kind == ColumnKind::Contributor)
            .unwrap();
        let mut v = honest.clone();
        set(&mut v, r9 + ind, 1000);
        assert_eq!(failing(&circuit, &v), Some("indicator"));
        // An indicator of 1 in a row where the contributor has no record.
        let mut v = honest.clone();
        set(&mut v, r9 + ind, 100); // SCALE 2 by default: 1 is 100
        assert_eq!(failing(&circuit, &v), Some("indicator-of"));
    }

    #[test]
    fn histogram_rows_one_hot() {
        let (c, circuit) = compiled(
            "SELECT histogram(x, [0, 10, 50, 100]) FROM t LIMIT PER CONTRIBUTOR 1 SCALE 0",
        );
        let honest = c
            .contribution(&[rec(&[("x", Value::Number(12.0))])])
            .unwrap();
        assert_eq!(failing(&circuit, &honest), None);
        // Buckets 0..3, their indicators 3..6, the row's indicator.
        let ints: Vec<i64> = honest.iter().map(|x| x.to_i64_centered()).collect();
        assert_eq!(ints, vec![0, 1, 0, 0, 1, 0, 1]);
        let mut v = honest.clone();
        set(&mut v, 2, 1);
        set(&mut v, 5, 1);
        assert_eq!(failing(&circuit, &v), Some("at-most"));
        let mut v = honest.clone();
        set(&mut v, 1, 0);
        assert_eq!(failing(&circuit, &v), Some("indicator-of"));
        // Three records at most: six records counted in two buckets, each indicator in {0, 1}.
        let (c, circuit) = compiled(
            "SELECT histogram(x, [0, 10, 50, 100]) FROM t LIMIT PER CONTRIBUTOR 3 SCALE 0",
        );
        let honest = c
            .contribution(&[rec(&[("x", Value::Number(12.0))])])
            .unwrap();
        assert_eq!(failing(&circuit, &honest), None);
        let mut v = honest.clone();
        set(&mut v, 0, 3);
        set(&mut v, 1, 3);
        set(&mut v, 3, 1);
        assert_eq!(failing(&circuit, &v), Some("at-most"));
    }

    #[test]
    fn sum_vector_within_its_clip_norm() {
        let (c, circuit) = compiled("SELECT sum_vector(w, 4) FROM t CLIP NORM w TO 2.0 SCALE 3");
        for w in [
            vec![0.0, 0.0, 0.0, 0.0],
            vec![1.0, -1.0, 1.0, -1.0],
            vec![3.0, 4.0, 0.1, 0.0],
            vec![1e6, 1e6, 1e6, 1e6],
        ] {
            let v = c
                .contribution(&[rec(&[("w", Value::NumberArray(w.clone()))])])
                .unwrap();
            assert_eq!(failing(&circuit, &v), None, "{w:?}");
        }
        // (2, 2, 0, 0): every coordinate within [-2, 2], the norm 2.83 over 2.
        let mut v = c.contribution(&[]).unwrap();
        set(&mut v, 0, 2000);
        set(&mut v, 1, 2000);
        set(&mut v, 4, 1000);
        assert_eq!(failing(&circuit, &v), Some("norm"));
    }

    /// Every aggregate at once, many record sets (seeded): honest contributions always hold.
    #[test]
    fn honest_contributions_of_every_aggregate_hold() {
        let (c, circuit) = compiled(
            "SELECT count(*), sum(a), avg(a), var(a), stddev(a), histogram(a, [0, 10, 50, 100]), \
             count(DISTINCT CONTRIBUTOR), sum_vector(w, 3) FROM t \
             GROUP BY m IN ('x', 'y', 'z') CLIP a TO [-20, 80] CLIP NORM w TO 5 \
             LIMIT PER CONTRIBUTOR 3",
        );
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let records: Vec<Record> = (0..next() % 6)
                .map(|_| {
                    let key = ["x", "y", "z", "other"][(next() % 4) as usize];
                    let a = (next() % 2000) as f64 / 10.0 - 50.0;
                    let w: Vec<f64> = (0..3)
                        .map(|_| (next() % 200) as f64 / 10.0 - 10.0)
                        .collect();
                    rec(&[
                        ("m", Value::Text(key.into())),
                        ("a", Value::Number(a)),
                        ("w", Value::NumberArray(w)),
                    ])
                })
                .collect();
            let v = c.contribution(&records).unwrap();
            assert_eq!(failing(&circuit, &v), None, "{records:?}");
        }
    }

    #[test]
    fn a_vector_of_the_wrong_length_fails() {
        let (_, circuit) = compiled("SELECT count(*) FROM t");
        assert!(circuit.holds(&[Fp::ZERO]).is_err());
    }
}
