//! The redb backend: the embedded default, a single crash-safe file.
//!
//! Every netabase table is a redb table of `&[u8] -> &[u8]`. Read transactions cache the
//! tables they open (redb's read-only tables are owned handles), so a run of lookups
//! pays for opening a table once. Inside a write transaction redb's table handles borrow
//! the transaction, so each call opens the table it needs and batches ([`WriteTxn::apply`])
//! open each table once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};

use super::{
    Backend, Capabilities, ChunkedRange, Direction, Entry, OwnedReadTxn, RawIter, RawRange,
    ReadTxn, WriteOp, WriteTxn,
};
use crate::error::{NetabaseError, Result};

const NAME: &str = "redb";

type Bytes = &'static [u8];

fn definition(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

fn err(operation: &'static str) -> impl FnOnce(redb::Error) -> NetabaseError {
    move |e| NetabaseError::backend(NAME, operation, e)
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A redb database file.
pub struct RedbBackend {
    db: redb::Database,
    path: Option<PathBuf>,
    /// Keeps a temporary database's directory alive; removed on drop.
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the database at `path`, creating it if it does not exist.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the file cannot be created or is not a redb database.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let db = redb::Database::create(path)
            .map_err(|e| NetabaseError::backend(NAME, "open the database file", e))?;
        Ok(Self::from_database(db, Some(path.to_path_buf())))
    }

    /// A database in a new temporary directory, deleted when the backend is dropped.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created.
    pub fn temp() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("netabase-")
            .tempdir()
            .map_err(|source| NetabaseError::Io {
                operation: "create a temporary directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let mut backend = Self::create(dir.path().join("db.redb"))?;
        backend._temp = Some(dir);
        Ok(backend)
    }

    /// Wraps an already opened redb database (for callers that configure it themselves).
    pub fn from_database(db: redb::Database, path: Option<PathBuf>) -> Self {
        RedbBackend {
            db,
            path,
            _temp: None,
        }
    }

    /// The database file, when it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The underlying redb database.
    pub fn database(&self) -> &redb::Database {
        &self.db
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
            persistent: self._temp.is_none(),
        }
    }

    fn begin_read(&self) -> Result<RedbRead> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| err("begin a read transaction")(e.into()))?;
        Ok(RedbRead {
            txn,
            tables: RefCell::new(HashMap::new()),
        })
    }

    fn begin_write(&self) -> Result<RedbWrite> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| err("begin a write transaction")(e.into()))?;
        Ok(RedbWrite { txn })
    }
}

/// A read transaction of [`RedbBackend`].
pub struct RedbRead {
    txn: redb::ReadTransaction,
    /// Tables opened so far; `None` records a table that does not exist.
    tables: RefCell<HashMap<String, Option<redb::ReadOnlyTable<Bytes, Bytes>>>>,
}

impl RedbRead {
    /// Runs `f` on the table, or returns `absent` when it was never created.
    fn with_table<T>(
        &self,
        table: &str,
        absent: T,
        f: impl FnOnce(&redb::ReadOnlyTable<Bytes, Bytes>) -> Result<T>,
    ) -> Result<T> {
        if let Some(cached) = self.tables.borrow().get(table) {
            return match cached {
                Some(t) => f(t),
                None => Ok(absent),
            };
        }
        let opened = match self.txn.open_table(definition(table)) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err("open a table")(e.into())),
        };
        let result = match &opened {
            Some(t) => f(t),
            None => Ok(absent),
        };
        self.tables.borrow_mut().insert(table.to_owned(), opened);
        result
    }
}

impl ReadTxn for RedbRead {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_table(table, None, |t| {
            Ok(t.get(key)
                .map_err(|e| err("read a key")(e.into()))?
                .map(|v| v.value().to_vec()))
        })
    }

    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>> {
        self.scan(table, range, direction)
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.with_table(table, 0, |t| {
            t.len().map_err(|e| err("count a table")(e.into()))
        })
    }
}

impl OwnedReadTxn for RedbRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'static>> {
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        self.with_table(
            table,
            Box::new(std::iter::empty()) as RawIter<'static>,
            |t| {
                // Read-only tables hand out ranges that own their snapshot.
                let iter = t
                    .range::<&[u8]>((as_slice(&range.start), as_slice(&range.end)))
                    .map_err(|e| err("scan a table")(e.into()))?;
                let entry = |item: std::result::Result<
                    (
                        redb::AccessGuard<'static, Bytes>,
                        redb::AccessGuard<'static, Bytes>,
                    ),
                    redb::StorageError,
                >| {
                    item.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                        .map_err(|e| err("scan a table")(e.into()))
                };
                Ok(match direction {
                    Direction::Forward => Box::new(iter.map(entry)) as RawIter<'static>,
                    Direction::Reverse => Box::new(iter.rev().map(entry)),
                })
            },
        )
    }
}

/// A write transaction of [`RedbBackend`].
pub struct RedbWrite {
    txn: redb::WriteTransaction,
}

impl RedbWrite {
    /// Reads `range` of `table` inside this transaction, at most `limit` entries.
    fn collect_range(
        &self,
        table: &str,
        range: &RawRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let t = self
            .txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))?;
        let iter = t
            .range::<&[u8]>((as_slice(&range.start), as_slice(&range.end)))
            .map_err(|e| err("scan a table")(e.into()))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut push = |item: std::result::Result<
            (redb::AccessGuard<'_, Bytes>, redb::AccessGuard<'_, Bytes>),
            redb::StorageError,
        >| {
            let (k, v) = item.map_err(|e| err("scan a table")(e.into()))?;
            out.push((k.value().to_vec(), v.value().to_vec()));
            Ok::<_, NetabaseError>(())
        };
        match direction {
            Direction::Forward => {
                for item in iter.take(limit) {
                    push(item)?;
                }
            }
            Direction::Reverse => {
                for item in iter.rev().take(limit) {
                    push(item)?;
                }
            }
        }
        Ok(out)
    }
}

impl ReadTxn for RedbWrite {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self
            .txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))?;
        Ok(t.get(key)
            .map_err(|e| err("read a key")(e.into()))?
            .map(|v| v.value().to_vec()))
    }

    fn range(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'_>> {
        let table = table.to_owned();
        Ok(Box::new(ChunkedRange::new(
            range,
            direction,
            move |range, direction, limit| self.collect_range(&table, range, direction, limit),
        )))
    }

    fn len(&self, table: &str) -> Result<u64> {
        let t = self
            .txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))?;
        t.len().map_err(|e| err("count a table")(e.into()))
    }
}

impl WriteTxn for RedbWrite {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut t = self
            .txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))?;
        t.insert(key, value)
            .map_err(|e| err("write a key")(e.into()))?;
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        let mut t = self
            .txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))?;
        let removed = t.remove(key).map_err(|e| err("delete a key")(e.into()))?;
        Ok(removed.is_some())
    }

    fn clear(&self, table: &str) -> Result<()> {
        match self.txn.delete_table(definition(table)) {
            Ok(_) => Ok(()),
            Err(e) => Err(err("clear a table")(e.into())),
        }
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        // Ops arrive grouped by table (index maintenance emits them that way); keep the
        // current table open across a run of ops on it.
        let mut i = 0;
        while i < ops.len() {
            let name = ops[i].table();
            let mut t = self
                .txn
                .open_table(definition(name))
                .map_err(|e| err("open a table")(e.into()))?;
            while i < ops.len() && ops[i].table() == name {
                match &ops[i] {
                    WriteOp::Put { key, value, .. } => {
                        t.insert(key.as_slice(), value.as_slice())
                            .map_err(|e| err("write a key")(e.into()))?;
                    }
                    WriteOp::Delete { key, .. } => {
                        t.remove(key.as_slice())
                            .map_err(|e| err("delete a key")(e.into()))?;
                    }
                }
                i += 1;
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        self.txn
            .commit()
            .map_err(|e| err("commit a write transaction")(e.into()))
    }
}
