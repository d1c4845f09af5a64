//! The asynchronous executor of the one write pipeline: it awaits the steps that
//! `typed/chunk.rs` decides, in the order the synchronous [`crate::typed::write::Writer`]
//! carries them out, so both make the same writes, refuse the same writes and record the
//! same changes.
//!
//! One difference is the executor's own: an asynchronous engine reports the values a
//! chunk's primary writes replaced after writing the whole chunk, so when the record one
//! of them replaced does not decode, the writes after it are undone here (latest first)
//! before the chunk is abandoned as the synchronous executor abandons it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{Direction, RawRange, WriteOp};
use crate::codec::key::KeyCodec;
use crate::codec::value::encode_value;
use crate::error::{NetabaseError, PoisonedError, Result};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::sync::state::SyncState;
use crate::typed::changes::{Change, ChangeSet};
use crate::typed::chunk::{Abandon, Decisions, PutChunk, RemoveChunk, cleared, cleared_tables};
use crate::typed::links::{self, CrossIncoming};
use crate::typed::watch::Hub;
use crate::typed::write::{CHUNK, chunk_size, group_by_table};

use super::backend::{AsyncWriteTxn, AtCommit};

/// Why a write transaction can no longer commit.
enum Poison {
    /// An engine failure, described.
    Failed(String),
    /// The engine ended the transaction itself.
    Inactive(&'static str, &'static str),
}

impl Poison {
    /// The poison left by the failure `e`.
    fn of(e: &NetabaseError) -> Self {
        match e {
            NetabaseError::TransactionInactive(i) => Poison::Inactive(i.backend, i.operation),
            other => Poison::Failed(other.to_string()),
        }
    }

    /// The error of every write after the poisoning, and of the commit.
    fn error(&self) -> NetabaseError {
        match self {
            Poison::Failed(cause) => NetabaseError::Poisoned(Box::new(PoisonedError {
                cause: cause.clone(),
            })),
            Poison::Inactive(backend, operation) => NetabaseError::inactive(backend, operation),
        }
    }
}

/// A typed asynchronous write transaction: the engine's transaction, the log of what it
/// changed, and whether a failure has poisoned it.
pub struct AsyncWriter<W> {
    txn: W,
    logging: bool,
    // Mutexes, never contended (one task drives a transaction), so that a transaction
    // can be held across `.await` in a task that must be `Send`.
    log: Mutex<Vec<Change>>,
    poisoned: Mutex<Option<Poison>>,
    /// The subscriptions the commit publishes to, when the store had one at `begin`,
    /// and whether the caller reads the `ChangeSet` (without logging it would not).
    hub: Option<(Arc<Hub>, bool)>,
    /// The store's sync state, when it syncs a model: its metadata is written at commit.
    sync: Option<Arc<SyncState>>,
}

/// Locks a mutex that is never held across a panic that matters: its data is plain.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: AsyncWriteTxn> AsyncWriter<W> {
    /// Wraps a write transaction; `logging` records its changes for the `ChangeSet` of
    /// its commit.
    pub(crate) fn new(txn: W, logging: bool) -> Self {
        AsyncWriter {
            txn,
            logging,
            log: Mutex::new(Vec::new()),
            poisoned: Mutex::new(None),
            hub: None,
            sync: None,
        }
    }

    /// Keeps the sync metadata of the store's synced models (`state`) in step at
    /// commit; the changes are then always recorded, since the commit reads them.
    pub(crate) fn with_sync(mut self, state: Option<&Arc<SyncState>>) -> Self {
        if let Some(state) = state {
            self.logging = true;
            self.sync = Some(Arc::clone(state));
        }
        self
    }

    /// Publishes the transaction's changes to the subscriptions of `hub` at commit, and
    /// records them for it, when `hub` has a subscription now (as the synchronous
    /// [`crate::typed::write::Writer`] does). Without one this costs one atomic load.
    pub(crate) fn watched_by(mut self, hub: &Arc<Hub>) -> Self {
        if hub.is_watched() {
            self.hub = Some((Arc::clone(hub), self.logging));
            self.logging = true;
        }
        self
    }

    /// The engine's transaction, for reads (they see the transaction's own writes).
    pub(crate) fn reader(&self) -> &W {
        &self.txn
    }

    /// Refuses a write on a poisoned transaction.
    fn check(&self) -> Result<()> {
        match lock(&self.poisoned).as_ref() {
            Some(poison) => Err(poison.error()),
            None => Ok(()),
        }
    }

    /// Poisons the transaction when `result` failed in a way that was not fully undone.
    fn settle<R>(&self, result: Result<R>) -> Result<R> {
        if let Err(e) = &result
            && !e.is_refusal()
        {
            *lock(&self.poisoned) = Some(Poison::of(e));
        }
        result
    }

    /// Stores every model in order, as [`crate::typed::write::Writer`] does.
    pub(crate) async fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.check()?;
        if M::VALIDATES || !M::LINKS.is_empty() {
            // Every model is checked before anything is written: a refusal applies
            // nothing of the call, as in the synchronous pipeline.
            let models: Vec<M> = models.into_iter().collect();
            for model in &models {
                model.validate()?;
            }
            let result = async {
                self.check_links::<D, M>(&models).await?;
                self.put_all::<D, M>(models).await
            }
            .await;
            return self.settle(result);
        }
        let result = self.put_all::<D, M>(models).await;
        self.settle(result)
    }

    async fn put_all<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
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
                        refused = Some(e);
                        break;
                    }
                }
            }
            self.put_chunk::<D, M>(&chunk[..values.len()], values)
                .await?;
            if let Some(e) = refused {
                return Err(e);
            }
        }
    }

    /// Stores `model`, already encoded as `value` (a batch encodes when it queues).
    pub(crate) async fn put_encoded<D, M>(&self, model: &M, value: Vec<u8>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.check()?;
        if M::VALIDATES {
            model.validate()?;
        }
        let result = async {
            self.check_links::<D, M>(std::slice::from_ref(model))
                .await?;
            self.put_chunk::<D, M>(std::slice::from_ref(model), vec![value])
                .await
        }
        .await;
        self.settle(result)
    }

    /// Removes the records with the given keys in order and returns them.
    pub(crate) async fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.check()?;
        let across = match self.links_into::<D>().await {
            Ok(across) => across,
            Err(e) => return self.settle(Err(e)),
        };
        if links::removal_is_linked::<D>(M::INFO.table, &across) {
            let pks: Vec<Vec<u8>> = keys.into_iter().map(|k| k.to_key_bytes()).collect();
            let result = self.remove_linked::<D, M>(&pks, across).await;
            return self.settle(result);
        }
        let result = self.remove_all::<D, M>(keys).await;
        self.settle(result)
    }

    /// Removes the records at `pks` of a model that others link to: every link policy
    /// is planned before the first removal, so that a refusal leaves nothing behind.
    async fn remove_linked<D, M>(
        &self,
        pks: &[Vec<u8>],
        across: Vec<Arc<CrossIncoming>>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let removal = self.plan_removal::<D, M>(pks, across).await?;
        let beyond = !removal.is_empty();
        let result = async {
            if beyond {
                self.execute_removal::<D>(removal).await?;
            }
            let mut out = Vec::with_capacity(pks.len());
            for chunk in pks.chunks(CHUNK) {
                self.remove_chunk::<D, M>(chunk, &mut out).await?;
            }
            Ok(out)
        }
        .await;
        self.poison_partial(beyond, result)
    }

    /// Poisons the transaction when `result` failed after writes beyond the refused
    /// record's own were made (a refusal then no longer leaves the transaction whole).
    fn poison_partial<R>(&self, wrote: bool, result: Result<R>) -> Result<R> {
        if wrote && let Err(e) = &result {
            *lock(&self.poisoned) = Some(Poison::of(e));
        }
        result
    }

    async fn remove_all<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let mut keys = keys.into_iter();
        let mut out = Vec::new();
        loop {
            let chunk: Vec<Vec<u8>> = keys
                .by_ref()
                .take(CHUNK)
                .map(|k| k.to_key_bytes())
                .collect();
            if chunk.is_empty() {
                return Ok(out);
            }
            self.remove_chunk::<D, M>(&chunk, &mut out).await?;
        }
    }

    /// Removes every record of the model and empties its indexes.
    pub(crate) async fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.check()?;
        let result = async {
            let across = self.links_into::<D>().await?;
            if links::removal_is_linked::<D>(M::INFO.table, &across) {
                let pks: Vec<Vec<u8>> = self
                    .txn
                    .range(M::INFO.table, RawRange::all(), Direction::Forward, None)
                    .await?
                    .into_iter()
                    .map(|(pk, _)| pk)
                    .collect();
                let removal = self.plan_removal::<D, M>(&pks, across).await?;
                let beyond = !removal.is_empty();
                let executed = self.execute_removal::<D>(removal).await;
                self.poison_partial(beyond, executed)?;
            }
            for table in cleared_tables::<D, M>() {
                self.txn.clear(table).await?;
            }
            self.log(cleared::<D, M>);
            Ok(())
        }
        .await;
        self.settle(result)
    }

    /// Writes netabase's own bytes (the meta table, an index being built).
    pub(crate) async fn write_internal(&self, ops: Vec<WriteOp<'static>>) -> Result<()> {
        self.check()?;
        let result = self.txn.apply(ops).await;
        self.settle(result)
    }

    /// Empties one of netabase's own tables.
    pub(crate) async fn clear_internal(&self, table: &str) -> Result<()> {
        self.check()?;
        let result = self.txn.clear(table).await;
        self.settle(result)
    }

    /// The commit point: applies every write atomically and returns what changed.
    ///
    /// # Errors
    /// [`NetabaseError::Poisoned`] when an engine failure poisoned the transaction,
    /// [`NetabaseError::TransactionInactive`] when the engine ended it;
    /// [`NetabaseError::Backend`] if the engine fails to commit.
    pub(crate) async fn commit(self) -> Result<ChangeSet> {
        if let Some(poison) = self
            .poisoned
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(poison.error());
        }
        let changes = ChangeSet::from_log(
            self.log
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if self.hub.is_none() && self.sync.is_none() {
            self.txn.commit().await?;
            return Ok(changes);
        }
        // The sync metadata is written inside the transaction; the publishing turn is
        // taken before the engine's commit and the changes handed over after it, as
        // the synchronous commit point does. A failed commit publishes nothing.
        self.txn
            .commit_around(AtCommit::new(changes, self.hub, self.sync))
            .await
    }

    async fn put_chunk<D, M>(&self, models: &[M], values: Vec<Vec<u8>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let table = M::INFO.table;
        let chunk = PutChunk::new::<D>(models, values, self.logging);
        let mut decisions = Decisions::default();
        let entries = chunk
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        // Step 1. An engine failure leaves nothing of the chunk standing (and poisons).
        let olds = self.txn.put_each(table, entries).await?;
        for (i, old) in olds.iter().enumerate() {
            if let Err(e) = chunk.replaced::<D>(&mut decisions, i, old.as_deref()) {
                // Step 2: the writes after the refused one are undone, latest first,
                // then the chunk is abandoned as the synchronous executor abandons it.
                for j in (i + 1..olds.len()).rev() {
                    restore(&self.txn, table, &chunk.pks()[j], olds[j].clone()).await?;
                }
                let (stand, kept) = self.abandon(table, decisions.abandon(chunk.pks())).await?;
                self.log(|| chunk.changes::<D>(kept, stand));
                return Err(e);
            }
        }
        // Step 3.
        for check in decisions.checks() {
            let holder = self.txn.get(check.table, &check.key).await?;
            if let Some(refusal) = chunk.refusal::<D>(&decisions, check, holder) {
                restore(&self.txn, table, &refusal.key, refusal.restore).await?;
                return Err(refusal.error);
            }
        }
        // Step 4.
        let (index_writes, olds) = decisions.index_writes();
        self.apply_by_table(index_writes).await?;
        let n = chunk.pks().len();
        self.log(|| chunk.changes::<D>(olds, n));
        Ok(())
    }

    async fn remove_chunk<D, M>(&self, pks: &[Vec<u8>], out: &mut Vec<Option<M>>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let table = M::INFO.table;
        let chunk = RemoveChunk::new(pks, self.logging);
        let mut decisions = Decisions::default();
        let olds = self.txn.delete_each(table, pks.to_vec()).await?;
        for (i, old) in olds.iter().enumerate() {
            match chunk.removed::<D, M>(&mut decisions, i, old.as_deref()) {
                Ok(model) => out.push(model),
                Err(e) => {
                    for j in (i + 1..olds.len()).rev() {
                        restore(&self.txn, table, &pks[j], olds[j].clone()).await?;
                    }
                    let (stand, kept) = self.abandon(table, decisions.abandon(pks)).await?;
                    self.log(|| chunk.changes::<D, M>(kept, stand));
                    return Err(e);
                }
            }
        }
        let (index_writes, olds) = decisions.index_writes();
        self.apply_by_table(index_writes).await?;
        self.log(|| chunk.changes::<D, M>(olds, pks.len()));
        Ok(())
    }

    async fn abandon(
        &self,
        table: &str,
        abandon: Abandon,
    ) -> Result<(usize, Vec<Option<Vec<u8>>>)> {
        if let Some((pk, bytes)) = abandon.restore {
            restore(&self.txn, table, &pk, Some(bytes)).await?;
            self.apply_by_table(abandon.index_writes).await?;
        }
        Ok((abandon.stand, abandon.olds))
    }

    /// Whether the transaction records its changes.
    pub(super) fn logging(&self) -> bool {
        self.logging
    }

    pub(super) async fn apply_by_table(&self, ops: Vec<WriteOp<'static>>) -> Result<()> {
        for run in group_by_table(ops) {
            self.txn.apply(run).await?;
        }
        Ok(())
    }

    pub(super) fn log(&self, changes: impl FnOnce() -> Vec<Change>) {
        if self.logging {
            lock(&self.log).extend(changes());
        }
    }
}

/// Puts `before` back at `pk` of `table` (or removes `pk` when it was new).
async fn restore<W: AsyncWriteTxn>(
    txn: &W,
    table: &str,
    pk: &[u8],
    before: Option<Vec<u8>>,
) -> Result<()> {
    match before {
        Some(bytes) => txn
            .put_each(table, vec![(pk.to_vec(), bytes)])
            .await
            .map(drop),
        None => txn.delete_each(table, vec![pk.to_vec()]).await.map(drop),
    }
}
