//! The one write pipeline: every typed write (a tree's one-shot methods, batches, views
//! of an explicit write transaction, index builds at open) runs through a [`Writer`],
//! and every typed write transaction commits in [`Writer::commit`], which yields its
//! [`ChangeSet`].
//!
//! A write runs in three steps, each decided by the pure code of `plan.rs`:
//! 1. **primary writes and the reads they need**: the primary values are written with
//!    [`WriteTxn::put_each`] / [`WriteTxn::delete_each`], which hand back the value each
//!    write replaced (engines whose insert returns it skip a lookup; others read first),
//!    and the index writes are planned from that old record;
//! 2. **checks**: unique keys the new records claim ([`plan::UniqueCheck`]);
//! 3. **index writes**, grouped per table.
//!
//! A write that is refused (a unique key held by another record, a stored record that
//! does not decode or is of an unknown version, a model that does not encode) is undone
//! entirely and the transaction stays usable. An engine failure in the middle of a write
//! cannot be undone reliably: it poisons the transaction, whose `commit` then fails with
//! [`NetabaseError::Poisoned`] and applies nothing.

use std::cell::RefCell;

use crate::backend::{Backend, ReadTxn, WriteOp, WriteTxn};
use crate::codec::key::KeyCodec;
use crate::codec::value::{decode_model, encode_value};
use crate::error::{NetabaseError, PoisonedError, Result, UniqueViolation};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum};

use super::changes::{Change, ChangeSet};
use super::plan::{self, UniqueCheck, WritePlan};

/// Records per chunk of a `put_many` or `remove_many` of a model without unique keys:
/// each chunk writes its primary values in one engine call and then its index writes
/// table by table, so an engine that pays to open a table (redb inside a write
/// transaction) pays once per chunk, not per record. A model with a unique key writes
/// one record per chunk, so that each unique check sees every write before it.
const CHUNK: usize = 1024;

/// A typed write transaction: the backend's write transaction, the log of what it
/// changed, and whether an engine failure has poisoned it.
///
/// It is the transaction held by a write [`crate::TxnGuard`]; its views write through
/// it. It reads like the backend transaction it wraps.
pub struct Writer<'s, B: Backend> {
    txn: B::Write<'s>,
    /// Whether the changes are recorded: by transactions whose `ChangeSet` is asked
    /// for. A one-shot write whose set nobody reads skips copying the values it
    /// replaced.
    logging: bool,
    log: RefCell<Vec<Change>>,
    poisoned: RefCell<Option<String>>,
}

impl<'s, B: Backend> Writer<'s, B> {
    /// Begins a write transaction on `backend`; `logging` records its changes for the
    /// `ChangeSet` of its commit (without it, the set is empty).
    pub(crate) fn begin(backend: &'s B, logging: bool) -> Result<Self> {
        Ok(Writer {
            txn: backend.begin_write()?,
            logging,
            log: RefCell::new(Vec::new()),
            poisoned: RefCell::new(None),
        })
    }

    /// The backend transaction, for reads (they see the transaction's own writes).
    pub(crate) fn reader(&self) -> &B::Write<'s> {
        &self.txn
    }

    /// Runs one write: refused when the transaction is poisoned, and poisons it when
    /// the write fails in a way that was not fully undone.
    fn run<R>(&self, write: impl FnOnce() -> Result<R>) -> Result<R> {
        if let Some(cause) = self.poisoned.borrow().as_ref() {
            return Err(poisoned(cause));
        }
        let result = write();
        if let Err(e) = &result
            && !e.is_refusal()
        {
            *self.poisoned.borrow_mut() = Some(e.to_string());
        }
        result
    }

    /// Stores every model in order, with the same result as storing each alone: a
    /// unique key is checked against every write before it, earlier models of the same
    /// call included. On a refusal the models before the refused one stay written.
    pub(crate) fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            let size = chunk_size::<D, M>();
            let mut models = models.into_iter();
            let mut chunk: Vec<M> = Vec::with_capacity(size);
            loop {
                chunk.clear();
                chunk.extend(models.by_ref().take(size));
                if chunk.is_empty() {
                    return Ok(());
                }
                let mut values = Vec::with_capacity(chunk.len());
                let mut refused = None;
                for model in &chunk {
                    match encode_value(M::INFO.name, M::INFO.version, model) {
                        Ok(value) => values.push(value),
                        Err(e) => {
                            // The models before it are stored; it and the rest are not.
                            refused = Some(e);
                            break;
                        }
                    }
                }
                self.put_chunk::<D, M>(&chunk[..values.len()], values)?;
                if let Some(e) = refused {
                    return Err(e);
                }
            }
        })
    }

    /// Stores `model`, already encoded as `value` (a batch encodes when it queues).
    pub(crate) fn put_encoded<D, M>(&self, model: &M, value: Vec<u8>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| self.put_chunk::<D, M>(std::slice::from_ref(model), vec![value]))
    }

    /// Removes the records with the given keys in order and returns them, with the same
    /// result as removing each alone.
    pub(crate) fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            let mut keys = keys.into_iter();
            let mut out = Vec::new();
            let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
            loop {
                chunk.clear();
                chunk.extend(keys.by_ref().take(CHUNK).map(|k| k.to_key_bytes()));
                if chunk.is_empty() {
                    return Ok(out);
                }
                self.remove_chunk::<D, M>(&chunk, &mut out)?;
            }
        })
    }

    /// Removes every record of the model and empties its indexes.
    pub(crate) fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            self.txn.clear(M::INFO.table)?;
            for field in M::INFO.secondary_keys {
                self.txn.clear(field.table)?;
            }
            if self.logging {
                self.log.borrow_mut().push(Change::Cleared {
                    model: M::INFO.name,
                    table: M::INFO.table,
                });
            }
            Ok(())
        })
    }

    /// Writes netabase's own bytes (the meta table, an index being rebuilt): no model
    /// record changes, so nothing is logged.
    pub(crate) fn write_internal(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        self.run(|| self.txn.apply(ops))
    }

    /// Empties one of netabase's own tables (an index that the schema dropped).
    pub(crate) fn clear_internal(&self, table: &str) -> Result<()> {
        self.run(|| self.txn.clear(table))
    }

    /// The commit point: applies every write of the transaction atomically and returns
    /// what it changed, one [`Change`] per record.
    ///
    /// # Errors
    /// [`NetabaseError::Poisoned`] when an engine failure poisoned the transaction;
    /// [`NetabaseError::Backend`] if the engine fails to commit. Nothing is applied then.
    pub(crate) fn commit(self) -> Result<ChangeSet> {
        if let Some(cause) = self.poisoned.into_inner() {
            return Err(poisoned(&cause));
        }
        self.txn.commit()?;
        Ok(ChangeSet::from_log(self.log.into_inner()))
    }

    /// Writes one chunk of models (encoded as `values`): primary writes learning the
    /// replaced records, then unique checks, then index writes.
    fn put_chunk<D, M>(&self, models: &[M], values: Vec<Vec<u8>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let info = &M::INFO;
        let pks: Vec<Vec<u8>> = models
            .iter()
            .map(|m| m.primary_key().to_key_bytes())
            .collect();
        let entries: Vec<(&[u8], &[u8])> = pks
            .iter()
            .zip(&values)
            .map(|(pk, value)| (pk.as_slice(), value.as_slice()))
            .collect();
        let mut plan = WritePlan::default();
        // The replaced values: for the log, and to undo a write whose unique check fails.
        let keep_olds = self.logging || info.secondary_keys.iter().any(|k| k.unique);
        let mut olds: Vec<Option<Vec<u8>>> = Vec::with_capacity(models.len());
        let mut undecodable = None;
        // The engine hands back what each put replaced, an earlier model of this chunk
        // with the same key included, so the old record is the one just before the put.
        let written = self.txn.put_each(info.table, &entries, &mut |i, old| {
            if let Some(bytes) = old
                && !info.secondary_keys.is_empty()
            {
                let old_model = decode_old::<D, M>(i, &pks[i], bytes, &mut undecodable)?;
                plan::plan_put::<D, M>(&pks[i], Some(&old_model), &models[i], &mut plan);
            } else if old.is_none() {
                plan::plan_put::<D, M>(&pks[i], None, &models[i], &mut plan);
            }
            olds.push(old.filter(|_| keep_olds).map(<[u8]>::to_vec));
            Ok(())
        });
        if let Err(e) = written {
            let stand = self.abandon(info.table, &pks, undecodable, plan.ops)?;
            self.log_puts::<D, M>(pks, olds, values, stand);
            return Err(e);
        }
        for check in &plan.checks {
            // Unique models come one per chunk: the check concerns its only record.
            let pk = &pks[0];
            if let Some(holder) = self.txn.get(check.table, &check.key)?
                && holder != *pk
            {
                restore(&self.txn, info.table, pk, olds[0].as_deref())?;
                return Err(unique_violation::<D, M>(&models[0], check, holder));
            }
        }
        apply_by_table(&self.txn, plan.ops)?;
        let n = pks.len();
        self.log_puts::<D, M>(pks, olds, values, n);
        Ok(())
    }

    /// Removes one chunk of records by encoded key, pushing each removed record to `out`.
    fn remove_chunk<D, M>(&self, pks: &[Vec<u8>], out: &mut Vec<Option<M>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let table = M::INFO.table;
        let keys: Vec<&[u8]> = pks.iter().map(Vec::as_slice).collect();
        let mut plan = WritePlan::default();
        let mut olds: Vec<Option<Vec<u8>>> = Vec::with_capacity(pks.len());
        let mut undecodable = None;
        let removed = self.txn.delete_each(table, &keys, &mut |i, old| {
            let old_model = match old {
                Some(bytes) => Some(decode_old::<D, M>(i, keys[i], bytes, &mut undecodable)?),
                None => None,
            };
            if let Some(old_model) = &old_model {
                plan::plan_remove::<D, M>(keys[i], old_model, &mut plan);
            }
            olds.push(old.filter(|_| self.logging).map(<[u8]>::to_vec));
            out.push(old_model);
            Ok(())
        });
        if let Err(e) = removed {
            let stand = self.abandon(table, &keys, undecodable, plan.ops)?;
            self.log_removes::<D, M>(&keys[..stand], olds);
            return Err(e);
        }
        apply_by_table(&self.txn, plan.ops)?;
        self.log_removes::<D, M>(&keys, olds);
        Ok(())
    }

    /// Ends a chunk of primary writes that stopped with an error; returns how many of
    /// its writes stand. When a stored record did not decode, its bytes are put back and
    /// the writes before it are completed (their index writes applied), as writing them
    /// one by one would have left them. Any other failure stands nothing: it poisons the
    /// transaction.
    fn abandon(
        &self,
        table: &str,
        pks: &[impl AsRef<[u8]>],
        undecodable: Undecodable,
        planned: Vec<WriteOp<'static>>,
    ) -> Result<usize> {
        match undecodable {
            Some((at, bytes)) if at < pks.len() => {
                restore(&self.txn, table, pks[at].as_ref(), Some(&bytes))?;
                apply_by_table(&self.txn, planned)?;
                Ok(at)
            }
            _ => Ok(0),
        }
    }

    /// Logs the first `n` puts of a chunk, moving their keys and values into the log.
    fn log_puts<D, M>(
        &self,
        pks: Vec<Vec<u8>>,
        olds: Vec<Option<Vec<u8>>>,
        values: Vec<Vec<u8>>,
        n: usize,
    ) where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if !self.logging {
            return;
        }
        let mut log = self.log.borrow_mut();
        log.extend(
            pks.into_iter()
                .zip(olds)
                .zip(values)
                .take(n)
                .map(|((key, old), new)| Change::Put {
                    model: M::INFO.name,
                    table: M::INFO.table,
                    key,
                    old,
                    new,
                }),
        );
    }

    /// Logs the removals of `keys` that found a record.
    fn log_removes<D, M>(&self, keys: &[&[u8]], olds: Vec<Option<Vec<u8>>>)
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if !self.logging {
            return;
        }
        let mut log = self.log.borrow_mut();
        log.extend(keys.iter().zip(olds).filter_map(|(key, old)| {
            Some(Change::Removed {
                model: M::INFO.name,
                table: M::INFO.table,
                key: key.to_vec(),
                old: old?,
            })
        }));
    }
}

fn poisoned(cause: &str) -> NetabaseError {
    NetabaseError::Poisoned(Box::new(PoisonedError {
        cause: cause.to_owned(),
    }))
}

/// How many records of `M` one chunk writes.
fn chunk_size<D, M>() -> usize
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    if M::INFO.secondary_keys.iter().any(|k| k.unique) {
        1
    } else {
        CHUNK
    }
}

/// A stored record that a write replaced or removed but could not decode: the position
/// of that write in its chunk, and the bytes to put back.
type Undecodable = Option<(usize, Vec<u8>)>;

/// Decodes the record that write `at` of a chunk replaced or removed; when it does not
/// decode, keeps its bytes in `undecodable` so that the write can be undone.
fn decode_old<D, M>(at: usize, pk: &[u8], bytes: &[u8], undecodable: &mut Undecodable) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    decode_model::<D, M>(pk, bytes).inspect_err(|_| *undecodable = Some((at, bytes.to_vec())))
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

/// The error of a unique check that found another record's primary key `holder`.
fn unique_violation<D, M>(model: &M, check: &UniqueCheck, holder: Vec<u8>) -> NetabaseError
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
    let shown = match M::PrimaryKey::from_key_bytes(&holder) {
        Ok(key) => format!("{key:?}"),
        Err(_) => crate::error::hex(&holder),
    };
    NetabaseError::UniqueViolation(Box::new(UniqueViolation {
        model: M::INFO.name,
        field,
        value,
        holder: shown,
        holder_key: holder,
    }))
}

/// Applies index writes grouped by table, keeping the order within each table, so that
/// an engine opens each table once. Reordering across tables is safe: writes to
/// different tables are independent.
fn apply_by_table<T: WriteTxn + ?Sized>(txn: &T, ops: Vec<WriteOp<'static>>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    // A model has a handful of index tables: a short list beats hashing.
    let mut tables: Vec<&'static str> = Vec::new();
    let mut runs: Vec<Vec<WriteOp<'static>>> = Vec::new();
    for op in ops {
        let table: &'static str = match &op {
            WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
        };
        match tables.iter().position(|t| *t == table) {
            Some(i) => runs[i].push(op),
            None => {
                tables.push(table);
                runs.push(vec![op]);
            }
        }
    }
    runs.iter().try_for_each(|run| txn.apply(run))
}
