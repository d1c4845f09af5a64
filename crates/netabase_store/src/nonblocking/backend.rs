//! The asynchronous backend trait: ordered byte tables inside read and write
//! transactions whose every operation is awaited.
//!
//! It is the asynchronous twin of [`crate::backend::Backend`], with owned arguments and
//! results so that an engine may hand the work to another thread (the
//! [`super::Threaded`] adapter over a synchronous backend) or to the browser
//! (IndexedDB). Futures are not required to be `Send`: in the browser nothing is.
//!
//! A new asynchronous backend implements [`AsyncBackend`], [`AsyncReadTxn`] and
//! [`AsyncWriteTxn`] and must pass the asynchronous conformance suite
//! (`tests/async_conformance`).

// The futures of these traits are deliberately not required to be `Send`: the browser
// backend's futures hold JavaScript values. Callers that need `Send` futures use a
// concrete backend whose futures are (the threaded adapter's are).
#![allow(async_fn_in_trait)]

use crate::backend::{Capabilities, Direction, Entry, RawRange, WriteOp};
use crate::error::Result;
use crate::typed::changes::ChangeSet;

/// The engine's commit of a write transaction, as [`AtCommit`] is handed it.
pub type EngineCommit<'a> = &'a mut dyn FnMut() -> Result<()>;

/// What the typed layer does around the engine's commit of a write transaction: it
/// publishes the transaction's changes to the store's subscriptions, in commit order.
/// [`AsyncWriteTxn::commit_around`] hands it a function that commits the engine's
/// transaction; it calls that function once, and returns the transaction's
/// [`ChangeSet`].
pub struct AtCommit(Box<dyn FnOnce(EngineCommit<'_>) -> Result<ChangeSet> + Send>);

impl AtCommit {
    pub(crate) fn new(
        around: impl FnOnce(EngineCommit<'_>) -> Result<ChangeSet> + Send + 'static,
    ) -> Self {
        AtCommit(Box::new(around))
    }

    /// Runs around `commit`, the engine's commit.
    ///
    /// # Errors
    /// The error of `commit`; nothing is published then.
    pub fn run(self, commit: EngineCommit<'_>) -> Result<ChangeSet> {
        (self.0)(commit)
    }
}

impl std::fmt::Debug for AtCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtCommit").finish_non_exhaustive()
    }
}

/// An asynchronous storage engine: hands out read and write transactions over named
/// byte tables.
pub trait AsyncBackend: 'static {
    /// A read transaction.
    type Read: AsyncReadTxn;
    /// A write transaction; dropping it without [`AsyncWriteTxn::commit`] discards
    /// its writes.
    type Write: AsyncWriteTxn;

    /// The backend's name, used in error messages (`"indexeddb"`).
    fn name(&self) -> &'static str;

    /// What this backend guarantees.
    fn capabilities(&self) -> Capabilities;

    /// Begins a read transaction.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    async fn begin_read(&self) -> Result<Self::Read>;

    /// Begins a write transaction; one writer runs at a time.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one, or
    /// [`crate::NetabaseError::ReadOnly`] on a read-only store.
    async fn begin_write(&self) -> Result<Self::Write>;
}

/// Reads inside an asynchronous transaction.
pub trait AsyncReadTxn {
    /// The value at `key` in `table`, if any.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure;
    /// [`crate::NetabaseError::TransactionInactive`] when the engine ended the
    /// transaction.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The values at each of `keys` in `table`, in the same order. Engines override it
    /// to issue the lookups together.
    ///
    /// # Errors
    /// As [`AsyncReadTxn::get`].
    async fn get_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(table, key).await?);
        }
        Ok(out)
    }

    /// Up to `limit` entries of `table` inside `range` (every one when `None`), in
    /// key order or reversed, copied: one page of a scan.
    ///
    /// # Errors
    /// As [`AsyncReadTxn::get`].
    async fn range(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>>;

    /// The number of entries in `table`.
    ///
    /// # Errors
    /// As [`AsyncReadTxn::get`].
    async fn len(&self, table: &str) -> Result<u64>;

    /// The names of the tables that exist, in ascending order.
    ///
    /// # Errors
    /// As [`AsyncReadTxn::get`].
    async fn table_names(&self) -> Result<Vec<String>>;
}

/// Writes inside an asynchronous transaction. Reads see the transaction's own writes.
pub trait AsyncWriteTxn: AsyncReadTxn {
    /// Puts each `(key, value)` of `entries` into `table` in order and returns, for
    /// each, the value it replaced (`None` for a new key; a key repeated in `entries`
    /// reports the value of its earlier put).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure;
    /// [`crate::NetabaseError::TransactionInactive`] when the engine ended the
    /// transaction.
    async fn put_each(&self, table: &str, entries: Vec<Entry>) -> Result<Vec<Option<Vec<u8>>>>;

    /// Removes each of `keys` from `table` in order and returns, for each, the value it
    /// removed (`None` when absent).
    ///
    /// # Errors
    /// As [`AsyncWriteTxn::put_each`].
    async fn delete_each(&self, table: &str, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>>;

    /// Applies a batch of writes in order.
    ///
    /// # Errors
    /// As [`AsyncWriteTxn::put_each`].
    async fn apply(&self, ops: Vec<WriteOp<'static>>) -> Result<()>;

    /// Removes every entry of `table`.
    ///
    /// # Errors
    /// As [`AsyncWriteTxn::put_each`].
    async fn clear(&self, table: &str) -> Result<()>;

    /// Makes every write of the transaction durable and visible, atomically.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure;
    /// [`crate::NetabaseError::TransactionInactive`] when the engine ended the
    /// transaction before (its writes are then not committed by this call).
    async fn commit(self) -> Result<()>;

    /// Commits as [`AsyncWriteTxn::commit`] does, with `at_commit` run around the
    /// engine's commit. The typed layer publishes there, so that subscriptions see
    /// commits in the order the engine made them.
    ///
    /// The provided form commits, then runs `at_commit`: right for an engine whose
    /// next writer cannot commit before this task resumes (IndexedDB in the browser's
    /// one thread). An engine whose commit finishes on another thread, where the next
    /// writer may already run, overrides it to run `at_commit` on that thread, around
    /// the engine's commit.
    ///
    /// # Errors
    /// As [`AsyncWriteTxn::commit`].
    async fn commit_around(self, at_commit: AtCommit) -> Result<ChangeSet>
    where
        Self: Sized,
    {
        self.commit().await?;
        at_commit.run(&mut || Ok(()))
    }
}
