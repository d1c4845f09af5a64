//! Explicit transactions: `TxnGuard<Mode>` and the typed `TreeView`s opened in them.
//!
//! The mode is a type: a [`ReadOnly`] guard hands out views over a read transaction,
//! whose write methods do not compile (the compiler says the view belongs to a
//! read-only transaction) rather than failing at run time.

use std::marker::PhantomData;
use std::ops::RangeBounds;

use crate::backend::{Backend, Direction, ReadTxn};
use crate::error::Result;
use crate::schema::{
    NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField, UniqueKeyField,
};

use crate::sync::{StampedWrite, VersionStamp};

use super::changes::ChangeSet;
use super::read::{self, ModelIter, SecondaryIter};
use super::write::Writer;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::ReadWrite {}
    impl<B: crate::backend::Backend> Sealed for super::Writer<'_, B> {}
}

/// Mode of a read transaction.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// Mode of a write transaction.
#[derive(Debug, Clone, Copy)]
pub struct ReadWrite;

/// A transaction mode: which transaction a [`TxnGuard`] holds.
pub trait TxnMode<B: Backend>: sealed::Sealed {
    /// The transaction of this mode.
    type Txn<'s>: ViewTxn
    where
        B: 's;
}

/// A transaction that typed views read through: a read transaction, or a
/// [`Writer`], whose reads see its own writes.
pub trait ViewTxn {
    /// The backend transaction the reads go to.
    type Raw: ReadTxn;
    /// That transaction.
    fn raw(&self) -> &Self::Raw;
}

impl<T: crate::backend::OwnedReadTxn> ViewTxn for T {
    type Raw = T;
    fn raw(&self) -> &T {
        self
    }
}

impl<'s, B: Backend> ViewTxn for Writer<'s, B> {
    type Raw = B::Write<'s>;
    fn raw(&self) -> &B::Write<'s> {
        self.reader()
    }
}

impl<B: Backend> TxnMode<B> for ReadOnly {
    type Txn<'s>
        = B::Read
    where
        B: 's;
}

impl<B: Backend> TxnMode<B> for ReadWrite {
    type Txn<'s>
        = Writer<'s, B>
    where
        B: 's;
}

/// The transactions that typed views can write through: only write transactions.
#[diagnostic::on_unimplemented(
    message = "cannot write through a view of a read-only transaction",
    label = "this view was opened in `store.read()`, which only reads",
    note = "open the view in `store.write()` (and `commit()` it) to put, remove or clear"
)]
pub trait WriteAccess: sealed::Sealed {
    #[doc(hidden)]
    fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    fn put_stamped<D, M>(&self, model: M, stamp: VersionStamp) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;

    #[doc(hidden)]
    fn remove_stamped<D, M>(
        &self,
        key: &M::PrimaryKey,
        stamp: VersionStamp,
    ) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>;
}

impl<B: Backend> WriteAccess for Writer<'_, B> {
    fn put_many<D, M>(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Writer::put_many::<D, M>(self, models)
    }

    fn remove_many<D, M>(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Writer::remove_many::<D, M>(self, keys)
    }

    fn clear<D, M>(&self) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Writer::clear::<D, M>(self)
    }

    fn put_stamped<D, M>(&self, model: M, stamp: VersionStamp) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Writer::put_stamped::<D, M>(self, model, stamp)
    }

    fn remove_stamped<D, M>(&self, key: &M::PrimaryKey, stamp: VersionStamp) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Writer::remove_stamped::<D, M>(self, key, stamp)
    }
}

/// An open transaction on a [`crate::NetabaseStore`]. Open any number of trees in it
/// with [`TxnGuard::open_tree`]; they all see (and, in a write transaction, change) the
/// same transaction.
///
/// A write guard applies nothing until [`TxnGuard::commit`]; dropping it rolls back.
/// A write that is refused (a unique key held by another record, for instance) is undone
/// entirely and the transaction stays usable; an engine failure during a write poisons
/// it, and `commit` then fails with [`crate::NetabaseError::Poisoned`] and applies
/// nothing.
pub struct TxnGuard<'s, D, B: Backend, Mode: TxnMode<B>> {
    txn: Mode::Txn<'s>,
    snapshot: bool,
    _definition: PhantomData<fn() -> D>,
}

impl<'s, D: NetabaseDefinitionTrait, B: Backend, Mode: TxnMode<B>> TxnGuard<'s, D, B, Mode> {
    pub(crate) fn new(txn: Mode::Txn<'s>, snapshot: bool) -> Self {
        TxnGuard {
            txn,
            snapshot,
            _definition: PhantomData,
        }
    }

    /// A typed view of model `M` inside this transaction.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> TreeView<'_, D, M, Mode::Txn<'s>> {
        TreeView::over(&self.txn, self.snapshot)
    }
}

impl<'s, D: NetabaseDefinitionTrait, B: Backend> TxnGuard<'s, D, B, ReadWrite> {
    /// Applies every write of the transaction atomically, and returns what changed: one
    /// [`crate::Change`] per record.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Poisoned`] if an engine failure poisoned the transaction;
    /// [`crate::NetabaseError::Backend`] if the engine fails to commit. Nothing is
    /// applied then.
    pub fn commit(self) -> Result<ChangeSet> {
        self.txn.commit()
    }

    /// Discards every write of the transaction (the same as dropping it).
    pub fn rollback(self) {}

    /// The writer under this transaction.
    #[cfg(feature = "libp2p")]
    pub(crate) fn writer(&self) -> &Writer<'s, B> {
        &self.txn
    }
}

/// The records of model `M` inside a transaction. Read methods exist on every view;
/// write methods only on views of a write transaction.
pub struct TreeView<'t, D, M, T> {
    txn: &'t T,
    snapshot: bool,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<'t, D, M, T> TreeView<'t, D, M, T>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ViewTxn,
{
    pub(crate) fn over(txn: &'t T, snapshot: bool) -> Self {
        TreeView {
            txn,
            snapshot,
            _types: PhantomData,
        }
    }

    /// The transaction the view reads (and writes) through.
    pub(crate) fn txn(&self) -> &'t T {
        self.txn
    }

    /// The record with primary key `key` (the key newtype or its value: `get(7)`).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] naming the table and key if the stored bytes do
    /// not decode; [`crate::NetabaseError::Version`] if they were written by a model
    /// version this code cannot read; [`crate::NetabaseError::Backend`] on engine
    /// failure.
    pub fn get(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        read::get::<D, M, T::Raw>(self.txn.raw(), &key.into())
    }

    /// The records with the given primary keys, in the same order (`None` where absent).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        keys.into_iter()
            .map(|key| read::get::<D, M, T::Raw>(self.txn.raw(), &key.into()))
            .collect()
    }

    /// Every record whose secondary key equals `key` (any secondary key newtype, or the
    /// model's secondary-key enum), in primary-key order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_by_secondary_key(&self, key: impl Into<M::SecondaryKeys>) -> Result<Vec<M>> {
        read::get_by_secondary::<D, M, T::Raw>(self.txn.raw(), &key.into(), self.snapshot)
    }

    /// The one record holding the unique secondary key `key`, if any. Only unique keys
    /// have this lookup (a non-unique key does not compile here).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_by_unique_key<K>(&self, key: K) -> Result<Option<M>>
    where
        K: UniqueKeyField<D, M> + Into<M::SecondaryKeys>,
    {
        Ok(self.get_by_secondary_key(key)?.pop())
    }

    /// [`TreeView::get_by_secondary_key`] for each key, in the same order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_many_by_secondary_keys<K: Into<M::SecondaryKeys>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Vec<M>>> {
        keys.into_iter()
            .map(|key| {
                read::get_by_secondary::<D, M, T::Raw>(self.txn.raw(), &key.into(), self.snapshot)
            })
            .collect()
    }

    /// Every record, in ascending primary-key order.
    pub fn iter(&self) -> ModelIter<'t, D, M> {
        self.scan::<M::PrimaryKey>(&(..), Direction::Forward)
    }

    /// Every record, in descending primary-key order.
    pub fn iter_rev(&self) -> ModelIter<'t, D, M> {
        self.scan::<M::PrimaryKey>(&(..), Direction::Reverse)
    }

    /// The records whose primary key lies in `range` (of key newtypes or of their
    /// values: `range(2..100)`), in ascending order.
    pub fn range<K>(&self, range: impl RangeBounds<K>) -> ModelIter<'t, D, M>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.scan(&range, Direction::Forward)
    }

    /// The records whose primary key lies in `range`, in descending order.
    pub fn range_rev<K>(&self, range: impl RangeBounds<K>) -> ModelIter<'t, D, M>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.scan(&range, Direction::Reverse)
    }

    fn scan<K>(&self, range: &impl RangeBounds<K>, direction: Direction) -> ModelIter<'t, D, M>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        let raw = self
            .txn
            .raw()
            .cursor(
                M::INFO.table,
                read::primary_bounds::<M::PrimaryKey, K>(range),
                direction,
            )
            .unwrap_or_else(read::error_cursor);
        ModelIter::new(raw, ())
    }

    /// The records whose secondary key `K` lies in `range`, in secondary-key order
    /// (ties in primary-key order).
    pub fn range_by_secondary_key<K>(
        &self,
        range: impl RangeBounds<K>,
    ) -> SecondaryIter<'t, D, M, &'t T::Raw, K>
    where
        K: SecondaryKeyField<D, M>,
    {
        let table = M::INFO.secondary_keys.get(K::INDEX).map_or("", |f| f.table);
        let bounds = read::secondary_bounds(&range);
        let txn = self.txn.raw();
        let raw = txn
            .cursor(table, bounds.clone(), Direction::Forward)
            .unwrap_or_else(read::error_cursor);
        SecondaryIter::new(Some(txn), raw, K::INDEX, bounds, self.snapshot)
    }

    /// The number of records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn len(&self) -> Result<u64> {
        self.txn.raw().len(M::INFO.table)
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    // The write methods carry their `WriteAccess` bound themselves, so that calling one
    // on a view of a read transaction reports the trait's message, not an internal type.

    /// Stores `model`, replacing the record with the same primary key; index entries of
    /// the replaced record are removed.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UniqueViolation`] if a unique secondary key is held by
    /// another record (nothing of this put is applied);
    /// [`crate::NetabaseError::Encode`] if the model cannot be serialized;
    /// [`crate::NetabaseError::Backend`] on engine failure (the transaction is then
    /// poisoned).
    pub fn put(&self, model: M) -> Result<()>
    where
        T: WriteAccess,
    {
        self.txn.put_many::<D, M>(std::iter::once(model))
    }

    /// Stores every model, in order.
    ///
    /// # Errors
    /// As [`TreeView::put`]; on a unique-key refusal the models before the refused one
    /// stay written in this transaction (drop it to roll back). Validators and links are
    /// checked for every model before the first is written, so their refusals
    /// ([`crate::NetabaseError::Invalid`], [`crate::NetabaseError::DanglingLink`]) leave
    /// nothing of the call.
    pub fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()>
    where
        T: WriteAccess,
    {
        self.txn.put_many::<D, M>(models)
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the stored record does not decode (it is left
    /// in place); [`crate::NetabaseError::Backend`] on engine failure.
    pub fn remove(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>>
    where
        T: WriteAccess,
    {
        Ok(self
            .txn
            .remove_many::<D, M>(std::iter::once(key.into()))?
            .pop()
            .flatten())
    }

    /// Removes the records with the given keys and returns them, in the same order.
    ///
    /// # Errors
    /// As [`TreeView::remove`].
    pub fn remove_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>>
    where
        T: WriteAccess,
    {
        self.txn
            .remove_many::<D, M>(keys.into_iter().map(Into::into))
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn clear(&self) -> Result<()>
    where
        T: WriteAccess,
    {
        self.txn.clear::<D, M>()
    }
    /// Writes `model` as the version stamped `stamp`, made elsewhere (by another
    /// replica, or signed by a node), through the write pipeline: indexes, unique keys,
    /// validators and links as [`TreeView::put`], subscribers see the change, and the
    /// model's sync metadata records `stamp` (not a new stamp of this store). The model
    /// must be synced ([`crate::OpenOptions::sync_model`]).
    ///
    /// The greatest stamp wins, whatever order versions arrive in: if the version held
    /// for the key (a record or a tombstone) has an equal or greater stamp, nothing is
    /// written ([`StampedWrite::Superseded`]). A unique key held by another record goes
    /// to the greater stamp too: an older holder is removed, a newer one keeps the key
    /// and this version is not written ([`StampedWrite::UniqueKeyHeld`]). Either way
    /// the loser's key keeps a tombstone stamped with the successor of the loser's
    /// stamp ([`crate::sync::VersionStamp::successor`]), which beats the loser offered
    /// again and nothing newer. Replicas that receive the same two versions, in either
    /// order, thus hold the same records and the same sync entries.
    ///
    /// # Examples
    /// ```
    /// # use netabase_store::prelude::*;
    /// # use netabase_store::{NetabaseStore, OpenOptions, backend::memory::MemoryBackend};
    /// # #[netabase_definition_module(AppDefinition, AppKeys)]
    /// # pub mod app {
    /// #     use netabase_store::prelude::*;
    /// #     use serde::{Deserialize, Serialize};
    /// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// #     #[netabase(AppDefinition)]
    /// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
    /// # }
    /// # use app::*;
    /// use netabase_store::sync::{Hlc, StampedWrite, VersionStamp, WriterId};
    ///
    /// let store = NetabaseStore::<AppDefinition, _>::from_backend_with(
    ///     MemoryBackend::new(), OpenOptions::default().sync_model("Note"))?;
    /// let stamp = |millis| VersionStamp { hlc: Hlc { millis, counter: 0 }, writer: WriterId([7; 32]) };
    /// let txn = store.write()?;
    /// let notes = txn.open_tree::<Note>();
    /// assert!(notes.put_stamped(Note { id: 1, text: "new".into() }, stamp(20))?.is_applied());
    /// // An older version of the same key loses.
    /// let older = notes.put_stamped(Note { id: 1, text: "old".into() }, stamp(10))?;
    /// assert!(matches!(older, StampedWrite::Superseded { .. }));
    /// txn.commit()?;
    /// assert_eq!(store.open_tree::<Note>().get(1)?.map(|n| n.text), Some("new".into()));
    /// # Ok::<(), netabase_store::NetabaseError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::NetabaseError::Sync`] if the model is not synced; otherwise as
    /// [`TreeView::put`], except that unique-key conflicts are decided as above.
    pub fn put_stamped(&self, model: M, stamp: VersionStamp) -> Result<StampedWrite>
    where
        T: WriteAccess,
    {
        self.txn.put_stamped::<D, M>(model, stamp)
    }

    /// Removes the record at `key` as the removal stamped `stamp`, made elsewhere: the
    /// model's sync metadata keeps a tombstone with `stamp` (even when nothing was
    /// stored), subscribers see the removal. Nothing is done if the version held has an
    /// equal or greater stamp ([`StampedWrite::Superseded`]).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Sync`] if the model is not synced; otherwise as
    /// [`TreeView::remove`].
    pub fn remove_stamped(
        &self,
        key: impl Into<M::PrimaryKey>,
        stamp: VersionStamp,
    ) -> Result<StampedWrite>
    where
        T: WriteAccess,
    {
        self.txn.remove_stamped::<D, M>(&key.into(), stamp)
    }
}
