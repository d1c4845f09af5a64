//! `Tree`: one-shot typed operations, each in a transaction of its own.

use std::ops::RangeBounds;

use crate::backend::{Backend, Direction, OwnedReadTxn};
use crate::codec::key::KeyCodec;
use crate::error::Result;
use crate::schema::{
    NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField, UniqueKeyField,
};

use super::read::{ModelIter, SecondaryIter, error_cursor, primary_bounds, secondary_bounds};
use super::store::NetabaseStore;
use super::txn::TreeView;
use super::write::Writer;

/// The records of model `M` in a store. Every method runs in a transaction of its own;
/// the `*_many` methods use one transaction for the whole call. For several operations
/// that must be atomic together, use [`NetabaseStore::write`].
pub struct Tree<D, M, B> {
    store: NetabaseStore<D, B>,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<D, M, B> Clone for Tree<D, M, B> {
    fn clone(&self) -> Self {
        Tree {
            store: self.store.clone(),
            _model: std::marker::PhantomData,
        }
    }
}

/// An iterator over records that owns its read transaction.
pub type TreeIter<D, M, B> = ModelIter<'static, D, M, Option<<B as Backend>::Read>>;

/// An iterator over a secondary-key range that owns its read transaction.
pub type TreeSecondaryIter<D, M, B, K> = SecondaryIter<'static, D, M, <B as Backend>::Read, K>;

impl<D, M, B> Tree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    pub(crate) fn new(store: NetabaseStore<D, B>) -> Self {
        Tree {
            store,
            _model: std::marker::PhantomData,
        }
    }

    /// The store this tree belongs to.
    pub(crate) fn store(&self) -> &NetabaseStore<D, B> {
        &self.store
    }

    pub(super) fn read<R>(
        &self,
        f: impl FnOnce(TreeView<'_, D, M, B::Read>) -> Result<R>,
    ) -> Result<R> {
        let txn = self.store.backend().begin_read()?;
        f(TreeView::over(&txn, self.store.snapshot_reads()))
    }

    /// Runs `f` in a write transaction of its own, committed at the one commit point.
    /// `f` runs again after a conflict with a concurrent writer, so it borrows what it
    /// writes.
    pub(super) fn write<R>(&self, f: impl FnMut(&Writer<'_, B>) -> Result<R>) -> Result<R> {
        self.store.write_with(f)
    }

    /// The record with primary key `key` (the key newtype or its value: `get(7)`).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] naming the table and key if the stored bytes do
    /// not decode; [`crate::NetabaseError::Version`] if they were written by a model
    /// version this code cannot read; [`crate::NetabaseError::Backend`] on engine
    /// failure.
    pub fn get(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        self.read(|view| view.get(key))
    }

    /// The records with the given primary keys, in the same order, read in one
    /// transaction.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        self.read(|view| view.get_many(keys))
    }

    /// Every record whose secondary key equals `key` (a secondary key newtype, or the
    /// model's secondary-key enum), in primary-key order.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_by_secondary_key(&self, key: impl Into<M::SecondaryKeys>) -> Result<Vec<M>> {
        self.read(|view| view.get_by_secondary_key(key))
    }

    /// The one record holding the unique secondary key `key`, if any. Only a
    /// `#[secondary_key(unique)]` field has this lookup.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_by_unique_key<K>(&self, key: K) -> Result<Option<M>>
    where
        K: UniqueKeyField<D, M> + Into<M::SecondaryKeys>,
    {
        self.read(|view| view.get_by_unique_key(key))
    }

    /// [`Tree::get_by_secondary_key`] for each key, in the same order, in one transaction.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_many_by_secondary_keys<K: Into<M::SecondaryKeys>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Vec<M>>> {
        self.read(|view| view.get_many_by_secondary_keys(keys))
    }

    /// Stores `model`, replacing the record with the same primary key.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UniqueViolation`] if a unique secondary key is held by
    /// another record, [`crate::NetabaseError::Invalid`] if the model fails a validation
    /// rule, [`crate::NetabaseError::DanglingLink`] if a `#[link(..)]` names a record
    /// that does not exist (nothing is applied in each case);
    /// [`crate::NetabaseError::Encode`] or [`crate::NetabaseError::Backend`] otherwise.
    pub fn put(&self, model: M) -> Result<()> {
        let models = [model];
        self.write(|w| w.put_slice::<D, M>(&models))
    }

    /// Stores every model in one transaction: all of them, or none if one fails.
    ///
    /// # Errors
    /// As [`Tree::put`]; on error nothing of the call is applied.
    pub fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()> {
        let models: Vec<M> = models.into_iter().collect();
        self.write(|w| w.put_slice::<D, M>(&models))
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the stored record does not decode;
    /// [`crate::NetabaseError::StillReferenced`] if a record still links to it through
    /// a link declared `on_delete = restrict` (nothing is removed; `cascade` and
    /// `set_null` links are followed in the same transaction);
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn remove(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<M>> {
        let pks = [key.into().to_key_bytes()];
        let removed = self.write(|w| w.remove_encoded::<D, M>(&pks))?;
        Ok(removed.into_iter().next().flatten())
    }

    /// Removes the records with the given keys in one transaction and returns them.
    ///
    /// # Errors
    /// As [`Tree::remove`]; on error nothing of the call is applied.
    pub fn remove_many<K: Into<M::PrimaryKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<M>>> {
        let pks: Vec<Vec<u8>> = keys.into_iter().map(|k| k.into().to_key_bytes()).collect();
        self.write(|w| w.remove_encoded::<D, M>(&pks))
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn clear(&self) -> Result<()> {
        self.write(|w| w.clear::<D, M>())
    }

    /// The number of records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn len(&self) -> Result<u64> {
        self.read(|view| view.len())
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn is_empty(&self) -> Result<bool> {
        self.read(|view| view.is_empty())
    }

    /// Every record in ascending primary-key order, read from one snapshot taken now.
    pub fn iter(&self) -> TreeIter<D, M, B> {
        self.scan::<M::PrimaryKey>(&(..), Direction::Forward)
    }

    /// Every record in descending primary-key order.
    pub fn iter_rev(&self) -> TreeIter<D, M, B> {
        self.scan::<M::PrimaryKey>(&(..), Direction::Reverse)
    }

    /// The records whose primary key lies in `range` (of key newtypes or of their
    /// values: `range(2..100)`), in ascending order.
    pub fn range<K>(&self, range: impl RangeBounds<K>) -> TreeIter<D, M, B>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.scan(&range, Direction::Forward)
    }

    /// The records whose primary key lies in `range`, in descending order.
    pub fn range_rev<K>(&self, range: impl RangeBounds<K>) -> TreeIter<D, M, B>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        self.scan(&range, Direction::Reverse)
    }

    fn scan<K>(&self, range: &impl RangeBounds<K>, direction: Direction) -> TreeIter<D, M, B>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        let bounds = primary_bounds::<M::PrimaryKey, K>(range);
        let opened = self.store.backend().begin_read().and_then(|txn| {
            let raw = txn.scan(M::INFO.table, bounds, direction)?;
            Ok((txn, raw))
        });
        match opened {
            Ok((txn, raw)) => ModelIter::new(raw, Some(txn)),
            Err(e) => ModelIter::new(error_cursor(e), None),
        }
    }

    /// The records whose secondary key `K` lies in `range`, in secondary-key order (ties
    /// in primary-key order), read from one snapshot taken now.
    pub fn range_by_secondary_key<K>(
        &self,
        range: impl RangeBounds<K>,
    ) -> TreeSecondaryIter<D, M, B, K>
    where
        K: SecondaryKeyField<D, M>,
    {
        let table = M::INFO.secondary_keys.get(K::INDEX).map_or("", |f| f.table);
        let bounds = secondary_bounds(&range);
        let snapshot = self.store.snapshot_reads();
        let opened = self.store.backend().begin_read().and_then(|txn| {
            let raw = txn.scan(table, bounds.clone(), Direction::Forward)?;
            Ok((txn, raw))
        });
        match opened {
            Ok((txn, raw)) => SecondaryIter::new(Some(txn), raw, K::INDEX, bounds, snapshot),
            Err(e) => SecondaryIter::new(None, error_cursor(e), K::INDEX, bounds, snapshot),
        }
    }
}
