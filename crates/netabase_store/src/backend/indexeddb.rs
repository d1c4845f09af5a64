//! IndexedDB, the browser's database, as an asynchronous backend (feature `indexeddb`,
//! `wasm32` only). Used through [`crate::nonblocking::AsyncStore`].
//!
//! Layout (database version 1, see `docs/backends.md`): one object store `entries`
//! holds every table, each key being the table's name, a zero byte, then the key, as a
//! binary key. IndexedDB compares binary keys bytewise, so the order-preserving key
//! encoding carries over and a table is one contiguous key range; a second store
//! `tables` records the name of every table written to. Values are stored as
//! `Uint8Array`s.
//!
//! A netabase transaction is one IndexedDB transaction over both stores. IndexedDB
//! commits a transaction by itself as soon as none of its requests is pending and the
//! program returns to the event loop; a netabase write transaction held across an
//! unrelated `.await` would then be committed halfway. This backend never lets that
//! happen: after each of its operations it queues a cheap watch request, and if, when
//! that request completes, the program has not issued the transaction's next operation,
//! the transaction is aborted. Nothing of it is committed, and its next operation and
//! its commit fail with [`crate::NetabaseError::TransactionInactive`].

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DomException, IdbCursorDirection, IdbCursorWithValue, IdbDatabase, IdbFactory, IdbKeyRange,
    IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbTransactionMode,
};

use crate::backend::{Capabilities, Direction, Entry, RawRange, WriteOp};
use crate::error::{NetabaseError, Result};
use crate::nonblocking::{AsyncBackend, AsyncReadTxn, AsyncWriteTxn};

const NAME: &str = "indexeddb";
/// The object store of every table's entries.
const ENTRIES: &str = "entries";
/// The object store of the names of the tables written to.
const TABLES: &str = "tables";
/// The layout version (the IndexedDB database version).
const VERSION: u32 = 1;

/// An IndexedDB database used as a netabase backend.
#[derive(Debug, Clone)]
pub struct IndexedDbBackend {
    db: IdbDatabase,
    name: String,
}

/// A backend error from a JavaScript exception.
fn js_error(operation: &'static str, e: &JsValue) -> NetabaseError {
    let (name, message) = match e.dyn_ref::<DomException>() {
        Some(d) => (d.name(), d.message()),
        None => (
            "Error".to_owned(),
            e.as_string()
                .or_else(|| {
                    e.dyn_ref::<js_sys::Error>()
                        .map(|e| String::from(e.message()))
                })
                .unwrap_or_else(|| format!("{e:?}")),
        ),
    };
    if name == "TransactionInactiveError" || name == "InvalidStateError" {
        return NetabaseError::inactive(NAME, operation);
    }
    NetabaseError::backend(NAME, operation, format!("{name}: {message}"))
}

fn factory() -> Result<IdbFactory> {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or_else(|| {
            NetabaseError::backend(NAME, "find IndexedDB", "this environment has no IndexedDB")
        })
}

/// A promise settled by `request`'s success (with its event) or failure.
fn settle(request: &IdbRequest) -> JsFuture {
    let promise = Promise::new(&mut |resolve: Function, reject: Function| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    JsFuture::from(promise)
}

impl IndexedDbBackend {
    /// Opens (or creates) the IndexedDB database `name` of this origin.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when IndexedDB is missing or refuses to open
    /// the database (for instance when it was written by a newer layout version).
    pub async fn open(name: &str) -> Result<Self> {
        const OP: &str = "open the database";
        let request: IdbOpenDbRequest = factory()?
            .open_with_u32(name, VERSION)
            .map_err(|e| js_error(OP, &e))?;
        let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new({
            let request = request.clone();
            move |_event: web_sys::Event| {
                // Version 0 → 1: create the two stores. A later layout version migrates
                // here, inside the version-change transaction.
                if let Ok(db) = request.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
                    let names = db.object_store_names();
                    for store in [ENTRIES, TABLES] {
                        if !names.contains(store) {
                            // A failure here aborts the upgrade; the open reports it.
                            let _ = db.create_object_store(store);
                        }
                    }
                }
            }
        });
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let opened = settle(&request).await;
        request.set_onupgradeneeded(None);
        drop(upgrade);
        if opened.is_err() {
            let error = request.error().ok().flatten().map(JsValue::from);
            return Err(js_error(OP, &error.unwrap_or(JsValue::UNDEFINED)));
        }
        let db = request
            .result()
            .and_then(|r| r.dyn_into::<IdbDatabase>())
            .map_err(|e| js_error(OP, &e))?;
        Ok(IndexedDbBackend {
            db,
            name: name.to_owned(),
        })
    }

    /// Deletes the IndexedDB database `name` of this origin (for tests and resets).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when IndexedDB refuses.
    pub async fn delete(name: &str) -> Result<()> {
        const OP: &str = "delete the database";
        let request = factory()?
            .delete_database(name)
            .map_err(|e| js_error(OP, &e))?;
        settle(&request)
            .await
            .map(drop)
            .map_err(|e| js_error(OP, &e))
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection (the database stays; a later open sees its data).
    pub fn close(&self) {
        self.db.close();
    }

    fn transaction(&self, mode: IdbTransactionMode) -> Result<IdbTransaction> {
        let stores = Array::of2(&JsValue::from_str(ENTRIES), &JsValue::from_str(TABLES));
        self.db
            .transaction_with_str_sequence_and_mode(&stores, mode)
            .map_err(|e| js_error("begin a transaction", &e))
    }
}

impl AsyncBackend for IndexedDbBackend {
    type Read = IdbReadTxn;
    type Write = IdbWriteTxn;

    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // A transaction reads one consistent state: IndexedDB runs a read-write
            // transaction over the same stores only after the reads before it.
            snapshot_reads: true,
            persistent: true,
            read_your_writes: true,
            // IndexedDB ends a transaction that has no request pending.
            idle_transactions: false,
        }
    }

    async fn begin_read(&self) -> Result<IdbReadTxn> {
        IdbReadTxn::new(self.transaction(IdbTransactionMode::Readonly)?, None)
    }

    async fn begin_write(&self) -> Result<IdbWriteTxn> {
        let txn = self.transaction(IdbTransactionMode::Readwrite)?;
        let done = JsFuture::from(Promise::new(&mut |resolve: Function, reject: Function| {
            txn.set_oncomplete(Some(&resolve));
            txn.set_onabort(Some(&reject));
        }));
        let state = Rc::new(RefCell::new(Watch::default()));
        let on_watch = Closure::<dyn FnMut()>::new({
            let state = Rc::clone(&state);
            let txn = txn.clone();
            move || {
                let mut s = state.borrow_mut();
                s.watching = false;
                if s.pending == 0 && !s.finishing {
                    // Idle: IndexedDB would commit it now. Abort instead.
                    s.idle_aborted = true;
                    let _ = txn.abort();
                }
            }
        });
        Ok(IdbWriteTxn {
            read: IdbReadTxn::new(txn, Some((state, on_watch)))?,
            done: Some(done),
        })
    }
}

/// What a write transaction's watch requests see.
#[derive(Debug, Default)]
struct Watch {
    /// Operations of the transaction waiting for IndexedDB.
    pending: usize,
    /// A watch request is queued.
    watching: bool,
    /// The transaction is committing or rolling back: idleness is expected.
    finishing: bool,
    /// The watch found the transaction idle and aborted it.
    idle_aborted: bool,
}

/// The full key of `key` in `table`: the table's name, a zero byte, the key.
fn full_key(table: &str, key: &[u8]) -> Result<Uint8Array> {
    let mut bytes = table_prefix(table)?;
    bytes.extend_from_slice(key);
    Ok(Uint8Array::from(bytes.as_slice()))
}

fn table_prefix(table: &str) -> Result<Vec<u8>> {
    if table.is_empty() || table.as_bytes().contains(&0) {
        return Err(NetabaseError::backend(
            NAME,
            "name a table",
            format!("table name {table:?} is empty or contains a zero byte"),
        ));
    }
    let mut bytes = Vec::with_capacity(table.len() + 1);
    bytes.extend_from_slice(table.as_bytes());
    bytes.push(0);
    Ok(bytes)
}

/// The key range of `range` inside `table`, or `None` when it holds no key.
fn key_range(table: &str, range: &RawRange) -> Result<Option<IdbKeyRange>> {
    if range.is_empty() {
        return Ok(None);
    }
    let prefix = table_prefix(table)?;
    let with = |k: &[u8]| {
        let mut b = prefix.clone();
        b.extend_from_slice(k);
        b
    };
    let (lower, lower_open) = match &range.start {
        Bound::Included(k) => (with(k), false),
        Bound::Excluded(k) => (with(k), true),
        Bound::Unbounded => (prefix.clone(), false),
    };
    let (upper, upper_open) = match &range.end {
        Bound::Included(k) => (with(k), false),
        Bound::Excluded(k) => (with(k), true),
        Bound::Unbounded => {
            // Every key of the table is below the name followed by byte 1.
            let mut end = prefix.clone();
            if let Some(last) = end.last_mut() {
                *last = 1;
            }
            (end, true)
        }
    };
    if lower > upper || (lower == upper && (lower_open || upper_open)) {
        return Ok(None);
    }
    IdbKeyRange::bound_with_lower_open_and_upper_open(
        &Uint8Array::from(lower.as_slice()),
        &Uint8Array::from(upper.as_slice()),
        lower_open,
        upper_open,
    )
    .map(Some)
    .map_err(|e| js_error("build a key range", &e))
}

/// The bytes of a key (an `ArrayBuffer`) or a value (a `Uint8Array`), copied once.
fn bytes_of(value: &JsValue) -> Vec<u8> {
    match value.dyn_ref::<Uint8Array>() {
        Some(array) => array.to_vec(),
        None => Uint8Array::new(value).to_vec(),
    }
}

/// The bytes of a full key without its table prefix of `skip` bytes.
fn key_of(full: &JsValue, skip: usize) -> Vec<u8> {
    let mut key = bytes_of(full);
    key.drain(..skip.min(key.len()));
    key
}

/// The value a finished `get` request found.
fn found(request: &IdbRequest) -> Option<Vec<u8>> {
    request
        .result()
        .ok()
        .filter(|v| !v.is_undefined())
        .map(|v| bytes_of(&v))
}

/// A write transaction's watch state and the handler of its watch requests.
type Watcher = (Rc<RefCell<Watch>>, Closure<dyn FnMut()>);

/// A read transaction (and the reads of a write transaction).
pub struct IdbReadTxn {
    txn: IdbTransaction,
    /// The transaction's two object stores, looked up once: every operation uses them.
    entries: IdbObjectStore,
    tables: IdbObjectStore,
    /// For a write transaction: the watch state and its request handler.
    watch: Option<Watcher>,
}

impl std::fmt::Debug for IdbReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbReadTxn")
            .field("write", &self.watch.is_some())
            .finish()
    }
}

impl IdbReadTxn {
    fn new(txn: IdbTransaction, watch: Option<Watcher>) -> Result<Self> {
        const OP: &str = "begin a transaction";
        let entries = txn.object_store(ENTRIES).map_err(|e| js_error(OP, &e))?;
        let tables = txn.object_store(TABLES).map_err(|e| js_error(OP, &e))?;
        Ok(IdbReadTxn {
            txn,
            entries,
            tables,
            watch,
        })
    }

    fn idle_aborted(&self) -> bool {
        self.watch
            .as_ref()
            .is_some_and(|(s, _)| s.borrow().idle_aborted)
    }

    fn error(&self, operation: &'static str, e: &JsValue) -> NetabaseError {
        if self.idle_aborted() {
            return NetabaseError::inactive(NAME, operation);
        }
        js_error(operation, e)
    }

    /// Issues requests through `issue` and waits until the last one is done (IndexedDB
    /// runs a transaction's requests in order), then returns them to read their
    /// results. A write transaction then queues its watch.
    async fn run(
        &self,
        operation: &'static str,
        issue: impl FnOnce(
            &IdbObjectStore,
            &IdbObjectStore,
        ) -> std::result::Result<Vec<IdbRequest>, JsValue>,
    ) -> Result<Vec<IdbRequest>> {
        let requests = issue(&self.entries, &self.tables).map_err(|e| self.error(operation, &e))?;
        let Some(last) = requests.last() else {
            return Ok(requests);
        };
        if let Some((state, _)) = &self.watch {
            state.borrow_mut().pending += 1;
        }
        let outcome = settle(last).await;
        if let Some((state, _)) = &self.watch {
            state.borrow_mut().pending -= 1;
        }
        if outcome.is_err() {
            // The first request that failed says why; the later ones were aborted.
            let cause = requests
                .iter()
                .find_map(|r| r.error().ok().flatten())
                .map(JsValue::from)
                .unwrap_or(JsValue::UNDEFINED);
            return Err(self.error(operation, &cause));
        }
        self.arm_watch();
        Ok(requests)
    }

    /// Queues the watch request of a write transaction, unless one is queued.
    fn arm_watch(&self) {
        let Some((state, on_watch)) = &self.watch else {
            return;
        };
        let mut s = state.borrow_mut();
        if s.watching || s.finishing {
            return;
        }
        if let Ok(request) = self.tables.count() {
            request.set_onsuccess(Some(on_watch.as_ref().unchecked_ref()));
            s.watching = true;
        }
    }

    async fn cursor_range(
        &self,
        range: &IdbKeyRange,
        direction: IdbCursorDirection,
        limit: usize,
        skip: usize,
    ) -> Result<Vec<Entry>> {
        const OP: &str = "scan a table";
        let request = self
            .entries
            .open_cursor_with_range_and_direction(range, direction)
            .map_err(|e| self.error(OP, &e))?;
        let out: Rc<RefCell<Vec<Entry>>> = Rc::default();
        let mut settle_with = None;
        let promise = Promise::new(&mut |resolve: Function, reject: Function| {
            settle_with = Some(resolve);
            request.set_onerror(Some(&reject));
        });
        let Some(resolve) = settle_with else {
            return Ok(Vec::new());
        };
        let step = Closure::<dyn FnMut()>::new({
            let out = Rc::clone(&out);
            let request = request.clone();
            move || {
                let cursor = request
                    .result()
                    .ok()
                    .and_then(|c| c.dyn_into::<IdbCursorWithValue>().ok());
                let Some(cursor) = cursor else {
                    let _ = resolve.call0(&JsValue::NULL);
                    return;
                };
                let mut out = out.borrow_mut();
                if let (Ok(key), Ok(value)) = (cursor.key(), cursor.value()) {
                    out.push((key_of(&key, skip), bytes_of(&value)));
                }
                if out.len() >= limit || cursor.continue_().is_err() {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        });
        request.set_onsuccess(Some(step.as_ref().unchecked_ref()));
        if let Some((state, _)) = &self.watch {
            state.borrow_mut().pending += 1;
        }
        let outcome = JsFuture::from(promise).await;
        if let Some((state, _)) = &self.watch {
            state.borrow_mut().pending -= 1;
        }
        request.set_onsuccess(None);
        drop(step);
        if outcome.is_err() {
            let cause = request
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or(JsValue::UNDEFINED);
            return Err(self.error(OP, &cause));
        }
        self.arm_watch();
        Ok(std::mem::take(&mut *out.borrow_mut()))
    }
}

impl AsyncReadTxn for IdbReadTxn {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = full_key(table, key)?;
        let requests = self
            .run("get", |entries, _| Ok(vec![entries.get(&key)?]))
            .await?;
        Ok(requests.first().and_then(found))
    }

    async fn get_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = keys
            .iter()
            .map(|k| full_key(table, k))
            .collect::<Result<Vec<_>>>()?;
        let requests = self
            .run("get", |entries, _| {
                keys.iter().map(|k| entries.get(k)).collect()
            })
            .await?;
        Ok(requests.iter().map(found).collect())
    }

    async fn range(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>> {
        let limit = limit.unwrap_or(usize::MAX);
        let Some(bounds) = key_range(table, &range)? else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let skip = table.len() + 1;
        if direction == Direction::Reverse {
            return self
                .cursor_range(&bounds, IdbCursorDirection::Prev, limit, skip)
                .await;
        }
        // Forward: the keys and the values of the range, read in one step each.
        let count = u32::try_from(limit).unwrap_or(u32::MAX);
        let requests = self
            .run("scan a table", |entries, _| {
                if count == u32::MAX {
                    Ok(vec![
                        entries.get_all_keys_with_key(&bounds)?,
                        entries.get_all_with_key(&bounds)?,
                    ])
                } else {
                    Ok(vec![
                        entries.get_all_keys_with_key_and_limit(&bounds, count)?,
                        entries.get_all_with_key_and_limit(&bounds, count)?,
                    ])
                }
            })
            .await?;
        let arrays: Vec<Array> = requests
            .iter()
            .map(|r| r.result().map(|v| Array::from(&v)).unwrap_or_default())
            .collect();
        let (Some(keys), Some(values)) = (arrays.first(), arrays.get(1)) else {
            return Ok(Vec::new());
        };
        Ok(keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (key_of(&k, skip), bytes_of(&v)))
            .collect())
    }

    async fn range_keys(
        &self,
        table: &str,
        range: RawRange,
        limit: Option<usize>,
    ) -> Result<Vec<Vec<u8>>> {
        let Some(bounds) = key_range(table, &range)? else {
            return Ok(Vec::new());
        };
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let skip = table.len() + 1;
        let count = limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX));
        let requests = self
            .run("scan a table", |entries, _| match count {
                Some(count) => Ok(vec![
                    entries.get_all_keys_with_key_and_limit(&bounds, count)?,
                ]),
                None => Ok(vec![entries.get_all_keys_with_key(&bounds)?]),
            })
            .await?;
        let keys = requests
            .first()
            .and_then(|r| r.result().ok())
            .map(|v| Array::from(&v))
            .unwrap_or_default();
        Ok(keys.iter().map(|k| key_of(&k, skip)).collect())
    }

    async fn len(&self, table: &str) -> Result<u64> {
        let Some(bounds) = key_range(table, &RawRange::all())? else {
            return Ok(0);
        };
        let requests = self
            .run("count a table", |entries, _| {
                Ok(vec![entries.count_with_key(&bounds)?])
            })
            .await?;
        Ok(requests
            .first()
            .and_then(|r| r.result().ok())
            .and_then(|v| v.as_f64())
            .map_or(0, |n| n as u64))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        let requests = self
            .run("list the tables", |_, tables| {
                Ok(vec![tables.get_all_keys()?])
            })
            .await?;
        let keys = requests
            .first()
            .and_then(|r| r.result().ok())
            .map(|v| Array::from(&v))
            .unwrap_or_default();
        Ok(keys
            .iter()
            .map(|k| String::from_utf8_lossy(&bytes_of(&k)).into_owned())
            .collect())
    }
}

/// A write transaction: dropped without commit, it is aborted and nothing is applied.
pub struct IdbWriteTxn {
    read: IdbReadTxn,
    /// Settles when IndexedDB completes (commits) or aborts the transaction.
    done: Option<JsFuture>,
}

impl std::fmt::Debug for IdbWriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbWriteTxn").finish_non_exhaustive()
    }
}

impl Drop for IdbWriteTxn {
    fn drop(&mut self) {
        if self.done.is_some() {
            if let Some((state, _)) = &self.read.watch {
                state.borrow_mut().finishing = true;
            }
            // Already finished when the engine ended it: nothing to undo then.
            let _ = self.read.txn.abort();
        }
    }
}

/// Records that `table` exists.
fn register(tables: &IdbObjectStore, table: &str) -> std::result::Result<IdbRequest, JsValue> {
    tables.put_with_key(&JsValue::TRUE, &Uint8Array::from(table.as_bytes()))
}

crate::nonblocking::reads_through!(IdbWriteTxn, read);

impl AsyncWriteTxn for IdbWriteTxn {
    async fn put_each(&self, table: &str, entries: Vec<Entry>) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = entries
            .iter()
            .map(|(k, _)| full_key(table, k))
            .collect::<Result<Vec<_>>>()?;
        let requests = self
            .read
            .run("put", |store, tables| {
                // Each get is queued before its put: it sees the value the put replaces.
                let mut requests = Vec::with_capacity(2 * keys.len() + 1);
                for (key, (_, value)) in keys.iter().zip(&entries) {
                    requests.push(store.get(key)?);
                    store.put_with_key(&Uint8Array::from(value.as_slice()), key)?;
                }
                requests.push(register(tables, table)?);
                Ok(requests)
            })
            .await?;
        Ok(requests[..keys.len()].iter().map(found).collect())
    }

    async fn delete_each(&self, table: &str, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = keys
            .iter()
            .map(|k| full_key(table, k))
            .collect::<Result<Vec<_>>>()?;
        let requests = self
            .read
            .run("delete", |store, _| {
                let mut requests = Vec::with_capacity(keys.len() + 1);
                for key in &keys {
                    requests.push(store.get(key)?);
                    requests.push(store.delete(key)?);
                }
                Ok(requests)
            })
            .await?;
        Ok(requests.iter().step_by(2).map(found).collect())
    }

    async fn apply(&self, ops: Vec<WriteOp<'static>>) -> Result<()> {
        let mut written: Vec<&str> = Vec::new();
        for op in &ops {
            if let WriteOp::Put { table, .. } = op
                && !written.contains(table)
            {
                written.push(table);
            }
        }
        let keys = ops
            .iter()
            .map(|op| match op {
                WriteOp::Put { table, key, .. } | WriteOp::Delete { table, key } => {
                    full_key(table, key)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.read
            .run("write", |store, tables| {
                let mut requests = Vec::with_capacity(ops.len() + written.len());
                for (op, key) in ops.iter().zip(&keys) {
                    requests.push(match op {
                        WriteOp::Put { value, .. } => {
                            store.put_with_key(&Uint8Array::from(value.as_slice()), key)?
                        }
                        WriteOp::Delete { .. } => store.delete(key)?,
                    });
                }
                for table in &written {
                    requests.push(register(tables, table)?);
                }
                Ok(requests)
            })
            .await
            .map(drop)
    }

    async fn clear(&self, table: &str) -> Result<()> {
        let Some(bounds) = key_range(table, &RawRange::all())? else {
            return Ok(());
        };
        self.read
            .run("clear a table", |store, tables| {
                Ok(vec![store.delete(&bounds)?, register(tables, table)?])
            })
            .await
            .map(drop)
    }

    async fn commit(mut self) -> Result<()> {
        const OP: &str = "commit";
        let Some(done) = self.done.take() else {
            return Err(NetabaseError::inactive(NAME, OP));
        };
        if let Some((state, _)) = &self.read.watch {
            state.borrow_mut().finishing = true;
        }
        if self.read.idle_aborted() {
            return Err(NetabaseError::inactive(NAME, OP));
        }
        // IndexedDB commits once the requests issued so far are done: no more are.
        match done.await {
            Ok(_) => Ok(()),
            Err(_) => {
                let cause = self
                    .read
                    .txn
                    .error()
                    .map(JsValue::from)
                    .unwrap_or(JsValue::UNDEFINED);
                Err(self.read.error(OP, &cause))
            }
        }
    }
}
