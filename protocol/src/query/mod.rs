//! The declarative query language: what a commissioner may ask of every contributor.
//!
//! ```text
//! SELECT count(*), avg(amount), histogram(amount, [0, 10, 50, 100, 500])
//! FROM bank.operations
//! WHERE category = 'food' AND date >= '2026-01-01' AND NOT (amount < 0)
//! GROUP BY month(date) IN ('2026-01', '2026-02', '2026-03')
//! CLIP amount TO [0, 1000]
//! LIMIT PER CONTRIBUTOR 1000
//! SCALE 2
//! ```
//!
//! - [`Query::parse`] reads the text (hand-written lexer and recursive-descent parser; every
//!   error is a [`QueryError`] with the line and column of the offending token), and
//!   `Display` prints it back in canonical form: `parse(print(q)) == q`.
//! - [`Query::compile`] fixes the layout of every contributor's vector (the
//!   [`ContributionSpec`](crate::encoding::ContributionSpec) of the request) and the
//!   per-contributor bound of every element.
//! - [`CompiledQuery::evaluate`] runs on a node over its local records and gives the vector
//!   it contributes; [`CompiledQuery::decode`] turns the released sum into a [`ResultTable`].
//!
//! Everything here is pure: no IO, no clock, no randomness. ARCHITECTURE.md ("Declarative
//! queries") has the grammar, the layout, the per-contributor bounds rule and the overflow
//! budget.

mod accuracy;
mod ast;
mod circuit;
mod column;
mod compile;
mod lexer;
mod parser;
mod privacy;
mod result;
mod value;

pub use accuracy::{Accuracy, CellAccuracy, RATIO_MIN_DEVIATIONS};
pub use ast::{Aggregate, Clip, CmpOp, Expr, GroupBy, Literal, Predicate, Privacy, Query};
pub use circuit::{Check, ValidityCircuit};
pub use column::{Column, ColumnKind};
pub use compile::CompiledQuery;
pub use parser::KEYWORDS;
pub use result::{Cell, ResultRow, ResultTable};
pub use value::{Date, Record, Value};

use std::fmt;

/// Scale (fixed-point digits) when the query has no `SCALE` clause.
pub const DEFAULT_SCALE_DIGITS: u8 = 2;
/// Records one contributor may use when the query has no `LIMIT PER CONTRIBUTOR` clause.
pub const DEFAULT_RECORDS_PER_CONTRIBUTOR: u32 = 1000;

/// A query that cannot be parsed or compiled: where (1-based line and column, in characters,
/// of the offending token) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// What would have been right, when there is something useful to say.
    pub hint: Option<String>,
}

impl QueryError {
    pub(crate) fn new(line: u32, column: u32, message: String) -> QueryError {
        QueryError {
            line,
            column,
            message,
            hint: None,
        }
    }
    pub(crate) fn with_hint(mut self, hint: String) -> QueryError {
        self.hint = Some(hint);
        self
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )?;
        if let Some(h) = &self.hint {
            write!(f, ": {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for QueryError {}

impl Query {
    /// Parses and checks a query: syntax, named limits, bounds for every aggregate that needs
    /// them, and no unused `CLIP`. Never panics.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        parser::parse(text, true)
    }
}

impl std::str::FromStr for Query {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Query, QueryError> {
        Query::parse(s)
    }
}

#[cfg(test)]
mod tests;
