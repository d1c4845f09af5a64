//! The read transaction of the sled backend: not a snapshot, every read sees the latest
//! commit.

use std::sync::Arc;

use super::{EntryIter, Shared, err};
use crate::backend::{
    Cursor, Direction, Entry, EntryCursor, OwnedReadTxn, RawCursor, RawRange, ReadTxn, ValueFn,
};
use crate::error::Result;

fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry> {
    item.map(|(k, v)| (k.to_vec(), v.to_vec()))
        .map_err(err("scan a tree"))
}

/// A lazy scan of one tree, in `direction`.
pub(super) fn scan_tree(
    tree: &sled::Tree,
    range: &RawRange,
    direction: Direction,
) -> EntryIter<'static> {
    if range.is_empty() {
        // sled, like `BTreeMap`, rejects inverted bounds.
        return Box::new(std::iter::empty());
    }
    let iter = tree.range::<&[u8], _>(range.as_bounds());
    match direction {
        Direction::Forward => Box::new(iter.map(entry)),
        Direction::Reverse => Box::new(iter.rev().map(entry)),
    }
}

/// A read transaction of [`SledBackend`]. Not a snapshot: every read sees the latest
/// committed state.
pub struct SledRead {
    pub(super) shared: Arc<Shared>,
}

impl ReadTxn for SledRead {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        match self.shared.existing(table)? {
            Some(tree) => f(tree.get(key).map_err(err("read a key"))?.as_deref()),
            None => f(None),
        }
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        self.scan(table, range, direction)
    }

    fn len(&self, table: &str) -> Result<u64> {
        Ok(self
            .shared
            .existing(table)?
            .map_or(0, |tree| tree.len() as u64))
    }

    fn table_names(&self) -> Result<Vec<String>> {
        Ok(self.shared.table_names())
    }
}

/// A lending scan of one tree: sled's entries are reference-counted buffers, held here
/// instead of copied.
struct SledCursor {
    iter: sled::Iter,
    direction: Direction,
    current: (sled::IVec, sled::IVec),
}

impl RawCursor for SledCursor {
    fn next_entry(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let item = match self.direction {
            Direction::Forward => self.iter.next(),
            Direction::Reverse => self.iter.next_back(),
        }?;
        match item {
            Ok(entry) => {
                self.current = entry;
                Some(Ok((&self.current.0, &self.current.1)))
            }
            Err(e) => Some(Err(err("scan a tree")(e))),
        }
    }
}

impl OwnedReadTxn for SledRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>> {
        Ok(match self.shared.existing(table)? {
            // sled, like `BTreeMap`, rejects inverted bounds.
            Some(tree) if !range.is_empty() => Box::new(SledCursor {
                iter: tree.range::<&[u8], _>(range.as_bounds()),
                direction,
                current: Default::default(),
            }),
            _ => Box::new(EntryCursor::new(std::iter::empty())),
        })
    }
}
