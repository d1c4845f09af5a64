//! Loads 10⁴ … 10⁷ records into a netabase redb file in batches and measures insert
//! throughput, get and query latency, peak memory and file size at each decade; then
//! does the same with raw redb and a hand-written index (the baseline, `--engine` picks
//! one) and prints netabase ÷ raw redb at each size.
//!
//! ```text
//! cargo run --release -p netabase_bench --bin scale -- --max 10000000 \
//!     [--engine netabase|raw_redb|both] [--batch 10000] [--cache-mb 256] [--no-fsync] \
//!     [--dir DIR] [--chart scaling.png]
//! ```

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use netabase_bench::report::register_font;
use netabase_bench::scale::{
    Engine, ScaleOptions, chart, peak_rss, ratio_table, reset_peak_rss, run, table,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn value<T: std::str::FromStr>(flag: &str, arg: Option<String>) -> Result<T, Error> {
    arg.and_then(|a| a.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag} needs a number").into())
}

fn main() -> Result<(), Error> {
    let mut options = ScaleOptions {
        max: 10_000_000,
        batch: 10_000,
        cache_mb: 256,
        gets: 10_000,
        queries: 1_000,
        fsync: true,
    };
    let mut dir: Option<PathBuf> = None;
    let mut chart_path: Option<PathBuf> = None;
    let mut engines = vec![Engine::Netabase, Engine::RawRedb];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max" => options.max = value("--max", args.next())?,
            "--batch" => options.batch = value("--batch", args.next())?,
            "--cache-mb" => options.cache_mb = value("--cache-mb", args.next())?,
            "--gets" => options.gets = value("--gets", args.next())?,
            "--no-fsync" => options.fsync = false,
            "--dir" => dir = args.next().map(PathBuf::from),
            "--chart" => chart_path = args.next().map(PathBuf::from),
            "--engine" => {
                engines = match args.next().as_deref() {
                    Some("netabase") => vec![Engine::Netabase],
                    Some("raw_redb") => vec![Engine::RawRedb],
                    Some("both") => vec![Engine::Netabase, Engine::RawRedb],
                    _ => return Err("--engine takes netabase, raw_redb or both".into()),
                }
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if options.max < 10_000 || options.batch == 0 {
        return Err("--max must be at least 10000 and --batch positive".into());
    }
    let temp = match &dir {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let dir = dir
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .ok_or("no directory")?;
    std::fs::create_dir_all(&dir)?;
    let baseline_rss = peak_rss();
    let mut results = Vec::new();
    for engine in engines {
        let path = dir.join(format!("{}.redb", engine.name()));
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        let bar = ProgressBar::new(options.max);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {elapsed_precise} [{bar:40}] {human_pos}/{human_len} records ({per_sec}, eta {eta})",
            )?
            .progress_chars("=> "),
        );
        bar.set_message(engine.name());
        if !reset_peak_rss() {
            eprintln!(
                "could not reset the peak RSS: the second engine's figure includes the first's"
            );
        }
        let points = run(engine, &path, &options, |stored| bar.set_position(stored))?;
        bar.finish();
        // Each engine's file is removed before the next one loads, so both see the same
        // free disk and page cache.
        std::fs::remove_file(&path)?;
        results.push((engine, points));
    }

    println!(
        "redb cache {} MiB, batches of {} records, fsync {}; peak RSS before loading {} MiB\n",
        options.cache_mb,
        options.batch,
        if options.fsync { "on" } else { "off" },
        baseline_rss / (1024 * 1024)
    );
    for (engine, points) in &results {
        println!("{}\n\n{}", engine.name(), table(points));
    }
    if let [(Engine::Netabase, netabase), (Engine::RawRedb, raw)] = results.as_slice() {
        println!(
            "netabase ÷ raw redb, same sizes\n\n{}",
            ratio_table(netabase, raw)
        );
    }
    if let Some(out) = chart_path {
        register_font()?;
        let series: Vec<(Engine, &[_])> = results
            .iter()
            .map(|(engine, points)| (*engine, points.as_slice()))
            .collect();
        chart(&series, &out)?;
    }
    Ok(())
}
