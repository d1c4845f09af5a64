//! The write transaction of the redb backend.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use redb::{ReadableTable, ReadableTableMetadata};

use super::damage::Damage;
use super::{Bytes, definition, err, sorted_names};
use crate::backend::{
    ChunkedRange, Cursor, Direction, Entry, FirstFn, OldFn, RawRange, ReadTxn, ValueFn, WriteOp,
    WriteTxn,
};
use crate::error::{NetabaseError, Result};

/// A write transaction of [`RedbBackend`].
pub struct RedbWrite {
    pub(super) txn: redb::WriteTransaction,
    pub(super) damage: Damage,
    /// Set on the commit promoted to durable: it records when it returned.
    pub(super) durable_mark: Option<Arc<Mutex<Instant>>>,
}

impl RedbWrite {
    /// Opens `table` for writing (creating it on first use).
    fn open(&self, table: &str) -> Result<redb::Table<'_, Bytes, Bytes>> {
        self.txn
            .open_table(definition(table))
            .map_err(|e| err("open a table")(e.into()))
    }

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
        self.damage.run("scan a table", Some(table), || {
            let t = self.open(table)?;
            let iter = t
                .range::<&[u8]>(range.as_bounds())
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
        })
    }
}

impl ReadTxn for RedbWrite {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        self.damage.run("read a key", Some(table), || {
            let t = self.open(table)?;
            let found = t.get(key).map_err(|e| err("read a key")(e.into()))?;
            f(found.as_ref().map(|v| v.value()))
        })
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        // redb's tables borrow the write transaction: read in chunks, each reopening
        // the table after the last key seen.
        let table = table.to_owned();
        Ok(ChunkedRange::cursor(
            range,
            direction,
            move |range, direction, limit| self.collect_range(&table, range, direction, limit),
        ))
    }

    fn first_each(
        &self,
        table: &str,
        ranges: Vec<RawRange>,
        direction: Direction,
        f: &mut FirstFn<'_>,
    ) -> Result<()> {
        self.damage.run("scan a table", Some(table), || {
            let t = self.open(table)?;
            for (i, range) in ranges.iter().enumerate() {
                if range.is_empty() {
                    f(i, None)?;
                    continue;
                }
                let mut iter = t
                    .range::<&[u8]>(range.as_bounds())
                    .map_err(|e| err("scan a table")(e.into()))?;
                let item = match direction {
                    Direction::Forward => iter.next(),
                    Direction::Reverse => iter.next_back(),
                };
                match item {
                    None => f(i, None)?,
                    Some(entry) => {
                        let (k, v) = entry.map_err(|e| err("scan a table")(e.into()))?;
                        f(i, Some((k.value(), v.value())))?;
                    }
                }
            }
            Ok(())
        })
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.damage.run("count a table", Some(table), || {
            self.open(table)?
                .len()
                .map_err(|e| err("count a table")(e.into()))
        })
    }

    fn table_names(&self) -> Result<Vec<String>> {
        self.damage
            .run("list tables", None, || sorted_names(self.txn.list_tables()))
    }
}

impl WriteTxn for RedbWrite {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.damage.run("write a key", Some(table), || {
            let mut t = self.open(table)?;
            t.insert(key, value)
                .map_err(|e| err("write a key")(e.into()))?;
            Ok(())
        })
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        self.damage.run("delete a key", Some(table), || {
            let mut t = self.open(table)?;
            let removed = t.remove(key).map_err(|e| err("delete a key")(e.into()))?;
            Ok(removed.is_some())
        })
    }

    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        self.damage.run("write a key", Some(table), || {
            let mut t = self.open(table)?;
            for (i, (key, value)) in entries.iter().enumerate() {
                let previous = t
                    .insert(*key, *value)
                    .map_err(|e| err("write a key")(e.into()))?;
                old(i, previous.as_ref().map(|v| v.value()))?;
            }
            Ok(())
        })
    }

    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        self.damage.run("delete a key", Some(table), || {
            let mut t = self.open(table)?;
            for (i, key) in keys.iter().enumerate() {
                let previous = t.remove(*key).map_err(|e| err("delete a key")(e.into()))?;
                old(i, previous.as_ref().map(|v| v.value()))?;
            }
            Ok(())
        })
    }

    fn clear(&self, table: &str) -> Result<()> {
        self.damage.run("clear a table", Some(table), || {
            match self.txn.delete_table(definition(table)) {
                Ok(_) => Ok(()),
                Err(e) => Err(err("clear a table")(e.into())),
            }
        })
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        self.damage.run("write keys", None, || {
            // Ops arrive grouped by table (index maintenance emits them that way); keep the
            // current table open across a run of ops on it.
            let mut i = 0;
            while i < ops.len() {
                let name = ops[i].table();
                let mut t = self.open(name)?;
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
        })
    }

    fn commit(self) -> Result<()> {
        let RedbWrite {
            txn,
            damage,
            durable_mark,
        } = self;
        damage.run("commit a write transaction", None, || {
            txn.commit()
                .map_err(|e| err("commit a write transaction")(e.into()))
        })?;
        if let Some(mark) = durable_mark {
            *mark.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
        Ok(())
    }
}
