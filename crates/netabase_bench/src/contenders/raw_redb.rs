//! Raw redb with a hand-written index in netabase's table layout: the baseline that
//! defines netabase's overhead.
//!
//! Writes use the old value that redb's `insert` and `remove` hand back to keep the index
//! exact, so no extra lookup is needed; a replaced record's index entry is moved only
//! when its secondary key changed.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BenchResult, Contender};
use crate::data::Record;
use crate::data::schema::{Item, Wide};

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

const ITEM: Table = TableDefinition::new("BenchDefinition/Item");
const ITEM_GROUP: Table = TableDefinition::new("BenchDefinition/Item/group");
const WIDE: Table = TableDefinition::new("BenchDefinition/Wide");
const WIDE_KEYS: [Table; 5] = [
    TableDefinition::new("BenchDefinition/Wide/k1"),
    TableDefinition::new("BenchDefinition/Wide/k2"),
    TableDefinition::new("BenchDefinition/Wide/k3"),
    TableDefinition::new("BenchDefinition/Wide/k4"),
    TableDefinition::new("BenchDefinition/Wide/k5"),
];

/// The value header netabase writes: format version 1, model version 0.
pub(crate) const HEADER: [u8; 3] = [1, 0, 0];

/// Header ++ postcard, into a reused buffer.
pub(crate) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> BenchResult<()> {
    buf.clear();
    buf.extend_from_slice(&HEADER);
    let out = std::mem::take(buf);
    *buf = postcard::to_extend(value, out)?;
    Ok(())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> BenchResult<T> {
    let body = bytes
        .get(HEADER.len()..)
        .ok_or("value shorter than its header")?;
    Ok(postcard::from_bytes(body)?)
}

/// `enc(secondary) ++ enc(primary)`.
pub(crate) fn index_key(secondary: u32, id: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&secondary.to_be_bytes());
    key[4..].copy_from_slice(&id.to_be_bytes());
    key
}

pub(crate) fn wide_keys(w: &Wide) -> [u32; 5] {
    [w.k1, w.k2, w.k3, w.k4, w.k5]
}

/// A redb database on redb's in-memory storage backend.
pub struct RawRedb {
    db: redb::Database,
    durability: redb::Durability,
}

impl RawRedb {
    /// Wraps an opened database (the scaling run uses a file); commits are durable.
    pub fn from_database(db: redb::Database) -> Self {
        RawRedb {
            db,
            durability: redb::Durability::Immediate,
        }
    }

    /// The same database with commits of the given durability.
    pub fn with_durability(mut self, durability: redb::Durability) -> Self {
        self.durability = durability;
        self
    }

    fn begin_write(&self) -> BenchResult<redb::WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)?;
        Ok(txn)
    }

    fn write_items(txn: &redb::WriteTransaction, items: &[Item]) -> BenchResult<()> {
        let mut primary = txn.open_table(ITEM)?;
        let mut index = txn.open_table(ITEM_GROUP)?;
        let mut buf = Vec::with_capacity(64);
        for item in items {
            let pk = item.id.to_be_bytes();
            encode(item, &mut buf)?;
            let old = primary.insert(pk.as_slice(), buf.as_slice())?;
            if let Some(old) = old {
                let old: Item = decode(old.value())?;
                if old.group == item.group {
                    continue;
                }
                index.remove(index_key(old.group, old.id).as_slice())?;
            }
            index.insert(index_key(item.group, item.id).as_slice(), [].as_slice())?;
        }
        Ok(())
    }

    /// The items whose secondary key lies in `low..high`, decoded, in one read
    /// transaction; returns how many there are.
    fn query(&self, low: u32, high: u32) -> BenchResult<usize> {
        let txn = self.db.begin_read()?;
        let primary = txn.open_table(ITEM)?;
        let index = txn.open_table(ITEM_GROUP)?;
        let start = index_key(low, 0);
        let end = index_key(high, 0);
        let mut items: Vec<Item> = Vec::new();
        for entry in index.range(start.as_slice()..end.as_slice())? {
            let (key, _) = entry?;
            let pk = key.value().get(4..).ok_or("short index key")?;
            let value = primary.get(pk)?.ok_or("dangling index entry")?;
            items.push(decode(value.value())?);
        }
        Ok(items.len())
    }
}

impl Contender for RawRedb {
    type Item = Item;
    type Wide = Wide;
    const NAME: &'static str = "raw_redb";

    fn open() -> BenchResult<Self> {
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Ok(RawRedb::from_database(db))
    }

    fn item(record: &Record) -> Item {
        record.into()
    }

    fn wide(record: &Record) -> Wide {
        record.into()
    }

    fn insert_bulk(&self, items: Vec<Item>) -> BenchResult<()> {
        let txn = self.begin_write()?;
        Self::write_items(&txn, &items)?;
        txn.commit()?;
        Ok(())
    }

    fn insert_each(&self, items: Vec<Item>) -> BenchResult<()> {
        for item in items {
            let txn = self.begin_write()?;
            Self::write_items(&txn, std::slice::from_ref(&item))?;
            txn.commit()?;
        }
        Ok(())
    }

    fn insert_bulk_wide(&self, items: Vec<Wide>) -> BenchResult<()> {
        let txn = self.begin_write()?;
        {
            let mut primary = txn.open_table(WIDE)?;
            let mut indexes = [
                txn.open_table(WIDE_KEYS[0])?,
                txn.open_table(WIDE_KEYS[1])?,
                txn.open_table(WIDE_KEYS[2])?,
                txn.open_table(WIDE_KEYS[3])?,
                txn.open_table(WIDE_KEYS[4])?,
            ];
            let mut buf = Vec::with_capacity(64);
            for item in &items {
                encode(item, &mut buf)?;
                let old = primary.insert(item.id.to_be_bytes().as_slice(), buf.as_slice())?;
                let old: Option<Wide> = match old {
                    Some(old) => Some(decode(old.value())?),
                    None => None,
                };
                let new_keys = wide_keys(item);
                for (i, index) in indexes.iter_mut().enumerate() {
                    if let Some(old) = &old {
                        let old_key = wide_keys(old)[i];
                        if old_key == new_keys[i] {
                            continue;
                        }
                        index.remove(index_key(old_key, old.id).as_slice())?;
                    }
                    index.insert(index_key(new_keys[i], item.id).as_slice(), [].as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get_one_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let txn = self.db.begin_read()?;
        let primary = txn.open_table(ITEM)?;
        let mut found = 0;
        for &id in ids {
            if let Some(value) = primary.get(id.to_be_bytes().as_slice())? {
                let item: Item = decode(value.value())?;
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn get_each_txn(&self, ids: &[u64]) -> BenchResult<usize> {
        let mut found = 0;
        for &id in ids {
            let txn = self.db.begin_read()?;
            let primary = txn.open_table(ITEM)?;
            if let Some(value) = primary.get(id.to_be_bytes().as_slice())? {
                let item: Item = decode(value.value())?;
                found += usize::from(item.id == id);
            }
        }
        Ok(found)
    }

    fn query_eq(&self, groups: &[u32]) -> BenchResult<usize> {
        let mut found = 0;
        for &g in groups {
            // The upper bound is g + 1 (no value overflows: groups are far below u32::MAX).
            found += self.query(g, g + 1)?;
        }
        Ok(found)
    }

    fn query_range(&self, ranges: &[(u32, u32)]) -> BenchResult<usize> {
        let mut found = 0;
        for &(low, high) in ranges {
            found += self.query(low, high)?;
        }
        Ok(found)
    }

    fn iterate(&self) -> BenchResult<usize> {
        let txn = self.db.begin_read()?;
        let primary = txn.open_table(ITEM)?;
        let mut count = 0;
        for entry in primary.iter()? {
            let (key, value) = entry?;
            let id = u64::from_be_bytes(key.value().try_into()?);
            let item: Item = decode(value.value())?;
            count += usize::from(id == item.id);
        }
        Ok(count)
    }

    fn remove_bulk(&self, ids: &[u64]) -> BenchResult<usize> {
        let txn = self.begin_write()?;
        let mut removed = 0;
        {
            let mut primary = txn.open_table(ITEM)?;
            let mut index = txn.open_table(ITEM_GROUP)?;
            for &id in ids {
                let old = primary.remove(id.to_be_bytes().as_slice())?;
                if let Some(old) = old {
                    let old: Item = decode(old.value())?;
                    index.remove(index_key(old.group, id).as_slice())?;
                    removed += 1;
                }
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    fn remove_bulk_wide(&self, ids: &[u64]) -> BenchResult<usize> {
        let txn = self.begin_write()?;
        let mut removed = 0;
        {
            let mut primary = txn.open_table(WIDE)?;
            let mut indexes = [
                txn.open_table(WIDE_KEYS[0])?,
                txn.open_table(WIDE_KEYS[1])?,
                txn.open_table(WIDE_KEYS[2])?,
                txn.open_table(WIDE_KEYS[3])?,
                txn.open_table(WIDE_KEYS[4])?,
            ];
            for &id in ids {
                let old = primary.remove(id.to_be_bytes().as_slice())?;
                if let Some(old) = old {
                    let old: Wide = decode(old.value())?;
                    for (index, key) in indexes.iter_mut().zip(wide_keys(&old)) {
                        index.remove(index_key(key, id).as_slice())?;
                    }
                    removed += 1;
                }
            }
        }
        txn.commit()?;
        Ok(removed)
    }
}
