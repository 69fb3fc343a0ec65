//! The layout of one row's block: what each element holds for one contributor and its bounds.
//! [`Query::compile`](super::Query::compile) lays the columns out; the sensitivity
//! (`privacy.rs`) and the validity circuit (`circuit.rs`) read them.

/// What one element of a row's block holds, for one contributor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// Records used in the row (`count(*)`).
    Records,
    /// 1 if the contributor used any record in the row, else 0 (`count(DISTINCT
    /// CONTRIBUTOR)`, or the row's hidden indicator when the query does not select it).
    Contributor,
    /// Sum of the clipped field over the records where it is a number.
    Sum,
    /// Sum of the squares of the clipped field.
    SumOfSquares,
    /// Records where the field is a number (the divisor of `avg`, `var`, `stddev`).
    Count,
    /// Records whose field falls in bucket `i` of a histogram.
    Bucket(u32),
    /// 1 if any used record of the contributor falls in bucket `i` of a histogram, else 0
    /// (hidden: it counts the bucket's contributors for release, and is not printed).
    BucketContributor(u32),
    /// Coordinate `i` of a `sum_vector`.
    Coordinate(u32),
}

/// One element of a row's block: which aggregate it serves, what it holds, and the bounds
/// of one contributor's value, `[min, max]` (the overflow budget multiplies these by the
/// number of contributors).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Index into the query's aggregates; `None` for the row's hidden indicator (a query that
    /// does not select `count(DISTINCT CONTRIBUTOR)` still counts each row's contributors).
    pub aggregate: Option<usize>,
    pub kind: ColumnKind,
    pub min: f64,
    pub max: f64,
}
