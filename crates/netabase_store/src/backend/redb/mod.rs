//! The redb backend: the embedded default, a single crash-safe file.
//!
//! Every netabase table is a redb table of `&[u8] -> &[u8]`. Read transactions cache the
//! tables they open (redb's read-only tables are owned handles), so a run of lookups
//! pays for opening a table once. Inside a write transaction redb's table handles borrow
//! the transaction, so each call opens the table it needs and batches ([`WriteTxn::apply`])
//! open each table once.

//!
//! The module's files: this one opens the database and hands out transactions;
//! `read.rs` and `write.rs` are the two transactions; `damage.rs` turns redb's panics on
//! damaged data into errors; `create.rs` creates a new database file atomically.

mod create;
mod damage;
mod read;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, TableDefinition};

use super::{Backend, Capabilities, ReadTxn, WriteTxn};
use crate::config::{ConfiguredBackend, FileConfig};
use crate::error::{NetabaseError, Result};
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::store::NetabaseStore;

use damage::Damage;
pub use read::RedbRead;
pub use write::RedbWrite;

const NAME: &str = "redb";

type Bytes = &'static [u8];

fn definition(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

fn err(operation: &'static str) -> impl FnOnce(redb::Error) -> NetabaseError {
    move |e| NetabaseError::backend(NAME, operation, e)
}

/// The opened database: writable, or opened with redb's read-only mode.
enum Db {
    ReadWrite(redb::Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

/// A redb database file.
///
/// The database sits behind a lock that transactions take only for the instant they
/// begin (redb's transactions own what they need), so that [`RedbBackend::compact`] and
/// [`RedbBackend::check_integrity`], which redb runs on `&mut Database`, work through a
/// shared handle. They never wait: when a transaction is open or starting they fail
/// with an error that says so, and can be retried.
pub struct RedbBackend {
    db: RwLock<Db>,
    durability: redb::Durability,
    /// With `Durability::None`: the interval after which the next commit is made durable
    /// (`FileConfig::durable_every`), bounding what a crash loses. `None`: never.
    durable_every: Option<Duration>,
    /// When the last durable commit returned (or the database was opened); shared with
    /// the write transaction that will commit durably, which updates it.
    last_durable: Arc<Mutex<Instant>>,
    cache_size: usize,
    path: Option<PathBuf>,
    /// Whether the data outlives the backend (not for temporary or in-memory ones).
    persistent: bool,
    damage: Damage,
    /// Keeps a temporary database's directory alive; removed on drop.
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .field("read_only", &self.is_read_only())
            .field("durability", &self.durability)
            .field("durable_every", &self.durable_every)
            .field("cache_size", &self.cache_size)
            .finish_non_exhaustive()
    }
}

/// redb's own default cache size, used by [`RedbBackend::create`].
const REDB_DEFAULT_CACHE: usize = 1024 * 1024 * 1024;

impl RedbBackend {
    /// Opens the database at `path`, creating it if it does not exist, with redb's
    /// defaults (1 GiB cache, durable commits). [`RedbBackend::with_config`] takes a
    /// [`FileConfig`].
    ///
    /// A new database is built under a temporary name in the same directory and moved
    /// into place complete, so a process killed while creating it leaves either no
    /// database or an empty one that opens. A file left by an interrupted create that did
    /// not do this (redb's own `Database::create`: a file with no header and nothing
    /// committed) is replaced by a new empty database.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the file cannot be created or is not a redb database.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let db = create::open_or_create(path, &redb::Database::builder(), true)?;
        let mut backend = Self::from_database(db, Some(path.to_path_buf()));
        backend.cache_size = REDB_DEFAULT_CACHE;
        Ok(backend)
    }

    /// Opens the database described by `config` (see [`FileConfig`] for what each
    /// option does on redb). With `must_exist`, a missing database is an error even if
    /// `create_if_missing` is on. Creation is atomic as in [`RedbBackend::create`]; a
    /// file left by an interrupted create is replaced only when the open may create the
    /// database, and is otherwise an error that says what it is.
    ///
    /// # Errors
    /// [`NetabaseError::Config`] naming a refused option; [`NetabaseError::Io`] (kind
    /// `NotFound`) when the database is missing and may not be created;
    /// [`NetabaseError::Backend`] if redb cannot open the file (for instance because
    /// another process has it open).
    pub fn with_config(config: &FileConfig, must_exist: bool) -> Result<Self> {
        config.check(NAME, must_exist)?;
        let cache_size = usize::try_from(config.cache_size_bytes()).map_err(|_| {
            NetabaseError::config(
                NAME,
                "cache_size_mb",
                format!(
                    "{} MiB does not fit in this platform's address space",
                    config.cache_size_mb()
                ),
            )
        })?;
        if config.verify_on_open() && config.read_only() {
            return Err(NetabaseError::config(
                NAME,
                "verify_on_open",
                "redb's integrity check repairs and commits, which a read-only open cannot",
            ));
        }
        let mut builder = redb::Database::builder();
        builder.set_cache_size(cache_size);
        builder.set_check_integrity_on_open(config.verify_on_open());
        let path = config.path();
        let db = if config.read_only() {
            Db::ReadOnly(
                open_guarded(path, || builder.open_read_only(path)).map_err(|e| {
                    // A file an interrupted create left behind: say so rather than redb's
                    // "magic number mismatch".
                    let uninitialised = std::fs::File::open(path)
                        .and_then(|mut f| create::never_initialised(&mut f))
                        .unwrap_or(false);
                    if uninitialised {
                        create::uninitialised_error(path)
                    } else {
                        e
                    }
                })?,
            )
        } else {
            let may_create = config.create_if_missing() && !must_exist;
            Db::ReadWrite(create::open_or_create(path, &builder, may_create)?)
        };
        let backend = RedbBackend {
            db: RwLock::new(db),
            durability: if config.use_fsync() {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            },
            durable_every: (!config.use_fsync()).then(|| config.durable_every()),
            last_durable: Arc::new(Mutex::new(Instant::now())),
            cache_size,
            path: Some(path.to_path_buf()),
            persistent: true,
            damage: Damage::default(),
            _temp: None,
        };
        if config.truncate() {
            backend.delete_all_tables()?;
        }
        Ok(backend)
    }

    /// A database held in memory by redb itself (nothing is written to disk; the data
    /// is gone when the backend is dropped).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if redb cannot set it up.
    pub fn in_memory() -> Result<Self> {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| NetabaseError::backend(NAME, "create an in-memory database", e))?;
        let mut backend = Self::from_database(db, None);
        backend.persistent = false;
        Ok(backend)
    }

    /// A database in a new temporary directory, deleted when the backend is dropped.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created.
    pub fn temp() -> Result<Self> {
        let dir = super::temp_dir("netabase-")?;
        let mut backend = Self::create(dir.path().join("db.redb"))?;
        backend._temp = Some(dir);
        backend.persistent = false;
        Ok(backend)
    }

    /// Wraps an already opened redb database (for callers that configure it themselves).
    /// Commits are durable; the cache size is whatever the database was opened with
    /// ([`RedbBackend::cache_size`] then reports 0, unknown).
    pub fn from_database(db: redb::Database, path: Option<PathBuf>) -> Self {
        RedbBackend {
            db: RwLock::new(Db::ReadWrite(db)),
            durability: redb::Durability::Immediate,
            durable_every: None,
            last_durable: Arc::new(Mutex::new(Instant::now())),
            cache_size: 0,
            path,
            persistent: true,
            damage: Damage::default(),
            _temp: None,
        }
    }

    /// The database file, when it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the database was opened read-only.
    pub fn is_read_only(&self) -> bool {
        matches!(*self.lock_read(), Db::ReadOnly(_))
    }

    /// The durability of write transactions: [`redb::Durability::Immediate`], or
    /// [`redb::Durability::None`] when opened with `use_fsync(false)` (then one commit
    /// every [`RedbBackend::durable_every`] is made durable, see
    /// [`FileConfig`]'s bound).
    pub fn durability(&self) -> redb::Durability {
        self.durability
    }

    /// With `use_fsync(false)`, the interval after which the next commit is made durable
    /// (`FileConfig::durable_every`); `None` when every commit is durable.
    pub fn durable_every(&self) -> Option<Duration> {
        self.durable_every
    }

    /// The cache size in bytes handed to redb's `Builder::set_cache_size`.
    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// redb's cache statistics (collected only when redb's `cache_metrics` feature is on).
    pub fn cache_stats(&self) -> redb::CacheStats {
        match &*self.lock_read() {
            Db::ReadWrite(db) => db.cache_stats(),
            Db::ReadOnly(db) => db.cache_stats(),
        }
    }

    /// Compacts the file, returning whether anything was reclaimed.
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only database; [`NetabaseError::Backend`]
    /// when a transaction is open or starting (redb compacts only an idle database:
    /// drop open transactions and iterators, then retry) or when redb fails.
    pub fn compact(&self) -> Result<bool> {
        self.with_exclusive("NetabaseStore::compact", |db| {
            db.compact()
                .map_err(|e| NetabaseError::backend(NAME, "compact the database", e))
        })
    }

    /// Verifies the checksums of the whole file and repairs the allocator state;
    /// returns `true` when the database was intact.
    ///
    /// # Errors
    /// As [`RedbBackend::compact`].
    pub fn check_integrity(&self) -> Result<bool> {
        self.with_exclusive("NetabaseStore::check_integrity", |db| {
            db.check_integrity()
                .map_err(|e| NetabaseError::backend(NAME, "check the database integrity", e))
        })
    }

    fn with_exclusive<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut redb::Database) -> Result<T>,
    ) -> Result<T> {
        let mut guard = match self.db.try_write() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(NetabaseError::backend(
                    NAME,
                    operation,
                    "a transaction is starting on another thread; retry once none is open",
                ));
            }
        };
        match &mut *guard {
            Db::ReadWrite(db) => self.damage.run(operation, None, || f(db)),
            Db::ReadOnly(_) => Err(NetabaseError::read_only(NAME, operation)),
        }
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, Db> {
        // Nothing is ever left half-changed under the lock; a poisoned lock is usable.
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes every table in one durable transaction (for `truncate`).
    fn delete_all_tables(&self) -> Result<()> {
        let txn = self.begin_write()?;
        let names = txn.table_names()?;
        for name in &names {
            txn.txn
                .delete_table(definition(name))
                .map_err(|e| err("delete a table")(e.into()))?;
        }
        txn.commit()
    }
}

impl Backend for RedbBackend {
    type Read = RedbRead;
    type Write<'a> = RedbWrite;

    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot_reads: true,
            persistent: self.persistent,
            read_your_writes: true,
            idle_transactions: true,
        }
    }

    fn begin_read(&self) -> Result<RedbRead> {
        let txn = self.damage.run("begin a read transaction", None, || {
            match &*self.lock_read() {
                Db::ReadWrite(db) => db.begin_read(),
                Db::ReadOnly(db) => db.begin_read(),
            }
            .map_err(|e| err("begin a read transaction")(e.into()))
        })?;
        Ok(RedbRead::new(txn, self.damage.clone()))
    }

    fn begin_write(&self) -> Result<RedbWrite> {
        const OPERATION: &str = "begin a write transaction";
        if self.damage.is_damaged() {
            return Err(NetabaseError::corrupted(
                NAME,
                OPERATION,
                None,
                "an earlier operation found the database damaged",
            ));
        }
        let (txn, promote) = self.damage.run(OPERATION, None, || {
            let mut txn = match &*self.lock_read() {
                Db::ReadWrite(db) => db.begin_write().map_err(|e| err(OPERATION)(e.into()))?,
                Db::ReadOnly(_) => {
                    return Err(NetabaseError::read_only(NAME, "NetabaseStore::write"));
                }
            };
            // With `Durability::None`, redb keeps commits in memory until a durable
            // commit writes them all (redb's `Durability::None` docs); promoting one
            // commit per interval bounds what a crash loses. The check runs after
            // `begin_write`, which waits for the previous writer, so the mark it reads is
            // that writer's.
            let promote = self.durable_every.is_some_and(|every| {
                self.last_durable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .elapsed()
                    >= every
            });
            let durability = if promote {
                redb::Durability::Immediate
            } else {
                self.durability
            };
            txn.set_durability(durability)
                .map_err(|e| err("set the commit durability")(e.into()))?;
            Ok((txn, promote))
        })?;
        Ok(RedbWrite {
            txn,
            damage: self.damage.clone(),
            durable_mark: promote.then(|| Arc::clone(&self.last_durable)),
        })
    }
}

/// Opens the database at `path` with `open`, reporting a panic inside redb (a damaged
/// file) as [`NetabaseError::Corrupted`], and every error with the path.
fn open_guarded<T>(
    path: &Path,
    open: impl FnOnce() -> std::result::Result<T, redb::DatabaseError>,
) -> Result<T> {
    const OPERATION: &str = "open the database file";
    Damage::default()
        .run(OPERATION, None, || {
            open().map_err(|e| NetabaseError::backend_at(NAME, OPERATION, path, e))
        })
        .map_err(|e| match e {
            NetabaseError::Corrupted(mut c) => {
                c.detail = format!("{} (file `{}`)", c.detail, path.display());
                NetabaseError::Corrupted(c)
            }
            other => other,
        })
}

/// The names of the tables `list` yields, sorted.
pub(super) fn sorted_names(
    list: std::result::Result<impl Iterator<Item = redb::UntypedTableHandle>, redb::StorageError>,
) -> Result<Vec<String>> {
    use redb::TableHandle;
    let mut names: Vec<String> = list
        .map_err(|e| err("list tables")(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    names.sort();
    Ok(names)
}

impl<D: NetabaseDefinitionTrait> NetabaseStore<D, RedbBackend> {
    /// Opens (or creates) the redb database file at `path`: the embedded default.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] naming the file if it cannot be opened or is not a redb
    /// database; [`NetabaseError::UnsupportedFormat`] if it holds another netabase format.
    pub fn redb(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_backend(RedbBackend::create(path)?)
    }

    /// A redb store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created.
    pub fn temp() -> Result<Self> {
        Self::from_backend(RedbBackend::temp()?)
    }

    /// Compacts the database file, returning whether space was reclaimed. redb compacts
    /// only an idle database: every transaction and iterator of every handle on this
    /// store must be dropped first.
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only store; [`NetabaseError::Backend`] when
    /// a transaction is open (retry once it ends) or redb fails.
    pub fn compact(&self) -> Result<bool> {
        self.backend().compact()
    }

    /// Verifies the checksum of every page and repairs the allocator state; returns
    /// `true` when the database was intact. Like [`Self::compact`], it needs an idle
    /// database.
    ///
    /// # Errors
    /// As [`Self::compact`].
    pub fn check_integrity(&self) -> Result<bool> {
        self.backend().check_integrity()
    }
}

impl ConfiguredBackend for RedbBackend {
    fn open_configured(config: &FileConfig, must_exist: bool) -> Result<Self> {
        Self::with_config(config, must_exist)
    }

    fn open_temporary() -> Result<Self> {
        Self::temp()
    }
}
