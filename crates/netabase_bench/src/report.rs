//! The workloads, reading criterion's results back, and drawing the charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::contenders::BenchResult;

/// The record counts every workload runs at.
pub const SIZES: [usize; 2] = [1_000, 10_000];

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Every record in one write transaction.
    InsertBulk,
    /// One write transaction per record.
    InsertEach,
    /// The five-index model, every record in one write transaction.
    InsertBulkWide,
    /// Random gets by primary key in one read transaction.
    GetOneTxn,
    /// Random gets by primary key, one read transaction each.
    GetEachTxn,
    /// 100 secondary equality queries (about 10 records each).
    QueryEq,
    /// 20 secondary range queries (10 values, about 100 records each).
    QueryRange,
    /// Every record in primary-key order.
    Iterate,
    /// Every record removed, in random order, in one write transaction.
    RemoveBulk,
    /// The five-index model, every record removed in one write transaction.
    RemoveBulkWide,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 10] = [
        Workload::InsertBulk,
        Workload::InsertEach,
        Workload::InsertBulkWide,
        Workload::GetOneTxn,
        Workload::GetEachTxn,
        Workload::QueryEq,
        Workload::QueryRange,
        Workload::Iterate,
        Workload::RemoveBulk,
        Workload::RemoveBulkWide,
    ];

    /// The criterion group name.
    pub fn id(self) -> &'static str {
        match self {
            Workload::InsertBulk => "insert_bulk",
            Workload::InsertEach => "insert_each_txn",
            Workload::InsertBulkWide => "insert_bulk_5_indexes",
            Workload::GetOneTxn => "get_one_txn",
            Workload::GetEachTxn => "get_each_txn",
            Workload::QueryEq => "secondary_eq",
            Workload::QueryRange => "secondary_range",
            Workload::Iterate => "iterate",
            Workload::RemoveBulk => "remove_bulk",
            Workload::RemoveBulkWide => "remove_bulk_5_indexes",
        }
    }

    /// A short label for charts.
    pub fn short(self) -> &'static str {
        match self {
            Workload::InsertBulk => "insert bulk",
            Workload::InsertEach => "insert/txn",
            Workload::InsertBulkWide => "insert 5 idx",
            Workload::GetOneTxn => "get, 1 txn",
            Workload::GetEachTxn => "get/txn",
            Workload::QueryEq => "sec. equal",
            Workload::QueryRange => "sec. range",
            Workload::Iterate => "iterate",
            Workload::RemoveBulk => "remove bulk",
            Workload::RemoveBulkWide => "remove 5 idx",
        }
    }

    /// What one measured iteration does, for the tables.
    pub fn describe(self, n: usize) -> String {
        match self {
            Workload::InsertBulk => format!("insert {n} records, one transaction"),
            Workload::InsertEach => format!("insert {n} records, one transaction each"),
            Workload::InsertBulkWide => {
                format!("insert {n} records with 5 indexes, one transaction")
            }
            Workload::GetOneTxn => format!("{n} random gets, one read transaction"),
            Workload::GetEachTxn => format!("{n} random gets, one read transaction each"),
            Workload::QueryEq => "100 secondary equality queries (~10 records each)".into(),
            Workload::QueryRange => "20 secondary range queries (~100 records each)".into(),
            Workload::Iterate => format!("iterate {n} records in key order"),
            Workload::RemoveBulk => format!("remove {n} records, one transaction"),
            Workload::RemoveBulkWide => {
                format!("remove {n} records with 5 indexes, one transaction")
            }
        }
    }

    /// Whether the workload writes (each iteration then starts from a new database).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Workload::InsertBulk
                | Workload::InsertEach
                | Workload::InsertBulkWide
                | Workload::RemoveBulk
                | Workload::RemoveBulkWide
        )
    }

    /// Whether a ≤ 1.25 overhead target over raw redb applies to this workload.
    pub fn has_overhead_target(self) -> bool {
        matches!(
            self,
            Workload::InsertBulk
                | Workload::GetOneTxn
                | Workload::QueryEq
                | Workload::QueryRange
                | Workload::Iterate
        )
    }

    /// Whether native_db should take at least 2× as long on this workload.
    pub fn has_native_target(self) -> bool {
        matches!(
            self,
            Workload::InsertBulk | Workload::QueryEq | Workload::QueryRange
        )
    }
}

/// The median time of one benchmark in nanoseconds, from criterion's
/// `<dir>/<workload>/<contender>/<n>/new/estimates.json`.
pub fn median_ns(dir: &Path, workload: Workload, contender: &str, n: usize) -> Option<f64> {
    let path = dir
        .join(workload.id())
        .join(contender)
        .join(n.to_string())
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

/// A ratio of two medians, when both exist.
pub fn ratio(
    dir: &Path,
    workload: Workload,
    numerator: &str,
    denominator: &str,
    n: usize,
) -> Option<f64> {
    Some(median_ns(dir, workload, numerator, n)? / median_ns(dir, workload, denominator, n)?)
}

/// The ratio columns of the tables: (header, numerator, denominator).
pub const RATIOS: [(&str, &str, &str); 4] = [
    ("netabase/redb ÷ raw redb", "netabase_redb", "raw_redb"),
    ("native_db ÷ netabase/redb", "native_db", "netabase_redb"),
    ("netabase/sled ÷ raw sled", "netabase_sled", "raw_sled"),
    ("netabase/memory ÷ raw redb", "netabase_memory", "raw_redb"),
];

/// Every contender, in column order.
pub const CONTENDERS: [&str; 6] = [
    "netabase_redb",
    "raw_redb",
    "native_db",
    "netabase_sled",
    "raw_sled",
    "netabase_memory",
];

fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// Formats a time in nanoseconds with a readable unit.
pub fn human_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The ratio table (medians of one run) as markdown, with a target column.
pub fn ratio_table(dir: &Path) -> String {
    let mut out = String::from("| workload | records |");
    for (header, ..) in RATIOS {
        let _ = write!(out, " {header} |");
    }
    out.push_str(" targets |\n|---|---:|");
    for _ in RATIOS {
        out.push_str("---:|");
    }
    out.push_str("---|\n");
    for workload in Workload::ALL {
        for n in SIZES {
            let _ = write!(out, "| {} | {n} |", workload.id());
            for (_, num, den) in RATIOS {
                let _ = write!(out, " {} |", cell(ratio(dir, workload, num, den, n), 2));
            }
            let _ = writeln!(out, " {} |", verdict(dir, workload, n));
        }
    }
    out
}

/// Which performance targets hold for a workload at a size.
fn verdict(dir: &Path, workload: Workload, n: usize) -> String {
    let mut parts = Vec::new();
    if workload.has_overhead_target()
        && let Some(r) = ratio(dir, workload, "netabase_redb", "raw_redb", n)
    {
        parts.push(if r <= 1.25 {
            "≤1.25 met"
        } else {
            "≤1.25 missed"
        });
    }
    if let Some(r) = ratio(dir, workload, "native_db", "netabase_redb", n) {
        let need = if workload.has_native_target() {
            2.0
        } else {
            1.0
        };
        parts.push(match (r >= need, workload.has_native_target()) {
            (true, true) => "native ≥2 met",
            (false, true) => "native ≥2 missed",
            (true, false) => "native ≥1 met",
            (false, false) => "native ≥1 missed",
        });
    }
    parts.join(", ")
}

/// The median times as markdown.
pub fn times_table(dir: &Path) -> String {
    let mut out = String::from("| workload | records |");
    for c in CONTENDERS {
        let _ = write!(out, " {c} |");
    }
    out.push_str("\n|---|---:|");
    for _ in CONTENDERS {
        out.push_str("---:|");
    }
    out.push('\n');
    for workload in Workload::ALL {
        for n in SIZES {
            let _ = write!(out, "| {} | {n} |", workload.id());
            for c in CONTENDERS {
                let t = median_ns(dir, workload, c, n).map(human_time);
                let _ = write!(out, " {} |", t.unwrap_or_else(|| "–".into()));
            }
            out.push('\n');
        }
    }
    out
}

/// The workload descriptions as a markdown list.
pub fn workload_list() -> String {
    let mut out = String::new();
    for workload in Workload::ALL {
        let _ = writeln!(
            out,
            "- `{}`: {} (n = 1,000 or 10,000).",
            workload.id(),
            workload.describe(0).replace(" 0 ", " n ")
        );
    }
    out
}

/// Registers a TrueType font for the charts: `NETABASE_FONT` if set, else DejaVu Sans or
/// Liberation Sans from the usual system locations.
///
/// # Errors
/// When no font is found.
pub fn register_font() -> BenchResult<()> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("NETABASE_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ]
        .map(PathBuf::from),
    );
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a usable font", path.display()))?;
            return Ok(());
        }
    }
    Err("no TrueType font found; set NETABASE_FONT to a .ttf file".into())
}

/// Draws the ratio table as grouped bars (one group per workload at `n` records, one bar
/// per ratio), with the 1.25 target line.
///
/// # Errors
/// When the PNG cannot be drawn or written.
pub fn ratio_chart(dir: &Path, n: usize, out: &Path) -> BenchResult<()> {
    let root = BitMapBackend::new(out, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let series: Vec<(&str, Vec<Option<f64>>)> = RATIOS
        .iter()
        .map(|(header, num, den)| {
            (
                *header,
                Workload::ALL
                    .iter()
                    .map(|&w| ratio(dir, w, num, den, n))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, values)| values.iter().any(Option::is_some))
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(2.5f64, |m, &v| m.max(v))
        * 1.1;
    let workloads = Workload::ALL.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Median time ratios at {n} records (lower is better for the first)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..workloads as f64 - 0.5, 0f64..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ratio of medians")
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, (header, values)) in series.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                let x0 = i as f64 - 0.4 + s as f64 * width;
                Some(Rectangle::new([(x0, 0.0), (x0 + width, v)], color.filled()))
            }))?
            .label(*header)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    for (level, color) in [(1.0, BLACK), (1.25, RED), (2.0, BLUE)] {
        chart.draw_series(LineSeries::new(
            [(-0.5, level), (workloads as f64 - 0.5, level)],
            color.stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .draw()?;
    // Group labels, centred under each group of bars.
    let font = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, workload) in Workload::ALL.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, 0.0));
        root.draw(&Text::new(workload.short(), (x, y + 8), font.clone()))?;
    }
    root.present()?;
    Ok(())
}
