//! `netabase stats FILE`: entries and bytes per table, and the size on disk.

use std::process::ExitCode;

use crate::Target;
use crate::failure::Outcome;
use crate::open::{open, with_store};

use super::{disk_size, table_sizes};

/// Prints the entries, key bytes and value bytes of every table of `target`.
pub fn run(target: &Target) -> Outcome {
    let store = open(target, false)?;
    let engine = store.engine();
    let sizes = with_store!(&store, s => table_sizes(s.backend().inner())?);
    println!(
        "{:>10}  {:>12}  {:>12}  table",
        "entries", "key bytes", "value bytes"
    );
    let (mut entries, mut keys, mut values) = (0u64, 0u64, 0u64);
    for t in &sizes {
        println!(
            "{:>10}  {:>12}  {:>12}  {}",
            t.entries, t.key_bytes, t.value_bytes, t.name
        );
        entries += t.entries;
        keys += t.key_bytes;
        values += t.value_bytes;
    }
    println!(
        "{entries:>10}  {keys:>12}  {values:>12}  (total, {} tables)",
        sizes.len()
    );
    println!("on disk: {} bytes ({engine})", disk_size(&target.file));
    Ok(ExitCode::SUCCESS)
}
