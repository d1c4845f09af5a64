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

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

use super::{
    Backend, Capabilities, ChunkedRange, Cursor, Direction, Entry, EntryCursor, OwnedReadTxn,
    RawCursor, RawIter, RawRange, ReadTxn, ValueFn, WriteOp, WriteTxn,
};
use crate::config::FileConfig;
use crate::error::{NetabaseError, Result};

const NAME: &str = "sled";

/// The tree every sled database has; netabase never stores anything in it.
const DEFAULT_TREE: &[u8] = b"__sled__default";

fn err(operation: &'static str) -> impl FnOnce(sled::Error) -> NetabaseError {
    move |e| NetabaseError::backend(NAME, operation, e)
}

/// The database and the trees opened so far, shared by the backend and its read
/// transactions.
struct Shared {
    db: sled::Db,
    trees: RwLock<HashMap<String, sled::Tree>>,
}

impl Shared {
    /// The tree of `table` if it exists. Never creates one: a read must not write.
    fn existing(&self, table: &str) -> Result<Option<sled::Tree>> {
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
    fn open(&self, table: &str) -> Result<sled::Tree> {
        let mut trees = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(tree) = trees.get(table) {
            return Ok(tree.clone());
        }
        let tree = self.db.open_tree(table).map_err(err("open a tree"))?;
        trees.insert(table.to_owned(), tree.clone());
        Ok(tree)
    }

    fn table_names(&self) -> Vec<String> {
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
/// that replay, so removing an unfinished one loses no commit. (Issue #10: every copy
/// broken this way opened with exact indexes once the file was removed.)
///
/// The files are removed only after sled has refused to open with `Corruption` (so sled
/// held the directory's lock and no other process is writing a snapshot there), and
/// only the `.generating` ones; any other corruption is reported as it is.
fn open_discarding_torn_snapshots(engine: &sled::Config, dir: &Path) -> Result<sled::Db> {
    match engine.open() {
        Err(corrupt @ sled::Error::Corruption { .. }) => {
            let torn = torn_snapshots(dir);
            if torn.is_empty() {
                return Err(err("open the database directory")(corrupt));
            }
            for path in &torn {
                std::fs::remove_file(path).map_err(|source| NetabaseError::Io {
                    operation: "remove the torn sled snapshot",
                    path: path.clone(),
                    source,
                })?;
            }
            engine.open().map_err(err("open the database directory"))
        }
        opened => opened.map_err(err("open the database directory")),
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
            return Err(NetabaseError::ReadOnly {
                backend: NAME,
                operation: "generate an id",
            });
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
        }
    }

    fn begin_read(&self) -> Result<SledRead> {
        Ok(SledRead {
            shared: Arc::clone(&self.shared),
        })
    }

    fn begin_write(&self) -> Result<SledWrite<'_>> {
        if self.read_only {
            return Err(NetabaseError::ReadOnly {
                backend: NAME,
                operation: "begin a write transaction",
            });
        }
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(SledWrite {
            backend: self,
            overlay: RefCell::new(BTreeMap::new()),
            _guard: guard,
        })
    }
}

fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry> {
    item.map(|(k, v)| (k.to_vec(), v.to_vec()))
        .map_err(err("scan a tree"))
}

/// A lazy scan of one tree, in `direction`.
fn scan_tree(tree: &sled::Tree, range: &RawRange, direction: Direction) -> RawIter<'static> {
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
    shared: Arc<Shared>,
}

impl ReadTxn for SledRead {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.shared.existing(table)? {
            Some(tree) => Ok(tree
                .get(key)
                .map_err(err("read a key"))?
                .map(|v| v.to_vec())),
            None => Ok(None),
        }
    }

    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        match self.shared.existing(table)? {
            Some(tree) => f(tree.get(key).map_err(err("read a key"))?.as_deref()),
            None => f(None),
        }
    }

    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>> {
        self.scan(table, range, direction)
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        self.scan_cursor(table, range, direction)
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
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'static>> {
        Ok(match self.shared.existing(table)? {
            Some(tree) => scan_tree(&tree, &range, direction),
            None => Box::new(std::iter::empty()),
        })
    }

    fn scan_cursor(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'static>> {
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

/// The writes of one transaction to one table.
#[derive(Default)]
struct TableOverlay {
    /// Everything in the tree is hidden (and removed on commit).
    cleared: bool,
    /// Keys written since: `Some(value)`, or `None` for a removal.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A write transaction of [`SledBackend`]: an overlay over the trees, applied in one sled
/// transaction on commit.
pub struct SledWrite<'a> {
    backend: &'a SledBackend,
    overlay: RefCell<BTreeMap<String, TableOverlay>>,
    _guard: MutexGuard<'a, ()>,
}

impl SledWrite<'_> {
    /// The tree under the overlay of `table`, unless the transaction cleared it.
    fn base(&self, table: &str, overlay: Option<&TableOverlay>) -> Result<Option<sled::Tree>> {
        if overlay.is_some_and(|o| o.cleared) {
            return Ok(None);
        }
        self.backend.shared.existing(table)
    }

    /// At most `limit` entries of `range`, the overlay merged over the tree.
    fn merged(
        &self,
        table: &str,
        range: &RawRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        let mut base = match self.base(table, table_overlay)? {
            Some(tree) => scan_tree(&tree, range, direction),
            None => Box::new(std::iter::empty()),
        }
        .peekable();
        let bounds = range.as_bounds();
        type Writes<'w> = Box<dyn Iterator<Item = (&'w Vec<u8>, &'w Option<Vec<u8>>)> + 'w>;
        let writes: Writes<'_> = match table_overlay {
            Some(o) => {
                let iter = o.writes.range::<[u8], _>(bounds);
                match direction {
                    Direction::Forward => Box::new(iter),
                    Direction::Reverse => Box::new(iter.rev()),
                }
            }
            None => Box::new(std::iter::empty()),
        };
        let mut writes = writes.peekable();

        let mut out = Vec::with_capacity(limit.min(1024));
        while out.len() < limit {
            // Which side holds the next key in the direction of travel; the overlay wins
            // a tie, hiding the tree's older value.
            let from_overlay = match (base.peek(), writes.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(Err(_)), Some(_)) => false,
                (Some(Ok((bk, _))), Some((wk, _))) => {
                    let order = bk.as_slice().cmp(wk.as_slice());
                    let order = match direction {
                        Direction::Forward => order,
                        Direction::Reverse => order.reverse(),
                    };
                    match order {
                        Ordering::Less => false,
                        Ordering::Greater => true,
                        Ordering::Equal => {
                            base.next();
                            true
                        }
                    }
                }
            };
            if from_overlay {
                if let Some((key, Some(value))) = writes.next() {
                    out.push((key.clone(), value.clone()));
                }
            } else if let Some(item) = base.next() {
                out.push(item?);
            }
        }
        Ok(out)
    }
}

impl ReadTxn for SledWrite<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        if let Some(written) = table_overlay.and_then(|o| o.writes.get(key)) {
            return Ok(written.clone());
        }
        match self.base(table, table_overlay)? {
            Some(tree) => Ok(tree
                .get(key)
                .map_err(err("read a key"))?
                .map(|v| v.to_vec())),
            None => Ok(None),
        }
    }

    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>> {
        // Chunked, so that no borrow of the overlay is held between chunks and the
        // transaction stays writable while a scan is open.
        let table = table.to_owned();
        Ok(Box::new(ChunkedRange::new(
            range,
            direction,
            move |range, direction, limit| self.merged(&table, range, direction, limit),
        )))
    }

    fn len(&self, table: &str) -> Result<u64> {
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        let base = self.base(table, table_overlay)?;
        let mut len = base.as_ref().map_or(0, |tree| tree.len() as u64);
        if let Some(o) = table_overlay {
            for (key, write) in &o.writes {
                let in_base = match &base {
                    Some(tree) => tree.contains_key(key).map_err(err("read a key"))?,
                    None => false,
                };
                match (write, in_base) {
                    (Some(_), false) => len += 1,
                    (None, true) => len = len.saturating_sub(1),
                    _ => {}
                }
            }
        }
        Ok(len)
    }

    fn table_names(&self) -> Result<Vec<String>> {
        let mut names = self.backend.shared.table_names();
        names.extend(self.overlay.borrow().keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl WriteTxn for SledWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.overlay
            .borrow_mut()
            .entry(table.to_owned())
            .or_default()
            .writes
            .insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        let existed = self.get(table, key)?.is_some();
        if existed {
            self.overlay
                .borrow_mut()
                .entry(table.to_owned())
                .or_default()
                .writes
                .insert(key.to_vec(), None);
        }
        Ok(existed)
    }

    fn clear(&self, table: &str) -> Result<()> {
        let mut overlay = self.overlay.borrow_mut();
        let o = overlay.entry(table.to_owned()).or_default();
        o.cleared = true;
        o.writes.clear();
        Ok(())
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            match op {
                WriteOp::Put { table, key, value } => self.put(table, key, value)?,
                // A removal of a key that is nowhere is recorded too: cheaper than the
                // lookup that `delete` makes to answer whether it was there.
                WriteOp::Delete { table, key } => {
                    self.overlay
                        .borrow_mut()
                        .entry((*table).to_owned())
                        .or_default()
                        .writes
                        .insert(key.clone(), None);
                }
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        let overlay = self.overlay.into_inner();
        if overlay.is_empty() {
            return Ok(());
        }
        let shared = &self.backend.shared;
        let mut trees = Vec::with_capacity(overlay.len());
        let mut plans = Vec::with_capacity(overlay.len());
        for (name, table_overlay) in &overlay {
            let tree = shared.open(name)?;
            // The writer lock keeps other netabase writers out until the sled transaction
            // below has committed, so these are exactly the keys to remove.
            let cleared: Vec<sled::IVec> = if table_overlay.cleared {
                tree.iter()
                    .keys()
                    .collect::<sled::Result<_>>()
                    .map_err(err("scan a tree"))?
            } else {
                Vec::new()
            };
            trees.push(tree);
            plans.push((cleared, &table_overlay.writes));
        }
        let flush = self.backend.flush_on_commit;
        // sled may run the closure again after a conflict with a concurrent writer that
        // bypassed netabase; it only replays the overlay, so that is harmless.
        trees
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                for (view, (cleared, writes)) in views.iter().zip(&plans) {
                    for key in cleared {
                        view.remove(key.clone())?;
                    }
                    for (key, write) in writes.iter() {
                        match write {
                            Some(value) => view.insert(key.as_slice(), value.as_slice())?,
                            None => view.remove(key.as_slice())?,
                        };
                    }
                }
                if flush && let Some(view) = views.first() {
                    view.flush();
                }
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|e| NetabaseError::backend(NAME, "commit a write transaction", e))
    }
}

#[cfg(test)]
mod tests {
    //! The overlay checked against a `BTreeMap` model: every read inside a write
    //! transaction, and the committed state, must equal the model's.

    use super::*;
    use std::ops::Bound;

    type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

    fn collect(iter: RawIter<'_>) -> Result<Vec<Entry>> {
        iter.collect()
    }

    fn expected(model: &Model, table: &str, range: &RawRange, direction: Direction) -> Vec<Entry> {
        let mut out: Vec<Entry> = model
            .get(table)
            .into_iter()
            .flatten()
            .filter(|(k, _)| range.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if direction == Direction::Reverse {
            out.reverse();
        }
        out
    }

    fn bound(key: Vec<u8>, kind: u64) -> Bound<Vec<u8>> {
        match kind {
            0 => Bound::Included(key),
            1 => Bound::Excluded(key),
            _ => Bound::Unbounded,
        }
    }

    #[test]
    fn overlay_reads_and_commits_match_a_model() -> Result<()> {
        let backend = SledBackend::temp()?;
        let mut committed: Model = BTreeMap::new();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let tables = ["a", "b", "c"];
        for round in 0..80 {
            let mut model = committed.clone();
            let txn = backend.begin_write()?;
            for _ in 0..next(40) + 1 {
                let table = tables[next(3) as usize];
                let key = vec![next(30) as u8];
                match next(20) {
                    0..=9 => {
                        let value = vec![round as u8, next(255) as u8];
                        txn.put(table, &key, &value)?;
                        model
                            .entry(table.into())
                            .or_default()
                            .insert(key.clone(), value);
                    }
                    10..=15 => {
                        let was = model.get_mut(table).and_then(|t| t.remove(&key)).is_some();
                        assert_eq!(txn.delete(table, &key)?, was);
                    }
                    16 => {
                        let key2 = vec![next(30) as u8];
                        txn.apply(&[WriteOp::Delete {
                            table,
                            key: key2.clone(),
                        }])?;
                        if let Some(t) = model.get_mut(table) {
                            t.remove(&key2);
                        }
                    }
                    _ if next(4) == 0 => {
                        txn.clear(table)?;
                        model.remove(table);
                    }
                    _ => {}
                }
                // Every read path agrees with the model at every step.
                let range = RawRange {
                    start: bound(vec![next(32) as u8], next(3)),
                    end: bound(vec![next(32) as u8], next(3)),
                };
                for direction in [Direction::Forward, Direction::Reverse] {
                    assert_eq!(
                        collect(txn.range(table, range.clone(), direction)?)?,
                        expected(&model, table, &range, direction),
                        "range {range:?} {direction:?} of {table} in round {round}"
                    );
                }
                assert_eq!(
                    txn.len(table)?,
                    model.get(table).map_or(0, |t| t.len() as u64)
                );
                assert_eq!(
                    txn.get(table, &key)?,
                    model.get(table).and_then(|t| t.get(&key)).cloned()
                );
            }
            if next(3) == 0 {
                drop(txn);
            } else {
                txn.commit()?;
                committed = model;
            }
            let read = backend.begin_read()?;
            for table in tables {
                assert_eq!(
                    collect(read.range(table, RawRange::all(), Direction::Forward)?)?,
                    expected(&committed, table, &RawRange::all(), Direction::Forward),
                    "committed {table} after round {round}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_long_merged_scan_crosses_chunks() -> Result<()> {
        let backend = SledBackend::temp()?;
        let txn = backend.begin_write()?;
        for i in 0u32..3000 {
            txn.put("t", &(i * 2).to_be_bytes(), b"base")?;
        }
        txn.commit()?;
        let txn = backend.begin_write()?;
        for i in 0u32..3000 {
            txn.put("t", &(i * 2 + 1).to_be_bytes(), b"new")?;
            if i % 3 == 0 {
                txn.delete("t", &(i * 2).to_be_bytes())?;
            }
        }
        let keys: Vec<u32> = collect(txn.range("t", RawRange::all(), Direction::Reverse)?)?
            .into_iter()
            .map(|(k, _)| u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
            .collect();
        assert_eq!(keys.len(), 6000 - 1000);
        assert!(keys.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(txn.len("t")?, 5000);
        Ok(())
    }
}
