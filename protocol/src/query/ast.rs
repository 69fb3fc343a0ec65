//! The syntax tree of a query and its canonical printer.
//!
//! [`Query`]'s `Display` is canonical: keywords in capitals, function names in lower case, one
//! clause per line, numbers in Rust's shortest round-trip form, text literals in single quotes
//! with `''` for a quote, parentheses only where precedence needs them. For every query `q`
//! that [`Query::parse`](crate::query::Query::parse) accepts, `parse(q.to_string()) == q`
//! (provided the printed text is itself within `MAX_QUERY_BYTES`: the printer adds spaces, so
//! a query written densely near the limit can print longer).

use std::fmt;

/// A parsed query. Fields are public so that tools can build queries; a built query goes
/// through the parser anyway when it is compiled (see [`Query::compile`](crate::query::Query::compile)).
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub aggregates: Vec<Aggregate>,
    /// Dotted collection name, e.g. `bank.operations`.
    pub collection: String,
    pub filter: Option<Predicate>,
    pub group_by: Option<GroupBy>,
    pub clips: Vec<Clip>,
    /// `LIMIT PER CONTRIBUTOR n`: at most `n` records of one contributor are used.
    pub limit_per_contributor: Option<u32>,
    /// `SCALE n`: fixed-point digits of the encoding.
    pub scale: Option<u8>,
    /// `WITH PRIVACY EPSILON e DELTA d [HONEST SOURCES h]`: differential privacy (`dp.rs`).
    pub privacy: Option<Privacy>,
}

/// A query's privacy clause: the released vector is `(epsilon, delta)`-differentially private
/// for one owner's records as long as `honest_sources` of the summed contributors added their
/// noise (1 when the clause does not say: then every contributor adds the whole noise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Privacy {
    pub epsilon: f64,
    pub delta: f64,
    pub honest_sources: u32,
}

/// One item of the `SELECT` list.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregate {
    /// `count(*)`
    Count,
    /// `count(DISTINCT CONTRIBUTOR)`
    CountContributors,
    Sum(String),
    Avg(String),
    Var(String),
    Stddev(String),
    /// `histogram(field, [e0, e1, ..., ek])`: `k` buckets.
    Histogram {
        field: String,
        edges: Vec<f64>,
    },
    /// `sum_vector(field, dimension)`
    SumVector {
        field: String,
        dimension: u32,
    },
}

/// What a predicate or a `GROUP BY` key reads from a record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expr {
    Field(String),
    /// `year(field)`: a number.
    Year(String),
    /// `month(field)`: a text `YYYY-MM`.
    Month(String),
    /// `day(field)`: a text `YYYY-MM-DD`.
    Day(String),
}

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A `WHERE` condition. `And` and `Or` hold at least two operands; a chain `a AND b AND c`
/// parses to one `And` of three, and `(a AND b) AND c` to an `And` nested in an `And`.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    Compare {
        expr: Expr,
        op: CmpOp,
        value: Literal,
    },
    In {
        expr: Expr,
        values: Vec<Literal>,
    },
    Between {
        expr: Expr,
        low: Literal,
        high: Literal,
    },
    /// `expr LIKE 'prefix%'`: the text starts with `prefix`.
    Like {
        expr: Expr,
        prefix: String,
    },
    Not(Box<Predicate>),
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
}

/// `GROUP BY`: always over declared keys or buckets.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// `GROUP BY expr IN (k1, k2, ...)`: one row per key, in this order.
    Keys { expr: Expr, keys: Vec<Literal> },
    /// `GROUP BY bucket(field, [e0, ..., ek])`: `k` rows `[e_i, e_{i+1})`, the last closed.
    Buckets { field: String, edges: Vec<f64> },
}

/// A `CLIP` rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Clip {
    /// `CLIP field TO [min, max]`
    Range { field: String, min: f64, max: f64 },
    /// `CLIP NORM field TO bound`
    Norm { field: String, bound: f64 },
}

impl Clip {
    pub fn field(&self) -> &str {
        match self {
            Clip::Range { field, .. } | Clip::Norm { field, .. } => field,
        }
    }
}

impl Aggregate {
    /// The field the aggregate reads, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Aggregate::Count | Aggregate::CountContributors => None,
            Aggregate::Sum(f) | Aggregate::Avg(f) | Aggregate::Var(f) | Aggregate::Stddev(f) => {
                Some(f)
            }
            Aggregate::Histogram { field, .. } | Aggregate::SumVector { field, .. } => Some(field),
        }
    }
}

impl GroupBy {
    /// Number of rows it makes.
    pub fn len(&self) -> usize {
        match self {
            GroupBy::Keys { keys, .. } => keys.len(),
            GroupBy::Buckets { edges, .. } => edges.len().saturating_sub(1),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes a number so that the lexer reads back the same `f64`, in Rust's shortest round-trip
/// form: plain (`1500`, `0.25`), or with an exponent (`1e300`, `5e-324`) when the plain form
/// would take more than 16 characters and the exponent form is shorter.
pub(crate) fn write_number(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    let plain = format!("{x}");
    let exponent = format!("{x:e}");
    f.write_str(if plain.len() > 16 && exponent.len() < plain.len() {
        &exponent
    } else {
        &plain
    })
}

pub(crate) fn write_text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        if c == '\'' {
            f.write_str("''")?;
        } else {
            write!(f, "{c}")?;
        }
    }
    f.write_str("'")
}

fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    close: &str,
    items: &[T],
    mut item: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    f.write_str(open)?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item(f, x)?;
    }
    f.write_str(close)
}

fn write_edges(f: &mut fmt::Formatter<'_>, edges: &[f64]) -> fmt::Result {
    write_list(f, "[", "]", edges, |f, x| write_number(f, *x))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(x) => write_number(f, *x),
            Literal::Text(s) => write_text(f, s),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(x) => f.write_str(x),
            Expr::Year(x) => write!(f, "year({x})"),
            Expr::Month(x) => write!(f, "month({x})"),
            Expr::Day(x) => write!(f, "day({x})"),
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Count => f.write_str("count(*)"),
            Aggregate::CountContributors => f.write_str("count(DISTINCT CONTRIBUTOR)"),
            Aggregate::Sum(x) => write!(f, "sum({x})"),
            Aggregate::Avg(x) => write!(f, "avg({x})"),
            Aggregate::Var(x) => write!(f, "var({x})"),
            Aggregate::Stddev(x) => write!(f, "stddev({x})"),
            Aggregate::Histogram { field, edges } => {
                write!(f, "histogram({field}, ")?;
                write_edges(f, edges)?;
                f.write_str(")")
            }
            Aggregate::SumVector { field, dimension } => {
                write!(f, "sum_vector({field}, {dimension})")
            }
        }
    }
}

impl Predicate {
    /// Writes `self` as an operand of `NOT` or `AND` (`in_or == false`) or of `OR`: the
    /// operands that precedence would otherwise regroup get parentheses, so that the tree
    /// shape survives a round trip (`AND` binds tighter than `OR`, `NOT` tighter than both).
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, in_or: bool) -> fmt::Result {
        match self {
            Predicate::Or(_) => write!(f, "({self})"),
            Predicate::And(_) if !in_or => write!(f, "({self})"),
            _ => write!(f, "{self}"),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Compare { expr, op, value } => write!(f, "{expr} {op} {value}"),
            Predicate::In { expr, values } => {
                write!(f, "{expr} IN ")?;
                write_list(f, "(", ")", values, |f, v| write!(f, "{v}"))
            }
            Predicate::Between { expr, low, high } => {
                write!(f, "{expr} BETWEEN {low} AND {high}")
            }
            Predicate::Like { expr, prefix } => {
                write!(f, "{expr} LIKE ")?;
                write_text(f, &format!("{prefix}%"))
            }
            Predicate::Not(p) => {
                f.write_str("NOT ")?;
                p.fmt_operand(f, false)
            }
            Predicate::And(ps) | Predicate::Or(ps) => {
                let in_or = matches!(self, Predicate::Or(_));
                let sep = if in_or { " OR " } else { " AND " };
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    p.fmt_operand(f, in_or)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupBy::Keys { expr, keys } => {
                write!(f, "{expr} IN ")?;
                write_list(f, "(", ")", keys, |f, v| write!(f, "{v}"))
            }
            GroupBy::Buckets { field, edges } => {
                write!(f, "bucket({field}, ")?;
                write_edges(f, edges)?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clip::Range { field, min, max } => {
                write!(f, "CLIP {field} TO [")?;
                write_number(f, *min)?;
                f.write_str(", ")?;
                write_number(f, *max)?;
                f.write_str("]")
            }
            Clip::Norm { field, bound } => {
                write!(f, "CLIP NORM {field} TO ")?;
                write_number(f, *bound)
            }
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        write_list(f, "", "", &self.aggregates, |f, a| write!(f, "{a}"))?;
        write!(f, "\nFROM {}", self.collection)?;
        if let Some(p) = &self.filter {
            write!(f, "\nWHERE {p}")?;
        }
        if let Some(g) = &self.group_by {
            write!(f, "\nGROUP BY {g}")?;
        }
        for c in &self.clips {
            write!(f, "\n{c}")?;
        }
        if let Some(n) = self.limit_per_contributor {
            write!(f, "\nLIMIT PER CONTRIBUTOR {n}")?;
        }
        if let Some(s) = self.scale {
            write!(f, "\nSCALE {s}")?;
        }
        if let Some(p) = &self.privacy {
            f.write_str("\nWITH PRIVACY EPSILON ")?;
            write_number(f, p.epsilon)?;
            f.write_str(" DELTA ")?;
            write_number(f, p.delta)?;
            write!(f, " HONEST SOURCES {}", p.honest_sources)?;
        }
        Ok(())
    }
}
