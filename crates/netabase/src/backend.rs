//! [`NodeBackend`]: the storage engine of a node, chosen at run time by the config.
//!
//! The swarm's record store and the application's typed store share one database, so
//! the backend handle is cheap to clone and every clone sees the same data.

use std::sync::Arc;

use netabase_store::Result;
use netabase_store::backend::memory::{MemoryBackend, MemoryRead, MemoryWrite};
use netabase_store::backend::redb::{RedbBackend, RedbRead, RedbWrite};
use netabase_store::backend::{
    Backend, Capabilities, Cursor, Direction, EntryFn, OldFn, OwnedReadTxn, RawIter, RawRange,
    ReadTxn, ValueFn, WriteOp, WriteTxn,
};

/// The database of a node: redb (a file, the default) or in-memory.
///
/// Clones share the database.
#[derive(Debug, Clone)]
pub struct NodeBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Redb(RedbBackend),
    Memory(MemoryBackend),
}

impl NodeBackend {
    /// A node database in the redb file at `path` (created if missing).
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Backend`] if the file cannot be opened.
    pub fn redb(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Self::from_inner(Inner::Redb(RedbBackend::create(path)?)))
    }

    /// A node database in a temporary redb file, removed when the last clone is dropped.
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Io`] if the directory cannot be created.
    pub fn redb_temp() -> Result<Self> {
        Ok(Self::from_inner(Inner::Redb(RedbBackend::temp()?)))
    }

    /// An in-memory node database.
    pub fn memory() -> Self {
        Self::from_inner(Inner::Memory(MemoryBackend::new()))
    }

    fn from_inner(inner: Inner) -> Self {
        NodeBackend {
            inner: Arc::new(inner),
        }
    }
}

/// A read transaction of a [`NodeBackend`].
pub enum NodeRead {
    /// On redb.
    Redb(RedbRead),
    /// In memory.
    Memory(MemoryRead),
}

/// A write transaction of a [`NodeBackend`].
pub enum NodeWrite<'a> {
    /// On redb (boxed: redb's write transaction is large).
    Redb(Box<RedbWrite>),
    /// In memory.
    Memory(MemoryWrite<'a>),
}

macro_rules! each {
    ($value:expr, $txn:ident => $body:expr) => {
        match $value {
            Self::Redb($txn) => $body,
            Self::Memory($txn) => $body,
        }
    };
}

impl Backend for NodeBackend {
    type Read = NodeRead;
    type Write<'a> = NodeWrite<'a>;

    fn name(&self) -> &'static str {
        match &*self.inner {
            Inner::Redb(b) => b.name(),
            Inner::Memory(b) => b.name(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match &*self.inner {
            Inner::Redb(b) => b.capabilities(),
            Inner::Memory(b) => b.capabilities(),
        }
    }

    fn begin_read(&self) -> Result<NodeRead> {
        Ok(match &*self.inner {
            Inner::Redb(b) => NodeRead::Redb(b.begin_read()?),
            Inner::Memory(b) => NodeRead::Memory(b.begin_read()?),
        })
    }

    fn begin_write(&self) -> Result<NodeWrite<'_>> {
        Ok(match &*self.inner {
            Inner::Redb(b) => NodeWrite::Redb(Box::new(b.begin_write()?)),
            Inner::Memory(b) => NodeWrite::Memory(b.begin_write()?),
        })
    }
}

/// Forwards every method of [`ReadTxn`] to the engine's transaction, so that each
/// engine's own versions (lending gets, batched lookups) are kept.
macro_rules! forward_read {
    ($ty:ty) => {
        impl ReadTxn for $ty {
            fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
                each!(self, t => t.get(table, key))
            }
            fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
                each!(self, t => t.get_many(table, keys))
            }
            fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
                each!(self, t => t.get_with(table, key, f))
            }
            fn range(
                &self,
                table: &str,
                range: RawRange,
                direction: Direction,
            ) -> Result<RawIter<'_>> {
                each!(self, t => t.range(table, range, direction))
            }
            fn for_each_in(
                &self,
                table: &str,
                range: RawRange,
                direction: Direction,
                f: &mut EntryFn<'_>,
            ) -> Result<()> {
                each!(self, t => t.for_each_in(table, range, direction, f))
            }
            fn cursor(
                &self,
                table: &str,
                range: RawRange,
                direction: Direction,
            ) -> Result<Cursor<'_>> {
                each!(self, t => t.cursor(table, range, direction))
            }
            fn len(&self, table: &str) -> Result<u64> {
                each!(self, t => t.len(table))
            }
            fn table_names(&self) -> Result<Vec<String>> {
                each!(self, t => t.table_names())
            }
        }
    };
}

forward_read!(NodeRead);
forward_read!(NodeWrite<'_>);

impl OwnedReadTxn for NodeRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<RawIter<'static>> {
        each!(self, t => t.scan(table, range, direction))
    }
    fn scan_cursor(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'static>> {
        each!(self, t => t.scan_cursor(table, range, direction))
    }
}

impl WriteTxn for NodeWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        each!(self, t => t.put(table, key, value))
    }
    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        each!(self, t => t.delete(table, key))
    }
    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        each!(self, t => t.put_each(table, entries, old))
    }
    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        each!(self, t => t.delete_each(table, keys, old))
    }
    fn clear(&self, table: &str) -> Result<()> {
        each!(self, t => t.clear(table))
    }
    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        each!(self, t => t.apply(ops))
    }
    fn commit(self) -> Result<()> {
        match self {
            Self::Redb(t) => t.commit(),
            Self::Memory(t) => t.commit(),
        }
    }
}
