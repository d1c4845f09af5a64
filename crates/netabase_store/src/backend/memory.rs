//! The in-memory backend: real transactions over persistent (copy-on-write) maps.
//!
//! The whole database is an immutable map of tables. A read transaction clones the
//! current map, which is O(1) with `imbl`'s structural sharing, so it is a true snapshot.
//! A write transaction takes the writer lock, clones the map, edits its private copy
//! (reads see its own writes) and on commit swaps it in as the current state; dropped
//! without commit, the copy is simply thrown away.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, RwLock};

use imbl::OrdMap;

use super::{
    Backend, Capabilities, ChunkedRange, Cursor, Direction, Entry, EntryCursor, EntryFn, OldFn,
    OwnedReadTxn, RawRange, ReadTxn, ValueFn, WriteOp, WriteTxn,
};
use crate::config::{ConfiguredBackend, FileConfig};
use crate::error::{NetabaseError, Result};
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::store::NetabaseStore;

/// Keys and values are shared slices: a write transaction's first change to a node of
/// a table copies the node (the committed state still holds it), and copying a shared
/// slice is a reference count, not an allocation and a copy of the bytes.
type Bytes = Arc<[u8]>;
type Table = OrdMap<Bytes, Bytes>;

/// The empty value every non-unique index entry holds, shared rather than allocated
/// per entry.
static EMPTY: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(&[][..]));

/// Shared bytes holding `bytes`.
fn shared(bytes: &[u8]) -> Bytes {
    if bytes.is_empty() {
        Arc::clone(&EMPTY)
    } else {
        Bytes::from(bytes)
    }
}
type State = OrdMap<String, Table>;

const NAME: &str = "memory";

/// An in-memory database. Cloning the handle shares the database.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Shared>,
    /// This handle refuses write transactions (other handles may still write).
    read_only: bool,
}

#[derive(Default)]
struct Shared {
    /// The last committed state.
    current: RwLock<State>,
    /// Held by the one write transaction at a time.
    writer: Mutex<()>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// An empty in-memory database.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the same database that refuses write transactions with
    /// [`NetabaseError::ReadOnly`]; handles cloned before still write.
    pub fn into_read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Whether this handle refuses write transactions.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn snapshot(&self) -> State {
        // A poisoned lock only means a thread panicked while holding it; the state inside
        // is a whole committed map either way, because commits replace it in one store.
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Entries of `table` within `range`, at most `limit` of them, in `direction` order.
fn collect_range(
    table: &Table,
    range: &RawRange,
    direction: Direction,
    limit: usize,
) -> Vec<Entry> {
    if range.is_empty() {
        return Vec::new();
    }
    let bounds = range.as_bounds();
    let iter = table.range::<_, [u8]>(bounds);
    let clone = |(k, v): (&Bytes, &Bytes)| (k.to_vec(), v.to_vec());
    match direction {
        Direction::Forward => iter.take(limit).map(clone).collect(),
        Direction::Reverse => iter.rev().take(limit).map(clone).collect(),
    }
}

/// Calls `f` on each entry of `table` within `range` until it breaks.
fn visit(table: &Table, range: &RawRange, direction: Direction, f: &mut EntryFn<'_>) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let mut iter = table.range::<_, [u8]>(range.as_bounds());
    loop {
        let item = match direction {
            Direction::Forward => iter.next(),
            Direction::Reverse => iter.next_back(),
        };
        let Some((k, v)) = item else {
            return Ok(());
        };
        if f(k, v)?.is_break() {
            return Ok(());
        }
    }
}

/// A lazy scan over a snapshot of one table (an O(1) clone).
fn scan_table(table: Option<Table>, range: RawRange, direction: Direction) -> Cursor<'static> {
    let Some(table) = table else {
        return Box::new(EntryCursor::new(std::iter::empty()));
    };
    ChunkedRange::cursor(range, direction, move |range, direction, limit| {
        Ok(collect_range(&table, range, direction, limit))
    })
}

impl Backend for MemoryBackend {
    type Read = MemoryRead;
    type Write<'a> = MemoryWrite<'a>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot_reads: true,
            persistent: false,
            read_your_writes: true,
            idle_transactions: true,
        }
    }

    fn begin_read(&self) -> Result<MemoryRead> {
        Ok(MemoryRead {
            state: self.snapshot(),
        })
    }

    fn begin_write(&self) -> Result<MemoryWrite<'_>> {
        if self.read_only {
            return Err(NetabaseError::read_only(NAME, "NetabaseStore::write"));
        }
        let guard = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(MemoryWrite {
            backend: self,
            state: RefCell::new(self.snapshot()),
            _guard: guard,
        })
    }
}

/// A read transaction of [`MemoryBackend`]: a snapshot of the committed state.
pub struct MemoryRead {
    state: State,
}

impl ReadTxn for MemoryRead {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        f(self
            .state
            .get(table)
            .and_then(|t| t.get(key))
            .map(|v| &v[..]))
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        self.scan(table, range, direction)
    }

    fn for_each_in(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        f: &mut EntryFn<'_>,
    ) -> Result<()> {
        match self.state.get(table) {
            Some(t) => visit(t, &range, direction, f),
            None => Ok(()),
        }
    }

    fn len(&self, table: &str) -> Result<u64> {
        Ok(self.state.get(table).map_or(0, |t| t.len() as u64))
    }

    fn table_names(&self) -> Result<Vec<String>> {
        Ok(self.state.keys().cloned().collect())
    }
}

impl OwnedReadTxn for MemoryRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>> {
        Ok(scan_table(self.state.get(table).cloned(), range, direction))
    }
}

/// A write transaction of [`MemoryBackend`]: a private copy of the state, swapped in on
/// commit.
pub struct MemoryWrite<'a> {
    backend: &'a MemoryBackend,
    state: RefCell<State>,
    _guard: MutexGuard<'a, ()>,
}

impl ReadTxn for MemoryWrite<'_> {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        // The state is not borrowed while `f` runs (the value is an O(1) clone away).
        let value = self
            .state
            .borrow()
            .get(table)
            .and_then(|t| t.get(key))
            .cloned();
        f(value.as_deref())
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        // The iterator works on a snapshot of the table taken now (an O(1) clone), so the
        // transaction stays writable while it is open.
        Ok(scan_table(
            self.state.borrow().get(table).cloned(),
            range,
            direction,
        ))
    }

    fn len(&self, table: &str) -> Result<u64> {
        Ok(self.state.borrow().get(table).map_or(0, |t| t.len() as u64))
    }

    fn table_names(&self) -> Result<Vec<String>> {
        Ok(self.state.borrow().keys().cloned().collect())
    }
}

impl WriteTxn for MemoryWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.state
            .borrow_mut()
            .entry(table.to_owned())
            .or_default()
            .insert(Bytes::from(key), shared(value));
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        let mut state = self.state.borrow_mut();
        Ok(match state.get_mut(table) {
            Some(t) => t.remove(key).is_some(),
            None => false,
        })
    }

    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        for (i, (key, value)) in entries.iter().enumerate() {
            // The state is not borrowed while `old` runs.
            let previous = {
                let mut state = self.state.borrow_mut();
                match state.get_mut(table) {
                    Some(t) => t.insert(Bytes::from(*key), shared(value)),
                    None => {
                        let mut t = Table::new();
                        t.insert(Bytes::from(*key), shared(value));
                        state.insert(table.to_owned(), t);
                        None
                    }
                }
            };
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            let previous = self
                .state
                .borrow_mut()
                .get_mut(table)
                .and_then(|t| t.remove(*key));
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    fn clear(&self, table: &str) -> Result<()> {
        self.state.borrow_mut().remove(table);
        Ok(())
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let mut state = self.state.borrow_mut();
        // Ops arrive in runs of one table (index maintenance groups them): the table is
        // looked up once per run, and its name copied only when the run creates it.
        let mut rest = ops;
        while let Some(first) = rest.first() {
            let name = first.table();
            let run = rest
                .iter()
                .position(|op| op.table() != name)
                .unwrap_or(rest.len());
            let (ops, after) = rest.split_at(run);
            rest = after;
            let table = match state.get_mut(name) {
                Some(table) => table,
                None if ops.iter().any(|op| matches!(op, WriteOp::Put { .. })) => {
                    state.insert(name.to_owned(), Table::new());
                    match state.get_mut(name) {
                        Some(table) => table,
                        None => continue,
                    }
                }
                // Deletes from a table that does not exist change nothing.
                None => continue,
            };
            for op in ops {
                match op {
                    WriteOp::Put { key, value, .. } => {
                        table.insert(Bytes::from(key.as_slice()), shared(value));
                    }
                    WriteOp::Delete { key, .. } => {
                        table.remove(key.as_slice());
                    }
                }
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        let state = self.state.into_inner();
        *self
            .backend
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = state;
        Ok(())
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

/// The in-memory backend takes a [`FileConfig`] so that switching backend is one line.
/// It writes nothing to the path (it is a label); every other option either has its
/// meaning in memory or is refused, see [`FileConfig`].
impl ConfiguredBackend for MemoryBackend {
    fn open_configured(config: &FileConfig, must_exist: bool) -> Result<Self> {
        if must_exist {
            return Err(NetabaseError::io(
                "open the in-memory database",
                config.path(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "an in-memory database never exists before it is created; use `new`",
                ),
            ));
        }
        if config.cache_size_is_set() {
            return Err(NetabaseError::config(
                NAME,
                "cache_size_mb",
                "the in-memory backend holds everything in memory and has no cache",
            ));
        }
        if config.use_fsync_if_set() == Some(true) {
            return Err(NetabaseError::config(
                NAME,
                "use_fsync",
                "the in-memory backend writes nothing to disk, so no commit is durable",
            ));
        }
        if config.verify_on_open() {
            return Err(NetabaseError::config(
                NAME,
                "verify_on_open",
                "an in-memory database has no file to verify",
            ));
        }
        if config.durable_every_if_set().is_some() {
            return Err(NetabaseError::config(
                NAME,
                "durable_every",
                "the in-memory backend writes nothing to disk, so no commit is ever durable",
            ));
        }
        if !config.create_if_missing() {
            return Err(NetabaseError::config(
                NAME,
                "create_if_missing",
                "an in-memory database never exists before it is created",
            ));
        }
        if config.read_only() && config.truncate() {
            return Err(NetabaseError::config(
                NAME,
                "truncate",
                "a store opened read-only cannot be truncated",
            ));
        }
        // `truncate`: a new in-memory database is always empty.
        let backend = MemoryBackend::new();
        Ok(if config.read_only() {
            backend.into_read_only()
        } else {
            backend
        })
    }

    fn open_temporary() -> Result<Self> {
        Ok(MemoryBackend::new())
    }
}
