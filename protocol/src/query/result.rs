//! The decoded result of a query: one row per `GROUP BY` key or bucket, one cell per aggregate.

use serde::Serialize;
use std::fmt;

/// One value of the result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Number(f64),
    /// `histogram` (one count per bucket; `None`, printed `suppressed` and `null` in JSON,
    /// for a bucket of fewer than `k_min` contributors) and `sum_vector`.
    List(Vec<Option<f64>>),
    /// No value: `avg`, `var` or `stddev` over no record, or a sum vector too short.
    Null,
    /// Withheld by the root group: the row counts fewer than `k_min` contributors (`null` in
    /// JSON; the row says `suppressed`).
    Suppressed,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultRow {
    /// The row's `GROUP BY` key or bucket; `None` without `GROUP BY`.
    pub key: Option<String>,
    /// The row counts fewer than `k_min` contributors: the root group withheld all of it,
    /// its count included.
    pub suppressed: bool,
    pub cells: Vec<Cell>,
}

/// A decoded result. `Display` prints an aligned text table; `Serialize` gives
/// `{"group_by": .., "columns": [..], "rows": [{"key": .., "cells": [..]}], "contributors": n}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultTable {
    /// The `GROUP BY` expression, if any.
    pub group_by: Option<String>,
    /// One name per aggregate, as the canonical printer writes it.
    pub columns: Vec<String>,
    pub rows: Vec<ResultRow>,
    /// How many contributors the released sum covers.
    pub contributors: u64,
}

/// A number as a person reads it: integers without decimals, others with up to six.
pub(crate) fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == x.round() && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Number(x) => f.write_str(&format_number(*x)),
            Cell::List(xs) => {
                f.write_str("[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match x {
                        Some(x) => f.write_str(&format_number(*x))?,
                        None => f.write_str("suppressed")?,
                    }
                }
                f.write_str("]")
            }
            Cell::Null => f.write_str("-"),
            Cell::Suppressed => f.write_str("suppressed"),
        }
    }
}

impl fmt::Display for ResultTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grouped = self.group_by.is_some();
        let mut header: Vec<String> = Vec::new();
        if let Some(g) = &self.group_by {
            header.push(g.clone());
        }
        header.extend(self.columns.iter().cloned());
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = Vec::new();
                if grouped {
                    cells.push(r.key.clone().unwrap_or_default());
                }
                cells.extend(r.cells.iter().map(|c| c.to_string()));
                cells
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    f.write_str("  ")?;
                }
                let pad = w - c.chars().count();
                let left = grouped && i == 0;
                if left && i + 1 < cells.len() {
                    write!(f, "{c}{}", " ".repeat(pad))?;
                } else if left {
                    f.write_str(c)?;
                } else {
                    write!(f, "{}{c}", " ".repeat(pad))?;
                }
            }
            writeln!(f)
        };
        line(f, &header)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(f, &rule)?;
        for r in &rows {
            line(f, r)?;
        }
        write!(f, "({} contributors)", self.contributors)
    }
}
