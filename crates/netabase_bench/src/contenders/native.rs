//! native_db 0.8.2 doing the same work with the same model (postcard encoding, as
//! netabase uses), on redb's in-memory storage backend.

use std::sync::LazyLock;

use native_db::{Builder, Database, Models, ToKey, native_db};
use native_model::{Model, native_model};
use serde::{Deserialize, Serialize};

use super::{BenchResult, Contender};
use crate::data::Record;

/// The single-index model, as native_db declares it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[native_model(id = 1, version = 1, with = native_model::postcard_1_0::PostCard)]
#[native_db]
pub struct Item {
    /// The primary key.
    #[primary_key]
    pub id: u64,
    /// A 16–24 byte name.
    pub name: String,
    /// A non-unique secondary key.
    #[secondary_key]
    pub group: u32,
}

/// The five-index model, as native_db declares it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[native_model(id = 2, version = 1, with = native_model::postcard_1_0::PostCard)]
#[native_db]
pub struct Wide {
    /// The primary key.
    #[primary_key]
    pub id: u64,
    /// A 16–24 byte name.
    pub name: String,
    /// First secondary key.
    #[secondary_key]
    pub k1: u32,
    /// Second secondary key.
    #[secondary_key]
    pub k2: u32,
    /// Third secondary key.
    #[secondary_key]
    pub k3: u32,
    /// Fourth secondary key.
    #[secondary_key]
    pub k4: u32,
    /// Fifth secondary key.
    #[secondary_key]
    pub k5: u32,
}

static MODELS: LazyLock<Result<Models, String>> = LazyLock::new(|| {
    let mut models = Models::new();
    models.define::<Item>().map_err(|e| e.to_string())?;
    models.define::<Wide>().map_err(|e| e.to_string())?;
    Ok(models)
});

/// A native_db database.
pub struct NativeDb {
    db: Database<'static>,
}

impl Contender for NativeDb {
    type Item = Item;
    type Wide = Wide;
    const NAME: &'static str = "native_db";

    fn open() -> BenchResult<Self> {
        let models = MODELS.as_ref().map_err(|e| e.clone())?;
        Ok(NativeDb {
            db: Builder::new().create_in_memory(models)?,
        })
    }

    fn item(r: &Record) -> Item {
        Item {
            id: r.id,
            name: r.name.clone(),
            group: r.keys[0],
        }
    }

    fn wide(r: &Record) -> Wide {
        Wide {
            id: r.id,
            name: r.name.clone(),
            k1: r.keys[0],
            k2: r.keys[1],
            k3: r.keys[2],
            k4: r.keys[3],
            k5: r.keys[4],
        }
    }

    fn insert_bulk(&self, items: Vec<Item>) -> BenchResult<()> {
        let rw = self.db.rw_transaction()?;
        for item in items {
            rw.upsert(item)?;
        }
        rw.commit()?;
        Ok(())
    }

    fn insert_each(&self, items: Vec<Item>) -> BenchResult<()> {
        for item in items {
            let rw = self.db.rw_transaction()?;
            rw.upsert(item)?;
            rw.commit()?;
        }
        Ok(())
    }

    fn insert_bulk_wide(&self, items: Vec<Wide>) -> BenchResult<()> {
        let rw = self.db.rw_transaction()?;
        for item in items {
            rw.upsert(item)?;
        }
        rw.commit()?;
        Ok(())
    }

    fn get_one_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let r = self.db.r_transaction()?;
        let mut found = 0;
        for &id in ids {
            if let Some(item) = r.get().primary::<Item>(id)? {
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn get_each_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let mut found = 0;
        for &id in ids {
            let r = self.db.r_transaction()?;
            if let Some(item) = r.get().primary::<Item>(id)? {
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn query_eq(&self, groups: &[u32]) -> BenchResult<usize> {
        let mut found = 0;
        for &g in groups {
            let r = self.db.r_transaction()?;
            let items = r
                .scan()
                .secondary::<Item>(ItemKey::group)?
                .range(g..=g)?
                .collect::<Result<Vec<Item>, _>>()?;
            found += items.len();
        }
        Ok(found)
    }

    fn query_range(&self, ranges: &[(u32, u32)]) -> BenchResult<usize> {
        let mut found = 0;
        for &(low, high) in ranges {
            let r = self.db.r_transaction()?;
            let items = r
                .scan()
                .secondary::<Item>(ItemKey::group)?
                .range(low..high)?
                .collect::<Result<Vec<Item>, _>>()?;
            found += items.len();
        }
        Ok(found)
    }

    fn iterate(&self) -> BenchResult<usize> {
        let r = self.db.r_transaction()?;
        let mut count = 0;
        for item in r.scan().primary::<Item>()?.all()? {
            let _: Item = item?;
            count += 1;
        }
        Ok(count)
    }

    fn remove_bulk(&self, ids: &[u64]) -> BenchResult<usize> {
        let rw = self.db.rw_transaction()?;
        let mut removed = 0;
        for &id in ids {
            // native_db removes by value: read the record first.
            if let Some(item) = rw.get().primary::<Item>(id)? {
                rw.remove(item)?;
                removed += 1;
            }
        }
        rw.commit()?;
        Ok(removed)
    }

    fn remove_bulk_wide(&self, ids: &[u64]) -> BenchResult<usize> {
        let rw = self.db.rw_transaction()?;
        let mut removed = 0;
        for &id in ids {
            if let Some(item) = rw.get().primary::<Wide>(id)? {
                rw.remove(item)?;
                removed += 1;
            }
        }
        rw.commit()?;
        Ok(removed)
    }
}
