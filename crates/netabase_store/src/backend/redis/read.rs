//! The read transaction, and the reads that write transactions make from the server.

use std::ops::Bound;
use std::sync::Arc;

use super::scripts::{direction_arg, lex_bounds};
use super::{NAME, Shared};
use crate::backend::{
    ChunkedRange, Cursor, Direction, Entry, EntryCursor, EntryFn, OldFn, OwnedReadTxn, RawRange,
    ReadTxn, ValueFn,
};
use crate::error::{NetabaseError, Result};

/// The store's version as a read script returns it.
pub(super) type Version = Vec<u8>;

fn malformed(operation: &'static str) -> NetabaseError {
    NetabaseError::backend(
        NAME,
        operation,
        "the server's reply has an unexpected shape",
    )
}

/// Splits a script's reply into the version and the rest.
fn split(
    reply: Vec<Option<Vec<u8>>>,
    operation: &'static str,
) -> Result<(Version, Vec<Option<Vec<u8>>>)> {
    let mut reply = reply.into_iter();
    match reply.next() {
        Some(Some(version)) => Ok((version, reply.collect())),
        _ => Err(malformed(operation)),
    }
}

impl Shared {
    /// The values at `keys` of `table`, with the store's version, in one script.
    pub(super) fn fetch_many(
        &self,
        table: &str,
        keys: &[&[u8]],
    ) -> Result<(Version, Vec<Option<Vec<u8>>>)> {
        const OP: &str = "read keys";
        let reply = self.pool.with(OP, |con| {
            let mut call = self.scripts.get_many.prepare_invoke();
            call.key(self.keys.version()).key(self.keys.values(table));
            for key in keys {
                call.arg(*key);
            }
            call.invoke::<Vec<Option<Vec<u8>>>>(con)
        })?;
        let (version, values) = split(reply, OP)?;
        if values.len() != keys.len() {
            return Err(malformed(OP));
        }
        Ok((version, values))
    }

    /// At most `limit` entries of `range` in `table`, with the store's version, in one
    /// script.
    pub(super) fn fetch_range(
        &self,
        table: &str,
        range: &RawRange,
        direction: Direction,
        limit: usize,
    ) -> Result<(Version, Vec<Entry>)> {
        const OP: &str = "read a range";
        let (min, max) = lex_bounds(range);
        let reply = self.pool.with(OP, |con| {
            self.scripts
                .range
                .key(self.keys.version())
                .key(self.keys.order(table))
                .key(self.keys.values(table))
                .arg(min)
                .arg(max)
                .arg(direction_arg(direction))
                .arg(limit)
                .invoke::<Vec<Option<Vec<u8>>>>(con)
        })?;
        let (version, flat) = split(reply, OP)?;
        if flat.len() % 2 != 0 {
            return Err(malformed(OP));
        }
        let mut entries = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
            match (key, value) {
                (Some(key), Some(value)) => entries.push((key, value)),
                (Some(key), None) => {
                    return Err(NetabaseError::corrupted(
                        NAME,
                        OP,
                        Some(table),
                        format!(
                            "key {} is in the table's order but has no value",
                            crate::error::hex(&key)
                        ),
                    ));
                }
                _ => return Err(malformed(OP)),
            }
        }
        Ok((version, entries))
    }

    /// The number of entries of `table`, with the store's version.
    pub(super) fn fetch_len(&self, table: &str) -> Result<(Version, u64)> {
        const OP: &str = "count a table";
        let reply = self.pool.with(OP, |con| {
            self.scripts
                .len
                .key(self.keys.version())
                .key(self.keys.order(table))
                .invoke::<Vec<Option<Vec<u8>>>>(con)
        })?;
        let (version, rest) = split(reply, OP)?;
        let len = match rest.as_slice() {
            [Some(n)] => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
            _ => None,
        };
        Ok((version, len.ok_or_else(|| malformed(OP))?))
    }

    /// The names of the tables, with the store's version.
    pub(super) fn fetch_tables(&self) -> Result<(Version, Vec<String>)> {
        const OP: &str = "list the tables";
        let reply = self.pool.with(OP, |con| {
            self.scripts
                .tables
                .key(self.keys.version())
                .key(self.keys.tables())
                .invoke::<Vec<Option<Vec<u8>>>>(con)
        })?;
        let (version, names) = split(reply, OP)?;
        let names = names
            .into_iter()
            .map(|name| name.map(|n| String::from_utf8_lossy(&n).into_owned()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(OP))?;
        Ok((version, names))
    }
}

/// Entries per round trip of [`ReadTxn::for_each_in`].
const VISIT_CHUNK: usize = 1024;

/// A read transaction of [`super::RedisBackend`]. It holds no connection: each read
/// takes one from the pool and sees the latest committed state (reads are not
/// snapshots; each single read is atomic). It needs no version, so its reads are plain
/// commands (`HGET`, `HMGET`, `ZCARD`, `ZRANGE`) wherever one command suffices; a range
/// chunk (keys and values) is one script.
pub struct RedisRead {
    shared: Arc<Shared>,
}

impl RedisRead {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        RedisRead { shared }
    }
}

/// Entries in the first chunk of a scan: a page of up to 128 records is one round trip.
pub(super) const FIRST_CHUNK: usize = 128;

/// A lazy scan of `table` that reads one chunk per round trip.
fn scan(
    shared: Arc<Shared>,
    table: &str,
    range: RawRange,
    direction: Direction,
) -> Cursor<'static> {
    let table = table.to_owned();
    Box::new(EntryCursor::new(ChunkedRange::with_first_chunk(
        range,
        direction,
        FIRST_CHUNK,
        move |range, direction, limit| Ok(shared.fetch_range(&table, range, direction, limit)?.1),
    )))
}

impl ReadTxn for RedisRead {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        let value = self.shared.pool.with("read a key", |con| {
            redis::cmd("HGET")
                .arg(self.shared.keys.values(table))
                .arg(key)
                .query::<Option<Vec<u8>>>(con)
        })?;
        f(value.as_deref())
    }

    fn get_each(&self, table: &str, keys: &[&[u8]], f: &mut OldFn<'_>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One plain `HMGET`: a read transaction needs no version.
        let values = self.shared.pool.with("read keys", |con| {
            redis::cmd("HMGET")
                .arg(self.shared.keys.values(table))
                .arg(keys)
                .query::<Vec<Option<Vec<u8>>>>(con)
        })?;
        if values.len() != keys.len() {
            return Err(malformed("read keys"));
        }
        for (i, value) in values.iter().enumerate() {
            f(i, value.as_deref())?;
        }
        Ok(())
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        self.scan(table, range, direction)
    }

    /// Visits the range in chunks of [`VISIT_CHUNK`] entries: a caller that visits
    /// usually wants the whole range (a secondary query), so the first chunk is large.
    fn for_each_in(
        &self,
        table: &str,
        mut range: RawRange,
        direction: Direction,
        f: &mut EntryFn<'_>,
    ) -> Result<()> {
        loop {
            if range.is_empty() {
                return Ok(());
            }
            let (_, entries) = self
                .shared
                .fetch_range(table, &range, direction, VISIT_CHUNK)?;
            let full = entries.len() == VISIT_CHUNK;
            for (key, value) in &entries {
                if f(key, value)?.is_break() {
                    return Ok(());
                }
            }
            match entries.into_iter().last() {
                Some((last, _)) if full => match direction {
                    Direction::Forward => range.start = Bound::Excluded(last),
                    Direction::Reverse => range.end = Bound::Excluded(last),
                },
                _ => return Ok(()),
            }
        }
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.shared.pool.with("count a table", |con| {
            redis::cmd("ZCARD")
                .arg(self.shared.keys.order(table))
                .query::<u64>(con)
        })
    }

    fn table_names(&self) -> Result<Vec<String>> {
        let names = self.shared.pool.with("list the tables", |con| {
            redis::cmd("ZRANGE")
                .arg(self.shared.keys.tables())
                .arg(0)
                .arg(-1)
                .query::<Vec<Vec<u8>>>(con)
        })?;
        Ok(names
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect())
    }
}

impl OwnedReadTxn for RedisRead {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>> {
        Ok(scan(Arc::clone(&self.shared), table, range, direction))
    }
}
