//! Typed reads over a backend transaction: lookups, secondary-key queries and the
//! decoding iterators.
//!
//! On a backend without snapshot reads (sled), an index entry and the record it points
//! at are read at two moments, and a writer may commit in between: a query then checks
//! that each record it returns still matches it and skips those that moved or went
//! away, which a snapshot read would report as damage.

use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow, RangeBounds};

use crate::backend::{Cursor, Direction, EntryCursor, RawRange, ReadTxn};
use crate::codec::key::{KeyCodec, KeyDecodeError, prefix_successor};
use crate::codec::value::decode_model;
use crate::error::{DecodeReason, NetabaseError, Result};
use crate::schema::{
    NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum, SecondaryKeyInfo,
};

pub(crate) fn decode_pk<D, M>(table: &str, pk: &[u8]) -> Result<M::PrimaryKey>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    M::PrimaryKey::from_key_bytes(pk).map_err(|e| NetabaseError::decode(table, pk, e))
}

/// A primary table entry (`pk`, `bytes`) of `M`, decoded: the key and the record.
pub(crate) fn decode_entry<D, M>(pk: &[u8], bytes: &[u8]) -> Result<(M::PrimaryKey, M)>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    Ok((
        decode_pk::<D, M>(M::INFO.table, pk)?,
        decode_model::<D, M>(pk, bytes)?,
    ))
}

/// The record at the encoded primary key `pk`, decoded straight from the engine's
/// bytes.
pub(crate) fn get_raw<D, M, T>(txn: &T, pk: &[u8]) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let mut found = None;
    txn.get_with(M::INFO.table, pk, &mut |bytes| {
        if let Some(bytes) = bytes {
            found = Some(decode_model::<D, M>(pk, bytes)?);
        }
        Ok(())
    })?;
    Ok(found)
}

/// The record with primary key `key`.
pub(crate) fn get<D, M, T>(txn: &T, key: &M::PrimaryKey) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    get_raw::<D, M, T>(txn, &key.to_key_bytes())
}

/// Every record whose secondary key equals `key`, in primary-key order.
///
/// With `snapshot` false (a backend without snapshot reads), records that no longer
/// match the key when they are read are skipped, as are index entries whose record a
/// concurrent writer has just removed.
pub(crate) fn get_by_secondary<D, M, T>(
    txn: &T,
    key: &M::SecondaryKeys,
    snapshot: bool,
) -> Result<Vec<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let Some((field, encoded)) = equality_query::<D, M>(key) else {
        return Ok(Vec::new());
    };
    let check = Check::equal(snapshot, key.index(), &encoded);
    let mut out = Vec::new();
    if field.unique {
        if let Some(pk) = txn.get(field.table, &encoded)?
            && let Some(m) = lookup_indexed::<D, M, T>(txn, field.table, &encoded, &pk, &check)?
        {
            out.push(m);
        }
        return Ok(out);
    }
    // The index entries first, then their records in one call: one or two round trips
    // on a server backend instead of one per record.
    let mut entries: Vec<Vec<u8>> = Vec::new();
    txn.for_each_in(
        field.table,
        RawRange::prefix(&encoded),
        Direction::Forward,
        &mut |index_key, _| {
            entries.push(index_key.to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let pks: Vec<&[u8]> = entries.iter().map(|k| &k[encoded.len()..]).collect();
    txn.get_each(M::INFO.table, &pks, &mut |i, bytes| {
        let (index_key, pk) = (&entries[i], pks[i]);
        let found = match bytes {
            Some(bytes) => Some(decode_model::<D, M>(pk, bytes)?),
            None => None,
        };
        if let Some(m) = indexed_outcome::<D, M>(found, field.table, index_key, pk, &check)? {
            out.push(m);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The index an equality query on `key` reads and the encoded value it looks for;
/// `None` for a key the model does not have.
pub(crate) fn equality_query<D, M>(
    key: &M::SecondaryKeys,
) -> Option<(&'static SecondaryKeyInfo, Vec<u8>)>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let field = M::INFO.secondary_keys.get(key.index())?;
    let mut encoded = Vec::new();
    key.encode(&mut encoded);
    Some((field, encoded))
}

/// How a record found through an index is checked against the query.
pub(crate) struct Check<'a> {
    /// Reads are snapshots: the record always matches its index entry, and a missing
    /// one is damage.
    pub(crate) snapshot: bool,
    /// The secondary key's position in the model.
    pub(crate) index: usize,
    /// For a range query, its byte bounds over the encoded secondary value.
    pub(crate) range: Option<&'a RawRange>,
    /// For an equality query, the encoded secondary value.
    pub(crate) value: &'a [u8],
}

impl<'a> Check<'a> {
    /// The check of an equality query for the encoded value `value` of the secondary
    /// key at `index`.
    pub(crate) fn equal(snapshot: bool, index: usize, value: &'a [u8]) -> Self {
        Check {
            snapshot,
            index,
            range: None,
            value,
        }
    }

    /// The check of a range query over `range` of the secondary key at `index`.
    pub(crate) fn range(snapshot: bool, index: usize, range: &'a RawRange) -> Self {
        Check {
            snapshot,
            index,
            range: Some(range),
            value: &[],
        }
    }

    /// Whether `model`, read after its index entry, still matches the query.
    fn matches<D, M>(&self, model: &M) -> bool
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if self.snapshot {
            return true;
        }
        let mut now = Vec::new();
        model.encode_secondary_key(self.index, &mut now);
        match self.range {
            Some(range) => range.contains(&now),
            None => now == self.value,
        }
    }
}

/// The record an index entry points at. On a snapshot, a dangling entry is damage and
/// reported, never skipped; without snapshots it may be a removal committed after the
/// entry was read, and a record that no longer matches may have moved: both are
/// skipped (`None`).
fn lookup_indexed<D, M, T>(
    txn: &T,
    index_table: &str,
    index_key: &[u8],
    pk: &[u8],
    check: &Check<'_>,
) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    indexed_outcome::<D, M>(
        get_raw::<D, M, T>(txn, pk)?,
        index_table,
        index_key,
        pk,
        check,
    )
}

/// What a query returns for the record `found` at `pk`, read after the index entry
/// `index_key` of `index_table` that led to it (the decision of [`lookup_indexed`],
/// shared with the asynchronous reads).
pub(crate) fn indexed_outcome<D, M>(
    found: Option<M>,
    index_table: &str,
    index_key: &[u8],
    pk: &[u8],
    check: &Check<'_>,
) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    match found {
        Some(m) if check.matches::<D, M>(&m) => Ok(Some(m)),
        Some(_) => Ok(None),
        None if !check.snapshot => Ok(None),
        None => Err(NetabaseError::decode(
            index_table,
            index_key,
            DecodeReason::DanglingIndex {
                table: M::INFO.table,
                primary_key: pk.to_vec(),
            },
        )),
    }
}

/// Byte bounds of the primary table for a range of primary keys.
pub(crate) fn primary_bounds<P, K>(range: &impl RangeBounds<K>) -> RawRange
where
    P: KeyCodec,
    K: Into<P> + Clone,
{
    let enc = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.clone().into().to_key_bytes()),
        Bound::Excluded(k) => Bound::Excluded(k.clone().into().to_key_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    };
    RawRange {
        start: enc(range.start_bound()),
        end: enc(range.end_bound()),
    }
}

/// Byte bounds of an index table for a range of secondary values. Non-unique index keys
/// continue with the primary key after the secondary value, so an inclusive upper bound
/// covers every key that starts with it.
pub(crate) fn secondary_bounds<K: KeyCodec>(range: &impl RangeBounds<K>) -> RawRange {
    let start = match range.start_bound() {
        Bound::Included(k) => Bound::Included(k.to_key_bytes()),
        Bound::Excluded(k) => match prefix_successor(&k.to_key_bytes()) {
            Some(next) => Bound::Included(next),
            // Nothing sorts after every key with this prefix: the range is empty.
            None => return empty_range(),
        },
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match range.end_bound() {
        Bound::Included(k) => match prefix_successor(&k.to_key_bytes()) {
            Some(next) => Bound::Excluded(next),
            None => Bound::Unbounded,
        },
        Bound::Excluded(k) => Bound::Excluded(k.to_key_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    };
    RawRange { start, end }
}

fn empty_range() -> RawRange {
    RawRange {
        start: Bound::Excluded(Vec::new()),
        end: Bound::Excluded(Vec::new()),
    }
}

/// A cursor that yields `e` once, for a scan that failed to start.
pub(crate) fn error_cursor<'a>(e: NetabaseError) -> Cursor<'a> {
    Box::new(EntryCursor::new(std::iter::once(Err(e))))
}

/// Records in primary-key order, decoded from a raw scan of the primary table.
pub struct ModelIter<'a, D, M: NetabaseModelTrait<D>, H = ()>
where
    D: NetabaseDefinitionTrait,
{
    raw: Cursor<'a>,
    /// Whatever must live as long as the scan (an owned transaction), never read.
    _hold: H,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<'a, D, M, H> ModelIter<'a, D, M, H>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    pub(crate) fn new(raw: Cursor<'a>, hold: H) -> Self {
        ModelIter {
            raw,
            _hold: hold,
            _types: PhantomData,
        }
    }
}

impl<D, M, H> Iterator for ModelIter<'_, D, M, H>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    type Item = Result<(M::PrimaryKey, M)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (pk, bytes) = match self.raw.next_entry()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        Some(decode_entry::<D, M>(pk, bytes))
    }
}

type Types<D, M, K> = PhantomData<fn() -> (D, M, K)>;

/// Records found through a range scan of a secondary index, in secondary-key order.
pub struct SecondaryIter<'a, D, M, T, K>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
{
    raw: Cursor<'a>,
    /// `None` only when the scan failed to start; `raw` then yields that error alone.
    txn: Option<T>,
    table: &'static str,
    unique: bool,
    index: usize,
    /// The scanned bounds, kept to check records on backends without snapshot reads.
    range: RawRange,
    snapshot: bool,
    _types: Types<D, M, K>,
}

impl<'a, D, M, T, K> SecondaryIter<'a, D, M, T, K>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
    K: KeyCodec,
{
    pub(crate) fn new(
        txn: Option<T>,
        raw: Cursor<'a>,
        index: usize,
        range: RawRange,
        snapshot: bool,
    ) -> Self {
        let (table, unique) = M::INFO
            .secondary_keys
            .get(index)
            .map_or(("", false), |f| (f.table, f.unique));
        SecondaryIter {
            raw,
            txn,
            table,
            unique,
            index,
            range,
            snapshot,
            _types: PhantomData,
        }
    }
}

/// The record an index entry (`key`, `value`) of `table` leads to, or `None` when a
/// backend without snapshot reads shows it moved.
fn indexed_record<D, M, T, K>(
    txn: Option<&T>,
    table: &'static str,
    unique: bool,
    key: &[u8],
    value: &[u8],
    check: &Check<'_>,
) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
    K: KeyCodec,
{
    let Some(txn) = txn else {
        return Err(NetabaseError::decode_other(
            table,
            key,
            "the scan has no transaction",
        ));
    };
    let pk = entry_pk::<K>(table, unique, key, value)?;
    lookup_indexed::<D, M, T>(txn, table, key, pk, check)
}

/// The encoded primary key an index entry (`key`, `value`) of `table` holds, for a
/// secondary key of type `K`: the value of a unique index; in a non-unique one, the
/// rest of the key after the secondary value (enc(secondary) ++ enc(primary)).
pub(crate) fn entry_pk<'e, K: KeyCodec>(
    table: &str,
    unique: bool,
    key: &'e [u8],
    value: &'e [u8],
) -> Result<&'e [u8]> {
    if unique {
        return Ok(value);
    }
    let mut rest = key;
    K::decode_key(&mut rest).map_err(|e: KeyDecodeError| NetabaseError::decode(table, key, e))?;
    Ok(rest)
}

impl<D, M, T, K> Iterator for SecondaryIter<'_, D, M, T, K>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
    K: KeyCodec,
{
    type Item = Result<M>;

    fn next(&mut self) -> Option<Self::Item> {
        let check = Check::range(self.snapshot, self.index, &self.range);
        loop {
            let (key, value) = match self.raw.next_entry()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e)),
            };
            match indexed_record::<D, M, T, K>(
                self.txn.as_ref(),
                self.table,
                self.unique,
                key,
                value,
                &check,
            ) {
                Ok(Some(m)) => return Some(Ok(m)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
