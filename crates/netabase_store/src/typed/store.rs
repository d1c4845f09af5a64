//! `NetabaseStore`: a typed handle over one backend.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, ReadTxn, WriteTxn};
use crate::config::{BackendStore, FileConfig};
use crate::error::{NetabaseError, Result};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::tree::Tree;
use super::txn::{ReadOnly, ReadWrite, TxnGuard};

/// The table that records the storage format and the schemas written to a database.
pub const META_TABLE: &str = "__netabase/meta";

/// The storage format this build reads and writes (keys, values and table layout).
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &[u8] = b"format";

/// A typed store of the models of definition `D` on backend `B`.
///
/// Cloning is cheap (an `Arc`); clones share the database.
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
/// let store = NetabaseStore::<AppDefinition, _>::memory()?;
/// let notes = store.open_tree::<Note>();
/// notes.put(Note { id: 1, text: "hello".into() })?;
/// assert_eq!(notes.get(NotePrimaryKey(1))?.map(|n| n.text), Some("hello".to_string()));
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub struct NetabaseStore<D, B> {
    backend: Arc<B>,
    _definition: PhantomData<fn() -> D>,
}

impl<D, B> Clone for NetabaseStore<D, B> {
    fn clone(&self) -> Self {
        NetabaseStore {
            backend: Arc::clone(&self.backend),
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
    /// records this definition's schema in it.
    ///
    /// # Errors
    /// [`NetabaseError::UnsupportedFormat`] if the database was written in another
    /// format; [`NetabaseError::Backend`] on engine failure.
    pub fn from_backend(backend: B) -> Result<Self> {
        check_format::<D, B>(&backend, true)?;
        Ok(Self::from_checked(backend))
    }

    /// A store over a backend that is only ever read: checks the format but writes
    /// nothing (for read-only databases).
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend`].
    pub fn from_backend_read_only(backend: B) -> Result<Self> {
        check_format::<D, B>(&backend, false)?;
        Ok(Self::from_checked(backend))
    }

    fn from_checked(backend: B) -> Self {
        NetabaseStore {
            backend: Arc::new(backend),
            _definition: PhantomData,
        }
    }

    /// The backend under the store.
    pub fn backend(&self) -> &B {
        &self.backend
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
    /// [`NetabaseError::Backend`] when the engine cannot start one.
    pub fn read(&self) -> Result<TxnGuard<'_, D, B, ReadOnly>> {
        Ok(TxnGuard::new(self.backend.begin_read()?))
    }

    /// The names of every table in the database, in ascending order: model tables,
    /// index tables, netabase's own metadata, and tables of other definitions sharing
    /// the database. For inspection and debugging.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn tree_names(&self) -> Result<Vec<String>> {
        self.backend.begin_read()?.table_names()
    }

    /// The number of entries of every table, read in one read transaction (one snapshot
    /// on backends with snapshot reads). For inspection and debugging: counting is a
    /// full scan on some engines (sled).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
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

    /// Begins a write transaction. Everything written through it becomes visible at once
    /// on [`TxnGuard::commit`]; dropped without commit, nothing is applied. One write
    /// transaction runs at a time: this waits for the previous one to end.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] when the engine cannot start one.
    pub fn write(&self) -> Result<TxnGuard<'_, D, B, ReadWrite>> {
        Ok(TxnGuard::new(self.backend.begin_write()?))
    }
}

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

fn check_format<D: NetabaseDefinitionTrait, B: Backend>(backend: &B, record: bool) -> Result<()> {
    let schema = schema_descriptor::<D>();
    let schema_key = format!("schema/{}", D::NAME);
    let (format, stored_schema) = {
        let txn = backend.begin_read()?;
        (
            txn.get(META_TABLE, FORMAT_KEY)?,
            txn.get(META_TABLE, schema_key.as_bytes())?,
        )
    };
    match format {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    NetabaseError::decode(META_TABLE, FORMAT_KEY, "format version is not 4 bytes")
                })?;
            if found != FORMAT_VERSION {
                return Err(NetabaseError::UnsupportedFormat {
                    table: META_TABLE.to_owned(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        None if !record => {}
        None => {
            let txn = backend.begin_write()?;
            txn.put(META_TABLE, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
            txn.put(META_TABLE, schema_key.as_bytes(), schema.as_bytes())?;
            return txn.commit();
        }
    }
    if record && stored_schema.as_deref() != Some(schema.as_bytes()) {
        let txn = backend.begin_write()?;
        txn.put(META_TABLE, schema_key.as_bytes(), schema.as_bytes())?;
        txn.commit()?;
    }
    Ok(())
}

/// A readable description of the definition's tables, stored in the meta table so a
/// database can be inspected without the program that wrote it.
fn schema_descriptor<D: NetabaseDefinitionTrait>() -> String {
    let mut out = format!("definition {}\n", D::NAME);
    for model in D::MODELS {
        out.push_str(&format!(
            "model {} v{} table {}\n",
            model.name, model.version, model.table
        ));
        for key in model.secondary_keys {
            let kind = if key.unique { "unique" } else { "index" };
            out.push_str(&format!("  {kind} {} table {}\n", key.field, key.table));
        }
    }
    out
}

/// Opens a store over `backend` as `config` asks: read-only stores check the format
/// without writing anything.
fn from_configured<D: NetabaseDefinitionTrait, B: Backend>(
    backend: B,
    config: &FileConfig,
) -> Result<NetabaseStore<D, B>> {
    if config.read_only() {
        NetabaseStore::from_backend_read_only(backend)
    } else {
        NetabaseStore::from_backend(backend)
    }
}

impl<D: NetabaseDefinitionTrait> NetabaseStore<D, MemoryBackend> {
    /// A new, empty in-memory store with real transactions (snapshot reads, atomic
    /// commit, rollback on drop).
    ///
    /// # Errors
    /// Never in practice; the signature matches the other constructors.
    pub fn memory() -> Result<Self> {
        Self::from_backend(MemoryBackend::new())
    }
}

/// The in-memory store takes a [`FileConfig`] so that switching backend is one line. It
/// writes nothing to the path (it is a label); every other option either has its
/// meaning in memory or is refused, see [`FileConfig`].
impl<D: NetabaseDefinitionTrait> BackendStore<D> for NetabaseStore<D, MemoryBackend> {
    fn new(config: FileConfig) -> Result<Self> {
        const NAME: &str = "memory";
        if config.cache_size_is_set() {
            return Err(NetabaseError::Config {
                backend: NAME,
                option: "cache_size_mb",
                reason: "the in-memory backend holds everything in memory and has no cache".into(),
            });
        }
        if config.use_fsync_if_set() == Some(true) {
            return Err(NetabaseError::Config {
                backend: NAME,
                option: "use_fsync",
                reason: "the in-memory backend writes nothing to disk, so no commit is durable"
                    .into(),
            });
        }
        if !config.create_if_missing() {
            return Err(NetabaseError::Config {
                backend: NAME,
                option: "create_if_missing",
                reason: "an in-memory database never exists before it is created".into(),
            });
        }
        if config.read_only() && config.truncate() {
            return Err(NetabaseError::Config {
                backend: NAME,
                option: "truncate",
                reason: "a store opened read-only cannot be truncated".into(),
            });
        }
        // `truncate`: a new in-memory database is always empty.
        let backend = MemoryBackend::new();
        let backend = if config.read_only() {
            backend.into_read_only()
        } else {
            backend
        };
        from_configured(backend, &config)
    }

    /// Always fails: an in-memory database never exists before it is created.
    fn open(config: FileConfig) -> Result<Self> {
        Err(NetabaseError::Io {
            operation: "open the in-memory database",
            path: config.path().to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "an in-memory database never exists before it is created; use `new`",
            ),
        })
    }

    fn temp() -> Result<Self> {
        Self::memory()
    }
}

#[cfg(feature = "redb")]
impl<D: NetabaseDefinitionTrait> NetabaseStore<D, crate::backend::redb::RedbBackend> {
    /// Opens (or creates) the redb database file at `path`: the embedded default.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the file cannot be opened or is not a redb database;
    /// [`NetabaseError::UnsupportedFormat`] if it holds another netabase format.
    pub fn redb(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_backend(crate::backend::redb::RedbBackend::create(path)?)
    }

    /// A redb store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created.
    pub fn temp() -> Result<Self> {
        Self::from_backend(crate::backend::redb::RedbBackend::temp()?)
    }

    /// Compacts the database file, returning whether space was reclaimed. redb compacts
    /// only an idle database: every transaction and iterator of every handle on this
    /// store must be dropped first.
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only store; [`NetabaseError::Backend`] when
    /// a transaction is open (retry once it ends) or redb fails.
    pub fn compact(&self) -> Result<bool> {
        self.backend.compact()
    }

    /// Verifies the checksum of every page and repairs the allocator state; returns
    /// `true` when the database was intact. Like [`Self::compact`], it needs an idle
    /// database.
    ///
    /// # Errors
    /// As [`Self::compact`].
    pub fn check_integrity(&self) -> Result<bool> {
        self.backend.check_integrity()
    }
}

#[cfg(feature = "redb")]
impl<D: NetabaseDefinitionTrait> BackendStore<D>
    for NetabaseStore<D, crate::backend::redb::RedbBackend>
{
    fn new(config: FileConfig) -> Result<Self> {
        let backend = crate::backend::redb::RedbBackend::with_config(&config, false)?;
        from_configured(backend, &config)
    }

    fn open(config: FileConfig) -> Result<Self> {
        let backend = crate::backend::redb::RedbBackend::with_config(&config, true)?;
        from_configured(backend, &config)
    }

    fn temp() -> Result<Self> {
        Self::from_backend(crate::backend::redb::RedbBackend::temp()?)
    }
}

#[cfg(feature = "sled")]
impl<D: NetabaseDefinitionTrait> NetabaseStore<D, crate::backend::sled::SledBackend> {
    /// Opens (or creates) the sled database in the directory `path`. sled has had no
    /// stable release since 2021; prefer [`NetabaseStore::redb`] for new work. Read
    /// transactions on sled are not snapshots (see [`crate::backend::Capabilities`]).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if sled cannot open the directory;
    /// [`NetabaseError::UnsupportedFormat`] if it holds another netabase format.
    pub fn sled(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_backend(crate::backend::sled::SledBackend::open(path)?)
    }

    /// A sled store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created;
    /// [`NetabaseError::Backend`] if sled cannot open it.
    pub fn sled_temp() -> Result<Self> {
        Self::from_backend(crate::backend::sled::SledBackend::temp()?)
    }

    /// Writes every dirty buffer to disk and waits for it; returns the number of bytes
    /// written. Needed only with `use_fsync(false)`: otherwise every commit has flushed.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the write fails.
    pub fn flush(&self) -> Result<usize> {
        self.backend.flush()
    }

    /// A new identifier from sled's persistent counter: unique and increasing for the
    /// life of the database, across restarts too (not contiguous).
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only store; [`NetabaseError::Backend`] if
    /// sled fails to persist its counter.
    pub fn generate_id(&self) -> Result<u64> {
        self.backend.generate_id()
    }
}

#[cfg(feature = "sled")]
impl<D: NetabaseDefinitionTrait> BackendStore<D>
    for NetabaseStore<D, crate::backend::sled::SledBackend>
{
    fn new(config: FileConfig) -> Result<Self> {
        let backend = crate::backend::sled::SledBackend::with_config(&config, false)?;
        from_configured(backend, &config)
    }

    fn open(config: FileConfig) -> Result<Self> {
        let backend = crate::backend::sled::SledBackend::with_config(&config, true)?;
        from_configured(backend, &config)
    }

    fn temp() -> Result<Self> {
        Self::sled_temp()
    }
}
