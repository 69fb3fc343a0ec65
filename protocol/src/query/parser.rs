//! Hand-written recursive-descent parser. Every error points at the offending token.

use super::ast::*;
use super::lexer::{tokenize, Tok, Token};
use super::QueryError;
use crate::limits;
use std::collections::BTreeMap;

/// Reserved words: they cannot name a field or a collection (case-insensitive).
pub const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "CLIP",
    "NORM",
    "TO",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "LIKE",
    "DISTINCT",
    "CONTRIBUTOR",
    "LIMIT",
    "PER",
    "SCALE",
    "WITH",
    "PRIVACY",
    "EPSILON",
    "DELTA",
    "HONEST",
    "SOURCES",
    "TRUE",
    "FALSE",
    "NULL",
];

const AGGREGATES: &str = "count, sum, avg, var, stddev, histogram, sum_vector";

pub(crate) fn is_keyword(s: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

/// Parses `text`; `bounded` applies `MAX_QUERY_BYTES` (off only for re-reading the printed
/// form of a query, whose size the count limits bound).
pub(crate) fn parse(text: &str, bounded: bool) -> Result<Query, QueryError> {
    if bounded && text.len() > limits::MAX_QUERY_BYTES {
        return Err(QueryError::new(
            1,
            1,
            format!(
                "query of {} bytes is over the limit of {} bytes",
                text.len(),
                limits::MAX_QUERY_BYTES
            ),
        ));
    }
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        terms: 0,
    };
    p.query()
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Current nesting of parentheses and `NOT`s in the `WHERE` clause.
    depth: usize,
    /// Comparisons, `IN`, `BETWEEN` and `LIKE` seen so far.
    terms: usize,
}

/// Where an aggregate or clip was written, for errors found after the whole query is read.
type Pos = (u32, u32);

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with `End` and `pos` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.toks[(self.pos + ahead).min(self.toks.len() - 1)].tok
    }
    fn here(&self) -> Pos {
        let t = self.peek();
        (t.line, t.column)
    }
    fn err_at<T>(&self, at: Pos, message: String) -> Result<T, QueryError> {
        Err(QueryError::new(at.0, at.1, message))
    }
    /// An error at the next token: "expected X, found Y".
    fn expected<T>(&self, what: &str) -> Result<T, QueryError> {
        let t = self.peek();
        self.err_at(
            (t.line, t.column),
            format!("expected {what}, found {}", t.tok.describe()),
        )
    }
    fn at_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.at_keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn keyword(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_keyword(kw) {
            Ok(())
        } else {
            self.expected(kw)
        }
    }
    fn punct(&mut self, tok: Tok) -> Result<(), QueryError> {
        if self.peek().tok == tok {
            self.pos += 1;
            Ok(())
        } else {
            self.expected(&tok.describe())
        }
    }
    fn eat(&mut self, tok: Tok) -> bool {
        if self.peek().tok == tok {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A field or collection segment: an identifier that is not a reserved word.
    fn name(&mut self, what: &str) -> Result<String, QueryError> {
        let at = self.here();
        match &self.peek().tok {
            Tok::Ident(s) if is_keyword(s) => self.err_at(
                at,
                format!("'{s}' is a reserved word and cannot name a {what}"),
            ),
            Tok::Ident(s) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => self.expected(&format!("a {what} name")),
        }
    }

    /// A number, with an optional leading minus.
    fn number(&mut self) -> Result<f64, QueryError> {
        let negative = self.eat(Tok::Minus);
        match self.peek().tok {
            Tok::Number(x) => {
                self.pos += 1;
                Ok(if negative { -x } else { x })
            }
            _ => self.expected("a number"),
        }
    }

    /// A whole number in `min..=max`.
    fn integer(&mut self, what: &str, min: u64, max: u64) -> Result<u64, QueryError> {
        let at = self.here();
        let x = self.number()?;
        if x.fract() != 0.0 || x < min as f64 || x > max as f64 {
            return self.err_at(
                at,
                format!("{what} must be a whole number from {min} to {max}, found {x}"),
            );
        }
        Ok(x as u64)
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        match &self.peek().tok {
            Tok::Text(s) => {
                let s = s.clone();
                self.pos += 1;
                Ok(Literal::Text(s))
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("TRUE") => {
                self.pos += 1;
                Ok(Literal::Bool(true))
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("FALSE") => {
                self.pos += 1;
                Ok(Literal::Bool(false))
            }
            Tok::Minus | Tok::Number(_) => Ok(Literal::Number(self.number()?)),
            _ => self.expected("a number, a text in single quotes, TRUE or FALSE"),
        }
    }

    /// `(l1, l2, ...)` with at most `max` items.
    fn literal_list(&mut self, max: usize) -> Result<Vec<(Literal, Pos)>, QueryError> {
        self.punct(Tok::LParen)?;
        let mut out = Vec::new();
        loop {
            let at = self.here();
            if out.len() == max {
                return self.err_at(at, format!("a list holds at most {max} values"));
            }
            out.push((self.literal()?, at));
            if !self.eat(Tok::Comma) {
                break;
            }
        }
        self.punct(Tok::RParen)?;
        Ok(out)
    }

    /// `[e0, e1, ...]`: at least two edges, strictly increasing.
    fn edges(&mut self) -> Result<Vec<f64>, QueryError> {
        self.punct(Tok::LBracket)?;
        let mut out: Vec<f64> = Vec::new();
        loop {
            let at = self.here();
            if out.len() == limits::MAX_QUERY_EDGES {
                return self.err_at(
                    at,
                    format!("at most {} edges are allowed", limits::MAX_QUERY_EDGES),
                );
            }
            let x = self.number()?;
            if let Some(&last) = out.last() {
                if x <= last {
                    return self.err_at(
                        at,
                        format!("edges must increase strictly: {x} comes after {last}"),
                    );
                }
            }
            out.push(x);
            if !self.eat(Tok::Comma) {
                break;
            }
        }
        if out.len() < 2 {
            return self.expected("',' and a second edge (at least two edges make a bucket)");
        }
        self.punct(Tok::RBracket)?;
        Ok(out)
    }

    /// A field, or `year(field)`, `month(field)`, `day(field)`.
    fn expr(&mut self) -> Result<Expr, QueryError> {
        let at = self.here();
        if let (Tok::Ident(f), Tok::LParen) = (&self.peek().tok, self.peek_at(1)) {
            let f = f.to_ascii_lowercase();
            let make: fn(String) -> Expr = match f.as_str() {
                "year" => Expr::Year,
                "month" => Expr::Month,
                "day" => Expr::Day,
                _ => {
                    return self.err_at(
                        at,
                        format!("unknown function '{f}': expected year, month or day"),
                    )
                }
            };
            self.pos += 2;
            let field = self.name("field")?;
            self.punct(Tok::RParen)?;
            return Ok(make(field));
        }
        Ok(Expr::Field(self.name("field")?))
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        self.keyword("SELECT")?;
        let mut aggregates = Vec::new();
        let mut agg_pos = Vec::new();
        loop {
            let at = self.here();
            if aggregates.len() == limits::MAX_QUERY_AGGREGATES {
                return self.err_at(
                    at,
                    format!(
                        "at most {} aggregates are allowed",
                        limits::MAX_QUERY_AGGREGATES
                    ),
                );
            }
            aggregates.push(self.aggregate()?);
            agg_pos.push(at);
            if !self.eat(Tok::Comma) {
                break;
            }
        }
        self.keyword("FROM")?;
        let mut collection = self.name("collection")?;
        while self.eat(Tok::Dot) {
            collection.push('.');
            collection.push_str(&self.name("collection")?);
        }
        let filter = if self.eat_keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let group_by = if self.eat_keyword("GROUP") {
            self.keyword("BY")?;
            Some(self.group_by()?)
        } else {
            None
        };
        let mut clips = Vec::new();
        let mut clip_pos = Vec::new();
        while self.at_keyword("CLIP") {
            let at = self.here();
            self.pos += 1;
            if clips.len() == limits::MAX_QUERY_AGGREGATES {
                return self.err_at(
                    at,
                    format!(
                        "at most {} CLIP rules are allowed",
                        limits::MAX_QUERY_AGGREGATES
                    ),
                );
            }
            clips.push(self.clip()?);
            clip_pos.push(at);
        }
        let limit_per_contributor = if self.eat_keyword("LIMIT") {
            self.keyword("PER")?;
            self.keyword("CONTRIBUTOR")?;
            let n = self.integer(
                "LIMIT PER CONTRIBUTOR",
                1,
                u64::from(limits::MAX_RECORDS_PER_CONTRIBUTOR),
            )?;
            // In range by the check above.
            Some(n as u32)
        } else {
            None
        };
        let scale = if self.eat_keyword("SCALE") {
            Some(self.integer("SCALE", 0, u64::from(limits::MAX_SCALE_DIGITS))? as u8)
        } else {
            None
        };
        let with_at = self.here();
        let privacy = if self.eat_keyword("WITH") {
            Some(self.privacy(with_at, limit_per_contributor.is_some())?)
        } else {
            None
        };
        if self.peek().tok != Tok::End {
            let what = if filter.is_none() && group_by.is_none() && clips.is_empty() {
                "WHERE, GROUP BY, CLIP, LIMIT, SCALE, WITH PRIVACY or the end of the query"
            } else {
                "CLIP, LIMIT, SCALE, WITH PRIVACY or the end of the query (clauses come in the \
                 order SELECT, FROM, WHERE, GROUP BY, CLIP, LIMIT, SCALE, WITH PRIVACY)"
            };
            return self.expected(what);
        }
        let q = Query {
            aggregates,
            collection,
            filter,
            group_by,
            clips,
            limit_per_contributor,
            scale,
            privacy,
        };
        check_clips(&q, &agg_pos, &clip_pos)?;
        Ok(q)
    }

    /// `PRIVACY EPSILON e DELTA d [HONEST SOURCES h]`, after `WITH` (at `with_at`). A
    /// contributor's influence, and so the noise, is bounded only with an explicit `LIMIT
    /// PER CONTRIBUTOR`: without one the query's sensitivity is refused as unbounded.
    fn privacy(&mut self, with_at: Pos, limited: bool) -> Result<Privacy, QueryError> {
        self.keyword("PRIVACY")?;
        self.keyword("EPSILON")?;
        let eps_at = self.here();
        let epsilon = self.number()?;
        self.keyword("DELTA")?;
        let delta_at = self.here();
        let delta = self.number()?;
        let honest_sources = if self.eat_keyword("HONEST") {
            self.keyword("SOURCES")?;
            // In range by the check.
            self.integer("HONEST SOURCES", 1, u64::from(limits::MAX_HONEST_SOURCES))? as u32
        } else {
            1
        };
        if let Err(e) = crate::dp::rho_for(epsilon, 0.5 * crate::dp::MAX_DELTA) {
            return self.err_at(eps_at, e.to_string());
        }
        if let Err(e) = crate::dp::rho_for(1.0, delta) {
            return self.err_at(delta_at, e.to_string());
        }
        if !limited {
            return self.err_at(
                with_at,
                "a query WITH PRIVACY needs LIMIT PER CONTRIBUTOR: without it one \
                 contributor's influence, and so the noise, is unbounded"
                    .into(),
            );
        }
        Ok(Privacy {
            epsilon,
            delta,
            honest_sources,
        })
    }

    fn aggregate(&mut self) -> Result<Aggregate, QueryError> {
        let at = self.here();
        let name = match &self.peek().tok {
            Tok::Ident(s) => s.to_ascii_lowercase(),
            _ => return self.expected("an aggregate"),
        };
        let known = [
            "count",
            "sum",
            "avg",
            "var",
            "stddev",
            "histogram",
            "sum_vector",
        ];
        if !known.contains(&name.as_str()) {
            let written = match &self.peek().tok {
                Tok::Ident(s) => s.clone(),
                _ => name,
            };
            return Err(
                QueryError::new(at.0, at.1, format!("unknown aggregate '{written}'"))
                    .with_hint(format!("expected one of {AGGREGATES}")),
            );
        }
        self.pos += 1;
        self.punct(Tok::LParen)?;
        let agg = match name.as_str() {
            "count" => {
                if self.eat(Tok::Star) {
                    Aggregate::Count
                } else if self.eat_keyword("DISTINCT") {
                    self.keyword("CONTRIBUTOR")?;
                    Aggregate::CountContributors
                } else {
                    return self.expected("'*' or DISTINCT CONTRIBUTOR");
                }
            }
            "sum" => Aggregate::Sum(self.name("field")?),
            "avg" => Aggregate::Avg(self.name("field")?),
            "var" => Aggregate::Var(self.name("field")?),
            "stddev" => Aggregate::Stddev(self.name("field")?),
            "histogram" => {
                let field = self.name("field")?;
                self.punct(Tok::Comma)?;
                Aggregate::Histogram {
                    field,
                    edges: self.edges()?,
                }
            }
            _ => {
                let field = self.name("field")?;
                self.punct(Tok::Comma)?;
                let dimension = self.integer(
                    "the dimension",
                    1,
                    u64::from(limits::MAX_QUERY_VECTOR_DIMENSION),
                )? as u32;
                Aggregate::SumVector { field, dimension }
            }
        };
        self.punct(Tok::RParen)?;
        Ok(agg)
    }

    fn group_by(&mut self) -> Result<GroupBy, QueryError> {
        if let (Tok::Ident(f), Tok::LParen) = (&self.peek().tok, self.peek_at(1)) {
            if f.eq_ignore_ascii_case("bucket") {
                self.pos += 2;
                let field = self.name("field")?;
                self.punct(Tok::Comma)?;
                let at = self.here();
                let edges = self.edges()?;
                if edges.len() - 1 > limits::MAX_QUERY_ROWS {
                    return self.err_at(
                        at,
                        format!("GROUP BY makes at most {} rows", limits::MAX_QUERY_ROWS),
                    );
                }
                self.punct(Tok::RParen)?;
                return Ok(GroupBy::Buckets { field, edges });
            }
        }
        let expr = self.expr()?;
        if !self.eat_keyword("IN") {
            return self.expected(
                "IN and a list of keys (GROUP BY takes declared keys, `expr IN (k1, k2)`, \
                 or buckets, `bucket(field, [e0, e1, ...])`)",
            );
        }
        let list = self.literal_list(limits::MAX_QUERY_ROWS)?;
        let mut keys: Vec<Literal> = Vec::with_capacity(list.len());
        for (k, at) in list {
            if keys.contains(&k) {
                return self.err_at(at, format!("GROUP BY key {k} is listed twice"));
            }
            keys.push(k);
        }
        Ok(GroupBy::Keys { expr, keys })
    }

    fn clip(&mut self) -> Result<Clip, QueryError> {
        if self.eat_keyword("NORM") {
            let field = self.name("field")?;
            self.keyword("TO")?;
            let at = self.here();
            let bound = self.number()?;
            if bound <= 0.0 {
                return self.err_at(
                    at,
                    format!("the norm bound must be positive, found {bound}"),
                );
            }
            return Ok(Clip::Norm { field, bound });
        }
        let field = self.name("field")?;
        self.keyword("TO")?;
        self.punct(Tok::LBracket)?;
        let min = self.number()?;
        self.punct(Tok::Comma)?;
        let at = self.here();
        let max = self.number()?;
        if max < min {
            return self.err_at(
                at,
                format!("the upper bound {max} is below the lower bound {min}"),
            );
        }
        self.punct(Tok::RBracket)?;
        Ok(Clip::Range { field, min, max })
    }

    /// One more level of nesting, opened by the token at `at`.
    fn enter(&mut self, at: Pos) -> Result<(), QueryError> {
        if self.depth >= limits::MAX_QUERY_NESTING {
            return self.err_at(
                at,
                format!(
                    "conditions nest deeper than {} levels",
                    limits::MAX_QUERY_NESTING
                ),
            );
        }
        self.depth += 1;
        Ok(())
    }

    fn or(&mut self) -> Result<Predicate, QueryError> {
        let mut items = vec![self.and()?];
        while self.eat_keyword("OR") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            // Just checked: one item.
            items.pop().expect("one item")
        } else {
            Predicate::Or(items)
        })
    }

    fn and(&mut self) -> Result<Predicate, QueryError> {
        let mut items = vec![self.not()?];
        while self.eat_keyword("AND") {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            // Just checked: one item.
            items.pop().expect("one item")
        } else {
            Predicate::And(items)
        })
    }

    fn not(&mut self) -> Result<Predicate, QueryError> {
        let at = self.here();
        if self.eat_keyword("NOT") {
            self.enter(at)?;
            let p = self.not()?;
            self.depth -= 1;
            return Ok(Predicate::Not(Box::new(p)));
        }
        if self.eat(Tok::LParen) {
            self.enter(at)?;
            let p = self.or()?;
            self.depth -= 1;
            self.punct(Tok::RParen)?;
            return Ok(p);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Predicate, QueryError> {
        let at = self.here();
        if self.terms == limits::MAX_QUERY_CONDITIONS {
            return self.err_at(
                at,
                format!(
                    "at most {} conditions are allowed",
                    limits::MAX_QUERY_CONDITIONS
                ),
            );
        }
        self.terms += 1;
        let expr = self.expr()?;
        let op = match self.peek().tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let value = self.literal()?;
            return Ok(Predicate::Compare { expr, op, value });
        }
        if self.eat_keyword("IN") {
            let values = self
                .literal_list(limits::MAX_QUERY_LIST)?
                .into_iter()
                .map(|(l, _)| l)
                .collect();
            return Ok(Predicate::In { expr, values });
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.literal()?;
            self.keyword("AND")?;
            let high = self.literal()?;
            return Ok(Predicate::Between { expr, low, high });
        }
        if self.eat_keyword("LIKE") {
            let at = self.here();
            let Tok::Text(pattern) = &self.peek().tok else {
                return self.expected("a text pattern 'prefix%'");
            };
            let prefix = match pattern.strip_suffix('%') {
                Some(p) if !p.contains(['%', '_']) => p.to_string(),
                _ => {
                    return self.err_at(
                        at,
                        format!(
                            "LIKE takes only a prefix pattern 'prefix%' (no '_' and no other \
                             '%'), found '{pattern}'"
                        ),
                    )
                }
            };
            self.pos += 1;
            return Ok(Predicate::Like { expr, prefix });
        }
        self.expected("a comparison (=, !=, <, <=, >, >=), IN, BETWEEN or LIKE")
    }
}

/// Every field of `sum`, `avg`, `var` and `stddev` has exactly one `CLIP field TO [min, max]`,
/// every field of `sum_vector` exactly one `CLIP NORM field TO bound` and one dimension, and
/// every `CLIP` serves some aggregate.
fn check_clips(q: &Query, agg_pos: &[Pos], clip_pos: &[Pos]) -> Result<(), QueryError> {
    let mut ranges: BTreeMap<&str, usize> = BTreeMap::new();
    let mut norms: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in q.clips.iter().enumerate() {
        let (map, kind) = match c {
            Clip::Range { .. } => (&mut ranges, "CLIP"),
            Clip::Norm { .. } => (&mut norms, "CLIP NORM"),
        };
        if map.insert(c.field(), i).is_some() {
            let at = clip_pos[i];
            return Err(QueryError::new(
                at.0,
                at.1,
                format!("{kind} for '{}' is given twice", c.field()),
            ));
        }
    }
    let mut used_ranges = vec![false; q.clips.len()];
    let mut dimensions: BTreeMap<&str, u32> = BTreeMap::new();
    for (a, &at) in q.aggregates.iter().zip(agg_pos) {
        match a {
            Aggregate::Sum(f) | Aggregate::Avg(f) | Aggregate::Var(f) | Aggregate::Stddev(f) => {
                match ranges.get(f.as_str()) {
                    Some(&i) => used_ranges[i] = true,
                    None => {
                        return Err(QueryError::new(
                            at.0,
                            at.1,
                            format!("{a} needs bounds for '{f}'"),
                        )
                        .with_hint(format!("add CLIP {f} TO [min, max]")))
                    }
                }
            }
            Aggregate::SumVector { field, dimension } => {
                match norms.get(field.as_str()) {
                    Some(&i) => used_ranges[i] = true,
                    None => {
                        return Err(QueryError::new(
                            at.0,
                            at.1,
                            format!("{a} needs a norm bound for '{field}'"),
                        )
                        .with_hint(format!("add CLIP NORM {field} TO bound")))
                    }
                }
                if let Some(d) = dimensions.insert(field, *dimension) {
                    if d != *dimension {
                        return Err(QueryError::new(
                            at.0,
                            at.1,
                            format!(
                                "'{field}' is declared with dimension {d} and then {dimension}"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(i) = used_ranges.iter().position(|u| !u) {
        let at = clip_pos[i];
        let what = match &q.clips[i] {
            Clip::Range { .. } => "sum, avg, var or stddev",
            Clip::Norm { .. } => "sum_vector",
        };
        return Err(QueryError::new(
            at.0,
            at.1,
            format!(
                "'{}' is clipped but no {what} aggregate reads it",
                q.clips[i].field()
            ),
        ));
    }
    Ok(())
}
