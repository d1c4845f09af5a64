//! Prints the tables of `docs/benchmarks.md` from criterion's results and draws the
//! ratio chart.
//!
//! ```text
//! cargo run --release -p netabase_bench --bin report -- <criterion dir> [chart.png]
//! ```

use std::path::PathBuf;

use netabase_bench::report::{SIZES, ratio_chart, ratio_table, register_font, times_table};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: report <criterion dir> [chart.png]")?,
    );
    println!("### Ratios (median ÷ median, same run)\n");
    println!("{}", ratio_table(&dir));
    println!("### Median times\n");
    println!("{}", times_table(&dir));
    if let Some(chart) = args.next() {
        register_font()?;
        ratio_chart(&dir, SIZES[SIZES.len() - 1], &PathBuf::from(chart))?;
    }
    Ok(())
}
