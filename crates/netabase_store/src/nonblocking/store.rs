//! `AsyncStore`, `AsyncTree`, `AsyncTxn` and `AsyncTreeView`: the typed API of
//! [`crate::NetabaseStore`], awaited.

use std::marker::PhantomData;
use std::ops::{ControlFlow, RangeBounds};
use std::sync::Arc;

use crate::backend::{Capabilities, Direction, RawRange};
use crate::error::{NetabaseError, Result, SyncProblem};
use crate::schema::{
    NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField, UniqueKeyField,
};
use crate::sync::state::SyncState;
use crate::typed::batch::Op;
use crate::typed::changes::{ChangeSet, TypedChange};
use crate::typed::meta::{self, Action, IndexBuilder, META_TABLE, OpenOptions};
use crate::typed::txn::{ReadOnly, ReadWrite};
use crate::typed::watch::{DEFAULT_CAPACITY, Filter, Hub, StoreWatch, Subscription};

use super::backend::{AsyncBackend, AsyncReadTxn};
use super::read;
use super::write::AsyncWriter;

/// A typed store of the models of definition `D` on the asynchronous backend `B`: the
/// same operations as [`crate::NetabaseStore`], each awaited.
///
/// Cloning is cheap (an `Arc`); clones share the database. Open one over an
/// asynchronous backend with [`AsyncStore::open`] (in the browser, IndexedDB), or turn
/// a synchronous store into one with [`crate::NetabaseStore::into_async`] (its
/// transactions then run on a pool of threads).
///
/// Subscriptions: [`AsyncTree::watch`] and [`AsyncStore::watch`] give the same
/// [`Subscription`]s as the synchronous store (read them as a `Stream`); every write
/// publishes its changes at its commit, in commit order. A store made with
/// [`crate::NetabaseStore::into_async`] shares its subscriptions with the synchronous
/// store: each sees the writes of both.
pub struct AsyncStore<D, B> {
    backend: Arc<B>,
    /// The subscriptions (shared with the synchronous store it was made from, if any).
    hub: Arc<Hub>,
    /// The sync state, when the store syncs a model (only through
    /// [`crate::NetabaseStore::into_async`]).
    sync: Option<Arc<SyncState>>,
    _definition: PhantomData<fn() -> D>,
}

impl<D, B> Clone for AsyncStore<D, B> {
    fn clone(&self) -> Self {
        AsyncStore {
            backend: Arc::clone(&self.backend),
            hub: Arc::clone(&self.hub),
            sync: self.sync.clone(),
            _definition: PhantomData,
        }
    }
}

impl<D, B: std::fmt::Debug> std::fmt::Debug for AsyncStore<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStore")
            .field("definition", &std::any::type_name::<D>())
            .field("backend", &self.backend)
            .finish()
    }
}

impl<D: NetabaseDefinitionTrait, B: AsyncBackend> AsyncStore<D, B> {
    /// A store over an opened asynchronous backend: checks the storage format and
    /// reconciles the stored schema with this definition's, as
    /// [`crate::NetabaseStore::from_backend`] does.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UnsupportedFormat`] if the database was written in
    /// another format; [`crate::NetabaseError::Schema`] if a key type changed;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn open(backend: B) -> Result<Self> {
        Self::open_with(backend, OpenOptions::default()).await
    }

    /// [`AsyncStore::open`] with options: new secondary keys have their index built
    /// (reported to [`OpenOptions::on_index_build`]), removed ones dropped.
    ///
    /// # Errors
    /// As [`AsyncStore::open`]; [`crate::NetabaseError::Schema`] also when a new
    /// unique key is already shared by two stored records;
    /// [`crate::NetabaseError::Sync`] with [`SyncProblem::Unsupported`] when `options`
    /// ask for sync ([`OpenOptions::sync_model`], [`OpenOptions::sync_all`],
    /// [`OpenOptions::writer_id`]), which only a store opened with the synchronous API
    /// keeps.
    pub async fn open_with(backend: B, mut options: OpenOptions) -> Result<Self> {
        if options.asks_for_sync() {
            return Err(NetabaseError::sync(
                D::NAME,
                None,
                SyncProblem::Unsupported,
                "an asynchronous backend opened directly cannot keep sync metadata: open \
                 the database with the synchronous API and `OpenOptions::sync_model`, then \
                 `NetabaseStore::into_async`",
            ));
        }
        let (format, stored, stored_shape, synced) = {
            let txn = backend.begin_read().await?;
            (
                txn.get(META_TABLE, meta::FORMAT_META_KEY).await?,
                txn.get(META_TABLE, meta::schema_key::<D>().as_bytes())
                    .await?,
                txn.get(META_TABLE, meta::shape_key::<D>().as_bytes())
                    .await?,
                txn.get(META_TABLE, &crate::sync::state::models_key(D::NAME))
                    .await?,
            )
        };
        if synced.is_some() {
            return Err(unsupported::<D>(
                "sync is on for this database (module `sync`), whose fingerprints this \
                 asynchronous backend cannot keep: open it with the synchronous API and \
                 use `NetabaseStore::into_async`",
            ));
        }
        if let Some(plan) = meta::plan_open::<D>(
            format.as_deref(),
            stored.as_deref(),
            stored_shape.as_deref(),
            true,
        )? {
            let writer = AsyncWriter::new(backend.begin_write().await?, false);
            for action in &plan.actions {
                match action {
                    Action::Drop(table) => writer.clear_internal(table).await?,
                    Action::Build(model, index) => {
                        let txn = writer.reader();
                        let total = txn.len(model.table).await?;
                        let mut builder = IndexBuilder::<D>::new(
                            model,
                            *index,
                            total,
                            &mut options.on_index_build,
                        )?;
                        let records = txn
                            .range(model.table, RawRange::all(), Direction::Forward, None)
                            .await?;
                        for (pk, value) in &records {
                            if builder.visit(pk, value)? == ControlFlow::Break(()) {
                                break;
                            }
                        }
                        writer.write_internal(builder.finish()?).await?;
                    }
                    Action::BuildLinks(model) => writer.build_link_indexes::<D>(model).await?,
                }
            }
            writer.write_internal(plan.meta).await?;
            writer.commit().await?;
        }
        Ok(Self::checked(Arc::new(backend), Arc::default(), None))
    }

    /// Wraps a backend whose format and schema were already checked, publishing to the
    /// subscriptions of `hub` and keeping the sync metadata of `sync`.
    pub(crate) fn checked(backend: Arc<B>, hub: Arc<Hub>, sync: Option<Arc<SyncState>>) -> Self {
        AsyncStore {
            backend,
            hub,
            sync,
            _definition: PhantomData,
        }
    }

    /// A write transaction of the typed layer, publishing to the store's subscriptions.
    async fn writer(&self, logging: bool) -> Result<AsyncWriter<B::Write>> {
        Ok(AsyncWriter::new(self.backend.begin_write().await?, logging)
            .with_sync(self.sync.as_ref())
            .watched_by(&self.hub))
    }

    /// Starts a subscription to several models at once, as
    /// [`crate::NetabaseStore::watch`] does: name each with [`StoreWatch::model`] and a
    /// filter, then call [`StoreWatch::subscribe`]. Read it with
    /// `futures::StreamExt::next` (or `try_recv`; the blocking reads would block the
    /// task).
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "threaded")] {
    /// # use netabase_store::prelude::*;
    /// # #[netabase_definition_module(AppDefinition, AppKeys)]
    /// # pub mod app {
    /// #     use netabase_store::prelude::*;
    /// #     use serde::{Deserialize, Serialize};
    /// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// #     #[netabase(AppDefinition)]
    /// #     pub struct Note { #[primary_key] pub id: u64 }
    /// # }
    /// # use app::*;
    /// use futures::StreamExt;
    /// use netabase_store::watch::{DefinitionChange, Event, Filter};
    ///
    /// futures::executor::block_on(async {
    ///     let store = AppDefinition::open_memory()?.into_async();
    ///     let mut watcher = store.watch().model::<Note>(Filter::all()).subscribe();
    ///     store.open_tree::<Note>().put(Note { id: 1 }).await?;
    ///     let Some(Ok(Event::Commit(commit))) = watcher.next().await else { panic!() };
    ///     assert!(matches!(&commit.changes[..], [DefinitionChange::Put { old: None, .. }]));
    ///     Ok::<(), NetabaseError>(())
    /// })?;
    /// # }
    /// # Ok::<(), netabase_store::NetabaseError>(())
    /// ```
    pub fn watch(&self) -> StoreWatch<'_, D, B> {
        StoreWatch::new(&self.hub)
    }

    /// How many subscriptions (of trees and of the store) are registered.
    pub fn subscriptions(&self) -> usize {
        self.hub.count()
    }

    /// The backend under the store: an escape hatch for tools and tests (bytes written
    /// through it skip everything the typed layer guarantees).
    pub fn raw_backend(&self) -> &B {
        &self.backend
    }

    /// The backend's name (`"indexeddb"`, `"redb"`, `"memory"`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// What the backend guarantees (snapshot reads, persistence).
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    fn snapshot(&self) -> bool {
        self.backend.capabilities().snapshot_reads
    }

    /// A handle on the records of model `M`; each of its methods runs in a transaction
    /// of its own.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> AsyncTree<D, M, B> {
        AsyncTree {
            store: self.clone(),
            _model: PhantomData,
        }
    }

    /// Begins a read transaction.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    pub async fn read(&self) -> Result<AsyncTxn<D, B, ReadOnly>> {
        Ok(AsyncTxn {
            txn: self.backend.begin_read().await?,
            store: self.clone(),
        })
    }

    /// Begins a write transaction: nothing is applied until [`AsyncTxn::commit`];
    /// dropped without commit, nothing is applied.
    ///
    /// # Errors
    /// [`crate::NetabaseError::ReadOnly`] on a read-only store;
    /// [`crate::NetabaseError::Backend`] when the engine cannot start one.
    pub async fn write(&self) -> Result<AsyncTxn<D, B, ReadWrite>> {
        Ok(AsyncTxn {
            txn: self.writer(true).await?,
            store: self.clone(),
        })
    }

    /// The names of every table in the database, in ascending order.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn tree_names(&self) -> Result<Vec<String>> {
        self.backend.begin_read().await?.table_names().await
    }

    /// The commit point of every typed write of the store. The seam for change
    /// subscriptions: the committed [`ChangeSet`] is in hand here.
    async fn commit(&self, writer: AsyncWriter<B::Write>) -> Result<ChangeSet> {
        writer.commit().await
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::typed::txn::ReadOnly {}
    impl Sealed for crate::typed::txn::ReadWrite {}
    impl<W> Sealed for super::AsyncWriter<W> {}
}

/// A transaction mode of the asynchronous API: which transaction an [`AsyncTxn`] holds.
pub trait AsyncTxnMode<B: AsyncBackend>: sealed::Sealed {
    /// The transaction of this mode.
    type Txn: AsyncViewTxn;
}

impl<B: AsyncBackend> AsyncTxnMode<B> for ReadOnly {
    type Txn = B::Read;
}

impl<B: AsyncBackend> AsyncTxnMode<B> for ReadWrite {
    type Txn = AsyncWriter<B::Write>;
}

/// A transaction that typed asynchronous views read through.
pub trait AsyncViewTxn {
    /// The engine transaction the reads go to.
    type Raw: AsyncReadTxn;
    /// That transaction.
    fn raw(&self) -> &Self::Raw;
}

impl<T: AsyncReadTxn> AsyncViewTxn for T {
    type Raw = T;
    fn raw(&self) -> &T {
        self
    }
}

impl<W: super::backend::AsyncWriteTxn> AsyncViewTxn for AsyncWriter<W> {
    type Raw = W;
    fn raw(&self) -> &W {
        self.reader()
    }
}

/// The transactions that typed asynchronous views can write through: only write
/// transactions.
#[diagnostic::on_unimplemented(
    message = "cannot write through a view of a read-only transaction",
    label = "this view was opened in `store.read()`, which only reads",
    note = "open the view in `store.write()` (and `commit()` it) to put, remove or clear"
)]
pub trait AsyncWriteAccess: sealed::Sealed {
    #[doc(hidden)]
    #[allow(async_fn_in_trait)]
    async fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    #[allow(async_fn_in_trait)]
    async fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    #[allow(async_fn_in_trait)]
    async fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;
}

impl<W: super::backend::AsyncWriteTxn> AsyncWriteAccess for AsyncWriter<W> {
    async fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        AsyncWriter::put_many::<D, M>(self, models).await
    }

    async fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        AsyncWriter::remove_many::<D, M>(self, keys).await
    }

    async fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        AsyncWriter::clear::<D, M>(self).await
    }
}

/// An open asynchronous transaction. Open any number of trees in it with
/// [`AsyncTxn::open_tree`]; they all see (and, in a write transaction, change) the same
/// transaction. A write transaction applies nothing until [`AsyncTxn::commit`].
///
/// In the browser, do not hold a write transaction across an `.await` on anything
/// but the store: IndexedDB ends a transaction that has no request pending, and the
/// next write then fails with [`crate::NetabaseError::TransactionInactive`].
pub struct AsyncTxn<D, B: AsyncBackend, Mode: AsyncTxnMode<B>> {
    txn: Mode::Txn,
    store: AsyncStore<D, B>,
}

impl<D: NetabaseDefinitionTrait, B: AsyncBackend, Mode: AsyncTxnMode<B>> AsyncTxn<D, B, Mode> {
    /// A typed view of model `M` inside this transaction.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> AsyncTreeView<'_, D, M, Mode::Txn> {
        AsyncTreeView {
            txn: &self.txn,
            snapshot: self.store.snapshot(),
            _types: PhantomData,
        }
    }
}

impl<D: NetabaseDefinitionTrait, B: AsyncBackend> AsyncTxn<D, B, ReadWrite> {
    /// Applies every write of the transaction atomically, and returns what changed.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Poisoned`] if an engine failure poisoned the
    /// transaction; [`crate::NetabaseError::TransactionInactive`] if the engine ended
    /// it; [`crate::NetabaseError::Backend`] if the engine fails to commit.
    pub async fn commit(self) -> Result<ChangeSet> {
        self.store.commit(self.txn).await
    }

    /// Discards every write of the transaction (the same as dropping it).
    pub fn rollback(self) {}
}

/// The records of model `M` inside an asynchronous transaction. Read methods exist on
/// every view; write methods only on views of a write transaction.
pub struct AsyncTreeView<'t, D, M, T> {
    txn: &'t T,
    snapshot: bool,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<D, M, T> AsyncTreeView<'_, D, M, T>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: AsyncViewTxn,
{
    /// The record with primary key `key`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the stored bytes do not decode;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn get(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        read::get::<D, M, T::Raw>(self.txn.raw(), &key.into()).await
    }

    /// The records with the given primary keys, in the same order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        read::get_many::<D, M, T::Raw>(self.txn.raw(), keys.into_iter().map(Into::into)).await
    }

    /// Every record whose secondary key equals `key`, in primary-key order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_by_secondary_key(&self, key: impl Into<M::SecondaryKeys>) -> Result<Vec<M>> {
        read::get_by_secondary::<D, M, T::Raw>(self.txn.raw(), &key.into(), self.snapshot).await
    }

    /// The one record holding the unique secondary key `key`, if any.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_by_unique_key<K>(&self, key: K) -> Result<Option<M>>
    where
        K: UniqueKeyField<D, M> + Into<M::SecondaryKeys>,
    {
        Ok(self.get_by_secondary_key(key).await?.pop())
    }

    /// [`AsyncTreeView::get_by_secondary_key`] for each key, in the same order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_many_by_secondary_keys<K: Into<M::SecondaryKeys>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Vec<M>>> {
        let mut out = Vec::new();
        for key in keys {
            out.push(self.get_by_secondary_key(key).await?);
        }
        Ok(out)
    }

    /// Every record with its key, in ascending primary-key order (collected).
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn iter(&self) -> Result<Vec<(M::PrimaryKey, M)>> {
        read::scan::<D, M, T::Raw, M::PrimaryKey>(self.txn.raw(), &(..), Direction::Forward).await
    }

    /// Every record with its key, in descending primary-key order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn iter_rev(&self) -> Result<Vec<(M::PrimaryKey, M)>> {
        read::scan::<D, M, T::Raw, M::PrimaryKey>(self.txn.raw(), &(..), Direction::Reverse).await
    }

    /// The records whose primary key lies in `range`, in ascending order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<(M::PrimaryKey, M)>>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        read::scan::<D, M, T::Raw, K>(self.txn.raw(), &range, Direction::Forward).await
    }

    /// The records whose primary key lies in `range`, in descending order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range_rev<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<(M::PrimaryKey, M)>>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        read::scan::<D, M, T::Raw, K>(self.txn.raw(), &range, Direction::Reverse).await
    }

    /// The records whose secondary key `K` lies in `range`, in secondary-key order
    /// (ties in primary-key order).
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range_by_secondary_key<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<M>>
    where
        K: SecondaryKeyField<D, M>,
    {
        read::range_by_secondary::<D, M, T::Raw, K>(self.txn.raw(), K::INDEX, &range, self.snapshot)
            .await
    }

    /// The number of records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn len(&self) -> Result<u64> {
        self.txn.raw().len(M::INFO.table).await
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Stores `model`, replacing the record with the same primary key.
    ///
    /// # Errors
    /// As [`crate::TreeView::put`]; also
    /// [`crate::NetabaseError::TransactionInactive`] when the engine ended the
    /// transaction.
    pub async fn put(&self, model: M) -> Result<()>
    where
        T: AsyncWriteAccess,
    {
        self.txn.put_many::<D, M>(std::iter::once(model)).await
    }

    /// Stores every model, in order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::put`].
    pub async fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        T: AsyncWriteAccess,
    {
        self.txn.put_many::<D, M>(models).await
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// As [`AsyncTreeView::put`].
    pub async fn remove(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>>
    where
        T: AsyncWriteAccess,
    {
        Ok(self
            .txn
            .remove_many::<D, M>(std::iter::once(key.into()))
            .await?
            .pop()
            .flatten())
    }

    /// Removes the records with the given keys and returns them, in the same order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::put`].
    pub async fn remove_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>>
    where
        T: AsyncWriteAccess,
    {
        self.txn
            .remove_many::<D, M>(keys.into_iter().map(Into::into))
            .await
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// As [`AsyncTreeView::put`].
    pub async fn clear(&self) -> Result<()>
    where
        T: AsyncWriteAccess,
    {
        self.txn.clear::<D, M>().await
    }
}

/// The records of model `M` in an asynchronous store. Every method runs in a
/// transaction of its own; the `*_many` methods use one transaction for the whole call.
pub struct AsyncTree<D, M, B> {
    store: AsyncStore<D, B>,
    _model: PhantomData<fn() -> M>,
}

impl<D, M, B> Clone for AsyncTree<D, M, B> {
    fn clone(&self) -> Self {
        AsyncTree {
            store: self.store.clone(),
            _model: PhantomData,
        }
    }
}

impl<D, M, B> AsyncTree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: AsyncBackend,
{
    async fn reader(&self) -> Result<B::Read> {
        self.store.backend.begin_read().await
    }

    async fn one_shot(&self) -> Result<AsyncWriter<B::Write>> {
        self.store.writer(false).await
    }

    /// Subscribes to the changes of this model that `filter` matches, as
    /// [`crate::Tree::watch`] does; read it as a `futures::Stream`.
    pub fn watch(&self, filter: Filter<D, M>) -> Subscription<TypedChange<D, M>> {
        self.watch_with_capacity(filter, DEFAULT_CAPACITY)
    }

    /// [`AsyncTree::watch`] with a buffer of `capacity` commits (at least one).
    pub fn watch_with_capacity(
        &self,
        filter: Filter<D, M>,
        capacity: usize,
    ) -> Subscription<TypedChange<D, M>> {
        Subscription::for_model(&self.store.hub, filter, capacity)
    }

    /// The record with primary key `key`.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        read::get::<D, M, B::Read>(&self.reader().await?, &key.into()).await
    }

    /// The records with the given primary keys, in the same order, in one transaction.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        read::get_many::<D, M, B::Read>(&self.reader().await?, keys.into_iter().map(Into::into))
            .await
    }

    /// Every record whose secondary key equals `key`, in primary-key order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_by_secondary_key(&self, key: impl Into<M::SecondaryKeys>) -> Result<Vec<M>> {
        let txn = self.reader().await?;
        read::get_by_secondary::<D, M, B::Read>(&txn, &key.into(), self.store.snapshot()).await
    }

    /// The one record holding the unique secondary key `key`, if any.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_by_unique_key<K>(&self, key: K) -> Result<Option<M>>
    where
        K: UniqueKeyField<D, M> + Into<M::SecondaryKeys>,
    {
        Ok(self.get_by_secondary_key(key).await?.pop())
    }

    /// [`AsyncTree::get_by_secondary_key`] for each key, in one transaction.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn get_many_by_secondary_keys<K: Into<M::SecondaryKeys>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Vec<M>>> {
        let txn = self.reader().await?;
        let mut out = Vec::new();
        for key in keys {
            out.push(
                read::get_by_secondary::<D, M, B::Read>(&txn, &key.into(), self.store.snapshot())
                    .await?,
            );
        }
        Ok(out)
    }

    /// Stores `model`, replacing the record with the same primary key.
    ///
    /// # Errors
    /// As [`crate::Tree::put`].
    pub async fn put(&self, model: M) -> Result<()> {
        self.put_many(std::iter::once(model)).await
    }

    /// Stores every model in one transaction: all of them, or none if one fails.
    ///
    /// # Errors
    /// As [`crate::Tree::put`]; on error nothing of the call is applied.
    pub async fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()> {
        let writer = self.one_shot().await?;
        writer.put_many::<D, M>(models).await?;
        self.store.commit(writer).await.map(drop)
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// As [`crate::Tree::remove`].
    pub async fn remove(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        Ok(self
            .remove_many(std::iter::once(key.into()))
            .await?
            .pop()
            .flatten())
    }

    /// Removes the records with the given keys in one transaction and returns them.
    ///
    /// # Errors
    /// As [`crate::Tree::remove`]; on error nothing of the call is applied.
    pub async fn remove_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        let writer = self.one_shot().await?;
        let removed = writer
            .remove_many::<D, M>(keys.into_iter().map(Into::into))
            .await?;
        self.store.commit(writer).await?;
        Ok(removed)
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn clear(&self) -> Result<()> {
        let writer = self.one_shot().await?;
        writer.clear::<D, M>().await?;
        self.store.commit(writer).await.map(drop)
    }

    /// The number of records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn len(&self) -> Result<u64> {
        self.reader().await?.len(M::INFO.table).await
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Every record with its key in ascending primary-key order, read from one
    /// snapshot taken now (collected).
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn iter(&self) -> Result<Vec<(M::PrimaryKey, M)>> {
        self.range_in::<M::PrimaryKey>(&(..), Direction::Forward)
            .await
    }

    /// Every record with its key in descending primary-key order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn iter_rev(&self) -> Result<Vec<(M::PrimaryKey, M)>> {
        self.range_in::<M::PrimaryKey>(&(..), Direction::Reverse)
            .await
    }

    /// The records whose primary key lies in `range`, in ascending order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<(M::PrimaryKey, M)>>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.range_in(&range, Direction::Forward).await
    }

    /// The records whose primary key lies in `range`, in descending order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range_rev<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<(M::PrimaryKey, M)>>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.range_in(&range, Direction::Reverse).await
    }

    async fn range_in<K>(
        &self,
        range: &impl RangeBounds<K>,
        direction: Direction,
    ) -> Result<Vec<(M::PrimaryKey, M)>>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        read::scan::<D, M, B::Read, K>(&self.reader().await?, range, direction).await
    }

    /// The records whose secondary key `K` lies in `range`, in secondary-key order.
    ///
    /// # Errors
    /// As [`AsyncTreeView::get`].
    pub async fn range_by_secondary_key<K>(&self, range: impl RangeBounds<K>) -> Result<Vec<M>>
    where
        K: SecondaryKeyField<D, M>,
    {
        let txn = self.reader().await?;
        read::range_by_secondary::<D, M, B::Read, K>(&txn, K::INDEX, &range, self.store.snapshot())
            .await
    }

    /// An empty [`AsyncBatch`] of writes to this tree.
    pub fn create_batch(&self) -> AsyncBatch<D, M, B> {
        AsyncBatch {
            store: self.store.clone(),
            ops: Vec::new(),
        }
    }
}

/// Puts and removes of model `M`, queued in memory and applied in one write
/// transaction by [`AsyncBatch::commit`]: all of them, or none.
#[must_use = "a batch applies nothing until `commit` is called"]
pub struct AsyncBatch<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    store: AsyncStore<D, B>,
    ops: Vec<Op<M, M::PrimaryKey>>,
}

impl<D, M, B> AsyncBatch<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: AsyncBackend,
{
    /// Queues storing `model`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Encode`] if the model cannot be serialized.
    pub fn put(&mut self, model: M) -> Result<()> {
        self.ops.push(Op::put::<D>(model)?);
        Ok(())
    }

    /// Queues removing the record with primary key `key`.
    pub fn remove(&mut self, key: impl Into<M::PrimaryKey>) {
        self.ops.push(Op::Remove(key.into()));
    }

    /// The number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies every queued operation, in order, in one write transaction: all of them
    /// or none. Returns what changed.
    ///
    /// # Errors
    /// As [`crate::Batch::commit`]; nothing of the batch is applied then.
    pub async fn commit(self) -> Result<ChangeSet> {
        if self.ops.is_empty() {
            return Ok(ChangeSet::default());
        }
        let writer = self.store.writer(true).await?;
        for op in self.ops {
            match op {
                Op::Put(model, value) => writer.put_encoded::<D, M>(&model, value).await?,
                Op::Remove(key) => {
                    writer.remove_many::<D, M>(std::iter::once(key)).await?;
                }
            }
        }
        self.store.commit(writer).await
    }
}

/// A definition the asynchronous API cannot serve yet, as a schema error.
fn unsupported<D: NetabaseDefinitionTrait>(reason: &str) -> crate::NetabaseError {
    crate::NetabaseError::Schema(Box::new(crate::error::SchemaError {
        definition: D::NAME,
        model: String::new(),
        field: None,
        reason: reason.to_owned(),
    }))
}
