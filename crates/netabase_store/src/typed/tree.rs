//! `Tree`: one-shot typed operations, each in a transaction of its own.

use std::ops::RangeBounds;

use crate::backend::{Backend, Direction, OwnedReadTxn, WriteTxn};
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField};

use super::exec::{ModelIter, SecondaryIter, error_cursor, primary_bounds, secondary_bounds};
use super::store::NetabaseStore;
use super::txn::TreeView;

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

    fn read<R>(&self, f: impl FnOnce(TreeView<'_, D, M, B::Read>) -> Result<R>) -> Result<R> {
        let txn = self.store.backend().begin_read()?;
        f(TreeView::over(&txn))
    }

    fn write<R>(&self, f: impl FnOnce(TreeView<'_, D, M, B::Write<'_>>) -> Result<R>) -> Result<R> {
        let txn = self.store.backend().begin_write()?;
        let out = f(TreeView::over(&txn))?;
        txn.commit()?;
        Ok(out)
    }

    /// The record with primary key `key`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] naming the table and key if the stored bytes do
    /// not decode; [`crate::NetabaseError::Backend`] on engine failure.
    pub fn get(&self, key: M::PrimaryKey) -> Result<Option<M>> {
        self.read(|view| view.get(key))
    }

    /// The records with the given primary keys, in the same order, read in one
    /// transaction.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_many(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>> {
        self.read(|view| view.get_many(keys))
    }

    /// Every record whose secondary key equals `key`, in primary-key order.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_by_secondary_key(&self, key: M::SecondaryKeys) -> Result<Vec<M>> {
        self.read(|view| view.get_by_secondary_key(key))
    }

    /// [`Tree::get_by_secondary_key`] for each key, in the same order, in one transaction.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_many_by_secondary_keys(
        &self,
        keys: impl IntoIterator<Item = M::SecondaryKeys>,
    ) -> Result<Vec<Vec<M>>> {
        self.read(|view| view.get_many_by_secondary_keys(keys))
    }

    /// Stores `model`, replacing the record with the same primary key.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UniqueViolation`] if a unique secondary key is held by
    /// another record (nothing is applied); [`crate::NetabaseError::Encode`] or
    /// [`crate::NetabaseError::Backend`] otherwise.
    pub fn put(&self, model: M) -> Result<()> {
        self.write(|view| view.put(model))
    }

    /// Stores every model in one transaction: all of them, or none if one fails.
    ///
    /// # Errors
    /// As [`Tree::put`]; on error nothing of the call is applied.
    pub fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()> {
        self.write(|view| view.put_many(models))
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the stored record does not decode;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn remove(&self, key: M::PrimaryKey) -> Result<Option<M>> {
        self.write(|view| view.remove(key))
    }

    /// Removes the records with the given keys in one transaction and returns them.
    ///
    /// # Errors
    /// As [`Tree::remove`]; on error nothing of the call is applied.
    pub fn remove_many(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>> {
        self.write(|view| view.remove_many(keys))
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn clear(&self) -> Result<()> {
        self.write(|view| view.clear())
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
        self.scan(&(..), Direction::Forward)
    }

    /// Every record in descending primary-key order.
    pub fn iter_rev(&self) -> TreeIter<D, M, B> {
        self.scan(&(..), Direction::Reverse)
    }

    /// The records whose primary key lies in `range`, in ascending order.
    pub fn range(&self, range: impl RangeBounds<M::PrimaryKey>) -> TreeIter<D, M, B> {
        self.scan(&range, Direction::Forward)
    }

    /// The records whose primary key lies in `range`, in descending order.
    pub fn range_rev(&self, range: impl RangeBounds<M::PrimaryKey>) -> TreeIter<D, M, B> {
        self.scan(&range, Direction::Reverse)
    }

    fn scan(
        &self,
        range: &impl RangeBounds<M::PrimaryKey>,
        direction: Direction,
    ) -> TreeIter<D, M, B> {
        let opened = self.store.backend().begin_read().and_then(|txn| {
            let raw = txn.scan_cursor(M::INFO.table, primary_bounds(range), direction)?;
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
        let opened = self.store.backend().begin_read().and_then(|txn| {
            let raw = txn.scan_cursor(table, secondary_bounds(&range), Direction::Forward)?;
            Ok((txn, raw))
        });
        match opened {
            Ok((txn, raw)) => SecondaryIter::new(Some(txn), raw, K::INDEX),
            Err(e) => SecondaryIter::new(None, error_cursor(e), K::INDEX),
        }
    }
}
