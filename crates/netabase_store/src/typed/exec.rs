//! Runs typed operations on a backend transaction: the synchronous executor of the
//! plans in `plan.rs`, and the decoding of what comes back.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use crate::backend::{Direction, RawIter, RawRange, ReadTxn, WriteOp, WriteTxn};
use crate::codec::key::{KeyCodec, KeyDecodeError, prefix_successor};
use crate::codec::value::decode_value;
use crate::error::{NetabaseError, Result};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum};

use super::plan::{WritePlan, plan_put, plan_remove};

/// Decodes the stored value of a model.
fn decode<D, M>(pk: &[u8], bytes: &[u8]) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    decode_value(M::INFO.table, pk, bytes)
}

fn decode_pk<D, M>(table: &str, pk: &[u8]) -> Result<M::PrimaryKey>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    M::PrimaryKey::from_key_bytes(pk).map_err(|e| NetabaseError::key_decode(table, pk, e))
}

/// The record at the encoded primary key `pk`.
pub(crate) fn get_raw<D, M, T>(txn: &T, pk: &[u8]) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    match txn.get(M::INFO.table, pk)? {
        Some(bytes) => decode::<D, M>(pk, &bytes).map(Some),
        None => Ok(None),
    }
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

/// Runs the unique checks of `plan`, then applies its writes.
fn execute<D, M, T>(txn: &T, pk: &[u8], model: &M, plan: &WritePlan) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    for check in &plan.checks {
        if let Some(existing) = txn.get(check.table, &check.key)?
            && existing != pk
        {
            {
                let field = M::INFO.secondary_keys[check.index].field;
                let value = model
                    .secondary_keys()
                    .into_iter()
                    .find(|k| k.index() == check.index)
                    .map_or_else(|| crate::error::hex(&check.key), |k| format!("{k:?}"));
                let existing = match M::PrimaryKey::from_key_bytes(&existing) {
                    Ok(key) => format!("{key:?}"),
                    Err(_) => crate::error::hex(&existing),
                };
                return Err(NetabaseError::UniqueViolation {
                    model: M::INFO.name,
                    field,
                    value,
                    existing,
                });
            }
        }
    }
    txn.apply(&plan.ops)
}

/// Stores `model`, replacing the record with the same primary key and keeping every
/// index exact.
pub(crate) fn put<D, M, T>(txn: &T, model: &M) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let pk = model.primary_key().to_key_bytes();
    // Without indexes there is nothing the old record could invalidate.
    let old = if M::INFO.secondary_keys.is_empty() {
        None
    } else {
        get_raw::<D, M, T>(txn, &pk)?
    };
    let plan = plan_put::<D, M>(&pk, old.as_ref(), model)?;
    execute::<D, M, T>(txn, &pk, model, &plan)
}

/// Removes the record with primary key `key` and its index entries.
pub(crate) fn remove<D, M, T>(txn: &T, key: &M::PrimaryKey) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let pk = key.to_key_bytes();
    let Some(old) = get_raw::<D, M, T>(txn, &pk)? else {
        return Ok(None);
    };
    let plan = plan_remove::<D, M>(&pk, &old);
    txn.apply(&plan.ops)?;
    Ok(Some(old))
}

/// Records per chunk of [`put_many`] and [`remove_many`]: each chunk reads the old
/// records in one call and applies its writes table by table, so an engine that pays to
/// open a table (redb inside a write transaction) pays once per chunk, not per record.
const CHUNK: usize = 1024;

/// Stores every model in order, with the same result as calling [`put`] for each.
pub(crate) fn put_many<D, M, T>(txn: &T, models: impl IntoIterator<Item = M>) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let mut models = models.into_iter();
    // A unique key is checked against everything written before it, the earlier models
    // of the same call included: those models take the one-by-one path.
    if M::INFO.secondary_keys.iter().any(|k| k.unique) {
        return models.try_for_each(|model| put::<D, M, T>(txn, &model));
    }
    let mut chunk: Vec<M> = Vec::with_capacity(CHUNK);
    loop {
        chunk.clear();
        chunk.extend(models.by_ref().take(CHUNK));
        if chunk.is_empty() {
            return Ok(());
        }
        put_chunk::<D, M, T>(txn, &chunk)?;
    }
}

/// One chunk of [`put_many`] (models without unique keys). On an error, the writes of
/// the models before the failing one are applied, as [`put`] one by one would have.
fn put_chunk<D, M, T>(txn: &T, chunk: &[M]) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let pks: Vec<Vec<u8>> = chunk
        .iter()
        .map(|m| m.primary_key().to_key_bytes())
        .collect();
    let indexed = !M::INFO.secondary_keys.is_empty();
    let stored = if indexed {
        let keys: Vec<&[u8]> = pks.iter().map(Vec::as_slice).collect();
        txn.get_many(M::INFO.table, &keys)?
    } else {
        Vec::new()
    };
    let mut ops = TableOps::new::<D, M>();
    // The latest model of this chunk at each primary key: the "old" record of a later
    // put of the same key.
    let mut latest: HashMap<&[u8], usize> = HashMap::new();
    for (i, (model, pk)) in chunk.iter().zip(&pks).enumerate() {
        let planned = (|| {
            let decoded;
            let old = match latest.insert(pk.as_slice(), i) {
                Some(j) => Some(&chunk[j]),
                None if indexed => match &stored[i] {
                    Some(bytes) => {
                        decoded = decode::<D, M>(pk, bytes)?;
                        Some(&decoded)
                    }
                    None => None,
                },
                None => None,
            };
            plan_put::<D, M>(pk, old, model)
        })();
        match planned {
            Ok(plan) => ops.extend(plan.ops),
            Err(e) => {
                ops.apply(txn)?;
                return Err(e);
            }
        }
    }
    ops.apply(txn)
}

/// Removes the records with the given keys in order, with the same result as calling
/// [`remove`] for each.
pub(crate) fn remove_many<D, M, T>(
    txn: &T,
    keys: impl IntoIterator<Item = M::PrimaryKey>,
) -> Result<Vec<Option<M>>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let mut keys = keys.into_iter();
    let mut out = Vec::new();
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    loop {
        chunk.clear();
        chunk.extend(keys.by_ref().take(CHUNK).map(|k| k.to_key_bytes()));
        if chunk.is_empty() {
            return Ok(out);
        }
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let stored = txn.get_many(M::INFO.table, &refs)?;
        let mut ops = TableOps::new::<D, M>();
        let mut removed: HashSet<&[u8]> = HashSet::new();
        for (pk, bytes) in refs.iter().zip(stored) {
            // A key removed earlier in the chunk is gone, whatever the table said.
            let bytes = if removed.insert(pk) { bytes } else { None };
            let Some(bytes) = bytes else {
                out.push(None);
                continue;
            };
            match decode::<D, M>(pk, &bytes) {
                Ok(old) => {
                    ops.extend(plan_remove::<D, M>(pk, &old).ops);
                    out.push(Some(old));
                }
                Err(e) => {
                    ops.apply(txn)?;
                    return Err(e);
                }
            }
        }
        ops.apply(txn)?;
    }
}

/// Writes of many plans, kept per table in the order they were planned, so that a
/// batch opens each table once. Reordering across tables is safe: a plan's writes to
/// different tables are independent, and the order within each table is kept.
struct TableOps {
    /// The model's tables: primary first, then each index.
    tables: Vec<&'static str>,
    ops: Vec<Vec<WriteOp<'static>>>,
}

impl TableOps {
    fn new<D, M>() -> Self
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let tables: Vec<&'static str> = std::iter::once(M::INFO.table)
            .chain(M::INFO.secondary_keys.iter().map(|k| k.table))
            .collect();
        let ops = tables.iter().map(|_| Vec::new()).collect();
        TableOps { tables, ops }
    }

    fn extend(&mut self, ops: Vec<WriteOp<'static>>) {
        for op in ops {
            let table: &'static str = match &op {
                WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
            };
            // Every op of a plan goes to one of the model's tables; any other table gets
            // a run of its own, in order.
            match self.tables.iter().position(|t| *t == table) {
                Some(i) => self.ops[i].push(op),
                None => {
                    self.tables.push(table);
                    self.ops.push(vec![op]);
                }
            }
        }
    }

    fn apply<T: WriteTxn + ?Sized>(self, txn: &T) -> Result<()> {
        for ops in &self.ops {
            if !ops.is_empty() {
                txn.apply(ops)?;
            }
        }
        Ok(())
    }
}

/// Removes every record of the model and empties its indexes.
pub(crate) fn clear<D, M, T>(txn: &T) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    txn.clear(M::INFO.table)?;
    for field in M::INFO.secondary_keys {
        txn.clear(field.table)?;
    }
    Ok(())
}

/// Every record whose secondary key equals `key`, in primary-key order.
pub(crate) fn get_by_secondary<D, M, T>(txn: &T, key: &M::SecondaryKeys) -> Result<Vec<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let Some(field) = M::INFO.secondary_keys.get(key.index()) else {
        return Ok(Vec::new());
    };
    let mut encoded = Vec::new();
    key.encode(&mut encoded);
    if field.unique {
        return match txn.get(field.table, &encoded)? {
            Some(pk) => Ok(vec![lookup_indexed::<D, M, T>(
                txn,
                field.table,
                &encoded,
                &pk,
            )?]),
            None => Ok(Vec::new()),
        };
    }
    let mut out = Vec::new();
    for entry in txn.range(field.table, RawRange::prefix(&encoded), Direction::Forward)? {
        let (index_key, _) = entry?;
        let pk = &index_key[encoded.len()..];
        out.push(lookup_indexed::<D, M, T>(txn, field.table, &index_key, pk)?);
    }
    Ok(out)
}

/// The record an index entry points at; a dangling entry is reported, never skipped.
fn lookup_indexed<D, M, T>(txn: &T, index_table: &str, index_key: &[u8], pk: &[u8]) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    get_raw::<D, M, T>(txn, pk)?.ok_or_else(|| {
        NetabaseError::decode(
            index_table,
            index_key,
            format_args!(
                "index entry points at primary key {} that is not in `{}`",
                crate::error::hex(pk),
                M::INFO.table
            ),
        )
    })
}

/// Byte bounds of the primary table for a range of primary keys.
pub(crate) fn primary_bounds<K: KeyCodec>(range: &impl RangeBounds<K>) -> RawRange {
    let enc = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.to_key_bytes()),
        Bound::Excluded(k) => Bound::Excluded(k.to_key_bytes()),
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

/// Records in primary-key order, decoded from a raw scan of the primary table.
pub struct ModelIter<'a, D, M: NetabaseModelTrait<D>, H = ()>
where
    D: NetabaseDefinitionTrait,
{
    raw: RawIter<'a>,
    /// Whatever must live as long as the scan (an owned transaction), never read.
    _hold: H,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<'a, D, M, H> ModelIter<'a, D, M, H>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    pub(crate) fn new(raw: RawIter<'a>, hold: H) -> Self {
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
        let (pk, bytes) = match self.raw.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        Some(
            decode_pk::<D, M>(M::INFO.table, &pk)
                .and_then(|key| Ok((key, decode::<D, M>(&pk, &bytes)?))),
        )
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
    /// `None` only when the scan failed to start; `raw` then yields that error alone.
    txn: Option<T>,
    raw: RawIter<'a>,
    table: &'static str,
    unique: bool,
    _types: Types<D, M, K>,
}

impl<'a, D, M, T, K> SecondaryIter<'a, D, M, T, K>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
    K: KeyCodec,
{
    pub(crate) fn new(txn: Option<T>, raw: RawIter<'a>, index: usize) -> Self {
        let (table, unique) = M::INFO
            .secondary_keys
            .get(index)
            .map_or(("", false), |f| (f.table, f.unique));
        SecondaryIter {
            txn,
            raw,
            table,
            unique,
            _types: PhantomData,
        }
    }

    fn record(&self, key: &[u8], value: &[u8]) -> Result<M> {
        let Some(txn) = &self.txn else {
            return Err(NetabaseError::decode(
                self.table,
                key,
                "the scan has no transaction",
            ));
        };
        if self.unique {
            return lookup_indexed::<D, M, T>(txn, self.table, key, value);
        }
        // Non-unique entries are enc(secondary) ++ enc(primary): decode the secondary value
        // to find where the primary key starts.
        let mut rest = key;
        K::decode_key(&mut rest)
            .map_err(|e: KeyDecodeError| NetabaseError::key_decode(self.table, key, e))?;
        lookup_indexed::<D, M, T>(txn, self.table, key, rest)
    }
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
        let (key, value) = match self.raw.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        Some(self.record(&key, &value))
    }
}
