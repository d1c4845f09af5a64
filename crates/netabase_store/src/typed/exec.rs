//! Runs typed operations on a backend transaction: the synchronous executor of the
//! plans in `plan.rs`, and the decoding of what comes back.

use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow, RangeBounds};

use crate::backend::{Cursor, Direction, EntryCursor, RawRange, ReadTxn, WriteOp, WriteTxn};
use crate::codec::key::{KeyCodec, KeyDecodeError, prefix_successor};
use crate::codec::value::{decode_value, encode_value};
use crate::error::{NetabaseError, Result};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum};

use super::plan::{UniqueCheck, WritePlan, plan_put, plan_remove};

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
            found = Some(decode::<D, M>(pk, bytes)?);
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

/// The error of a unique check that found another record's primary key `existing`.
fn unique_violation<D, M>(model: &M, check: &UniqueCheck, existing: &[u8]) -> NetabaseError
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let field = M::INFO.secondary_keys[check.index].field;
    let value = model
        .secondary_keys()
        .into_iter()
        .find(|k| k.index() == check.index)
        .map_or_else(|| crate::error::hex(&check.key), |k| format!("{k:?}"));
    let existing = match M::PrimaryKey::from_key_bytes(existing) {
        Ok(key) => format!("{key:?}"),
        Err(_) => crate::error::hex(existing),
    };
    NetabaseError::UniqueViolation {
        model: M::INFO.name,
        field,
        value,
        existing,
    }
}

/// Puts the primary-table value `before` back at `pk` (or removes `pk` when it was new):
/// the undo of a primary write that must not stand.
fn restore<T: WriteTxn + ?Sized>(
    txn: &T,
    table: &str,
    pk: &[u8],
    before: Option<&[u8]>,
) -> Result<()> {
    match before {
        Some(bytes) => txn.put(table, pk, bytes),
        None => txn.delete(table, pk).map(drop),
    }
}

/// A stored record that a write replaced or removed but could not decode: the position
/// of that write in its call, and the bytes to put back.
type Undecodable = Option<(usize, Vec<u8>)>;

/// Decodes the record that write `at` of a call replaced or removed; when it does not
/// decode, keeps its bytes in `undecodable` so that [`abandon`] can put them back.
fn decode_old<D, M>(at: usize, pk: &[u8], bytes: &[u8], undecodable: &mut Undecodable) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    decode::<D, M>(pk, bytes).inspect_err(|_| *undecodable = Some((at, bytes.to_vec())))
}

/// Ends a call of primary writes (to `table`, at the keys `pks`) that stopped with
/// `error`: an undecodable record is put back, and the index writes planned for the
/// writes before it are applied, as calling them one by one would have left them.
fn abandon<T: WriteTxn + ?Sized>(
    txn: &T,
    table: &str,
    pks: &[impl AsRef<[u8]>],
    undecodable: Undecodable,
    planned: Vec<WriteOp<'static>>,
    error: NetabaseError,
) -> Result<()> {
    if let Some((pk, bytes)) = undecodable.and_then(|(at, bytes)| Some((pks.get(at)?, bytes))) {
        restore(txn, table, pk.as_ref(), Some(&bytes))?;
        apply_by_table(txn, planned)?;
    }
    Err(error)
}

/// Stores `model`, replacing the record with the same primary key and keeping every
/// index exact.
///
/// The primary write comes first and hands back the record it replaced, from which the
/// index writes are planned; if the old record does not decode, or a unique key is
/// taken, that write is undone and nothing of the put remains.
pub(crate) fn put<D, M, T>(txn: &T, model: &M) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let value = encode_value(M::INFO.name, M::INFO.version, model)?;
    put_encoded::<D, M, T>(txn, model, &value)
}

/// [`put`] of a model already encoded as `value` (its stored bytes, header included).
pub(crate) fn put_encoded<D, M, T>(txn: &T, model: &M, value: &[u8]) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let info = &M::INFO;
    let pk = model.primary_key().to_key_bytes();
    let unique = info.secondary_keys.iter().any(|k| k.unique);
    let mut plan = WritePlan::default();
    // What the primary table held, kept only while a unique check may still undo the put.
    let mut before: Option<Vec<u8>> = None;
    let mut undecodable = None;
    let written = txn.put_each(info.table, &[(&pk, value)], &mut |_, old| {
        let old_model = match old {
            Some(_) if info.secondary_keys.is_empty() => return Ok(()),
            Some(bytes) => Some(decode_old::<D, M>(0, &pk, bytes, &mut undecodable)?),
            None => None,
        };
        if unique {
            before = old.map(<[u8]>::to_vec);
        }
        plan_put::<D, M>(&pk, old_model.as_ref(), model, &mut plan);
        Ok(())
    });
    if let Err(e) = written {
        return abandon(txn, info.table, &[&pk], undecodable, plan.ops, e);
    }
    for check in &plan.checks {
        if let Some(existing) = txn.get(check.table, &check.key)?
            && existing != pk
        {
            restore(txn, info.table, &pk, before.as_deref())?;
            return Err(unique_violation::<D, M>(model, check, &existing));
        }
    }
    txn.apply(&plan.ops)
}

/// Removes the record with primary key `key` and its index entries. A stored record that
/// does not decode is left in place and reported.
pub(crate) fn remove<D, M, T>(txn: &T, key: &M::PrimaryKey) -> Result<Option<M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let mut removed = Vec::with_capacity(1);
    remove_encoded::<D, M, T>(txn, &[key.to_key_bytes()], &mut removed)?;
    Ok(removed.pop().flatten())
}

/// Records per chunk of [`put_many`] and [`remove_many`]: each chunk writes its primary
/// values in one engine call and then its index writes table by table, so an engine that
/// pays to open a table (redb inside a write transaction) pays once per chunk, not per
/// record.
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
    let info = &M::INFO;
    let pks: Vec<Vec<u8>> = chunk
        .iter()
        .map(|m| m.primary_key().to_key_bytes())
        .collect();
    let mut values = Vec::with_capacity(chunk.len());
    let mut encode_error = None;
    for model in chunk {
        match encode_value(info.name, info.version, model) {
            Ok(value) => values.push(value),
            Err(e) => {
                encode_error = Some(e);
                break;
            }
        }
    }
    // The models before one that does not encode are stored; it and the rest are not.
    let entries: Vec<(&[u8], &[u8])> = pks
        .iter()
        .zip(&values)
        .map(|(pk, value)| (pk.as_slice(), value.as_slice()))
        .collect();
    let mut plan = WritePlan::default();
    let mut undecodable = None;
    // The engine hands back what each put replaced, an earlier model of this chunk with
    // the same key included, so the old record is always the one just before this put.
    let written = txn.put_each(info.table, &entries, &mut |i, old| {
        let old_model = match old {
            Some(_) if info.secondary_keys.is_empty() => return Ok(()),
            Some(bytes) => Some(decode_old::<D, M>(i, &pks[i], bytes, &mut undecodable)?),
            None => None,
        };
        plan_put::<D, M>(&pks[i], old_model.as_ref(), &chunk[i], &mut plan);
        Ok(())
    });
    if let Err(e) = written {
        return abandon(txn, info.table, &pks, undecodable, plan.ops, e);
    }
    apply_by_table(txn, plan.ops)?;
    match encode_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Removes the records with the given encoded primary keys in order, with the same
/// result as removing each alone: index entries go with their record, a key removed
/// earlier in the call is absent, and a stored record that does not decode stops the
/// call there, left in place, after the removals before it.
fn remove_encoded<D, M, T>(txn: &T, pks: &[Vec<u8>], out: &mut Vec<Option<M>>) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn + ?Sized,
{
    let table = M::INFO.table;
    let keys: Vec<&[u8]> = pks.iter().map(Vec::as_slice).collect();
    let mut plan = WritePlan::default();
    let mut undecodable = None;
    let removed = txn.delete_each(table, &keys, &mut |i, old| {
        let old = match old {
            Some(bytes) => Some(decode_old::<D, M>(i, keys[i], bytes, &mut undecodable)?),
            None => None,
        };
        if let Some(old) = &old {
            plan_remove::<D, M>(keys[i], old, &mut plan);
        }
        out.push(old);
        Ok(())
    });
    if let Err(e) = removed {
        return abandon(txn, table, &keys, undecodable, plan.ops, e);
    }
    apply_by_table(txn, plan.ops)
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
        remove_encoded::<D, M, T>(txn, &chunk, &mut out)?;
    }
}

/// Applies index writes grouped by table, keeping the order within each table, so that
/// a batch opens each table once. Reordering across tables is safe: writes to different
/// tables are independent.
fn apply_by_table<T: WriteTxn + ?Sized>(txn: &T, ops: Vec<WriteOp<'static>>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut runs = TableOps::default();
    runs.extend(ops);
    runs.apply(txn)
}

/// Writes kept per table in the order they were planned.
#[derive(Default)]
struct TableOps {
    tables: Vec<&'static str>,
    ops: Vec<Vec<WriteOp<'static>>>,
}

impl TableOps {
    fn extend(&mut self, ops: Vec<WriteOp<'static>>) {
        for op in ops {
            let table: &'static str = match &op {
                WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
            };
            // A model has a handful of index tables: a short list beats hashing.
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
            txn.apply(ops)?;
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
    txn.for_each_in(
        field.table,
        RawRange::prefix(&encoded),
        Direction::Forward,
        &mut |index_key, _| {
            let pk = &index_key[encoded.len()..];
            out.push(lookup_indexed::<D, M, T>(txn, field.table, index_key, pk)?);
            Ok(ControlFlow::Continue(()))
        },
    )?;
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
        Some(
            decode_pk::<D, M>(M::INFO.table, pk)
                .and_then(|key| Ok((key, decode::<D, M>(pk, bytes)?))),
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
    raw: Cursor<'a>,
    /// `None` only when the scan failed to start; `raw` then yields that error alone.
    txn: Option<T>,
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
    pub(crate) fn new(txn: Option<T>, raw: Cursor<'a>, index: usize) -> Self {
        let (table, unique) = M::INFO
            .secondary_keys
            .get(index)
            .map_or(("", false), |f| (f.table, f.unique));
        SecondaryIter {
            raw,
            txn,
            table,
            unique,
            _types: PhantomData,
        }
    }
}

/// The record an index entry (`key`, `value`) of `table` leads to.
fn indexed_record<D, M, T, K>(
    txn: Option<&T>,
    table: &'static str,
    unique: bool,
    key: &[u8],
    value: &[u8],
) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
    K: KeyCodec,
{
    let Some(txn) = txn else {
        return Err(NetabaseError::decode(
            table,
            key,
            "the scan has no transaction",
        ));
    };
    if unique {
        return lookup_indexed::<D, M, T>(txn, table, key, value);
    }
    // Non-unique entries are enc(secondary) ++ enc(primary): decode the secondary value
    // to find where the primary key starts.
    let mut rest = key;
    K::decode_key(&mut rest)
        .map_err(|e: KeyDecodeError| NetabaseError::key_decode(table, key, e))?;
    lookup_indexed::<D, M, T>(txn, table, key, rest)
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
        let (key, value) = match self.raw.next_entry()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        Some(indexed_record::<D, M, T, K>(
            self.txn.as_ref(),
            self.table,
            self.unique,
            key,
            value,
        ))
    }
}
