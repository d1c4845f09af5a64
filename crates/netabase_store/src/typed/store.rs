//! `NetabaseStore`: a typed handle over one backend.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, Capabilities, ReadTxn};
use crate::config::FileConfig;
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::changes::ChangeSet;
use super::meta::{self, OpenOptions};
use super::tree::Tree;
use super::txn::{ReadOnly, ReadWrite, TxnGuard};
use super::watch::Hub;
use super::write::Writer;

pub use super::meta::{FORMAT_VERSION, META_TABLE};

/// A typed store of the models of definition `D` on backend `B`.
///
/// Cloning is cheap (an `Arc`); clones share the database. Open one with a
/// definition's constructors ([`OpenStore`]: `BlogDefinition::open_redb(path)`), a
/// backend's (`NetabaseStore::redb(path)`), or [`crate::BackendStore::new`] with a
/// [`FileConfig`].
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
/// # }
/// # use app::*;
/// let store = AppDefinition::open_memory()?;
/// let notes = store.open_tree::<Note>();
/// notes.put(Note { id: 1, text: "hello".into() })?;
/// assert_eq!(notes.get(1)?.map(|n| n.text), Some("hello".to_string()));
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub struct NetabaseStore<D, B> {
    backend: Arc<B>,
    /// The subscriptions of this store and its clones.
    hub: Arc<Hub>,
    /// Runs of a one-shot write after a conflict ([`OpenOptions::commit_retries`]).
    retries: u32,
    /// Writes run again after a conflict so far, shared by every clone.
    retried: Arc<AtomicU64>,
    /// The sync state, when a model of the store is synced.
    sync: Option<Arc<crate::sync::state::SyncState>>,
    _definition: PhantomData<fn() -> D>,
}

impl<D, B> Clone for NetabaseStore<D, B> {
    fn clone(&self) -> Self {
        NetabaseStore {
            backend: Arc::clone(&self.backend),
            hub: Arc::clone(&self.hub),
            retries: self.retries,
            retried: Arc::clone(&self.retried),
            sync: self.sync.clone(),
            _definition: PhantomData,
        }
    }
}

impl<D, B: std::fmt::Debug> std::fmt::Debug for NetabaseStore<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetabaseStore")
            .field("definition", &std::any::type_name::<D>())
            .field("backend", &self.backend)
            .finish()
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> NetabaseStore<D, B> {
    /// A store over an opened backend. Checks the storage format of the database and
    /// reconciles the schema stored in it with this definition's (see
    /// [`NetabaseStore::from_backend_with`]).
    ///
    /// # Errors
    /// [`crate::NetabaseError::UnsupportedFormat`] if the database was written in
    /// another format; [`crate::NetabaseError::Schema`] if a key type changed;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn from_backend(backend: B) -> Result<Self> {
        Self::from_backend_with(backend, OpenOptions::default())
    }

    /// [`NetabaseStore::from_backend`] with options. When the definition gained a
    /// secondary key since the database was last opened, its index is built from the
    /// stored records (reported to [`OpenOptions::on_index_build`]); a secondary key
    /// that was removed has its index dropped; a key whose type changed is refused.
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend`]; [`crate::NetabaseError::Schema`] also when a
    /// new unique key is already shared by two stored records.
    pub fn from_backend_with(backend: B, options: OpenOptions) -> Result<Self> {
        Self::open(Arc::new(backend), true, options)
    }

    /// A store over a backend that is shared with byte-level users of netabase's own
    /// tables (the record store of a P2P node), opened as [`NetabaseStore::from_backend`].
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend`].
    pub fn from_shared_backend(backend: Arc<B>) -> Result<Self> {
        Self::open(backend, true, OpenOptions::default())
    }

    /// [`NetabaseStore::from_shared_backend`] with options (a P2P node that replicates
    /// models opens its store with sync on for them).
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend_with`].
    pub fn from_shared_backend_with(backend: Arc<B>, options: OpenOptions) -> Result<Self> {
        Self::open(backend, true, options)
    }

    /// A store over a backend that is only ever read: checks the format and the schema
    /// but writes nothing (for read-only databases).
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend`]; [`crate::NetabaseError::Schema`] also when the
    /// stored schema lacks an index this definition needs (it cannot be built
    /// read-only).
    pub fn from_backend_read_only(backend: B) -> Result<Self> {
        Self::open(Arc::new(backend), false, OpenOptions::default())
    }

    /// Opens a store over `backend` as `config` asks: read-only stores check without
    /// writing anything.
    pub(crate) fn from_config(backend: B, config: &FileConfig) -> Result<Self> {
        if config.read_only() {
            Self::from_backend_read_only(backend)
        } else {
            Self::from_backend(backend)
        }
    }

    /// Checks the format and reconciles the schema (writing only when `write` is
    /// set), then wraps the backend.
    fn open(backend: Arc<B>, write: bool, mut options: OpenOptions) -> Result<Self> {
        let sync = options.take_sync();
        let retries = options.retries();
        let retried = Arc::new(AtomicU64::new(0));
        // Several processes opening one shared database may race on its metadata.
        retry(retries, &retried, || {
            meta::open::<D, B>(&*backend, write, &mut options)
        })?;
        let sync = crate::sync::state::open::<D, B>(&*backend, write, sync)?;
        Ok(NetabaseStore {
            backend,
            sync,
            hub: Arc::default(),
            retries,
            retried,
            _definition: PhantomData,
        })
    }

    /// The subscriptions of the store.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The sync state, when a model of the store is synced.
    pub(crate) fn sync_state(&self) -> Option<&Arc<crate::sync::state::SyncState>> {
        self.sync.as_ref()
    }

    /// The backend under the store, for its own settings and extras.
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    /// The shared backend under the store.
    #[cfg_attr(not(feature = "threaded"), allow(dead_code))]
    pub(crate) fn shared_backend(&self) -> Arc<B> {
        Arc::clone(&self.backend)
    }

    /// The backend under the store: **an escape hatch for tools and tests**. Bytes
    /// written through it skip everything the typed layer guarantees (index
    /// maintenance, unique keys, version headers, change sets); use it to inspect a
    /// database or to write tables of your own, never the tables of a definition.
    pub fn raw_backend(&self) -> &B {
        &self.backend
    }

    /// The backend's name (`"redb"`, `"sled"`, `"memory"`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// What the backend guarantees (snapshot reads, persistence).
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// How many times one-shot writes and batches of this store (and its clones) have
    /// been run again after losing a race with a concurrent writer
    /// ([`crate::NetabaseError::Conflict`]) since it was opened. Always 0 on backends
    /// that never report conflicts.
    pub fn conflict_retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot_reads(&self) -> bool {
        self.backend.capabilities().snapshot_reads
    }

    /// A handle on the records of model `M`; each of its methods runs in a transaction
    /// of its own.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> Tree<D, M, B> {
        Tree::new(self.clone())
    }

    /// Begins a read transaction: one consistent snapshot for every tree opened in it
    /// (on backends with snapshot reads, see [`crate::backend::Capabilities`]).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    pub fn read(&self) -> Result<TxnGuard<'_, D, B, ReadOnly>> {
        Ok(TxnGuard::new(
            self.backend.begin_read()?,
            self.snapshot_reads(),
        ))
    }

    /// Begins a write transaction. Everything written through it becomes visible at once
    /// on [`TxnGuard::commit`]; dropped without commit, nothing is applied. One write
    /// transaction runs at a time: this waits for the previous one to end.
    ///
    /// # Errors
    /// [`crate::NetabaseError::ReadOnly`] on a read-only store;
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    pub fn write(&self) -> Result<TxnGuard<'_, D, B, ReadWrite>> {
        Ok(TxnGuard::new(
            Writer::begin(&*self.backend, true)?
                .watched_by(&self.hub)
                .with_sync(self.sync.as_ref()),
            self.snapshot_reads(),
        ))
    }

    /// Runs `f` in a write transaction of its own and commits it: the path of every
    /// one-shot write. Its `ChangeSet` is not returned, so its changes are recorded only
    /// when the store has a subscription.
    ///
    /// A write that loses a race with a concurrent writer ([`crate::NetabaseError::Conflict`])
    /// runs again, in a new transaction, up to the configured number of retries: `f`
    /// must be safe to run more than once.
    pub(crate) fn write_with<R>(
        &self,
        mut f: impl FnMut(&Writer<'_, B>) -> Result<R>,
    ) -> Result<R> {
        retry(self.retries, &self.retried, || {
            let writer = Writer::begin(&*self.backend, false)?
                .watched_by(&self.hub)
                .with_sync(self.sync.as_ref());
            let out = f(&writer)?;
            writer.commit()?;
            Ok(out)
        })
    }

    /// [`NetabaseStore::write_with`], returning what the transaction changed.
    pub(crate) fn write_changes(
        &self,
        mut f: impl FnMut(&Writer<'_, B>) -> Result<()>,
    ) -> Result<ChangeSet> {
        retry(self.retries, &self.retried, || {
            let writer = Writer::begin(&*self.backend, true)?
                .watched_by(&self.hub)
                .with_sync(self.sync.as_ref());
            f(&writer)?;
            writer.commit()
        })
    }

    /// The names of every table in the database, in ascending order: model tables,
    /// index tables, netabase's own metadata, and tables of other definitions sharing
    /// the database. For inspection and debugging.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn tree_names(&self) -> Result<Vec<String>> {
        self.backend.begin_read()?.table_names()
    }

    /// The number of entries of every table, read in one read transaction (one snapshot
    /// on backends with snapshot reads). For inspection and debugging: counting is a
    /// full scan on some engines (sled).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn stats(&self) -> Result<StoreStats> {
        let txn = self.backend.begin_read()?;
        let tables = txn
            .table_names()?
            .into_iter()
            .map(|name| {
                let entries = txn.len(&name)?;
                Ok(TableStats { name, entries })
            })
            .collect::<Result<_>>()?;
        Ok(StoreStats {
            backend: self.backend.name(),
            tables,
        })
    }
}

/// Runs `attempt` until it succeeds, fails with anything but a conflict, or has been run
/// again `retries` times after a conflict.
fn retry<R>(
    retries: u32,
    retried: &AtomicU64,
    mut attempt: impl FnMut() -> Result<R>,
) -> Result<R> {
    let mut conflicts = 0;
    loop {
        match attempt() {
            Err(e) if e.is_conflict() && conflicts < retries => {
                conflicts += 1;
                retried.fetch_add(1, Ordering::Relaxed);
                // Let the winner's process make progress before running again; the
                // pause grows with each lost race and stays short (at most ~1 ms).
                std::thread::sleep(std::time::Duration::from_micros(
                    u64::from(conflicts.min(8)) * 128,
                ));
            }
            other => return other,
        }
    }
}

/// Opens stores of a definition without naming its type again:
/// `BlogDefinition::open_redb(path)` instead of
/// `NetabaseStore::<BlogDefinition, _>::redb(path)`. Implemented for every definition;
/// in the prelude.
pub trait OpenStore: NetabaseDefinitionTrait {
    /// A new, empty in-memory store.
    ///
    /// # Errors
    /// Never in practice; see [`NetabaseStore::memory`].
    fn open_memory() -> Result<NetabaseStore<Self, MemoryBackend>> {
        NetabaseStore::memory()
    }

    /// Opens (or creates) the redb database file at `path`: the embedded default.
    ///
    /// # Errors
    /// As [`NetabaseStore::redb`].
    #[cfg(feature = "redb")]
    fn open_redb(
        path: impl AsRef<std::path::Path>,
    ) -> Result<NetabaseStore<Self, crate::backend::redb::RedbBackend>> {
        NetabaseStore::redb(path)
    }

    /// A redb store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// As [`NetabaseStore::temp`].
    #[cfg(feature = "redb")]
    fn open_temp() -> Result<NetabaseStore<Self, crate::backend::redb::RedbBackend>> {
        NetabaseStore::temp()
    }

    /// Opens (or creates) the sled database in the directory `path`.
    ///
    /// # Errors
    /// As [`NetabaseStore::sled`].
    #[cfg(feature = "sled")]
    fn open_sled(
        path: impl AsRef<std::path::Path>,
    ) -> Result<NetabaseStore<Self, crate::backend::sled::SledBackend>> {
        NetabaseStore::sled(path)
    }
}

impl<D: NetabaseDefinitionTrait> OpenStore for D {}

/// What [`NetabaseStore::stats`] reports: the entries of every table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// The backend's name.
    pub backend: &'static str,
    /// Every table, in ascending name order.
    pub tables: Vec<TableStats>,
}

impl StoreStats {
    /// The number of entries of `table` (0 when it does not exist).
    pub fn entries(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|t| t.name == table)
            .map_or(0, |t| t.entries)
    }
}

impl std::fmt::Display for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} store, {} tables", self.backend, self.tables.len())?;
        for table in &self.tables {
            writeln!(f, "  {:>10}  {}", table.entries, table.name)?;
        }
        Ok(())
    }
}

/// One table in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// The table's name (`<Definition>/<Model>` or `<Definition>/<Model>/<field>`).
    pub name: String,
    /// Its number of entries.
    pub entries: u64,
}
