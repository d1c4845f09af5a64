//! The write transaction of the sled backend: an overlay of the transaction's writes over
//! the trees, applied in one sled transaction on commit.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::MutexGuard;

use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

use super::read::scan_tree;
use super::{NAME, SledBackend, err};
use crate::backend::{
    ChunkedRange, Cursor, Direction, Entry, RawRange, ReadTxn, ValueFn, WriteOp, WriteTxn, overlay,
};
use crate::error::{NetabaseError, Result};

/// The writes of one transaction to one table.
#[derive(Default)]
pub(super) struct TableOverlay {
    /// Everything in the tree is hidden (and removed on commit).
    cleared: bool,
    /// Keys written since: `Some(value)`, or `None` for a removal.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A write transaction of [`SledBackend`]: an overlay over the trees, applied in one sled
/// transaction on commit.
pub struct SledWrite<'a> {
    pub(super) backend: &'a SledBackend,
    pub(super) overlay: RefCell<BTreeMap<String, TableOverlay>>,
    pub(super) _guard: MutexGuard<'a, ()>,
}

impl SledWrite<'_> {
    /// The tree under the overlay of `table`, unless the transaction cleared it.
    fn base(&self, table: &str, overlay: Option<&TableOverlay>) -> Result<Option<sled::Tree>> {
        if overlay.is_some_and(|o| o.cleared) {
            return Ok(None);
        }
        self.backend.shared.existing(table)
    }

    /// At most `limit` entries of `range`, the overlay merged over the tree.
    fn merged(
        &self,
        table: &str,
        range: &RawRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        let base = match self.base(table, table_overlay)? {
            Some(tree) => scan_tree(&tree, range, direction),
            None => Box::new(std::iter::empty()),
        };
        let bounds = range.as_bounds();
        type Writes<'w> = Box<dyn Iterator<Item = (&'w [u8], Option<&'w [u8]>)> + 'w>;
        let writes: Writes<'_> = match table_overlay {
            Some(o) => {
                let iter = o
                    .writes
                    .range::<[u8], _>(bounds)
                    .map(|(k, v)| (k.as_slice(), v.as_deref()));
                match direction {
                    Direction::Forward => Box::new(iter),
                    Direction::Reverse => Box::new(iter.rev()),
                }
            }
            None => Box::new(std::iter::empty()),
        };
        overlay::merge(base, writes, direction, limit)
    }
}

impl SledWrite<'_> {
    /// The value at `key`: the transaction's own write if it made one, else the tree's.
    fn lookup(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        if let Some(written) = table_overlay.and_then(|o| o.writes.get(key)) {
            return Ok(written.clone());
        }
        match self.base(table, table_overlay)? {
            Some(tree) => Ok(tree
                .get(key)
                .map_err(err("read a key"))?
                .map(|v| v.to_vec())),
            None => Ok(None),
        }
    }
}

impl ReadTxn for SledWrite<'_> {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        // The overlay is not borrowed while `f` runs.
        let value = self.lookup(table, key)?;
        f(value.as_deref())
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        // Chunked, so that no borrow of the overlay is held between chunks and the
        // transaction stays writable while a scan is open.
        let table = table.to_owned();
        Ok(ChunkedRange::cursor(
            range,
            direction,
            move |range, direction, limit| self.merged(&table, range, direction, limit),
        ))
    }

    fn len(&self, table: &str) -> Result<u64> {
        let overlay = self.overlay.borrow();
        let table_overlay = overlay.get(table);
        let base = self.base(table, table_overlay)?;
        let mut len = base.as_ref().map_or(0, |tree| tree.len() as u64);
        if let Some(o) = table_overlay {
            for (key, write) in &o.writes {
                let in_base = match &base {
                    Some(tree) => tree.contains_key(key).map_err(err("read a key"))?,
                    None => false,
                };
                match (write, in_base) {
                    (Some(_), false) => len += 1,
                    (None, true) => len = len.saturating_sub(1),
                    _ => {}
                }
            }
        }
        Ok(len)
    }

    fn table_names(&self) -> Result<Vec<String>> {
        let mut names = self.backend.shared.table_names();
        names.extend(self.overlay.borrow().keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl WriteTxn for SledWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.overlay
            .borrow_mut()
            .entry(table.to_owned())
            .or_default()
            .writes
            .insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        let existed = self.lookup(table, key)?.is_some();
        if existed {
            self.overlay
                .borrow_mut()
                .entry(table.to_owned())
                .or_default()
                .writes
                .insert(key.to_vec(), None);
        }
        Ok(existed)
    }

    fn clear(&self, table: &str) -> Result<()> {
        let mut overlay = self.overlay.borrow_mut();
        let o = overlay.entry(table.to_owned()).or_default();
        o.cleared = true;
        o.writes.clear();
        Ok(())
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            match op {
                WriteOp::Put { table, key, value } => self.put(table, key, value)?,
                // A removal of a key that is nowhere is recorded too: cheaper than the
                // lookup that `delete` makes to answer whether it was there.
                WriteOp::Delete { table, key } => {
                    self.overlay
                        .borrow_mut()
                        .entry((*table).to_owned())
                        .or_default()
                        .writes
                        .insert(key.clone(), None);
                }
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        let overlay = self.overlay.into_inner();
        if overlay.is_empty() {
            return Ok(());
        }
        let shared = &self.backend.shared;
        let mut trees = Vec::with_capacity(overlay.len());
        let mut plans = Vec::with_capacity(overlay.len());
        for (name, table_overlay) in &overlay {
            let tree = shared.open(name)?;
            // The writer lock keeps other netabase writers out until the sled transaction
            // below has committed, so these are exactly the keys to remove.
            let cleared: Vec<sled::IVec> = if table_overlay.cleared {
                tree.iter()
                    .keys()
                    .collect::<sled::Result<_>>()
                    .map_err(err("scan a tree"))?
            } else {
                Vec::new()
            };
            trees.push(tree);
            plans.push((cleared, &table_overlay.writes));
        }
        let flush = self.backend.flush_on_commit;
        // sled may run the closure again after a conflict with a concurrent writer that
        // bypassed netabase; it only replays the overlay, so that is harmless.
        trees
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                for (view, (cleared, writes)) in views.iter().zip(&plans) {
                    for key in cleared {
                        view.remove(key.clone())?;
                    }
                    for (key, write) in writes.iter() {
                        match write {
                            Some(value) => view.insert(key.as_slice(), value.as_slice())?,
                            None => view.remove(key.as_slice())?,
                        };
                    }
                }
                if flush && let Some(view) = views.first() {
                    view.flush();
                }
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|e| NetabaseError::backend(NAME, "commit a write transaction", e))
    }
}
