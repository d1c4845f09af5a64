//! Raw sled with a hand-written index in netabase's table layout: the baseline for
//! netabase on sled.
//!
//! One tree per table, named like netabase's tables, with the keys and values of the raw
//! redb baseline. Every write workload runs in one sled transaction over the primary
//! tree and its index trees (one per record for `insert_each`), which sled commits
//! atomically, as netabase does. Writes use the old value that sled's `insert` and
//! `remove` hand back to keep the index exact, so no extra lookup is needed.
//!
//! sled has no read transactions: every read sees the latest committed state, so
//! `get_one_txn` and `get_each_txn` are the same plain gets here.
//!
//! The database lives in a temporary directory with the cache size netabase configures
//! for sled (256 MiB) and no flush on commit, like the `netabase_sled` contender; sled's
//! background flusher still runs.

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

use super::raw_redb::{decode, encode, index_key, wide_keys};
use super::{BenchError, BenchResult, Contender};
use crate::data::Record;
use crate::data::schema::{Item, Wide};

/// The cache size netabase gives sled by default, in bytes.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

const ITEM: &str = "BenchDefinition/Item";
const ITEM_GROUP: &str = "BenchDefinition/Item/group";
const WIDE: &str = "BenchDefinition/Wide";
const WIDE_KEYS: [&str; 5] = [
    "BenchDefinition/Wide/k1",
    "BenchDefinition/Wide/k2",
    "BenchDefinition/Wide/k3",
    "BenchDefinition/Wide/k4",
    "BenchDefinition/Wide/k5",
];

/// An error inside a sled transaction closure.
type TxError = ConflictableTransactionError<BenchError>;

/// Aborts the transaction with a benchmark error.
fn abort(e: BenchError) -> TxError {
    ConflictableTransactionError::Abort(e)
}

/// The error of a finished sled transaction.
fn tx_error(e: TransactionError<BenchError>) -> BenchError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// A sled database in a temporary directory, deleted on drop.
pub struct RawSled {
    item: sled::Tree,
    item_group: sled::Tree,
    /// The wide primary tree followed by its five index trees.
    wide: Vec<sled::Tree>,
    /// Kept for the trees' lifetime; dropped after them (fields drop in order).
    _db: sled::Db,
    _dir: tempfile::TempDir,
}

impl RawSled {
    /// Writes `items` and keeps the index exact, inside a transaction.
    fn write_items(
        primary: &TransactionalTree,
        index: &TransactionalTree,
        items: &[Item],
    ) -> Result<(), TxError> {
        let mut buf = Vec::with_capacity(64);
        for item in items {
            encode(item, &mut buf).map_err(abort)?;
            let old = primary.insert(&item.id.to_be_bytes(), buf.as_slice())?;
            if let Some(old) = old {
                let old: Item = decode(&old).map_err(abort)?;
                if old.group == item.group {
                    continue;
                }
                index.remove(&index_key(old.group, old.id))?;
            }
            index.insert(&index_key(item.group, item.id), &[])?;
        }
        Ok(())
    }

    /// Decodes the items whose secondary key lies in `low..high`.
    fn collect(&self, low: u32, high: u32) -> BenchResult<Vec<Item>> {
        let mut out = Vec::new();
        for entry in self.item_group.range(index_key(low, 0)..index_key(high, 0)) {
            let (key, _) = entry?;
            let pk = key.get(4..).ok_or("short index key")?;
            let value = self.item.get(pk)?.ok_or("dangling index entry")?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    fn get(&self, id: u64) -> BenchResult<bool> {
        Ok(match self.item.get(id.to_be_bytes())? {
            Some(value) => decode::<Item>(&value)?.id == id,
            None => false,
        })
    }
}

impl Contender for RawSled {
    type Item = Item;
    type Wide = Wide;
    const NAME: &'static str = "raw_sled";

    fn open() -> BenchResult<Self> {
        let dir = tempfile::Builder::new().prefix("raw-sled-").tempdir()?;
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let mut wide = vec![db.open_tree(WIDE)?];
        for name in WIDE_KEYS {
            wide.push(db.open_tree(name)?);
        }
        Ok(RawSled {
            item: db.open_tree(ITEM)?,
            item_group: db.open_tree(ITEM_GROUP)?,
            wide,
            _db: db,
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
        (&self.item, &self.item_group)
            .transaction(|(primary, index)| Self::write_items(primary, index, &items))
            .map_err(tx_error)
    }

    fn insert_each(&self, items: Vec<Item>) -> BenchResult<()> {
        for item in &items {
            (&self.item, &self.item_group)
                .transaction(|(primary, index)| {
                    Self::write_items(primary, index, std::slice::from_ref(item))
                })
                .map_err(tx_error)?;
        }
        Ok(())
    }

    fn insert_bulk_wide(&self, items: Vec<Wide>) -> BenchResult<()> {
        self.wide
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                let (primary, indexes) =
                    views.split_first().ok_or_else(|| abort("no tree".into()))?;
                let mut buf = Vec::with_capacity(64);
                for item in &items {
                    encode(item, &mut buf).map_err(abort)?;
                    let old = primary.insert(&item.id.to_be_bytes(), buf.as_slice())?;
                    let old: Option<Wide> = match old {
                        Some(old) => Some(decode(&old).map_err(abort)?),
                        None => None,
                    };
                    let new_keys = wide_keys(item);
                    for (i, index) in indexes.iter().enumerate() {
                        if let Some(old) = &old {
                            let old_key = wide_keys(old)[i];
                            if old_key == new_keys[i] {
                                continue;
                            }
                            index.remove(&index_key(old_key, old.id))?;
                        }
                        index.insert(&index_key(new_keys[i], item.id), &[])?;
                    }
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn get_one_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let mut found = 0;
        for &id in ids {
            found += usize::from(self.get(id)?);
        }
        Ok(found)
    }

    fn get_each_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        // No read transactions in sled: the same gets as `get_one_txn`.
        self.get_one_txn(ids)
    }

    fn query_eq(&self, groups: &[u32]) -> BenchResult<usize> {
        let mut found = 0;
        for &g in groups {
            // The upper bound is g + 1 (no value overflows: groups are far below u32::MAX).
            found += self.collect(g, g + 1)?.len();
        }
        Ok(found)
    }

    fn query_range(&self, ranges: &[(u32, u32)]) -> BenchResult<usize> {
        let mut found = 0;
        for &(low, high) in ranges {
            found += self.collect(low, high)?.len();
        }
        Ok(found)
    }

    fn iterate(&self) -> BenchResult<usize> {
        let mut count = 0;
        for entry in self.item.iter() {
            let (key, value) = entry?;
            let id = u64::from_be_bytes(key.as_ref().try_into()?);
            let item: Item = decode(&value)?;
            count += usize::from(id == item.id);
        }
        Ok(count)
    }

    fn remove_bulk(&self, ids: &[u64]) -> BenchResult<usize> {
        (&self.item, &self.item_group)
            .transaction(|(primary, index)| {
                let mut removed = 0;
                for &id in ids {
                    if let Some(old) = primary.remove(&id.to_be_bytes())? {
                        let old: Item = decode(&old).map_err(abort)?;
                        index.remove(&index_key(old.group, id))?;
                        removed += 1;
                    }
                }
                Ok(removed)
            })
            .map_err(tx_error)
    }

    fn remove_bulk_wide(&self, ids: &[u64]) -> BenchResult<usize> {
        self.wide
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                let (primary, indexes) =
                    views.split_first().ok_or_else(|| abort("no tree".into()))?;
                let mut removed = 0;
                for &id in ids {
                    if let Some(old) = primary.remove(&id.to_be_bytes())? {
                        let old: Wide = decode(&old).map_err(abort)?;
                        for (index, key) in indexes.iter().zip(wide_keys(&old)) {
                            index.remove(&index_key(key, id))?;
                        }
                        removed += 1;
                    }
                }
                Ok(removed)
            })
            .map_err(tx_error)
    }
}
