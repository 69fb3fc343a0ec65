//! Bar charts of a result table, drawn on the server as SVG: one chart per numeric column,
//! one bar per row. The template writes the shapes (escaping every label); no script draws.

use grove_protocol::query::{Cell, ResultTable};

/// Width of a chart, in SVG units.
pub const WIDTH: f64 = 520.0;
/// Width of the row labels on the left.
const LABEL_WIDTH: f64 = 150.0;
/// Width kept for the value written after a bar.
const VALUE_WIDTH: f64 = 110.0;
const BAR_HEIGHT: f64 = 20.0;
const GAP: f64 = 6.0;
const TOP: f64 = 8.0;

/// One bar.
pub struct Bar {
    pub label: String,
    pub value: String,
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// Where the label and the value are written.
    pub text_y: String,
    pub value_x: String,
    pub negative: bool,
}

/// The chart of one column.
pub struct Chart {
    pub title: String,
    pub width: String,
    pub height: String,
    pub label_x: String,
    /// The zero line.
    pub zero_x: String,
    pub bars: Vec<Bar>,
}

fn n(x: f64) -> String {
    format!("{x:.1}")
}

/// A chart for every column whose cells are numbers (a `histogram` or `sum_vector` column
/// holds lists, and is left to the table); `None` cells draw no bar.
pub fn charts(table: &ResultTable) -> Vec<Chart> {
    let labels: Vec<String> = table
        .rows
        .iter()
        .map(|r| r.key.clone().unwrap_or_else(|| "all".into()))
        .collect();
    let mut out = Vec::new();
    for (c, title) in table.columns.iter().enumerate() {
        let cells: Vec<Option<f64>> = table
            .rows
            .iter()
            .map(|r| match r.cells.get(c) {
                Some(Cell::Number(x)) if x.is_finite() => Some(*x),
                _ => None,
            })
            .collect();
        let lists = table
            .rows
            .iter()
            .any(|r| matches!(r.cells.get(c), Some(Cell::List(_))));
        if lists || cells.iter().all(Option::is_none) {
            continue;
        }
        let lo = cells.iter().flatten().fold(0.0f64, |a, b| a.min(*b));
        let hi = cells.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        let x_of = |v: f64| LABEL_WIDTH + (v - lo) / span * plot;
        let zero = x_of(0.0);
        let bars = cells
            .iter()
            .zip(&labels)
            .enumerate()
            .filter_map(|(i, (v, label))| {
                let v = (*v)?;
                let y = TOP + i as f64 * (BAR_HEIGHT + GAP);
                let (x0, x1) = if v < 0.0 {
                    (x_of(v), zero)
                } else {
                    (zero, x_of(v))
                };
                Some(Bar {
                    label: label.clone(),
                    value: Cell::Number(v).to_string(),
                    x: n(x0),
                    y: n(y),
                    width: n((x1 - x0).max(0.5)),
                    height: n(BAR_HEIGHT),
                    text_y: n(y + BAR_HEIGHT * 0.72),
                    value_x: n(x_of(v.max(0.0)).max(zero) + 6.0),
                    negative: v < 0.0,
                })
            })
            .collect();
        out.push(Chart {
            title: title.clone(),
            width: n(WIDTH),
            height: n(TOP * 2.0 + labels.len() as f64 * (BAR_HEIGHT + GAP)),
            label_x: n(LABEL_WIDTH - 8.0),
            zero_x: n(zero),
            bars,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_protocol::query::ResultRow;

    fn row(key: &str, cells: Vec<Cell>) -> ResultRow {
        ResultRow {
            key: Some(key.into()),
            suppressed: false,
            cells,
        }
    }

    #[test]
    fn numeric_columns_get_a_chart_and_bars_scale_from_zero() {
        let table = ResultTable {
            group_by: Some("k".into()),
            columns: vec!["sum(x)".into(), "histogram(x, [0, 1, 2])".into()],
            rows: vec![
                row(
                    "a",
                    vec![Cell::Number(10.0), Cell::List(vec![Some(1.0), None])],
                ),
                row(
                    "b",
                    vec![Cell::Number(-5.0), Cell::List(vec![Some(0.0), None])],
                ),
                row("c", vec![Cell::Null, Cell::List(vec![None, None])]),
                row("d", vec![Cell::Suppressed, Cell::Suppressed]),
            ],
            contributors: 3,
        };
        let charts = charts(&table);
        assert_eq!(charts.len(), 1, "lists get no chart");
        let c = &charts[0];
        assert_eq!(c.title, "sum(x)");
        assert_eq!(c.bars.len(), 2, "a null or suppressed cell draws no bar");
        let w = |b: &Bar| b.width.parse::<f64>().unwrap();
        // 10 and -5 over a span of 15: the positive bar is twice the negative one.
        assert!((w(&c.bars[0]) - 2.0 * w(&c.bars[1])).abs() < 0.2);
        assert!(c.bars[1].negative && !c.bars[0].negative);
        assert_eq!(c.bars[0].label, "a");
        assert_eq!(c.bars[1].value, "-5");
    }
}
