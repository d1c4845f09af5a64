//! Loads 10⁴ … 10⁷ records into a netabase redb file in batches and measures insert
//! throughput, get and query latency, peak memory and file size at each decade; then
//! does the same with raw redb and a hand-written index (the baseline, `--engine` picks
//! one) and prints netabase ÷ raw redb at each size. Each engine is measured in a child
//! process of its own, so that its peak RSS is its own.
//!
//! ```text
//! cargo run --release -p netabase_bench --bin scale -- --max 10000000 \
//!     [--engine netabase|raw_redb|both] [--batch 10000] [--cache-mb 256] [--no-fsync] \
//!     [--dir DIR] [--chart scaling.png]
//! ```

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use netabase_bench::report::register_font;
use netabase_bench::scale::{
    Checkpoint, Engine, ScaleOptions, chart, peak_rss, ratio_table, run, table,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn value<T: std::str::FromStr>(flag: &str, arg: Option<String>) -> Result<T, Error> {
    arg.and_then(|a| a.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag} needs a number").into())
}

/// Loads one engine's file in `dir` with a progress bar on stderr, then removes the file.
fn measure(engine: Engine, dir: &Path, options: &ScaleOptions) -> Result<Vec<Checkpoint>, Error> {
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
    let points = run(engine, &path, options, |stored| bar.set_position(stored))
        .map_err(|e| e.to_string())?;
    bar.finish();
    std::fs::remove_file(&path)?;
    Ok(points)
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
    // Set in the child processes that measure one engine each: where to write its
    // checkpoints.
    let mut points_out: Option<PathBuf> = None;
    let forwarded: Vec<String> = std::env::args().skip(1).collect();
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
            "--points-out" => points_out = args.next().map(PathBuf::from),
            "--engine" => {
                engines = match args.next().as_deref() {
                    Some("netabase" | "netabase_redb") => vec![Engine::Netabase],
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
    if let Some(out) = points_out {
        // A child: measure the one engine it was given and hand the checkpoints back.
        let [engine] = engines.as_slice() else {
            return Err("--points-out needs exactly one --engine".into());
        };
        let points = measure(*engine, &dir, &options)?;
        let lines: Vec<String> = points.iter().map(|p| p.to_line()).collect();
        std::fs::write(out, lines.join("\n"))?;
        return Ok(());
    }
    // Each engine is measured in a process of its own, so that its peak RSS is its own.
    let mut results = Vec::new();
    for engine in engines {
        let out = dir.join(format!("{}.points", engine.name()));
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(&forwarded)
            .args(["--engine", engine.name(), "--points-out"])
            .arg(&out)
            .args(["--dir"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            return Err(format!("measuring {} failed: {status}", engine.name()).into());
        }
        let points = std::fs::read_to_string(&out)?
            .lines()
            .map(Checkpoint::from_line)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        std::fs::remove_file(&out)?;
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
