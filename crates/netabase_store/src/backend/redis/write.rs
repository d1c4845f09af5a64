//! The write transaction: an overlay of the transaction's writes over the server's
//! data, whose reads all come from one version of the store, applied by one script
//! that first checks that version.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::MutexGuard;

use super::read::Version;
use super::{NAME, Shared};
use crate::backend::{
    ChunkedRange, Cursor, Direction, Entry, EntryCursor, OldFn, RawRange, ReadTxn, ValueFn,
    WriteOp, WriteTxn, overlay,
};
use crate::error::{NetabaseError, Result};

/// The writes of one transaction to one table.
#[derive(Default)]
struct TableOverlay {
    /// Everything on the server is hidden (and removed on commit).
    cleared: bool,
    /// Keys written since: `Some(value)`, or `None` for a removal.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A write transaction of [`super::RedisBackend`].
pub struct RedisWrite<'a> {
    shared: &'a Shared,
    overlay: RefCell<BTreeMap<String, TableOverlay>>,
    /// The store's version that every read so far came from.
    pinned: RefCell<Option<Version>>,
    _guard: MutexGuard<'a, ()>,
}

impl<'a> RedisWrite<'a> {
    pub(super) fn new(shared: &'a Shared, guard: MutexGuard<'a, ()>) -> Self {
        RedisWrite {
            shared,
            overlay: RefCell::new(BTreeMap::new()),
            pinned: RefCell::new(None),
            _guard: guard,
        }
    }

    /// Pins `version` at the first read; a later read of another version means a
    /// concurrent commit: the transaction cannot go on consistently.
    fn check(&self, version: Version) -> Result<()> {
        let mut pinned = self.pinned.borrow_mut();
        match pinned.as_ref() {
            None => {
                *pinned = Some(version);
                Ok(())
            }
            Some(v) if *v == version => Ok(()),
            Some(v) => Err(NetabaseError::conflict(
                NAME,
                "read in a write transaction",
                format!(
                    "the store moved from version {} to {} while the transaction read it",
                    String::from_utf8_lossy(v),
                    String::from_utf8_lossy(&version)
                ),
            )),
        }
    }

    /// Whether the transaction cleared `table` (the server's entries are hidden).
    fn cleared(&self, table: &str) -> bool {
        self.overlay.borrow().get(table).is_some_and(|o| o.cleared)
    }

    /// The values at `keys` as this transaction sees them, reading from the server (in
    /// one script) only the keys it has not written.
    fn lookup_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out: Vec<Option<Option<Vec<u8>>>> = {
            let overlay = self.overlay.borrow();
            let o = overlay.get(table);
            keys.iter()
                .map(|key| match o {
                    Some(o) => match o.writes.get(*key) {
                        Some(written) => Some(written.clone()),
                        None if o.cleared => Some(None),
                        None => None,
                    },
                    None => None,
                })
                .collect()
        };
        let missing: Vec<&[u8]> = keys
            .iter()
            .zip(&out)
            .filter(|(_, found)| found.is_none())
            .map(|(key, _)| *key)
            .collect();
        if !missing.is_empty() {
            let (version, values) = self.shared.fetch_many(table, &missing)?;
            self.check(version)?;
            let mut values = values.into_iter();
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                *slot = Some(values.next().flatten());
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    fn lookup(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lookup_many(table, &[key])?.pop().flatten())
    }

    /// The server's entries of `range`, read chunk by chunk from the pinned version.
    fn base(
        &self,
        table: &str,
        range: &RawRange,
        direction: Direction,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let table = table.to_owned();
        let hidden = self.cleared(&table);
        ChunkedRange::with_first_chunk(
            range.clone(),
            direction,
            super::read::FIRST_CHUNK,
            move |range, direction, limit| {
                if hidden {
                    return Ok(Vec::new());
                }
                let (version, entries) =
                    self.shared.fetch_range(&table, range, direction, limit)?;
                self.check(version)?;
                Ok(entries)
            },
        )
    }

    /// At most `limit` entries of `range`, the overlay merged over the server's.
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
        // The overlay's writes in the range, copied so that nothing is borrowed while
        // the server is read.
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let overlay = self.overlay.borrow();
            match overlay.get(table) {
                Some(o) => {
                    let iter = o.writes.range::<[u8], _>(range.as_bounds());
                    match direction {
                        Direction::Forward => iter.map(|(k, v)| (k.clone(), v.clone())).collect(),
                        Direction::Reverse => {
                            iter.rev().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                    }
                }
                None => Vec::new(),
            }
        };
        overlay::merge(
            self.base(table, range, direction),
            writes.into_iter(),
            direction,
            limit,
        )
    }

    fn write(&self, table: &str, key: &[u8], value: Option<&[u8]>) {
        self.overlay
            .borrow_mut()
            .entry(table.to_owned())
            .or_default()
            .writes
            .insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }
}

impl ReadTxn for RedisWrite<'_> {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        let value = self.lookup(table, key)?;
        f(value.as_deref())
    }

    fn get_each(&self, table: &str, keys: &[&[u8]], f: &mut OldFn<'_>) -> Result<()> {
        for (i, value) in self.lookup_many(table, keys)?.iter().enumerate() {
            f(i, value.as_deref())?;
        }
        Ok(())
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        // Chunked, so that no borrow of the overlay is held between chunks and the
        // transaction stays writable while a scan is open.
        let table = table.to_owned();
        Ok(Box::new(EntryCursor::new(ChunkedRange::with_first_chunk(
            range,
            direction,
            super::read::FIRST_CHUNK,
            move |range, direction, limit| self.merged(&table, range, direction, limit),
        ))))
    }

    fn len(&self, table: &str) -> Result<u64> {
        let (cleared, written): (bool, Vec<(Vec<u8>, bool)>) = {
            let overlay = self.overlay.borrow();
            match overlay.get(table) {
                Some(o) => (
                    o.cleared,
                    o.writes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.is_some()))
                        .collect(),
                ),
                None => (false, Vec::new()),
            }
        };
        if cleared {
            return Ok(written.iter().filter(|(_, put)| *put).count() as u64);
        }
        let (version, mut len) = self.shared.fetch_len(table)?;
        self.check(version)?;
        if !written.is_empty() {
            let keys: Vec<&[u8]> = written.iter().map(|(k, _)| k.as_slice()).collect();
            let (version, on_server) = self.shared.fetch_many(table, &keys)?;
            self.check(version)?;
            for ((_, put), there) in written.iter().zip(on_server) {
                match (put, there.is_some()) {
                    (true, false) => len += 1,
                    (false, true) => len = len.saturating_sub(1),
                    _ => {}
                }
            }
        }
        Ok(len)
    }

    fn table_names(&self) -> Result<Vec<String>> {
        let (version, mut names) = self.shared.fetch_tables()?;
        self.check(version)?;
        names.extend(self.overlay.borrow().keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl WriteTxn for RedisWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(table, key, Some(value));
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        let existed = self.lookup(table, key)?.is_some();
        if existed {
            self.write(table, key, None);
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

    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        // Every replaced value the server holds, in one round trip; a key put twice in
        // `entries` replaces the value of its first put the second time.
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| *k).collect();
        let mut before: HashMap<&[u8], Option<Vec<u8>>> = HashMap::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(self.lookup_many(table, &keys)?) {
            before.entry(*key).or_insert(value);
        }
        for (i, (key, value)) in entries.iter().enumerate() {
            let previous = before.insert(key, Some(value.to_vec())).flatten();
            self.write(table, key, Some(value));
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        let mut before: HashMap<&[u8], Option<Vec<u8>>> = HashMap::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(self.lookup_many(table, keys)?) {
            before.entry(*key).or_insert(value);
        }
        for (i, key) in keys.iter().enumerate() {
            let previous = before.insert(key, None).flatten();
            if previous.is_some() {
                self.write(table, key, None);
            }
            old(i, previous.as_deref())?;
        }
        Ok(())
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            match op {
                WriteOp::Put { table, key, value } => self.write(table, key, Some(value)),
                // A removal of a key that is nowhere is recorded too: cheaper than the
                // lookup that `delete` makes to answer whether it was there.
                WriteOp::Delete { table, key } => self.write(table, key, None),
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        const OP: &str = "commit a write transaction";
        let overlay = self.overlay.into_inner();
        if overlay.is_empty() {
            return Ok(());
        }
        let pinned = self.pinned.into_inner();
        let keys = &self.shared.keys;
        let result = self.shared.pool.with(OP, |con| {
            let mut call = self.shared.scripts.commit.prepare_invoke();
            call.key(keys.version()).key(keys.tables());
            call.arg(pinned.as_deref().unwrap_or_default())
                .arg(overlay.len());
            for (name, o) in &overlay {
                call.key(keys.order(name)).key(keys.values(name));
                let puts = o.writes.values().filter(|v| v.is_some()).count();
                call.arg(name.as_str())
                    .arg(if o.cleared { "1" } else { "0" })
                    .arg(puts)
                    .arg(o.writes.len() - puts);
                for (key, value) in &o.writes {
                    if let Some(value) = value {
                        call.arg(key.as_slice()).arg(value.as_slice());
                    }
                }
                for (key, value) in &o.writes {
                    if value.is_none() {
                        call.arg(key.as_slice());
                    }
                }
            }
            call.invoke::<i64>(con)
        })?;
        if result < 0 {
            return Err(NetabaseError::conflict(
                NAME,
                OP,
                format!(
                    "the store is no longer at version {} that the transaction read",
                    pinned
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}
