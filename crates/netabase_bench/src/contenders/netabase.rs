//! netabase through its public typed API, on any backend.

use netabase_store::NetabaseStore;
use netabase_store::backend::Backend;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;
use netabase_store::config::FileConfig;
use tempfile::TempDir;

use super::{BenchResult, Contender};
use crate::data::Record;
use crate::data::schema::{
    BenchDefinition, Item, ItemGroupSecondaryKey, ItemPrimaryKey, ItemSecondaryKeys, Wide,
    WidePrimaryKey,
};

/// A netabase store of the benchmark schema.
pub struct Netabase<B> {
    store: NetabaseStore<BenchDefinition, B>,
    /// The directory of an on-disk backend, removed after the store is dropped (fields
    /// drop in order).
    _dir: Option<TempDir>,
}

/// Opens an empty netabase store on a backend.
pub trait OpenBackend: Backend + Sized {
    /// The contender's name.
    const NAME: &'static str;
    /// A new, empty backend, with the temporary directory it lives in if it needs one.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn open_backend() -> BenchResult<(Self, Option<TempDir>)>;
}

impl OpenBackend for MemoryBackend {
    const NAME: &'static str = "netabase_memory";
    fn open_backend() -> BenchResult<(Self, Option<TempDir>)> {
        Ok((MemoryBackend::new(), None))
    }
}

impl OpenBackend for RedbBackend {
    const NAME: &'static str = "netabase_redb";
    /// redb on its in-memory storage backend, like the raw redb and native_db
    /// contenders, so that no contender pays for the disk.
    fn open_backend() -> BenchResult<(Self, Option<TempDir>)> {
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Ok((RedbBackend::from_database(db, None), None))
    }
}

impl OpenBackend for SledBackend {
    const NAME: &'static str = "netabase_sled";
    /// sled in a temporary directory with netabase's default cache (256 MiB) and no
    /// flush on commit, like the raw sled contender: sled has no in-memory mode, and
    /// neither contender waits for the disk.
    fn open_backend() -> BenchResult<(Self, Option<TempDir>)> {
        let dir = tempfile::Builder::new()
            .prefix("netabase-sled-")
            .tempdir()?;
        let config = FileConfig::builder()
            .path(dir.path().join("db"))
            .use_fsync(false)
            .build();
        Ok((SledBackend::with_config(&config, false)?, Some(dir)))
    }
}

impl<B: Backend> Netabase<B> {
    /// A contender over an opened store.
    pub fn from_store(store: NetabaseStore<BenchDefinition, B>) -> Self {
        Netabase { store, _dir: None }
    }

    /// The store.
    pub fn store(&self) -> &NetabaseStore<BenchDefinition, B> {
        &self.store
    }
}

impl<B: OpenBackend> Contender for Netabase<B> {
    type Item = Item;
    type Wide = Wide;
    const NAME: &'static str = B::NAME;

    fn open() -> BenchResult<Self> {
        let (backend, dir) = B::open_backend()?;
        Ok(Netabase {
            store: NetabaseStore::from_backend(backend)?,
            _dir: dir,
        })
    }

    fn item(record: &Record) -> Item {
        record.into()
    }

    fn wide(record: &Record) -> Wide {
        record.into()
    }

    fn insert_bulk(&self, items: Vec<Item>) -> BenchResult<()> {
        Ok(self.store.open_tree::<Item>().put_many(items)?)
    }

    fn insert_each(&self, items: Vec<Item>) -> BenchResult<()> {
        let tree = self.store.open_tree::<Item>();
        for item in items {
            tree.put(item)?;
        }
        Ok(())
    }

    fn insert_bulk_wide(&self, items: Vec<Wide>) -> BenchResult<()> {
        Ok(self.store.open_tree::<Wide>().put_many(items)?)
    }

    fn get_one_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let txn = self.store.read()?;
        let tree = txn.open_tree::<Item>();
        let mut found = 0;
        for &id in ids {
            if let Some(item) = tree.get(ItemPrimaryKey(id))? {
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn get_each_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let tree = self.store.open_tree::<Item>();
        let mut found = 0;
        for &id in ids {
            if let Some(item) = tree.get(ItemPrimaryKey(id))? {
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn query_eq(&self, groups: &[u32]) -> BenchResult<usize> {
        let tree = self.store.open_tree::<Item>();
        let mut found = 0;
        for &g in groups {
            let items =
                tree.get_by_secondary_key(ItemSecondaryKeys::Group(ItemGroupSecondaryKey(g)))?;
            found += items.len();
        }
        Ok(found)
    }

    fn query_range(&self, ranges: &[(u32, u32)]) -> BenchResult<usize> {
        let tree = self.store.open_tree::<Item>();
        let mut found = 0;
        for &(low, high) in ranges {
            let items = tree
                .range_by_secondary_key(ItemGroupSecondaryKey(low)..ItemGroupSecondaryKey(high))
                .collect::<Result<Vec<Item>, _>>()?;
            found += items.len();
        }
        Ok(found)
    }

    fn iterate(&self) -> BenchResult<usize> {
        let mut count = 0;
        for entry in self.store.open_tree::<Item>().iter() {
            let (key, item) = entry?;
            count += usize::from(key.0 == item.id);
        }
        Ok(count)
    }

    fn remove_bulk(&self, ids: &[u64]) -> BenchResult<usize> {
        let removed = self
            .store
            .open_tree::<Item>()
            .remove_many(ids.iter().map(|&id| ItemPrimaryKey(id)))?;
        Ok(removed.iter().filter(|r| r.is_some()).count())
    }

    fn remove_bulk_wide(&self, ids: &[u64]) -> BenchResult<usize> {
        let removed = self
            .store
            .open_tree::<Wide>()
            .remove_many(ids.iter().map(|&id| WidePrimaryKey(id)))?;
        Ok(removed.iter().filter(|r| r.is_some()).count())
    }
}
