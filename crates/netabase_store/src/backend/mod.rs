//! The backend trait: ordered byte tables inside read and write transactions.
//!
//! A backend knows bytes, tables and transactions only: nothing about models or indexes.
//! The typed layer above it (index maintenance, uniqueness, decoding) is written once.
//! A new backend implements [`Backend`], [`ReadTxn`], [`OwnedReadTxn`] and [`WriteTxn`]
//! and must pass the conformance suite (`tests/conformance`).
//!
//! The required core is small: begin a read or write transaction; in it `get_with`,
//! `cursor` (the one ordered range reader, both directions), `len` and `table_names`;
//! `put`, `delete`, `clear` and `commit`. Everything else has a default written over
//! that core, which an engine overrides only where it is faster
//! ([`WriteTxn::put_each`] learning the replaced value from the insert itself,
//! [`ReadTxn::for_each_in`] visiting entries without boxing a cursor,
//! [`WriteTxn::apply`] opening each table once per batch).
//!
//! This is the byte level: a write made here skips index maintenance, validation and
//! change events. The typed layer ([`crate::NetabaseStore`]) is the way to write
//! models; raw access is for tools and for netabase's own tables.
//!
//! Tables are created on first write; reading a table that was never written behaves as
//! reading an empty table.

use std::ops::{Bound, ControlFlow};

use crate::error::Result;

mod chunked;
#[cfg(all(feature = "indexeddb", target_arch = "wasm32"))]
pub mod indexeddb;
pub mod memory;
#[cfg(any(feature = "sled", feature = "redis"))]
mod overlay;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sled")]
pub mod sled;
pub mod transform;
pub use chunked::ChunkedRange;

/// A new temporary directory for a throw-away database, removed when dropped.
#[cfg(any(feature = "redb", feature = "sled"))]
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| {
            crate::NetabaseError::io(
                "create a temporary directory in",
                std::env::temp_dir(),
                source,
            )
        })
}

/// One key/value pair read from a table.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What [`ReadTxn::get_with`] calls with the value it found (`None` when absent). It
/// must not write through the transaction: the engine may hold the table open while it
/// runs.
pub type ValueFn<'f> = dyn FnMut(Option<&[u8]>) -> Result<()> + 'f;

/// What [`ReadTxn::for_each_in`] calls with each key and value; `Break` ends the scan.
pub type EntryFn<'f> = dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>> + 'f;

/// What [`WriteTxn::put_each`] and [`WriteTxn::delete_each`] call after each write, with
/// the entry's position and the value the write replaced or removed. It must not use the
/// transaction: the engine may hold the table open while it runs.
pub type OldFn<'f> = dyn FnMut(usize, Option<&[u8]>) -> Result<()> + 'f;

/// What [`ReadTxn::first_each`] calls with each range's position and its first entry
/// (`None` when the range is empty). It must not use the transaction: the engine may
/// hold the table open while it runs.
pub type FirstFn<'f> = dyn FnMut(usize, Option<(&[u8], &[u8])>) -> Result<()> + 'f;

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
    /// Reads inside a write transaction see that transaction's own writes.
    pub read_your_writes: bool,
    /// A transaction stays usable while its program awaits or does something else.
    /// False on IndexedDB, which ends a transaction as soon as no request of it is
    /// pending: its next use fails with [`crate::NetabaseError::TransactionInactive`].
    pub idle_transactions: bool,
}

/// Every entry of `table` inside `range`, copied, in `direction` order: for tools and
/// tests that want owned entries.
///
/// # Errors
/// [`crate::NetabaseError::Backend`] on engine failure.
pub fn collect_range<T: ReadTxn + ?Sized>(
    txn: &T,
    table: &str,
    range: RawRange,
    direction: Direction,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    txn.for_each_in(table, range, direction, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
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
}

/// A shared backend is a backend: the typed store and netabase's own byte-level tables
/// (the DHT record store of a node) can share one database.
impl<B: Backend> Backend for std::sync::Arc<B> {
    type Read = B::Read;
    type Write<'a> = B::Write<'a>;

    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn begin_read(&self) -> Result<Self::Read> {
        (**self).begin_read()
    }
    fn begin_write(&self) -> Result<Self::Write<'_>> {
        (**self).begin_write()
    }
}

/// A read transaction that owns its snapshot, so its scans need not borrow it: a
/// one-shot iterator carries the transaction and the scan together.
pub trait OwnedReadTxn: ReadTxn + 'static {
    /// Like [`ReadTxn::cursor`], but the cursor keeps the snapshot alive by itself.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>>;
}

/// Reads inside a transaction. Every method takes `&self`, so several typed views of one
/// transaction can be used at once.
pub trait ReadTxn {
    /// Calls `f` with the value at `key` (`None` when absent), lent straight from the
    /// engine where it can, so a caller that decodes the value never copies it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `f`'s error.
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()>;

    /// The entries of `table` inside `range`, in key order or reversed, lent one at a
    /// time: the one range reader of the trait.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>>;

    /// The number of entries in `table`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn len(&self, table: &str) -> Result<u64>;

    /// The names of the tables that exist, in ascending order (a table exists once it
    /// has been written to; it may be empty).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn table_names(&self) -> Result<Vec<String>>;

    /// The value at `key`, copied.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        self.get_with(table, key, &mut |value| {
            found = value.map(<[u8]>::to_vec);
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `f` with the position of each of `keys` and the value at it (`None` when
    /// absent), in order. Engines that pay a round trip per read (a server) override
    /// it to fetch every key at once.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `f`'s first error (no
    /// key is visited after it).
    fn get_each(&self, table: &str, keys: &[&[u8]], f: &mut OldFn<'_>) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            self.get_with(table, key, &mut |value| f(i, value))?;
        }
        Ok(())
    }

    /// Calls `f` with each entry of `table` inside `range`, in key order or reversed,
    /// until the range ends or `f` returns [`ControlFlow::Break`]. Engines override it
    /// to visit entries where they lie, without a boxed cursor.
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

    /// Whether `table` has no entries.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn is_empty(&self, table: &str) -> Result<bool> {
        Ok(self.len(table)? == 0)
    }

    /// Calls `f` with the position of each of `ranges` and the first entry of that
    /// range in `direction` (`None` when it is empty), in order: several seeks ("the
    /// greatest key at or below x") for the price of one table lookup. Engines whose
    /// write transactions reopen a table per call (redb) override it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure, or `f`'s first error (no
    /// range is visited after it).
    fn first_each(
        &self,
        table: &str,
        ranges: Vec<RawRange>,
        direction: Direction,
        f: &mut FirstFn<'_>,
    ) -> Result<()> {
        for (i, range) in ranges.into_iter().enumerate() {
            let mut found = None;
            self.for_each_in(table, range, direction, &mut |k, v| {
                found = Some((k.to_vec(), v.to_vec()));
                Ok(ControlFlow::Break(()))
            })?;
            f(i, found.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        }
        Ok(())
    }
}

impl<T: ReadTxn + ?Sized> ReadTxn for &T {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        (**self).get_with(table, key, f)
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
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(table, key)
    }
    fn get_each(&self, table: &str, keys: &[&[u8]], f: &mut OldFn<'_>) -> Result<()> {
        (**self).get_each(table, keys, f)
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
    fn first_each(
        &self,
        table: &str,
        ranges: Vec<RawRange>,
        direction: Direction,
        f: &mut FirstFn<'_>,
    ) -> Result<()> {
        (**self).first_each(table, ranges, direction, f)
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

    /// Removes every entry of `table`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    fn clear(&self, table: &str) -> Result<()>;

    /// Makes every write of the transaction durable and visible, atomically.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure; nothing is then applied.
    fn commit(self) -> Result<()>;

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
    /// [`crate::NetabaseError::Backend`] on engine failure, or `old`'s error.
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

    /// Applies a batch of writes in order. Engines override this to open each table
    /// once per run of writes to it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
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
}
