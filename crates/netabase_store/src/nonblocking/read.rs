//! Typed reads over an asynchronous transaction: the same lookups and queries as
//! `typed/read.rs`, with the same decisions (`indexed_outcome`), awaiting the engine.

use std::ops::RangeBounds;

use crate::backend::{Direction, RawRange};
use crate::codec::key::KeyCodec;
use crate::codec::value::decode_model;
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum};
use crate::typed::read::{
    Check, decode_entry, entry_pk, equality_query, indexed_outcome, primary_bounds,
    secondary_bounds,
};

use super::backend::AsyncReadTxn;

/// The records at the encoded primary keys `pks`, in the same order.
pub(crate) async fn get_raw_many<D, M, T>(txn: &T, pks: &[Vec<u8>]) -> Result<Vec<Option<M>>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
{
    let values = txn.get_many(M::INFO.table, pks).await?;
    pks.iter()
        .zip(values)
        .map(|(pk, value)| {
            value
                .map(|bytes| decode_model::<D, M>(pk, &bytes))
                .transpose()
        })
        .collect()
}

/// The record with primary key `key`.
pub(crate) async fn get<D, M, T>(txn: &T, key: &M::PrimaryKey) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
{
    let pk = key.to_key_bytes();
    match txn.get(M::INFO.table, &pk).await? {
        Some(bytes) => decode_model::<D, M>(&pk, &bytes).map(Some),
        None => Ok(None),
    }
}

/// The records with the given primary keys, in the same order.
pub(crate) async fn get_many<D, M, T>(
    txn: &T,
    keys: impl IntoIterator<Item = M::PrimaryKey>,
) -> Result<Vec<Option<M>>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
{
    let pks: Vec<Vec<u8>> = keys.into_iter().map(|k| k.to_key_bytes()).collect();
    get_raw_many::<D, M, T>(txn, &pks).await
}

/// Every record whose secondary key equals `key`, in primary-key order.
pub(crate) async fn get_by_secondary<D, M, T>(
    txn: &T,
    key: &M::SecondaryKeys,
    snapshot: bool,
) -> Result<Vec<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
{
    let Some((field, encoded)) = equality_query::<D, M>(key) else {
        return Ok(Vec::new());
    };
    let check = Check::equal(snapshot, key.index(), &encoded);
    // (index key, primary key) of every entry.
    let entries: Vec<(Vec<u8>, Vec<u8>)> = if field.unique {
        match txn.get(field.table, &encoded).await? {
            Some(pk) => vec![(encoded.clone(), pk)],
            None => Vec::new(),
        }
    } else {
        txn.range_keys(field.table, RawRange::prefix(&encoded), None)
            .await?
            .into_iter()
            .map(|index_key| {
                let pk = index_key[encoded.len()..].to_vec();
                (index_key, pk)
            })
            .collect()
    };
    resolve::<D, M, T>(txn, field.table, entries, &check).await
}

/// The records the index entries `entries` (index key, primary key) of `index_table`
/// lead to, checked as the synchronous reads check them.
async fn resolve<D, M, T>(
    txn: &T,
    index_table: &str,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    check: &Check<'_>,
) -> Result<Vec<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
{
    let pks: Vec<Vec<u8>> = entries.iter().map(|(_, pk)| pk.clone()).collect();
    let found = get_raw_many::<D, M, T>(txn, &pks).await?;
    let mut out = Vec::with_capacity(found.len());
    for ((index_key, pk), model) in entries.iter().zip(found) {
        if let Some(m) = indexed_outcome::<D, M>(model, index_table, index_key, pk, check)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The records whose primary key lies in `range`, in `direction` order, with their keys.
pub(crate) async fn scan<D, M, T, K>(
    txn: &T,
    range: &impl RangeBounds<K>,
    direction: Direction,
) -> Result<Vec<(M::PrimaryKey, M)>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
    K: Into<M::PrimaryKey> + Clone,
{
    let bounds = primary_bounds::<M::PrimaryKey, K>(range);
    if bounds.is_empty() {
        return Ok(Vec::new());
    }
    txn.range(M::INFO.table, bounds, direction, None)
        .await?
        .into_iter()
        .map(|(pk, bytes)| decode_entry::<D, M>(&pk, &bytes))
        .collect()
}

/// The records whose secondary key `K` (at position `index`) lies in `range`, in
/// secondary-key order.
pub(crate) async fn range_by_secondary<D, M, T, K>(
    txn: &T,
    index: usize,
    range: &impl RangeBounds<K>,
    snapshot: bool,
) -> Result<Vec<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncReadTxn + ?Sized,
    K: KeyCodec,
{
    let Some(field) = M::INFO.secondary_keys.get(index) else {
        return Ok(Vec::new());
    };
    let bounds = secondary_bounds(range);
    if bounds.is_empty() {
        return Ok(Vec::new());
    }
    let raw = if field.unique {
        txn.range(field.table, bounds.clone(), Direction::Forward, None)
            .await?
    } else {
        // Non-unique entries carry everything in their keys; their values are empty.
        txn.range_keys(field.table, bounds.clone(), None)
            .await?
            .into_iter()
            .map(|key| (key, Vec::new()))
            .collect()
    };
    let mut entries = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let pk = entry_pk::<K>(field.table, field.unique, &key, &value)?.to_vec();
        entries.push((key, pk));
    }
    let check = Check::range(snapshot, index, &bounds);
    resolve::<D, M, T>(txn, field.table, entries, &check).await
}
