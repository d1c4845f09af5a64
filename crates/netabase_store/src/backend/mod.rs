//! The backend trait: ordered byte tables inside read and write transactions.
//!
//! A backend knows bytes, tables and transactions only: nothing about models or indexes.
//! The typed layer above it (index maintenance, uniqueness, decoding) is written once.
//! A new backend implements [`Backend`], [`ReadTxn`] and [`WriteTxn`] and must pass the
//! conformance suite (`tests/conformance`).
//!
//! Tables are created on first write; reading a table that was never written behaves as
//! reading an empty table.

use std::ops::{Bound, ControlFlow};

use crate::error::Result;

mod chunked;
pub mod memory;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "sled")]
pub mod sled;
pub use chunked::ChunkedRange;

/// A new temporary directory for a throw-away database, removed when dropped.
#[cfg(any(feature = "redb", feature = "sled"))]
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| crate::NetabaseError::Io {
            operation: "create a temporary directory in",
            path: std::env::temp_dir(),
            source,
        })
}

/// One key/value pair read from a table.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A boxed iterator of table entries in key order (ascending or descending).
pub type RawIter<'a> = Box<dyn Iterator<Item = Result<Entry>> + 'a>;

/// What [`ReadTxn::get_with`] calls with the value it found (`None` when absent). It
/// must not use the transaction: the engine may hold the table open while it runs.
pub type ValueFn<'f> = dyn FnMut(Option<&[u8]>) -> Result<()> + 'f;

/// What [`ReadTxn::for_each_in`] calls with each key and value; `Break` ends the scan.
pub type EntryFn<'f> = dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>> + 'f;

/// What [`WriteTxn::put_each`] and [`WriteTxn::delete_each`] call after each write, with
/// the entry's position and the value the write replaced or removed. It must not use the
/// transaction: the engine may hold the table open while it runs.
pub type OldFn<'f> = dyn FnMut(usize, Option<&[u8]>) -> Result<()> + 'f;

/// A range scan that lends each entry instead of handing out owned copies: the key and
/// value stay valid until the next call. Typed iterators decode straight from them.
pub trait RawCursor {
    /// Moves to the next entry and lends it; `None` once the range is exhausted.
    fn next_entry(&mut self) -> Option<Result<(&[u8], &[u8])>>;
}

/// A boxed [`RawCursor`].
pub type Cursor<'a> = Box<dyn RawCursor + 'a>;

/// A [`RawCursor`] over an iterator of owned entries, for engines whose scans copy.
pub struct EntryCursor<I> {
    iter: I,
    current: Entry,
}

impl<I> EntryCursor<I> {
    /// A cursor that lends each entry `iter` yields.
    pub fn new(iter: I) -> Self {
        EntryCursor {
            iter,
            current: (Vec::new(), Vec::new()),
        }
    }
}

impl<I: Iterator<Item = Result<Entry>>> RawCursor for EntryCursor<I> {
    fn next_entry(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        match self.iter.next()? {
            Ok(entry) => {
                self.current = entry;
                Some(Ok((&self.current.0, &self.current.1)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Which way a range scan walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Smallest key first.
    #[default]
    Forward,
    /// Largest key first.
    Reverse,
}

/// Byte bounds of a range scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRange {
    /// The lower bound.
    pub start: Bound<Vec<u8>>,
    /// The upper bound.
    pub end: Bound<Vec<u8>>,
}

impl RawRange {
    /// Every key of a table.
    pub fn all() -> Self {
        RawRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        RawRange {
            start: Bound::Included(prefix.to_vec()),
            end: match crate::codec::key::prefix_successor(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        }
    }

    /// The bounds as borrowed slices, the form engines' range methods take.
    pub fn as_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.start.as_ref().map(Vec::as_slice),
            self.end.as_ref().map(Vec::as_slice),
        )
    }

    /// Whether `key` lies inside the bounds.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        above && below
    }

    /// Whether no key can lie inside the bounds (start above end), which some engines
    /// reject with a panic instead of returning nothing.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            _ => false,
        }
    }
}

/// What a backend guarantees, read by the conformance suite so that nothing is skipped
/// silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// A read transaction sees one consistent snapshot, unaffected by later commits.
    pub snapshot_reads: bool,
    /// Data survives closing and reopening the store.
    pub persistent: bool,
}

/// One write in a [`WriteTxn::apply`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp<'a> {
    /// Insert or replace `key` in `table`.
    Put {
        /// The table.
        table: &'a str,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` from `table` (no error when absent).
    Delete {
        /// The table.
        table: &'a str,
        /// The key.
        key: Vec<u8>,
    },
}

impl WriteOp<'_> {
    /// The table the write goes to.
    pub fn table(&self) -> &str {
        match self {
            WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
        }
    }
}

/// A storage engine: hands out read and write transactions over named byte tables.
pub trait Backend: Send + Sync + 'static {
    /// A read transaction. It owns its snapshot (no borrow of the backend), so one-shot
    /// iterators can carry it.
    type Read: OwnedReadTxn;
    /// A write transaction.
    type Write<'a>: WriteTxn
    where
        Self: 'a;

    /// The backend's name, used in error messages (`"redb"`, `"memory"`).
    fn name(&self) -> &'static str;

    /// What this backend guarantees.
    fn capabilities(&self) -> Capabilities;

    /// Begins a read transaction.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    fn begin_read(&self) -> Result<Self::Read>;

    /// Begins a write transaction. Backends allow one writer at a time; this call waits
    /// for the previous writer to finish.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one, or
    /// [`crate::NetabaseError::ReadOnly`] on a read-only store.
    fn begin_write(&self) -> Result<Self::Write<'_>>;

    /// Scans a range of `table` in its own read transaction; the iterator owns that
    /// transaction, so it outlives this call.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the transaction cannot start.
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'static>> {
        self.begin_read()?.scan(table, range, direction)
    }
}

/// A read transaction that owns its snapshot: its scans do not borrow it.
pub trait OwnedReadTxn: ReadTxn + 'static {
    /// Like [`ReadTxn::range`], but the iterator keeps the snapshot alive by itself.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'static>>;

    /// Like [`OwnedReadTxn::scan`], but lending each entry. Engines that can lend
    /// override it; the default copies, as `scan` does.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn scan_cursor(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'static>> {
        Ok(Box::new(EntryCursor::new(
            self.scan(table, range, direction)?,
        )))
    }
}

/// Reads inside a transaction. Every method takes `&self`, so several typed views of one
/// transaction can be used at once.
pub trait ReadTxn {
    /// The value at `key`, if any.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The values at each of `keys`, in the same order. Backends override this to open
    /// the table once for the whole run of lookups.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(table, key)).collect()
    }

    /// Calls `f` with the value at `key` (`None` when absent), lent straight from the
    /// engine where it can, so a caller that decodes the value never copies it. Returns
    /// what `f` returns.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `f`'s error.
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        let value = self.get(table, key)?;
        f(value.as_deref())
    }

    /// The entries of `table` inside `range`, in key order or reversed.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>>;

    /// Like [`ReadTxn::range`], but lending each entry. Engines that can lend override
    /// it; the default copies, as `range` does.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        Ok(Box::new(EntryCursor::new(
            self.range(table, range, direction)?,
        )))
    }

    /// Calls `f` with each entry of `table` inside `range`, in key order or reversed,
    /// lending the key and value instead of copying them, until the range ends or `f`
    /// returns [`ControlFlow::Break`].
    ///
    /// `f` may read the same transaction (every method takes `&self`).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `f`'s first error (no
    /// entry is visited after it).
    fn for_each_in(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        f: &mut EntryFn<'_>,
    ) -> Result<()> {
        let mut cursor = self.cursor(table, range, direction)?;
        while let Some(entry) = cursor.next_entry() {
            let (key, value) = entry?;
            if f(key, value)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The number of entries in `table`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn len(&self, table: &str) -> Result<u64>;

    /// Whether `table` has no entries.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn is_empty(&self, table: &str) -> Result<bool> {
        Ok(self.len(table)? == 0)
    }

    /// The names of the tables that exist, in ascending order (a table exists once it
    /// has been written to; it may be empty). For inspection and debugging.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or when the backend does not
    /// implement listing (the default).
    fn table_names(&self) -> Result<Vec<String>> {
        Err(crate::NetabaseError::backend(
            "unknown",
            "list tables",
            "this backend does not implement `ReadTxn::table_names`",
        ))
    }

    /// The first entry of `table` inside `range` (in `direction`), if any.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn first(&self, table: &str, range: RawRange, direction: Direction) -> Result<Option<Entry>> {
        self.range(table, range, direction)?.next().transpose()
    }
}

impl<T: ReadTxn + ?Sized> ReadTxn for &T {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(table, key)
    }
    fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).get_many(table, keys)
    }
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        (**self).get_with(table, key, f)
    }
    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>> {
        (**self).range(table, range, direction)
    }
    fn for_each_in(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        f: &mut EntryFn<'_>,
    ) -> Result<()> {
        (**self).for_each_in(table, range, direction, f)
    }
    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        (**self).cursor(table, range, direction)
    }
    fn len(&self, table: &str) -> Result<u64> {
        (**self).len(table)
    }
    fn table_names(&self) -> Result<Vec<String>> {
        (**self).table_names()
    }
}

/// Writes inside a transaction; dropping it without [`WriteTxn::commit`] discards every
/// write. Reads see the transaction's own writes.
pub trait WriteTxn: ReadTxn {
    /// Inserts or replaces `key` in `table`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key` from `table`; returns whether it was there.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn delete(&self, table: &str, key: &[u8]) -> Result<bool>;

    /// Puts each `(key, value)` of `entries` into `table` in order, and right after each
    /// put calls `old` with the entry's position and the value that put replaced
    /// (`None` for a new key), lent where the engine can. Engines whose insert returns
    /// the old value (redb, the in-memory backend) override this to skip the lookup
    /// that the default makes before each put.
    ///
    /// When `old` returns an error, the entry it was called for stays written, no later
    /// entry is written, and the error is returned: the caller undoes what it must.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure (the transaction should then
    /// be dropped), or `old`'s error.
    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        for (i, (key, value)) in entries.iter().enumerate() {
            let previous = self.get(table, key)?;
            self.put(table, key, value)?;
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    /// Removes each of `keys` from `table` in order, and right after each removal calls
    /// `old` with the key's position and the value removed (`None` when the key was
    /// absent). Errors behave as in [`WriteTxn::put_each`].
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `old`'s error.
    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            let previous = self.get(table, key)?;
            if previous.is_some() {
                self.delete(table, key)?;
            }
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    /// Removes every entry of `table`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn clear(&self, table: &str) -> Result<()>;

    /// Applies a batch of writes in order. Backends override this to open each table
    /// once per batch.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure; the transaction should then
    /// be dropped.
    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            match op {
                WriteOp::Put { table, key, value } => self.put(table, key, value)?,
                WriteOp::Delete { table, key } => {
                    self.delete(table, key)?;
                }
            }
        }
        Ok(())
    }

    /// Makes every write of the transaction durable and visible, atomically.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure; nothing is then applied.
    fn commit(self) -> Result<()>;
}
