//! Concurrency: queries stay right while other threads write.
//!
//! - A deterministic race on a backend without snapshot reads: a writer commits between
//!   a query's index read and its record read. The query must return only records that
//!   match it, and a record removed in between is not corruption.
//! - Threads mixing writes, secondary-key queries and long reads on one store, on every
//!   backend: every answer matches its query, and the indexes are exact afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use netabase_store::backend::memory::{MemoryBackend, MemoryRead};
use netabase_store::backend::{
    Backend, Capabilities, Cursor, Direction, OwnedReadTxn, RawRange, ReadTxn, ValueFn,
};
use netabase_store::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The schema of these tests.
#[allow(missing_docs)]
#[netabase_definition_module(BinsDefinition, BinsKeys)]
pub mod bins {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BinsDefinition)]
    pub struct Item {
        #[primary_key]
        pub id: u64,
        #[secondary_key]
        pub bucket: u32,
        #[secondary_key(unique)]
        pub slot: u64,
    }
}
use bins::*;

/// Something to run once, in the middle of a read.
type Hook = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// The in-memory backend with sled's read semantics: no snapshots (every read sees the
/// latest commit), and a hook that runs right before the next read of a primary table,
/// so a test can commit a write between a query's index read and its record read.
struct Latest {
    inner: MemoryBackend,
    hook: Hook,
}

struct LatestRead {
    inner: MemoryBackend,
    hook: Hook,
}

impl Backend for Latest {
    type Read = LatestRead;
    type Write<'a> = <MemoryBackend as Backend>::Write<'a>;

    fn name(&self) -> &'static str {
        "latest"
    }
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        caps.snapshot_reads = false;
        caps
    }
    fn begin_read(&self) -> Result<LatestRead, NetabaseError> {
        Ok(LatestRead {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        })
    }
    fn begin_write(&self) -> Result<Self::Write<'_>, NetabaseError> {
        self.inner.begin_write()
    }
}

impl LatestRead {
    fn now(&self) -> Result<MemoryRead, NetabaseError> {
        self.inner.begin_read()
    }
}

impl ReadTxn for LatestRead {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<(), NetabaseError> {
        if table == <Item as NetabaseModelTrait<BinsDefinition>>::INFO.table {
            let hook = self.hook.lock().ok().and_then(|mut h| h.take());
            if let Some(hook) = hook {
                hook();
            }
        }
        self.now()?.get_with(table, key, f)
    }
    fn cursor(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'_>, NetabaseError> {
        self.now()?.scan(table, range, direction)
    }
    fn len(&self, table: &str) -> Result<u64, NetabaseError> {
        self.now()?.len(table)
    }
    fn table_names(&self) -> Result<Vec<String>, NetabaseError> {
        self.now()?.table_names()
    }
}

impl OwnedReadTxn for LatestRead {
    fn scan(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'static>, NetabaseError> {
        self.now()?.scan(table, range, direction)
    }
}

fn item(id: u64, bucket: u32) -> Item {
    Item {
        id,
        bucket,
        slot: id,
    }
}

#[test]
fn a_write_between_index_and_record_reads_is_not_a_wrong_answer() -> TestResult {
    let memory = MemoryBackend::new();
    let hook: Hook = Arc::default();
    let store = NetabaseStore::<BinsDefinition, _>::from_backend(Latest {
        inner: memory.clone(),
        hook: Arc::clone(&hook),
    })?;
    let writer = NetabaseStore::<BinsDefinition, _>::from_backend(memory)?;
    let items = store.open_tree::<Item>();
    items.put_many([item(1, 0), item(2, 0), item(3, 0)])?;

    // Item 1 moves to bucket 1 after the query read the index of bucket 0.
    let moving = writer.clone();
    *hook.lock().map_err(|_| "hook")? = Some(Box::new(move || {
        let _ = moving.open_tree::<Item>().put(item(1, 1));
    }));
    let found = items.get_by_secondary_key(ItemBucketSecondaryKey(0))?;
    assert!(
        found.iter().all(|i| i.bucket == 0),
        "a record that left the bucket was returned: {found:?}"
    );
    assert_eq!(found.len(), 2);

    // Item 2 is removed in between: skipped, not reported as a dangling index entry.
    let removing = writer.clone();
    *hook.lock().map_err(|_| "hook")? = Some(Box::new(move || {
        let _ = removing.open_tree::<Item>().remove(2);
    }));
    let found = items.get_by_secondary_key(ItemBucketSecondaryKey(0))?;
    assert_eq!(found, vec![item(3, 0)]);

    // The same for range queries and the unique index.
    items.put(item(4, 0))?;
    let moving = writer.clone();
    *hook.lock().map_err(|_| "hook")? = Some(Box::new(move || {
        let _ = moving.open_tree::<Item>().put(item(3, 7));
    }));
    let ranged: Vec<Item> = items
        .range_by_secondary_key(ItemBucketSecondaryKey(0)..=ItemBucketSecondaryKey(1))
        .collect::<Result<_, _>>()?;
    assert!(
        ranged.iter().all(|i| i.bucket <= 1),
        "a record outside the range was returned: {ranged:?}"
    );
    let removing = writer.clone();
    *hook.lock().map_err(|_| "hook")? = Some(Box::new(move || {
        let _ = removing.open_tree::<Item>().remove(4);
    }));
    assert_eq!(items.get_by_unique_key(ItemSlotSecondaryKey(4))?, None);
    Ok(())
}

/// Writers move items between buckets while readers query buckets and a long reader
/// walks the whole tree; every answer must match its query.
fn writers_and_readers<B: Backend>(store: NetabaseStore<BinsDefinition, B>) -> TestResult {
    const ITEMS: u64 = 200;
    const BUCKETS: u32 = 8;
    const WRITES: u64 = 400;
    const QUERIES: u64 = 600;
    let items = store.open_tree::<Item>();
    items.put_many((0..ITEMS).map(|id| item(id, (id % u64::from(BUCKETS)) as u32)))?;
    let wrong = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..2u64 {
        let store = store.clone();
        threads.push(thread::spawn(move || -> TestResult {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ w;
            for _ in 0..WRITES {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = state % ITEMS;
                let bucket = ((state >> 32) % u64::from(BUCKETS)) as u32;
                let txn = store.write()?;
                txn.open_tree::<Item>().put(item(id, bucket))?;
                txn.open_tree::<Item>()
                    .put(item((id + 1) % ITEMS, bucket))?;
                txn.commit()?;
            }
            Ok(())
        }));
    }
    for r in 0..2u32 {
        let store = store.clone();
        let wrong = Arc::clone(&wrong);
        threads.push(thread::spawn(move || -> TestResult {
            let items = store.open_tree::<Item>();
            for q in 0..QUERIES {
                let bucket = (q as u32 + r) % BUCKETS;
                for found in items.get_by_secondary_key(ItemBucketSecondaryKey(bucket))? {
                    if found.bucket != bucket {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let low = bucket.saturating_sub(1);
                for found in items.range_by_secondary_key(
                    ItemBucketSecondaryKey(low)..ItemBucketSecondaryKey(bucket),
                ) {
                    let found = found?;
                    if !(low..bucket).contains(&found.bucket) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(found) = items.get_by_unique_key(ItemSlotSecondaryKey(q % ITEMS))?
                    && found.slot != q % ITEMS
                {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    {
        // A long read: one transaction walking everything, twice, while writers commit.
        let store = store.clone();
        threads.push(thread::spawn(move || -> TestResult {
            let txn = store.read()?;
            let view = txn.open_tree::<Item>();
            for _ in 0..2 {
                let mut seen = 0;
                for entry in view.iter() {
                    let (key, item) = entry?;
                    assert_eq!(key.0, item.id);
                    seen += 1;
                    thread::yield_now();
                }
                assert_eq!(seen, ITEMS);
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join().map_err(|_| "a thread panicked")??;
    }
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "wrong answers");
    // Indexes exact: every item is found through its bucket and its slot, once.
    let mut total = 0;
    for bucket in 0..BUCKETS {
        let found = items.get_by_secondary_key(ItemBucketSecondaryKey(bucket))?;
        assert!(found.iter().all(|i| i.bucket == bucket));
        total += found.len() as u64;
    }
    assert_eq!(total, ITEMS);
    for id in 0..ITEMS {
        assert_eq!(
            items
                .get_by_unique_key(ItemSlotSecondaryKey(id))?
                .map(|i| i.id),
            Some(id)
        );
    }
    Ok(())
}

#[test]
fn memory_under_concurrent_writes() -> TestResult {
    writers_and_readers(NetabaseStore::memory()?)
}

#[test]
fn redb_under_concurrent_writes() -> TestResult {
    writers_and_readers(NetabaseStore::temp()?)
}

#[cfg(feature = "sled")]
#[test]
fn sled_under_concurrent_writes() -> TestResult {
    writers_and_readers(NetabaseStore::sled_temp()?)
}
