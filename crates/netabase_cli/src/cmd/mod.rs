//! One file per command, each with a `run` taking the parsed arguments.

pub mod compact;
pub mod dump;
pub mod export;
pub mod import;
pub mod inspect;
pub mod prune_tombstones;
pub mod rotate_key;
pub mod stats;
pub mod verify;

use std::ops::ControlFlow;
use std::path::Path;

use netabase_store::backend::{Backend, Direction, RawRange, ReadTxn};

use crate::failure::Outcome;
use crate::progress::Bar;

/// What a table holds.
pub struct TableSize {
    /// The table's name.
    pub name: String,
    /// Its entries.
    pub entries: u64,
    /// The bytes of its keys.
    pub key_bytes: u64,
    /// The bytes of its values.
    pub value_bytes: u64,
}

/// Every table of `backend` with its entries and bytes, walking each table once.
pub fn table_sizes<B: Backend>(backend: &B) -> Outcome<Vec<TableSize>> {
    let txn = backend.begin_read()?;
    let names = txn.table_names()?;
    let bar = Bar::new("measuring");
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut size = TableSize {
            entries: 0,
            key_bytes: 0,
            value_bytes: 0,
            name,
        };
        bar.set_total(txn.len(&size.name)?);
        txn.for_each_in(
            &size.name,
            RawRange::all(),
            Direction::Forward,
            &mut |k, v| {
                size.entries += 1;
                size.key_bytes += k.len() as u64;
                size.value_bytes += v.len() as u64;
                bar.inc();
                Ok(ControlFlow::Continue(()))
            },
        )?;
        out.push(size);
    }
    bar.finish();
    Ok(out)
}

/// The bytes `path` takes on disk: a file's length, or the sum of a directory's files.
pub fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
