//! The read transaction of the redb backend and its lending cursor.

use std::cell::RefCell;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata, TableError};

use super::damage::Damage;
use super::{Bytes, definition, err, sorted_names};
use crate::backend::{
    Cursor, Direction, EntryCursor, EntryFn, OwnedReadTxn, RawCursor, RawRange, ReadTxn, ValueFn,
};
use crate::error::Result;

/// An opened read-only table of netabase bytes.
type ReadTable = redb::ReadOnlyTable<Bytes, Bytes>;

/// A table name and what opening it gave: the shared handle, or `None` when the table
/// does not exist.
type CachedTable = (Box<str>, Option<Arc<ReadTable>>);

/// A read transaction of [`RedbBackend`].
pub struct RedbRead {
    txn: redb::ReadTransaction,
    /// Tables opened so far; `None` records a table that does not exist.
    ///
    /// A transaction touches a handful of tables (a model and its indexes), so a short
    /// list compared by name beats hashing the name on every lookup.
    tables: RefCell<Vec<CachedTable>>,
    damage: Damage,
}

impl RedbRead {
    pub(super) fn new(txn: redb::ReadTransaction, damage: Damage) -> Self {
        RedbRead {
            txn,
            tables: RefCell::new(Vec::new()),
            damage,
        }
    }

    /// Runs `f` on the table, or returns `absent` when it was never created. The cache
    /// is not borrowed while `f` runs, so `f` may open other tables of the transaction.
    fn with_table<T>(
        &self,
        table: &str,
        absent: T,
        f: impl FnOnce(&redb::ReadOnlyTable<Bytes, Bytes>) -> Result<T>,
    ) -> Result<T> {
        let cached = self
            .tables
            .borrow()
            .iter()
            .find(|(name, _)| **name == *table)
            .map(|(_, t)| t.clone());
        let opened = match cached {
            Some(t) => t,
            None => {
                let opened = match self.txn.open_table(definition(table)) {
                    Ok(t) => Some(Arc::new(t)),
                    Err(TableError::TableDoesNotExist(_)) => None,
                    Err(e) => return Err(err("open a table")(e.into())),
                };
                self.tables
                    .borrow_mut()
                    .push((table.into(), opened.clone()));
                opened
            }
        };
        match &opened {
            Some(t) => f(t),
            None => Ok(absent),
        }
    }
}

/// Calls `f` on each entry of an opened table's range until it breaks.
fn visit(
    t: &impl ReadableTable<Bytes, Bytes>,
    range: &RawRange,
    direction: Direction,
    f: &mut EntryFn<'_>,
) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let mut iter = t
        .range::<&[u8]>(range.as_bounds())
        .map_err(|e| err("scan a table")(e.into()))?;
    loop {
        let item = match direction {
            Direction::Forward => iter.next(),
            Direction::Reverse => iter.next_back(),
        };
        let Some(item) = item else {
            return Ok(());
        };
        let (k, v) = item.map_err(|e| err("scan a table")(e.into()))?;
        if f(k.value(), v.value())?.is_break() {
            return Ok(());
        }
    }
}

impl ReadTxn for RedbRead {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        self.damage.run("read a key", Some(table), || {
            let found = self.with_table(table, None, |t| {
                t.get(key).map_err(|e| err("read a key")(e.into()))
            })?;
            f(found.as_ref().map(|v| v.value()))
        })
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
        self.damage.run("scan a table", Some(table), || {
            self.with_table(table, (), |t| visit(t, &range, direction, f))
        })
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.damage.run("count a table", Some(table), || {
            self.with_table(table, 0, |t| {
                t.len().map_err(|e| err("count a table")(e.into()))
            })
        })
    }

    fn table_names(&self) -> Result<Vec<String>> {
        self.damage
            .run("list tables", None, || sorted_names(self.txn.list_tables()))
    }
}

/// A lending scan over a read-only table: holds the entry it lent last.
struct RedbCursor {
    range: redb::Range<'static, Bytes, Bytes>,
    direction: Direction,
    damage: Damage,
    current: Option<(
        redb::AccessGuard<'static, Bytes>,
        redb::AccessGuard<'static, Bytes>,
    )>,
}

impl RawCursor for RedbCursor {
    fn next_entry(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let (range, direction, current) = (&mut self.range, self.direction, &mut self.current);
        // The step and the reads of the entry's bytes, which can panic on a damaged page
        // too, all run under the guard; the closure lends the bytes out of `current`.
        let step = self.damage.run("scan a table", None, move || {
            let item = match direction {
                Direction::Forward => range.next(),
                Direction::Reverse => range.next_back(),
            };
            Ok(match item {
                None => None,
                Some(Ok(entry)) => {
                    let (k, v) = current.insert(entry);
                    Some(Ok((k.value(), v.value())))
                }
                Some(Err(e)) => Some(Err(err("scan a table")(e.into()))),
            })
        });
        match step {
            Ok(entry) => entry,
            Err(e) => Some(Err(e)),
        }
    }
}

impl OwnedReadTxn for RedbRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>> {
        let empty = || Box::new(EntryCursor::new(std::iter::empty())) as Cursor<'static>;
        if range.is_empty() {
            return Ok(empty());
        }
        self.damage.run("scan a table", Some(table), || {
            self.with_table(table, empty(), |t| {
                // Read-only tables hand out ranges that own their snapshot.
                let range = t
                    .range::<&[u8]>(range.as_bounds())
                    .map_err(|e| err("scan a table")(e.into()))?;
                Ok(Box::new(RedbCursor {
                    range,
                    direction,
                    damage: self.damage.clone(),
                    current: None,
                }) as Cursor<'static>)
            })
        })
    }
}
