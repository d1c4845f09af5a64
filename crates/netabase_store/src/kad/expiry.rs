//! The expiry index ([`EXPIRY_TABLE`]): every stored record, tombstone and provider
//! record that can become removable, ordered by when it does, so that a sweep reads
//! only what is due (O(expired + log n)) instead of decoding every record.
//!
//! Keys (values are empty):
//!
//! | kind | key |
//! |---|---|
//! | an expiry | `0` ++ wall time (seconds u64 BE ++ nanoseconds u32 BE) ++ table tag ++ record key |
//! | a tombstone | `1` ++ stamp milliseconds (u64 BE) ++ table tag ++ record key |
//! | the marker "index built" | `0xFF` |
//!
//! A tombstone is indexed by its stamp, not by its stamp plus
//! [`KadStoreConfig::tombstone_ttl`](super::KadStoreConfig::tombstone_ttl), because the
//! TTL is configuration and may change between runs: a sweep reads the tombstones
//! stamped before `now - ttl`.
//!
//! The index is kept exact: every write or delete of a record in the four kad tables
//! goes through [`put_indexed`] / [`delete_indexed`] (or [`reindex`]), in the same
//! transaction. A sweep still checks each record before deleting it, so an entry that
//! does not match its record (written by an older build, say) never deletes a live
//! record: it is dropped.

use std::ops::ControlFlow;
use std::time::Duration;

use super::encoding::{StoredProvider, StoredRecord, WallTime, decode};
use super::signed::Envelope;
use super::{EXPIRY_TABLE, PROVIDED_TABLE, PROVIDERS_TABLE, RECORDS_TABLE, REPLICAS_TABLE};
use crate::backend::{Direction, RawRange, ReadTxn, WriteTxn, collect_range};
use crate::error::NetabaseError;

const KIND_EXPIRY: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
/// The entry whose presence says the index covers every record.
const MARKER: &[u8] = &[0xFF];
/// The length of a [`KIND_EXPIRY`] time.
const EXPIRY_LEN: usize = 12;
/// The length of a [`KIND_TOMBSTONE`] time.
const STAMP_LEN: usize = 8;

/// The one-byte tag of an indexed table.
fn table_tag(table: &str) -> Option<u8> {
    match table {
        RECORDS_TABLE => Some(b'r'),
        REPLICAS_TABLE => Some(b'c'),
        PROVIDERS_TABLE => Some(b'p'),
        PROVIDED_TABLE => Some(b'l'),
        _ => None,
    }
}

/// The index entries of the stored `bytes` at `key` of `table` (none for bytes that do
/// not decode: a sweep leaves those alone anyway), sorted.
pub(super) fn entries_of(table: &str, key: &[u8], bytes: &[u8]) -> Vec<Vec<u8>> {
    let Some(tag) = table_tag(table) else {
        return Vec::new();
    };
    let mut times: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut expiry = |time: WallTime| times.push((KIND_EXPIRY, time.to_be_bytes().to_vec()));
    match table {
        PROVIDERS_TABLE => {
            for provider in decode::<Vec<StoredProvider>>(bytes).unwrap_or_default() {
                provider.expires.map(&mut expiry);
            }
        }
        PROVIDED_TABLE => {
            if let Some(time) = decode::<StoredProvider>(bytes).ok().and_then(|p| p.expires) {
                expiry(time);
            }
        }
        _ => {
            if let Ok(stored) = decode::<StoredRecord>(bytes) {
                stored.expires.map(&mut expiry);
                if let Ok(envelope) = Envelope::decode(&stored.value)
                    && envelope.tombstone
                {
                    let millis = envelope.stamp.hlc.millis.to_be_bytes().to_vec();
                    times.push((KIND_TOMBSTONE, millis));
                }
            }
        }
    }
    let mut out: Vec<Vec<u8>> = times
        .into_iter()
        .map(|(kind, time)| {
            let mut entry = Vec::with_capacity(2 + time.len() + key.len());
            entry.push(kind);
            entry.extend_from_slice(&time);
            entry.push(tag);
            entry.extend_from_slice(key);
            entry
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Replaces the index entries of `old` (the bytes stored at `key` of `table` before a
/// write, if any) by those of `new` (after it, if any).
fn reindex(
    txn: &impl WriteTxn,
    table: &str,
    key: &[u8],
    old: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<(), NetabaseError> {
    let old = old.map_or_else(Vec::new, |bytes| entries_of(table, key, bytes));
    let new = new.map_or_else(Vec::new, |bytes| entries_of(table, key, bytes));
    replace_entries(txn, &old, &new)
}

/// Deletes the entries of `old` that `new` lacks and adds those it lacks (a record has
/// at most two entries).
fn replace_entries(
    txn: &impl WriteTxn,
    old: &[Vec<u8>],
    new: &[Vec<u8>],
) -> Result<(), NetabaseError> {
    for entry in old.iter().filter(|e| !new.contains(e)) {
        txn.delete(EXPIRY_TABLE, entry)?;
    }
    for entry in new.iter().filter(|e| !old.contains(e)) {
        txn.put(EXPIRY_TABLE, entry, &[])?;
    }
    Ok(())
}

/// Writes `bytes` at `key` of `table` and keeps the index exact.
pub(super) fn put_indexed(
    txn: &impl WriteTxn,
    table: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<(), NetabaseError> {
    let old = txn.get(table, key)?;
    put_replacing(txn, table, key, old.as_deref(), bytes)
}

/// [`put_indexed`] when the caller has just read `old`, what `table` holds at `key`.
pub(super) fn put_replacing(
    txn: &impl WriteTxn,
    table: &str,
    key: &[u8],
    old: Option<&[u8]>,
    bytes: &[u8],
) -> Result<(), NetabaseError> {
    reindex(txn, table, key, old, Some(bytes))?;
    txn.put(table, key, bytes)
}

/// Deletes `key` of `table` and its index entries; whether it was there.
pub(super) fn delete_indexed(
    txn: &impl WriteTxn,
    table: &str,
    key: &[u8],
) -> Result<bool, NetabaseError> {
    let Some(old) = txn.get(table, key)? else {
        return Ok(false);
    };
    delete_replacing(txn, table, key, &old)
}

/// [`delete_indexed`] when the caller has just read `old`, what `table` holds at `key`.
pub(super) fn delete_replacing(
    txn: &impl WriteTxn,
    table: &str,
    key: &[u8],
    old: &[u8],
) -> Result<bool, NetabaseError> {
    reindex(txn, table, key, Some(old), None)?;
    txn.delete(table, key)
}

/// Builds the index from one scan of the indexed tables unless it is marked built (a
/// store written before the index existed); whether it was built now.
pub(super) fn ensure_built(txn: &impl WriteTxn) -> Result<bool, NetabaseError> {
    if txn.get(EXPIRY_TABLE, MARKER)?.is_some() {
        return Ok(false);
    }
    txn.clear(EXPIRY_TABLE)?;
    for table in [
        RECORDS_TABLE,
        REPLICAS_TABLE,
        PROVIDERS_TABLE,
        PROVIDED_TABLE,
    ] {
        for (key, bytes) in collect_range(txn, table, RawRange::all(), Direction::Forward)? {
            for entry in entries_of(table, &key, &bytes) {
                txn.put(EXPIRY_TABLE, &entry, &[])?;
            }
        }
    }
    txn.put(EXPIRY_TABLE, MARKER, &[])?;
    Ok(true)
}

/// Whether the index is marked built.
pub(super) fn is_built(txn: &impl ReadTxn) -> Result<bool, NetabaseError> {
    Ok(txn.get(EXPIRY_TABLE, MARKER)?.is_some())
}

/// A due index entry: the entry itself and the record key it names.
pub(super) struct Due {
    /// The index entry.
    pub(super) entry: Vec<u8>,
    /// The key of the record in its table.
    pub(super) key: Vec<u8>,
}

/// The index entries of `table` that are due at `now`: expiries at or before `now`,
/// and tombstones whose stamp plus `tombstone_ttl` is at or before `now_millis`. Reads
/// a prefix of each kind (and steps over the due entries of the other tables).
pub(super) fn due(
    txn: &impl ReadTxn,
    table: &str,
    now: WallTime,
    now_millis: u64,
    tombstone_ttl: Duration,
) -> Result<Vec<Due>, NetabaseError> {
    let Some(tag) = table_tag(table) else {
        return Ok(Vec::new());
    };
    let ttl = u64::try_from(tombstone_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for (kind, len) in [(KIND_EXPIRY, EXPIRY_LEN), (KIND_TOMBSTONE, STAMP_LEN)] {
        let mut visit = |entry: &[u8], _: &[u8]| {
            let time = entry.get(1..=len);
            let is_due = match kind {
                KIND_EXPIRY => time
                    .and_then(WallTime::from_be_bytes)
                    .is_none_or(|t| t.expired_at(now)),
                _ => time
                    .and_then(|t| <[u8; STAMP_LEN]>::try_from(t).ok())
                    .is_none_or(|t| u64::from_be_bytes(t).saturating_add(ttl) <= now_millis),
            };
            if !is_due {
                return Ok(ControlFlow::Break(()));
            }
            // A malformed entry (no tag) is listed with an empty key: it is dropped.
            if entry.get(len + 1).is_none_or(|t| *t == tag) {
                out.push(Due {
                    entry: entry.to_vec(),
                    key: entry.get(len + 2..).unwrap_or_default().to_vec(),
                });
            }
            Ok(ControlFlow::Continue(()))
        };
        txn.for_each_in(
            EXPIRY_TABLE,
            RawRange::prefix(&[kind]),
            Direction::Forward,
            &mut visit,
        )?;
    }
    Ok(out)
}

/// Drops `entry` unless it is among the entries of what `table` now holds at `key`
/// (an entry that no longer matches its record, which an exact index never has).
pub(super) fn drop_if_stale(
    txn: &impl WriteTxn,
    table: &str,
    entry: &[u8],
    key: &[u8],
) -> Result<(), NetabaseError> {
    let current = txn
        .get(table, key)?
        .map_or_else(Vec::new, |bytes| entries_of(table, key, &bytes));
    if !current.iter().any(|e| e == entry) {
        txn.delete(EXPIRY_TABLE, entry)?;
    }
    Ok(())
}
