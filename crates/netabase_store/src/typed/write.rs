//! The one write pipeline: every typed write (a tree's one-shot methods, batches, views
//! of an explicit write transaction, index builds at open) runs through a [`Writer`],
//! and every typed write transaction commits in [`Writer::commit`], which yields its
//! [`ChangeSet`].
//!
//! A write runs in chunks, each in the steps that `chunk.rs` decides and this file
//! carries out on the backend: the primary writes (the engine hands back the value each
//! one replaced; engines whose insert returns it skip a lookup), the unique checks, the
//! index writes grouped per table, and the change log. An asynchronous executor awaits
//! the same steps and takes the same decisions.
//!
//! A write that is refused (a unique key held by another record, a stored record that
//! does not decode or is of an unknown version, a model that does not encode) is undone
//! entirely and the transaction stays usable. An engine failure in the middle of a write
//! cannot be undone reliably: it poisons the transaction, whose `commit` then fails with
//! [`NetabaseError::Poisoned`] and applies nothing.

use std::cell::RefCell;
use std::sync::Arc;

use crate::backend::{Backend, ReadTxn, WriteOp, WriteTxn};
use crate::codec::key::KeyCodec;
use crate::codec::value::encode_value;
use crate::error::{NetabaseError, PoisonedError, Result, UniqueViolation};
use crate::schema::{ModelInfo, NetabaseDefinitionTrait, NetabaseModelTrait};

use crate::sync::state::{SyncState, SyncWrite};

use super::changes::{Change, ChangeSet};
use super::chunk::{Abandon, Decisions, PutChunk, RemoveChunk, cleared, cleared_tables};
use super::links::{self, Removal};
use super::plan::{WritePlan, plan_put_keys};
use super::watch::Hub;

/// Records per chunk of a `put_many` or `remove_many` of a model without unique keys:
/// each chunk writes its primary values in one engine call and then its index writes
/// table by table, so an engine that pays to open a table (redb inside a write
/// transaction) pays once per chunk, not per record. A model with a unique key writes
/// one record per chunk, so that each unique check sees every write before it.
pub(crate) const CHUNK: usize = 1024;

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
    poisoned: RefCell<Option<Poison>>,
    /// The subscriptions the commit publishes to, when the store had one at `begin`,
    /// and whether the caller reads the `ChangeSet` (without logging it would not).
    hub: Option<(&'s Hub, bool)>,
    /// Sync maintenance, when the store syncs a model: run at the commit point.
    sync: Option<SyncWrite>,
}

/// Why a transaction can no longer commit.
struct Poison {
    cause: String,
    /// A concurrent writer made the transaction stale (the backend that said so): its
    /// commit reports the conflict again (retryable) rather than a poisoning.
    conflict: Option<&'static str>,
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
            hub: None,
            sync: None,
        })
    }

    /// Publishes the transaction's changes to the subscriptions of `hub` at commit, and
    /// records them for it, when `hub` has a subscription now. Without one this costs
    /// one atomic load.
    pub(crate) fn watched_by(mut self, hub: &'s Hub) -> Self {
        if hub.is_watched() {
            self.hub = Some((hub, self.logging));
            self.logging = true;
        }
        self
    }

    /// Keeps the sync metadata of the store's synced models (`state`) in step at
    /// commit; the changes are then always recorded, since the commit hook reads them.
    pub(crate) fn with_sync(mut self, state: Option<&Arc<SyncState>>) -> Self {
        if let Some(state) = state {
            self.logging = true;
            self.sync = Some(SyncWrite::new(Arc::clone(state)));
        }
        self
    }

    /// The sync side of the transaction, when the store syncs a model.
    pub(crate) fn sync(&self) -> Option<&SyncWrite> {
        self.sync.as_ref()
    }

    /// The backend transaction, for reads (they see the transaction's own writes).
    pub(crate) fn reader(&self) -> &B::Write<'s> {
        &self.txn
    }

    /// Runs one write: refused when the transaction is poisoned, and poisons it when
    /// the write fails in a way that was not fully undone.
    fn run<R>(&self, write: impl FnOnce() -> Result<R>) -> Result<R> {
        if let Some(poison) = self.poisoned.borrow().as_ref() {
            return Err(poison.error());
        }
        let result = write();
        if let Err(e) = &result
            && !e.is_refusal()
        {
            *self.poisoned.borrow_mut() = Some(Poison::of(e));
        }
        result
    }

    /// Stores every model in order, with the same result as storing each alone: a
    /// unique key is checked against every write before it, earlier models of the same
    /// call included. On a refusal the models before the refused one stay written.
    ///
    /// When a validator or a link refuses a model, nothing of the call is applied:
    /// see [`Writer::put_many_checked`].
    pub(crate) fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if M::VALIDATES || !M::LINKS.is_empty() {
            return self.put_many_checked::<D, M>(models);
        }
        self.put_many_streamed::<D, M>(models)
    }

    /// [`Writer::put_many`] of a model with validators or links, streamed in chunks of
    /// [`CHUNK`] records, each checked before it is written, so that a call of any size
    /// holds one chunk in memory.
    ///
    /// A refusal of a rule applies nothing of the call: in the first chunk nothing is
    /// written yet and the transaction stays usable; in a later one the transaction is
    /// poisoned, so that the chunks before it can never commit. A link to a record of
    /// the same model that is neither stored nor in its chunk is checked once every
    /// chunk is written, since a later chunk may hold the record.
    fn put_many_checked<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            let size = chunk_size::<D, M>();
            let mut models = models.into_iter().peekable();
            let mut chunk: Vec<M> = Vec::with_capacity(CHUNK);
            let mut deferred = Vec::new();
            let mut wrote = false;
            loop {
                chunk.clear();
                chunk.extend(models.by_ref().take(CHUNK));
                if chunk.is_empty() {
                    break;
                }
                // The last chunk defers nothing: no record of the call comes after it.
                let defer = models.peek().is_some().then_some(&mut deferred);
                let checked = links::check_puts_deferring::<D, M, _>(&self.txn, &chunk, defer);
                self.poison_partial(wrote, checked)?;
                for part in chunk.chunks(size) {
                    self.put_models::<D, M>(part)?;
                    wrote = true;
                }
            }
            self.poison_partial(
                wrote,
                links::check_deferred::<D, M, _>(&self.txn, &deferred),
            )
        })
    }

    /// [`Writer::put_many`] of a model without validators or links, streamed chunk by
    /// chunk (nothing to check first).
    fn put_many_streamed<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
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
                self.put_models::<D, M>(&chunk)?;
            }
        })
    }

    /// [`Writer::put_many`] over borrowed models, so that a write retried after a
    /// conflict can run again over the same models.
    pub(crate) fn put_slice<D, M>(&self, models: &[M]) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            if M::VALIDATES || !M::LINKS.is_empty() {
                links::check_puts::<D, M, _>(&self.txn, models)?;
            }
            for chunk in models.chunks(chunk_size::<D, M>()) {
                self.put_models::<D, M>(chunk)?;
            }
            Ok(())
        })
    }

    /// Stores `models` all or nothing within the transaction, in steps of `step`
    /// records, calling `after` with the size of each step once it is written.
    ///
    /// Validators and links are checked for every model before the first is written,
    /// so a refusal of a rule writes nothing and the transaction stays usable. A
    /// failure once records are written (a unique key held by another record, a model
    /// that does not encode) poisons the transaction: what the earlier steps wrote can
    /// then never commit.
    pub(crate) fn put_all<D, M>(
        &self,
        models: &[M],
        step: usize,
        after: &mut dyn FnMut(usize),
    ) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            if M::VALIDATES || !M::LINKS.is_empty() {
                links::check_puts::<D, M, _>(&self.txn, models)?;
            }
            let size = chunk_size::<D, M>().min(step.max(1));
            let mut wrote = false;
            for part in models.chunks(step.max(1)) {
                for chunk in part.chunks(size) {
                    // A refused chunk of one record is undone entirely; of more, the
                    // records before the refused one stand.
                    let partial = wrote || chunk.len() > 1;
                    self.poison_partial(partial, self.put_models::<D, M>(chunk))?;
                    wrote = true;
                }
                after(part.len());
            }
            Ok(())
        })
    }

    /// Encodes and stores one chunk of models; a model that does not encode is refused
    /// with the models before it stored and it and the rest not.
    fn put_models<D, M>(&self, chunk: &[M]) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let mut values = Vec::with_capacity(chunk.len());
        let mut refused = None;
        for model in chunk {
            match encode_value(M::INFO.name, M::INFO.version, model) {
                Ok(value) => values.push(value),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        self.put_chunk::<D, M>(&chunk[..values.len()], values)?;
        refused.map_or(Ok(()), Err)
    }

    /// [`Writer::remove_many`] over encoded primary keys, borrowed so that a write
    /// retried after a conflict can run again.
    pub(crate) fn remove_encoded<D, M>(&self, pks: &[Vec<u8>]) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        // A failed read poisons the transaction like any engine failure of a write.
        let across = self.run(|| links::links_into::<D, _>(&self.txn))?;
        if links::removal_is_linked::<D>(M::INFO.table, &across) {
            return self.remove_linked::<D, M>(pks, across);
        }
        self.run(|| {
            let mut out = Vec::with_capacity(pks.len());
            for chunk in pks.chunks(CHUNK) {
                self.remove_chunk::<D, M>(chunk, &mut out)?;
            }
            Ok(out)
        })
    }

    /// Removes the records at `pks` of a model that others link to: every link policy is
    /// planned before the first removal, so that a refusal leaves nothing behind.
    fn remove_linked<D, M>(
        &self,
        pks: &[Vec<u8>],
        across: Vec<Arc<links::CrossIncoming>>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            let removal = Removal::plan::<D, M, _>(&self.txn, pks, across)?;
            let beyond = !removal.is_empty();
            let result = (|| {
                if beyond {
                    removal.execute::<D, B>(self)?;
                }
                let mut out = Vec::new();
                for chunk in pks.chunks(CHUNK) {
                    self.remove_chunk::<D, M>(chunk, &mut out)?;
                }
                Ok(out)
            })();
            self.poison_partial(beyond, result)
        })
    }

    /// Stores `model`, already encoded as `value` (a batch encodes when it queues).
    pub(crate) fn put_encoded<D, M>(&self, model: &M, value: Vec<u8>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.run(|| {
            links::check_puts::<D, M, _>(&self.txn, std::slice::from_ref(model))?;
            self.put_chunk::<D, M>(std::slice::from_ref(model), vec![value])
        })
    }

    /// Stores one model, checking its validators and links when `check` is set (a
    /// migration rewrites through the checks; a `set_null` clearing does not need them).
    pub(crate) fn put_checked<D, M>(&self, model: M, check: bool) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let value = encode_value(M::INFO.name, M::INFO.version, &model)?;
        if check {
            return self.put_encoded::<D, M>(&model, value);
        }
        self.run(|| self.put_chunk::<D, M>(std::slice::from_ref(&model), vec![value]))
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
        // A failed read poisons the transaction like any engine failure of a write.
        let across = self.run(|| links::links_into::<D, _>(&self.txn))?;
        if links::removal_is_linked::<D>(M::INFO.table, &across) {
            // Every link policy is planned before the first removal, so that a refusal
            // leaves nothing behind.
            let pks: Vec<Vec<u8>> = keys.into_iter().map(|k| k.to_key_bytes()).collect();
            return self.remove_linked::<D, M>(&pks, across);
        }
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
            let across = links::links_into::<D, _>(&self.txn)?;
            if links::removal_is_linked::<D>(M::INFO.table, &across) {
                let mut pks = Vec::new();
                self.txn.for_each_in(
                    M::INFO.table,
                    crate::backend::RawRange::all(),
                    crate::backend::Direction::Forward,
                    &mut |pk, _| {
                        pks.push(pk.to_vec());
                        Ok(std::ops::ControlFlow::Continue(()))
                    },
                )?;
                let removal = Removal::plan::<D, M, _>(&self.txn, &pks, across)?;
                let beyond = !removal.is_empty();
                self.poison_partial(beyond, removal.execute::<D, B>(self))?;
            }
            for table in cleared_tables::<D, M>() {
                self.txn.clear(table)?;
            }
            self.log(cleared::<D, M>);
            Ok(())
        })
    }

    /// Stores one record of a model known only by its description (a tool without the
    /// Rust types: [`super::dynamic::DynamicStore`]): `record` holds the stored value,
    /// its encoded secondary keys in the order of `info.secondary_keys` and, per link
    /// index of `link_tables`, the keys its links point at; `old_keys` decodes the same
    /// of the record it replaces. The steps of a typed put: the primary write learning
    /// the replaced record, the index plan ([`super::plan::plan_put_keys`] and
    /// [`super::plan::plan_link_keys`]), the unique checks, the index writes; a refused
    /// write is undone. Validators and link targets are the caller's to check first
    /// (as [`super::links`] does for typed puts). The change is logged when the
    /// transaction records its changes (sync keeps its metadata from them).
    pub(crate) fn put_described(
        &self,
        info: &'static ModelInfo,
        link_tables: &[&'static str],
        record: &super::dynamic::EncodedRecord,
        old_keys: &OldKeysFn<'_>,
    ) -> Result<()> {
        let (pk, value, keys) = (&record.pk[..], &record.value[..], &record.keys[..]);
        self.run(|| {
            let mut old: Option<Vec<u8>> = None;
            self.txn
                .put_each(info.table, &[(pk, value)], &mut |_, replaced| {
                    old = replaced.map(<[u8]>::to_vec);
                    Ok(())
                })?;
            let indexed = !info.secondary_keys.is_empty() || !link_tables.is_empty();
            let old_decoded = match &old {
                Some(bytes) if indexed => match old_keys(bytes) {
                    Ok(decoded) => Some(decoded),
                    Err(e) => {
                        restore(&self.txn, info.table, pk, Some(bytes))?;
                        return Err(e);
                    }
                },
                _ => None,
            };
            let mut plan = WritePlan::default();
            let part = |from: &[Vec<u8>], i: usize, out: &mut Vec<u8>| {
                if let Some(k) = from.get(i) {
                    out.extend_from_slice(k);
                }
            };
            plan_put_keys(
                info.secondary_keys,
                pk,
                old_decoded
                    .as_ref()
                    .map(|from| move |i: usize, out: &mut Vec<u8>| part(&from.keys, i, out)),
                |i, out| part(keys, i, out),
                &mut plan,
            );
            for (i, table) in link_tables.iter().enumerate() {
                let old_links = old_decoded
                    .as_ref()
                    .and_then(|o| o.links.get(i))
                    .map_or(&[][..], Vec::as_slice);
                let new_links = record.links.get(i).map_or(&[][..], Vec::as_slice);
                super::plan::plan_link_keys(table, pk, old_links, new_links, &mut plan);
            }
            for check in &plan.checks {
                if let Some(holder) = self.txn.get(check.table, &check.key)?
                    && holder != pk
                {
                    restore(&self.txn, info.table, pk, old.as_deref())?;
                    return Err(NetabaseError::UniqueViolation(Box::new(UniqueViolation {
                        model: info.name,
                        field: info.secondary_keys[check.index].field,
                        value: crate::error::hex(&check.key),
                        holder: crate::error::hex(&holder),
                        holder_key: holder,
                    })));
                }
            }
            apply_by_table(&self.txn, plan.ops)?;
            self.log(|| {
                vec![Change::Put {
                    model: info.name,
                    table: info.table,
                    key: pk.to_vec(),
                    old,
                    new: value.to_vec(),
                }]
            });
            Ok(())
        })
    }

    /// Runs `write` on the engine's write transaction, with the poisoning rules of every
    /// other write: for netabase's own tables written beside models (the DHT record
    /// store), so they commit in the same transaction.
    #[cfg(feature = "libp2p")]
    pub(crate) fn with_raw<R>(&self, write: impl FnOnce(&B::Write<'s>) -> Result<R>) -> Result<R> {
        self.run(|| write(&self.txn))
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
    /// [`NetabaseError::Conflict`] when a concurrent writer made it stale (during a read
    /// or at the commit itself); [`NetabaseError::Backend`] if the engine fails to
    /// commit. Nothing is applied then.
    pub(crate) fn commit(self) -> Result<ChangeSet> {
        if let Some(poison) = self.poisoned.into_inner() {
            return Err(poison.error());
        }
        let changes = ChangeSet::from_log(self.log.into_inner());
        if let Some(sync) = &self.sync {
            // Inside the transaction: the fingerprints commit with the records or not
            // at all.
            sync.before_commit(&self.txn, &changes)?;
        }
        // Taken while this transaction still holds the engine's write lock, so changes
        // are published in commit order; a failed commit publishes nothing.
        let publish = self.hub.map(|(hub, read)| (hub.begin_publish(), read));
        if let Err(e) = self.txn.commit() {
            if let Some(sync) = &self.sync {
                sync.commit_failed();
            }
            return Err(e);
        }
        Ok(match publish {
            Some((publish, read)) => publish.send(changes, read),
            None => changes,
        })
    }

    /// Writes one chunk of models (encoded as `values`), carrying out the decisions of
    /// [`PutChunk`]: primary writes learning the replaced records, then unique checks,
    /// then index writes.
    fn put_chunk<D, M>(&self, models: &[M], values: Vec<Vec<u8>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let table = M::INFO.table;
        let chunk = PutChunk::new::<D>(models, values, self.logging);
        let mut decisions = Decisions::default();
        // The engine hands back what each put replaced, an earlier model of this chunk
        // with the same key included, so the old record is the one just before the put.
        let written = self.txn.put_each(table, &chunk.entries(), &mut |i, old| {
            chunk.replaced::<D>(&mut decisions, i, old)
        });
        if let Err(e) = written {
            let (stand, olds) = self.abandon(table, decisions.abandon(chunk.pks()))?;
            self.log(|| chunk.changes::<D>(olds, stand));
            return Err(e);
        }
        for check in decisions.checks() {
            let holder = self.txn.get(check.table, &check.key)?;
            if let Some(refusal) = chunk.refusal::<D>(&decisions, check, holder) {
                restore(&self.txn, table, &refusal.key, refusal.restore.as_deref())?;
                return Err(refusal.error);
            }
        }
        let (index_writes, olds) = decisions.index_writes();
        apply_by_table(&self.txn, index_writes)?;
        let n = chunk.pks().len();
        self.log(|| chunk.changes::<D>(olds, n));
        Ok(())
    }

    /// Removes one chunk of records by encoded key, carrying out the decisions of
    /// [`RemoveChunk`], and pushes each removed record to `out`.
    pub(super) fn remove_chunk<D, M>(&self, pks: &[Vec<u8>], out: &mut Vec<Option<M>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let table = M::INFO.table;
        let chunk = RemoveChunk::new(pks, self.logging);
        let mut decisions = Decisions::default();
        let removed = self.txn.delete_each(table, &chunk.keys(), &mut |i, old| {
            out.push(chunk.removed::<D, M>(&mut decisions, i, old)?);
            Ok(())
        });
        if let Err(e) = removed {
            let (stand, olds) = self.abandon(table, decisions.abandon(pks))?;
            self.log(|| chunk.changes::<D, M>(olds, stand));
            return Err(e);
        }
        let (index_writes, olds) = decisions.index_writes();
        apply_by_table(&self.txn, index_writes)?;
        self.log(|| chunk.changes::<D, M>(olds, pks.len()));
        Ok(())
    }

    /// Carries out an [`Abandon`]: puts back what a failed chunk must not have replaced
    /// and applies the index writes of the records that stand; returns how many stand,
    /// and the values they replaced.
    fn abandon(&self, table: &str, abandon: Abandon) -> Result<(usize, Vec<Option<Vec<u8>>>)> {
        if let Some((pk, bytes)) = &abandon.restore {
            restore(&self.txn, table, pk, Some(bytes))?;
            apply_by_table(&self.txn, abandon.index_writes)?;
        }
        Ok((abandon.stand, abandon.olds))
    }

    /// Poisons the transaction when `result` failed after writes beyond the one that
    /// failed (a cascade applied before a later step of the same removal was refused):
    /// a refusal must leave nothing behind, and that can no longer be promised.
    fn poison_partial<R>(&self, wrote: bool, result: Result<R>) -> Result<R> {
        if wrote && let Err(e) = &result {
            *self.poisoned.borrow_mut() = Some(Poison::of(e));
        }
        result
    }

    /// Records the changes `changes` makes, when this transaction records them.
    fn log(&self, changes: impl FnOnce() -> Vec<Change>) {
        if self.logging {
            self.log.borrow_mut().extend(changes());
        }
    }
}

/// What [`Writer::put_described`] calls to learn the encoded secondary keys and link
/// targets of the stored value a write replaced.
pub(crate) type OldKeysFn<'f> = dyn Fn(&[u8]) -> Result<super::dynamic::EncodedRecord> + 'f;

impl Poison {
    /// The poison left by the failure `e`.
    fn of(e: &NetabaseError) -> Self {
        Poison {
            cause: e.to_string(),
            conflict: match e {
                NetabaseError::Conflict(c) => Some(c.backend),
                _ => None,
            },
        }
    }

    fn error(&self) -> NetabaseError {
        if let Some(backend) = self.conflict {
            return NetabaseError::conflict(
                backend,
                "commit a write transaction",
                self.cause.clone(),
            );
        }
        NetabaseError::Poisoned(Box::new(PoisonedError {
            cause: self.cause.clone(),
        }))
    }
}

/// How many records of `M` one chunk writes.
pub(crate) fn chunk_size<D, M>() -> usize
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

/// Applies index writes grouped by table, keeping the order within each table, so that
/// an engine opens each table once. Reordering across tables is safe: writes to
/// different tables are independent.
fn apply_by_table<T: WriteTxn + ?Sized>(txn: &T, ops: Vec<WriteOp<'static>>) -> Result<()> {
    group_by_table(ops)
        .iter()
        .try_for_each(|run| txn.apply(run))
}

/// The index writes `ops` in runs of one table each, keeping the order within each
/// table (shared with the asynchronous executor).
pub(crate) fn group_by_table(ops: Vec<WriteOp<'static>>) -> Vec<Vec<WriteOp<'static>>> {
    // A write to one table (a put of a model with one index) needs no grouping.
    if let Some(first) = ops.first()
        && ops.iter().all(|op| op.table() == first.table())
    {
        return vec![ops];
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
    runs
}
