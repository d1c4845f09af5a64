//! The scaling run: load a redb file in batches up to ten million records and measure,
//! at each decade, insert throughput, get and query latency, memory and file size.

use std::path::Path;
use std::time::{Duration, Instant};

use netabase_store::backend::redb::RedbBackend;
use netabase_store::config::BackendStore;
use netabase_store::{FileConfig, NetabaseStore};
use plotters::prelude::*;

use crate::contenders::raw_redb::RawRedb;
use crate::contenders::{BenchResult, Contender};
use crate::data::schema::{
    BenchDefinition, Item, ItemGroupSecondaryKey, ItemPrimaryKey, ItemSecondaryKeys,
};
use crate::data::{self, SplitMix};

/// Records sharing one secondary value in the scaling run, at every size.
pub const PER_GROUP: u64 = 10;

/// What was measured once the store held `records` records.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Records stored.
    pub records: u64,
    /// Records per second inserted by the last batches before this point.
    pub insert_per_sec: f64,
    /// Median latency of a one-shot get by primary key.
    pub get_p50: Duration,
    /// 99th percentile of the same.
    pub get_p99: Duration,
    /// Median latency of a one-shot secondary equality query (10 records).
    pub query_p50: Duration,
    /// Peak resident memory of the process so far (`VmHWM`), in bytes.
    pub peak_rss: u64,
    /// Size of the database file divided by the number of records.
    pub file_bytes_per_record: f64,
}

/// Record number `i` of the scaling run: as [`data::record`], with the secondary key
/// `i / 10`, so an equality query finds ten records whatever the size.
pub fn scale_item(i: u64) -> Item {
    let mut record = data::record(i, 1);
    record.keys[0] = u32::try_from(i / PER_GROUP).unwrap_or(u32::MAX);
    Item::from(&record)
}

impl Checkpoint {
    /// The checkpoint as one line of numbers (durations in nanoseconds), for passing
    /// results from the process that measured them to the one that reports them.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.records,
            self.insert_per_sec,
            self.get_p50.as_nanos(),
            self.get_p99.as_nanos(),
            self.query_p50.as_nanos(),
            self.peak_rss,
            self.file_bytes_per_record
        )
    }

    /// Reads a line written by [`Checkpoint::to_line`].
    ///
    /// # Errors
    /// When the line does not hold seven numbers.
    pub fn from_line(line: &str) -> BenchResult<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [records, rate, p50, p99, query, rss, bytes] = fields.as_slice() else {
            return Err(format!("expected seven numbers, got `{line}`").into());
        };
        let nanos = |s: &str| -> BenchResult<Duration> { Ok(Duration::from_nanos(s.parse()?)) };
        Ok(Checkpoint {
            records: records.parse()?,
            insert_per_sec: rate.parse()?,
            get_p50: nanos(p50)?,
            get_p99: nanos(p99)?,
            query_p50: nanos(query)?,
            peak_rss: rss.parse()?,
            file_bytes_per_record: bytes.parse()?,
        })
    }
}

/// Peak resident set size of this process, from `/proc/self/status` (0 elsewhere).
pub fn peak_rss() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The options of a run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Stop after this many records.
    pub max: u64,
    /// Records per write transaction.
    pub batch: u64,
    /// redb cache size in MiB.
    pub cache_mb: u64,
    /// Gets timed at each checkpoint.
    pub gets: usize,
    /// Queries timed at each checkpoint.
    pub queries: usize,
    /// Durable commits (redb `Durability::Immediate`). Without them redb cannot reuse
    /// the pages freed by earlier commits, so the file keeps growing.
    pub fsync: bool,
}

/// The checkpoint sizes up to `max`: 10⁴, 10⁵, … and `max` itself.
pub fn checkpoints(max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut size = 10_000;
    while size < max {
        out.push(size);
        size *= 10;
    }
    out.push(max);
    out
}

/// What the scaling run loads and measures: netabase on redb, or raw redb with the
/// hand-written index of the benchmarks (the baseline of the same run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// netabase's typed store on a redb file.
    Netabase,
    /// Raw redb with a hand-written index in netabase's layout.
    RawRedb,
}

impl Engine {
    /// The name used in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Netabase => "netabase_redb",
            Engine::RawRedb => "raw_redb",
        }
    }
}

/// One opened database of the scaling run.
enum Target {
    Netabase(NetabaseStore<BenchDefinition, RedbBackend>),
    Raw(RawRedb),
}

impl Target {
    fn open(engine: Engine, path: &Path, options: &ScaleOptions) -> BenchResult<Self> {
        Ok(match engine {
            Engine::Netabase => {
                let config = FileConfig::builder()
                    .path(path)
                    .cache_size_mb(options.cache_mb)
                    .use_fsync(options.fsync)
                    .build();
                Target::Netabase(NetabaseStore::new(config)?)
            }
            Engine::RawRedb => {
                let mut builder = redb::Database::builder();
                builder.set_cache_size(usize::try_from(options.cache_mb * 1024 * 1024)?);
                let durability = if options.fsync {
                    redb::Durability::Immediate
                } else {
                    redb::Durability::None
                };
                Target::Raw(
                    RawRedb::from_database(builder.create(path)?).with_durability(durability),
                )
            }
        })
    }

    fn insert(&self, items: Vec<Item>) -> BenchResult<()> {
        match self {
            Target::Netabase(store) => {
                let txn = store.write()?;
                txn.open_tree::<Item>().put_many(items)?;
                txn.commit()?;
                Ok(())
            }
            Target::Raw(raw) => raw.insert_bulk(items),
        }
    }

    fn get(&self, id: u64) -> BenchResult<bool> {
        match self {
            Target::Netabase(store) => {
                Ok(store.open_tree::<Item>().get(ItemPrimaryKey(id))?.is_some())
            }
            Target::Raw(raw) => Ok(raw.get_each_txn(&[id])? == 1),
        }
    }

    fn query(&self, group: u32) -> BenchResult<usize> {
        match self {
            Target::Netabase(store) => Ok(store
                .open_tree::<Item>()
                .get_by_secondary_key(ItemSecondaryKeys::Group(ItemGroupSecondaryKey(group)))?
                .len()),
            Target::Raw(raw) => raw.query_eq(&[group]),
        }
    }
}

/// Loads a new redb file at `path` with `engine` and measures at every checkpoint;
/// `progress` is told how many records are stored after each batch.
///
/// # Errors
/// Whatever the store reports.
pub fn run(
    engine: Engine,
    path: &Path,
    options: &ScaleOptions,
    mut progress: impl FnMut(u64),
) -> BenchResult<Vec<Checkpoint>> {
    let target = Target::open(engine, path, options)?;
    let mut out = Vec::new();
    let mut stored = 0u64;
    let mut rng = SplitMix::new(42);
    for size in checkpoints(options.max) {
        // Throughput of the batches since the last checkpoint (at most the last ten).
        let mut recent: Vec<(u64, Duration)> = Vec::new();
        while stored < size {
            let n = options.batch.min(size - stored);
            let items: Vec<Item> = (stored..stored + n).map(scale_item).collect();
            let start = Instant::now();
            target.insert(items)?;
            recent.push((n, start.elapsed()));
            if recent.len() > 10 {
                recent.remove(0);
            }
            stored += n;
            progress(stored);
        }
        let (records, time) = recent
            .iter()
            .fold((0u64, Duration::ZERO), |(r, t), (n, d)| (r + n, t + *d));
        let mut gets = Vec::with_capacity(options.gets);
        for _ in 0..options.gets {
            let id = data::mix(rng.below(stored));
            let start = Instant::now();
            let found = target.get(id)?;
            gets.push(start.elapsed());
            if !found {
                return Err(format!("record {id} missing").into());
            }
        }
        gets.sort_unstable();
        let mut queries = Vec::with_capacity(options.queries);
        let groups = stored / PER_GROUP;
        for _ in 0..options.queries {
            let g = u32::try_from(rng.below(groups)).unwrap_or(0);
            let start = Instant::now();
            let found = target.query(g)?;
            queries.push(start.elapsed());
            if found == 0 {
                return Err(format!("group {g} empty").into());
            }
        }
        queries.sort_unstable();
        let file = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        out.push(Checkpoint {
            records: stored,
            insert_per_sec: records as f64 / time.as_secs_f64().max(1e-9),
            get_p50: percentile(&gets, 0.5),
            get_p99: percentile(&gets, 0.99),
            query_p50: percentile(&queries, 0.5),
            peak_rss: peak_rss(),
            file_bytes_per_record: file as f64 / stored as f64,
        });
    }
    Ok(out)
}

/// netabase's checkpoints against the baseline's at the same sizes: throughput and
/// latency ratios (netabase ÷ raw redb).
pub fn ratio_table(netabase: &[Checkpoint], raw: &[Checkpoint]) -> String {
    let mut out = String::from(
        "| records | insert/s netabase ÷ raw | get p50 netabase ÷ raw | query p50 netabase ÷ raw |\n|---:|---:|---:|---:|\n",
    );
    for (n, r) in netabase.iter().zip(raw) {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} |\n",
            n.records,
            n.insert_per_sec / r.insert_per_sec.max(1e-9),
            n.get_p50.as_secs_f64() / r.get_p50.as_secs_f64().max(1e-12),
            n.query_p50.as_secs_f64() / r.query_p50.as_secs_f64().max(1e-12),
        ));
    }
    out
}

/// The checkpoints as a markdown table, with the ratios to the first one.
pub fn table(points: &[Checkpoint]) -> String {
    let mut out = String::from(
        "| records | insert/s (last batches) | vs first | get p50 | get p99 | p50 vs first | query p50 | peak RSS | file bytes/record |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let Some(first) = points.first() else {
        return out;
    };
    for p in points {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.1} µs | {:.1} µs | {:.2} | {:.1} µs | {:.0} MiB | {:.1} |\n",
            p.records,
            p.insert_per_sec,
            p.insert_per_sec / first.insert_per_sec,
            p.get_p50.as_secs_f64() * 1e6,
            p.get_p99.as_secs_f64() * 1e6,
            p.get_p50.as_secs_f64() / first.get_p50.as_secs_f64().max(1e-12),
            p.query_p50.as_secs_f64() * 1e6,
            p.peak_rss as f64 / (1024.0 * 1024.0),
            p.file_bytes_per_record,
        ));
    }
    out
}

/// Reads one latency of a checkpoint.
type Metric = fn(&Checkpoint) -> Duration;

/// Draws the scaling curves of each engine: throughput (left) and latencies (right)
/// against size; thick lines for the first engine, thin lines for the others.
///
/// # Errors
/// When the PNG cannot be drawn or written.
pub fn chart(series: &[(Engine, &[Checkpoint])], out: &Path) -> BenchResult<()> {
    let root = BitMapBackend::new(out, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let all = || series.iter().flat_map(|(_, points)| points.iter());
    let max_records = all().map(|p| p.records).max().unwrap_or(10_000).max(10_001) as f64;
    let max_rate = all().map(|p| p.insert_per_sec).fold(1.0, f64::max) * 1.15;
    let mut throughput = ChartBuilder::on(&left)
        .caption("Insert throughput (records/s)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((10_000f64..max_records).log_scale(), 0f64..max_rate)?;
    throughput
        .configure_mesh()
        .x_desc("records stored")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;
    let max_latency = all()
        .map(|p| p.get_p99.max(p.query_p50).as_secs_f64() * 1e6)
        .fold(1.0, f64::max)
        * 1.15;
    let mut latency = ChartBuilder::on(&right)
        .caption("Latency (µs)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((10_000f64..max_records).log_scale(), 0f64..max_latency)?;
    latency
        .configure_mesh()
        .x_desc("records stored")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .draw()?;
    for (i, (engine, points)) in series.iter().enumerate() {
        let width = if i == 0 { 3 } else { 1 };
        let rate: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.records as f64, p.insert_per_sec))
            .collect();
        let color = if i == 0 { BLUE } else { BLACK };
        throughput
            .draw_series(LineSeries::new(rate.clone(), color.stroke_width(width)))?
            .label(engine.name())
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 16, y)], color.stroke_width(width))
            });
        throughput.draw_series(rate.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        let metrics: [(&str, RGBColor, Metric); 3] = [
            ("get p50", BLUE, |p| p.get_p50),
            ("get p99", RED, |p| p.get_p99),
            ("query p50", GREEN, |p| p.query_p50),
        ];
        for (label, color, value) in metrics {
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.records as f64, value(p).as_secs_f64() * 1e6))
                .collect();
            latency
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(width)))?
                .label(format!("{} {label}", engine.name()))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(width))
                });
            latency.draw_series(line.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
        }
    }
    throughput
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .draw()?;
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
