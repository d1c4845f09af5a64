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
use std::sync::Arc;

use crate::backend::WriteTxn;
use crate::sync::state::{SyncState, SyncWrite};
use crate::typed::changes::ChangeSet;
use crate::typed::watch::Hub;

/// What the typed layer does at the commit of a write transaction, around the engine's
/// commit: inside the transaction, it brings the sync metadata of synced models in step
/// (module `sync`); around the commit, it publishes the transaction's changes to the
/// store's subscriptions, in commit order. Built by the typed layer; an engine runs it
/// through [`AsyncWriteTxn::commit_around`].
pub struct AtCommit {
    changes: ChangeSet,
    /// The subscriptions to publish to, and whether the committer reads the set.
    hub: Option<(Arc<Hub>, bool)>,
    sync: Option<Arc<SyncState>>,
}

impl AtCommit {
    pub(crate) fn new(
        changes: ChangeSet,
        hub: Option<(Arc<Hub>, bool)>,
        sync: Option<Arc<SyncState>>,
    ) -> Self {
        AtCommit { changes, hub, sync }
    }

    /// Whether it must write inside the transaction (sync metadata), which only
    /// [`AtCommit::commit_sync`] can.
    pub fn writes_in_transaction(&self) -> bool {
        self.sync.is_some()
    }

    /// Commits the synchronous engine transaction `txn` the way the synchronous commit
    /// point does: the sync metadata written in it, the publishing turn taken, the
    /// engine's commit, the changes handed to subscriptions. Returns the transaction's
    /// changes.
    ///
    /// # Errors
    /// As [`WriteTxn::commit`], or the sync maintenance's error; nothing is published
    /// then.
    pub fn commit_sync<T: WriteTxn>(self, txn: T) -> Result<ChangeSet> {
        let sync = self.sync.map(SyncWrite::new);
        if let Some(sync) = &sync {
            sync.before_commit(&txn, &self.changes)?;
        }
        let publish = self
            .hub
            .as_ref()
            .map(|(hub, read)| (hub.begin_publish(), *read));
        if let Err(e) = txn.commit() {
            if let Some(sync) = &sync {
                sync.commit_failed();
            }
            return Err(e);
        }
        Ok(match publish {
            Some((publish, read)) => publish.send(self.changes, read),
            None => self.changes,
        })
    }

    /// After an engine's commit that finished on the committing task (so no other
    /// writer committed in between): hands the changes to subscriptions.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Schema`] when sync metadata had to be written inside the
    /// transaction ([`AtCommit::writes_in_transaction`]); check it before committing.
    pub fn after_commit(self) -> Result<ChangeSet> {
        if self.sync.is_some() {
            return Err(crate::NetabaseError::backend(
                "async",
                "keep sync metadata",
                "this engine cannot write sync metadata inside its transaction",
            ));
        }
        Ok(match &self.hub {
            Some((hub, read)) => hub.begin_publish().send(self.changes, *read),
            None => self.changes,
        })
    }
}

impl std::fmt::Debug for AtCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtCommit")
            .field("changes", &self.changes.len())
            .field("watched", &self.hub.is_some())
            .field("synced", &self.sync.is_some())
            .finish()
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

    /// The keys of up to `limit` entries of `table` inside `range`, in key order: the
    /// scan of an index whose values are empty. Engines override it to skip reading
    /// the values.
    ///
    /// # Errors
    /// As [`AsyncReadTxn::get`].
    async fn range_keys(
        &self,
        table: &str,
        range: RawRange,
        limit: Option<usize>,
    ) -> Result<Vec<Vec<u8>>> {
        let entries = self.range(table, range, Direction::Forward, limit).await?;
        Ok(entries.into_iter().map(|(key, _)| key).collect())
    }

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

/// Implements [`AsyncReadTxn`] for the write transaction `$txn` by reading through
/// the read transaction it holds in field `$read` (an engine whose reads of a write
/// transaction are those of a read transaction, own writes included): every method is
/// forwarded, the engine's overrides of the provided ones included.
#[cfg(any(
    feature = "threaded",
    all(feature = "indexeddb", target_arch = "wasm32")
))]
macro_rules! reads_through {
    ($txn:ty, $read:tt) => {
        impl $crate::nonblocking::AsyncReadTxn for $txn {
            async fn get(&self, table: &str, key: &[u8]) -> $crate::Result<Option<Vec<u8>>> {
                $crate::nonblocking::AsyncReadTxn::get(&self.$read, table, key).await
            }
            async fn get_many(
                &self,
                table: &str,
                keys: &[Vec<u8>],
            ) -> $crate::Result<Vec<Option<Vec<u8>>>> {
                $crate::nonblocking::AsyncReadTxn::get_many(&self.$read, table, keys).await
            }
            async fn range(
                &self,
                table: &str,
                range: $crate::backend::RawRange,
                direction: $crate::backend::Direction,
                limit: Option<usize>,
            ) -> $crate::Result<Vec<$crate::backend::Entry>> {
                $crate::nonblocking::AsyncReadTxn::range(
                    &self.$read,
                    table,
                    range,
                    direction,
                    limit,
                )
                .await
            }
            async fn range_keys(
                &self,
                table: &str,
                range: $crate::backend::RawRange,
                limit: Option<usize>,
            ) -> $crate::Result<Vec<Vec<u8>>> {
                $crate::nonblocking::AsyncReadTxn::range_keys(&self.$read, table, range, limit)
                    .await
            }
            async fn len(&self, table: &str) -> $crate::Result<u64> {
                $crate::nonblocking::AsyncReadTxn::len(&self.$read, table).await
            }
            async fn table_names(&self) -> $crate::Result<Vec<String>> {
                $crate::nonblocking::AsyncReadTxn::table_names(&self.$read).await
            }
        }
    };
}
#[cfg(any(
    feature = "threaded",
    all(feature = "indexeddb", target_arch = "wasm32")
))]
pub(crate) use reads_through;

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

    /// Commits as [`AsyncWriteTxn::commit`] does, with `at_commit` run in and around
    /// the engine's commit. The typed layer publishes there, so that subscriptions see
    /// commits in the order the engine made them.
    ///
    /// The provided form commits, then runs [`AtCommit::after_commit`]: right for an
    /// engine whose next writer cannot commit before this task resumes (IndexedDB in
    /// the browser's one thread); it refuses, before committing, a commit that must
    /// write sync metadata. An engine over a synchronous transaction that finishes on
    /// another thread overrides it to run [`AtCommit::commit_sync`] there.
    ///
    /// # Errors
    /// As [`AsyncWriteTxn::commit`].
    async fn commit_around(self, at_commit: AtCommit) -> Result<ChangeSet>
    where
        Self: Sized,
    {
        if at_commit.writes_in_transaction() {
            return at_commit.after_commit();
        }
        self.commit().await?;
        at_commit.after_commit()
    }
}
