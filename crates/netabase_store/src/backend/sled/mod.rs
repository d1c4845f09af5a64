//! The sled backend (feature `sled`).
//!
//! sled 0.34 has had no stable release since 2021; redb is the default and the better
//! choice for new work. This backend exists for applications that already keep their
//! data in sled.
//!
//! Every netabase table is a sled tree of the same name.
//!
//! **Write transactions** are an overlay: a sorted map per table of the keys written
//! (`Some(value)`, or `None` for a removal) plus a `cleared` flag that hides the tree
//! underneath. Reads inside the transaction merge the overlay over the trees, range scans
//! included, so a transaction sees its own writes. On commit the overlay is applied in
//! one sled transaction over every touched tree, which sled commits atomically: other
//! readers see all of it or none of it. Dropped without commit, the overlay is thrown
//! away and sled never sees it. Netabase runs one write transaction at a time (a lock
//! held by the transaction), so the keys of a cleared tree, read just before the sled
//! transaction, are exactly the keys it removes.
//!
//! **Read transactions are not snapshots**: sled has no snapshot reads, so each read sees
//! the latest committed state, and two reads of one transaction may see different
//! commits. The backend declares it (`Capabilities::snapshot_reads == false`).
//!
//! **Durability**: with `use_fsync` (the default) every commit flushes sled's log to disk
//! before it returns; without it, sled's background flusher writes it within 500 ms and
//! a clean close flushes the rest.

//!
//! The module's files: this one opens the database and hands out transactions;
//! `read.rs` and `write.rs` (the overlay) are the two transactions.

mod read;
#[cfg(test)]
mod tests;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::{Backend, Capabilities, Entry};
use crate::config::{ConfiguredBackend, FileConfig};
use crate::error::{NetabaseError, Result};
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::store::NetabaseStore;

pub use read::SledRead;
pub use write::SledWrite;

/// A boxed iterator of copied entries.
type EntryIter<'a> = Box<dyn Iterator<Item = Result<Entry>> + 'a>;

const NAME: &str = "sled";

/// The tree every sled database has; netabase never stores anything in it.
const DEFAULT_TREE: &[u8] = b"__sled__default";

pub(super) fn err(operation: &'static str) -> impl FnOnce(sled::Error) -> NetabaseError {
    move |e| NetabaseError::backend(NAME, operation, e)
}

/// The database and the trees opened so far, shared by the backend and its read
/// transactions.
pub(super) struct Shared {
    pub(super) db: sled::Db,
    trees: RwLock<HashMap<String, sled::Tree>>,
    /// The directory, as [`canonical`] gives it.
    dir: PathBuf,
}

impl Drop for Shared {
    /// Notes that this process closed the directory, so that an open that follows can
    /// wait for sled's flush thread to let go of its lock ([`open_waiting_for_lock`]).
    fn drop(&mut self) {
        let mut closed = match closed_here().lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        closed.insert(self.dir.clone(), std::time::Instant::now());
    }
}

/// The directories this process closed, and when.
fn closed_here() -> &'static Mutex<HashMap<PathBuf, std::time::Instant>> {
    static CLOSED: std::sync::OnceLock<Mutex<HashMap<PathBuf, std::time::Instant>>> =
        std::sync::OnceLock::new();
    CLOSED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `dir` with symbolic links and relative parts resolved, or as given when it cannot
/// be.
fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

impl Shared {
    /// The tree of `table` if it exists. Never creates one: a read must not write.
    pub(super) fn existing(&self, table: &str) -> Result<Option<sled::Tree>> {
        if let Some(tree) = self
            .trees
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(table)
        {
            return Ok(Some(tree.clone()));
        }
        let exists = self
            .db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == table.as_bytes());
        if exists {
            self.open(table).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The tree of `table`, created if needed.
    pub(super) fn open(&self, table: &str) -> Result<sled::Tree> {
        let mut trees = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(tree) = trees.get(table) {
            return Ok(tree.clone());
        }
        let tree = self.db.open_tree(table).map_err(err("open a tree"))?;
        trees.insert(table.to_owned(), tree.clone());
        Ok(tree)
    }

    pub(super) fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .filter(|name| name.as_ref() != DEFAULT_TREE)
            .map(|name| String::from_utf8_lossy(&name).into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Opens sled, and when it reports corruption because a crash left a torn snapshot,
/// removes that snapshot and opens again.
///
/// sled 0.34.7 writes a snapshot to `snap.<lsn>.generating`, fsyncs it, then renames it
/// to `snap.<lsn>` (`write_snapshot` in `src/pagecache/snapshot.rs`); the previous
/// snapshot is deleted only after the rename. A process killed before the rename leaves
/// the `.generating` file behind, and `read_snapshot` (which lists every `snap.*` file
/// and takes the greatest name) then picks it, finds a bad checksum and fails with
/// "Read corrupted data at file offset None" (sled issues #1527 and #1509). Such a file
/// was never a committed snapshot: sled itself deletes it with the other stale snapshots
/// once its next snapshot is renamed. Without it, recovery starts from the previous
/// snapshot (kept until the rename for exactly this case) and replays the log, which is
/// what sled does after any crash during snapshot generation; a snapshot only shortens
/// that replay, so removing an unfinished one loses no commit. (In testing, every copy
/// broken this way opened with exact indexes once the file was removed.)
///
/// The files are removed only after sled has refused to open with `Corruption` (so sled
/// held the directory's lock and no other process is writing a snapshot there), and
/// only the `.generating` ones; any other corruption is reported as it is.
fn open_discarding_torn_snapshots(engine: &sled::Config, dir: &Path) -> Result<sled::Db> {
    const OPERATION: &str = "open the database directory";
    let failed = |e| NetabaseError::backend_at(NAME, OPERATION, dir, e);
    match open_waiting_for_lock(engine, dir) {
        Err(corrupt @ sled::Error::Corruption { .. }) => {
            let torn = torn_snapshots(dir);
            if torn.is_empty() {
                return Err(failed(corrupt));
            }
            for path in &torn {
                std::fs::remove_file(path).map_err(|source| {
                    NetabaseError::io("remove the torn sled snapshot", path.clone(), source)
                })?;
            }
            engine.open().map_err(failed)
        }
        opened => opened.map_err(failed),
    }
}

/// How long after this process closed a directory an open waits for its lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens `engine` (the database in `dir`). sled unlocks a directory only when its
/// background flush thread has noticed that the last handle is gone, a little after
/// the drop: an open of a directory this process closed less than [`LOCK_WAIT`] ago
/// waits for the lock. A lock held by another process is reported at once.
fn open_waiting_for_lock(engine: &sled::Config, dir: &Path) -> sled::Result<sled::Db> {
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match engine.open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                let closed = match closed_here().lock() {
                    Ok(g) => g.get(&canonical(dir)).copied(),
                    Err(poisoned) => poisoned.into_inner().get(&canonical(dir)).copied(),
                };
                if closed.is_none_or(|at| at.elapsed() >= LOCK_WAIT) {
                    return Err(sled::Error::Io(e));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            opened => return opened,
        }
    }
}

/// The `snap.*.generating` files in `dir`: snapshots sled began and never finished.
fn torn_snapshots(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("snap.") && name.ends_with(".generating"))
        })
        .collect()
}

/// A sled database directory.
pub struct SledBackend {
    shared: Arc<Shared>,
    /// Held by the one write transaction at a time.
    writer: Mutex<()>,
    read_only: bool,
    flush_on_commit: bool,
    config: sled::Config,
    path: PathBuf,
    /// Keeps a temporary database's directory alive; removed on drop (after `shared`).
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("flush_on_commit", &self.flush_on_commit)
            .field("cache_capacity", &self.config.cache_capacity)
            .finish_non_exhaustive()
    }
}

impl SledBackend {
    /// Opens the database in the directory `path`, creating it if it does not exist,
    /// with the defaults of [`FileConfig`].
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if sled cannot open the directory (for instance because
    /// another process has it open).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_config(&FileConfig::new(path.as_ref()), false)
    }

    /// Opens the database described by `config` (see [`FileConfig`] for what each option
    /// does on sled). With `must_exist`, a missing database is an error even if
    /// `create_if_missing` is on.
    ///
    /// # Errors
    /// [`NetabaseError::Config`] naming a refused option; [`NetabaseError::Io`] (kind
    /// `NotFound`) when the database is missing and may not be created;
    /// [`NetabaseError::Backend`] if sled cannot open or truncate it.
    pub fn with_config(config: &FileConfig, must_exist: bool) -> Result<Self> {
        config.check(NAME, must_exist)?;
        if config.verify_on_open() {
            return Err(NetabaseError::config(
                NAME,
                "verify_on_open",
                "sled has no integrity check to run",
            ));
        }
        // `durable_every` is sled's background flush interval; a zero interval means
        // "every commit durable", which is `flush_on_commit` (sled takes no zero period).
        let every_ms = u64::try_from(config.durable_every().as_millis()).unwrap_or(u64::MAX);
        let flush_on_commit = config.use_fsync() || every_ms == 0;
        let engine = sled::Config::new()
            .path(config.path())
            .cache_capacity(config.cache_size_bytes())
            .flush_every_ms(Some(every_ms.max(1)));
        let db = open_discarding_torn_snapshots(&engine, config.path())?;
        let backend = SledBackend {
            shared: Arc::new(Shared {
                db,
                trees: RwLock::new(HashMap::new()),
                dir: canonical(config.path()),
            }),
            writer: Mutex::new(()),
            read_only: config.read_only(),
            flush_on_commit,
            config: engine,
            path: config.path().to_path_buf(),
            _temp: None,
        };
        if config.truncate() {
            backend.drop_all_trees()?;
        }
        Ok(backend)
    }

    /// A database in a new temporary directory, deleted when the backend is dropped.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created;
    /// [`NetabaseError::Backend`] if sled cannot open it.
    pub fn temp() -> Result<Self> {
        let dir = super::temp_dir("netabase-sled-")?;
        let mut backend = Self::with_config(&FileConfig::new(dir.path().join("db")), false)?;
        backend._temp = Some(dir);
        Ok(backend)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store refuses write transactions. sled has no read-only mode: the
    /// directory is still opened (and locked) read-write by sled, and netabase refuses
    /// every write.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether every commit flushes to disk before returning (`use_fsync`).
    pub fn flushes_on_commit(&self) -> bool {
        self.flush_on_commit
    }

    /// The configuration sled was opened with (its `cache_capacity` is the configured
    /// cache size in bytes).
    pub fn engine_config(&self) -> &sled::Config {
        &self.config
    }

    /// The underlying sled database. Writing to netabase's trees through it bypasses
    /// index maintenance and the write lock; use it to read or for trees of your own.
    pub fn database(&self) -> &sled::Db {
        &self.shared.db
    }

    /// Writes every dirty buffer to disk and waits for it (fsync); returns the number of
    /// bytes written.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the write fails.
    pub fn flush(&self) -> Result<usize> {
        self.shared.db.flush().map_err(err("flush"))
    }

    /// A new identifier, unique and increasing for the life of the database (also across
    /// restarts; not contiguous).
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only store; [`NetabaseError::Backend`] if
    /// sled fails to persist its counter.
    pub fn generate_id(&self) -> Result<u64> {
        if self.read_only {
            return Err(NetabaseError::read_only(NAME, "NetabaseStore::generate_id"));
        }
        self.shared.db.generate_id().map_err(err("generate an id"))
    }

    /// Removes every tree (for `truncate`), then flushes.
    fn drop_all_trees(&self) -> Result<()> {
        for name in self.shared.db.tree_names() {
            if name.as_ref() == DEFAULT_TREE {
                self.shared
                    .db
                    .clear()
                    .map_err(err("truncate the database"))?;
            } else {
                self.shared
                    .db
                    .drop_tree(&name)
                    .map_err(err("truncate the database"))?;
            }
        }
        self.shared
            .trees
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.flush().map(|_| ())
    }
}

impl Backend for SledBackend {
    type Read = SledRead;
    type Write<'a> = SledWrite<'a>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot_reads: false,
            persistent: self._temp.is_none(),
            read_your_writes: true,
            idle_transactions: true,
        }
    }

    fn begin_read(&self) -> Result<SledRead> {
        Ok(SledRead {
            shared: Arc::clone(&self.shared),
        })
    }

    fn begin_write(&self) -> Result<SledWrite<'_>> {
        if self.read_only {
            return Err(NetabaseError::read_only(NAME, "NetabaseStore::write"));
        }
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(SledWrite {
            backend: self,
            overlay: std::cell::RefCell::new(std::collections::BTreeMap::new()),
            _guard: guard,
        })
    }
}

impl<D: NetabaseDefinitionTrait> NetabaseStore<D, SledBackend> {
    /// Opens (or creates) the sled database in the directory `path`. sled has had no
    /// stable release since 2021; prefer [`NetabaseStore::redb`] for new work. Read
    /// transactions on sled are not snapshots (see [`crate::backend::Capabilities`]).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] naming the directory if sled cannot open it;
    /// [`NetabaseError::UnsupportedFormat`] if it holds another netabase format.
    pub fn sled(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_backend(SledBackend::open(path)?)
    }

    /// A sled store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created;
    /// [`NetabaseError::Backend`] if sled cannot open it.
    pub fn sled_temp() -> Result<Self> {
        Self::from_backend(SledBackend::temp()?)
    }

    /// Writes every dirty buffer to disk and waits for it; returns the number of bytes
    /// written. Needed only with `use_fsync(false)`: otherwise every commit has flushed.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the write fails.
    pub fn flush(&self) -> Result<usize> {
        self.backend().flush()
    }

    /// A new identifier from sled's persistent counter: unique and increasing for the
    /// life of the database, across restarts too (not contiguous).
    ///
    /// # Errors
    /// [`NetabaseError::ReadOnly`] on a read-only store; [`NetabaseError::Backend`] if
    /// sled fails to persist its counter.
    pub fn generate_id(&self) -> Result<u64> {
        self.backend().generate_id()
    }
}

impl ConfiguredBackend for SledBackend {
    fn open_configured(config: &FileConfig, must_exist: bool) -> Result<Self> {
        Self::with_config(config, must_exist)
    }

    fn open_temporary() -> Result<Self> {
        Self::temp()
    }
}
