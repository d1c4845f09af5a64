//! Explicit transactions: `TxnGuard<Mode>` and the typed `TreeView`s opened in them.
//!
//! The mode is a type: a [`ReadOnly`] guard hands out views over a read transaction,
//! which have no write methods at all, so writing through a read transaction is a
//! compile error rather than a runtime one.

use std::marker::PhantomData;
use std::ops::RangeBounds;

use crate::backend::{Backend, Direction, ReadTxn, WriteTxn};
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField};

use super::exec::{self, ModelIter, SecondaryIter, primary_bounds, secondary_bounds};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::ReadWrite {}
}

/// Mode of a read transaction.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// Mode of a write transaction.
#[derive(Debug, Clone, Copy)]
pub struct ReadWrite;

/// A transaction mode: which backend transaction a [`TxnGuard`] holds.
pub trait TxnMode<B: Backend>: sealed::Sealed {
    /// The backend transaction of this mode.
    type Txn<'s>: ReadTxn
    where
        B: 's;
}

impl<B: Backend> TxnMode<B> for ReadOnly {
    type Txn<'s>
        = B::Read
    where
        B: 's;
}

impl<B: Backend> TxnMode<B> for ReadWrite {
    type Txn<'s>
        = B::Write<'s>
    where
        B: 's;
}

/// An open transaction on a [`crate::NetabaseStore`]. Open any number of trees in it
/// with [`TxnGuard::open_tree`]; they all see (and, in a write transaction, change) the
/// same transaction.
///
/// A write guard applies nothing until [`TxnGuard::commit`]; dropping it rolls back.
pub struct TxnGuard<'s, D, B: Backend, Mode: TxnMode<B>> {
    txn: Mode::Txn<'s>,
    _definition: PhantomData<fn() -> D>,
}

impl<'s, D: NetabaseDefinitionTrait, B: Backend, Mode: TxnMode<B>> TxnGuard<'s, D, B, Mode> {
    pub(crate) fn new(txn: Mode::Txn<'s>) -> Self {
        TxnGuard {
            txn,
            _definition: PhantomData,
        }
    }

    /// A typed view of model `M` inside this transaction.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> TreeView<'_, D, M, Mode::Txn<'s>> {
        TreeView {
            txn: &self.txn,
            _types: PhantomData,
        }
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> TxnGuard<'_, D, B, ReadWrite> {
    /// Applies every write of the transaction atomically.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] if the engine fails to commit; nothing is
    /// applied then.
    pub fn commit(self) -> Result<()> {
        self.txn.commit()
    }

    /// Discards every write of the transaction (the same as dropping it).
    pub fn rollback(self) {}
}

/// The records of model `M` inside a transaction. Read methods exist on every view;
/// write methods only on views of a write transaction.
pub struct TreeView<'t, D, M, T> {
    txn: &'t T,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<'t, D, M, T> TreeView<'t, D, M, T>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn,
{
    pub(crate) fn over(txn: &'t T) -> Self {
        TreeView {
            txn,
            _types: PhantomData,
        }
    }

    /// The record with primary key `key`.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] naming the table and key if the stored bytes do
    /// not decode; [`crate::NetabaseError::Backend`] on engine failure.
    pub fn get(&self, key: M::PrimaryKey) -> Result<Option<M>> {
        exec::get::<D, M, T>(self.txn, &key)
    }

    /// The records with the given primary keys, in the same order (`None` where absent).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_many(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>> {
        keys.into_iter()
            .map(|key| exec::get::<D, M, T>(self.txn, &key))
            .collect()
    }

    /// Every record whose secondary key equals `key`, in primary-key order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_by_secondary_key(&self, key: M::SecondaryKeys) -> Result<Vec<M>> {
        exec::get_by_secondary::<D, M, T>(self.txn, &key)
    }

    /// [`TreeView::get_by_secondary_key`] for each key, in the same order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn get_many_by_secondary_keys(
        &self,
        keys: impl IntoIterator<Item = M::SecondaryKeys>,
    ) -> Result<Vec<Vec<M>>> {
        keys.into_iter()
            .map(|key| exec::get_by_secondary::<D, M, T>(self.txn, &key))
            .collect()
    }

    /// Every record, in ascending primary-key order.
    pub fn iter(&self) -> ModelIter<'t, D, M> {
        self.range(..)
    }

    /// Every record, in descending primary-key order.
    pub fn iter_rev(&self) -> ModelIter<'t, D, M> {
        self.scan(&(..), Direction::Reverse)
    }

    /// The records whose primary key lies in `range`, in ascending order.
    pub fn range(&self, range: impl RangeBounds<M::PrimaryKey>) -> ModelIter<'t, D, M> {
        self.scan(&range, Direction::Forward)
    }

    /// The records whose primary key lies in `range`, in descending order.
    pub fn range_rev(&self, range: impl RangeBounds<M::PrimaryKey>) -> ModelIter<'t, D, M> {
        self.scan(&range, Direction::Reverse)
    }

    fn scan(
        &self,
        range: &impl RangeBounds<M::PrimaryKey>,
        direction: Direction,
    ) -> ModelIter<'t, D, M> {
        let raw = self
            .txn
            .cursor(M::INFO.table, primary_bounds(range), direction)
            .unwrap_or_else(exec::error_cursor);
        ModelIter::new(raw, ())
    }

    /// The records whose secondary key `K` lies in `range`, in secondary-key order
    /// (ties in primary-key order).
    pub fn range_by_secondary_key<K>(
        &self,
        range: impl RangeBounds<K>,
    ) -> SecondaryIter<'t, D, M, &'t T, K>
    where
        K: SecondaryKeyField<D, M>,
    {
        let table = M::INFO.secondary_keys.get(K::INDEX).map_or("", |f| f.table);
        let raw = self
            .txn
            .cursor(table, secondary_bounds(&range), Direction::Forward)
            .unwrap_or_else(exec::error_cursor);
        SecondaryIter::new(Some(self.txn), raw, K::INDEX)
    }

    /// The number of records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn len(&self) -> Result<u64> {
        self.txn.len(M::INFO.table)
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl<D, M, T> TreeView<'_, D, M, T>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: WriteTxn,
{
    /// Stores `model`, replacing the record with the same primary key; index entries of
    /// the replaced record are removed.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UniqueViolation`] if a unique secondary key is held by
    /// another record (nothing of this put is applied);
    /// [`crate::NetabaseError::Encode`] if the model cannot be serialized;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn put(&self, model: M) -> Result<()> {
        exec::put::<D, M, T>(self.txn, &model)
    }

    /// Stores every model, in order.
    ///
    /// # Errors
    /// As [`TreeView::put`]; the models before the failing one stay written in this
    /// transaction (drop it to roll back).
    pub fn put_many(&self, models: impl IntoIterator<Item = M>) -> Result<()> {
        exec::put_many::<D, M, T>(self.txn, models)
    }

    /// Removes the record with primary key `key` and returns it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the stored record does not decode;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn remove(&self, key: M::PrimaryKey) -> Result<Option<M>> {
        exec::remove::<D, M, T>(self.txn, &key)
    }

    /// Removes the records with the given keys and returns them, in the same order.
    ///
    /// # Errors
    /// As [`TreeView::remove`].
    pub fn remove_many(
        &self,
        keys: impl IntoIterator<Item = M::PrimaryKey>,
    ) -> Result<Vec<Option<M>>> {
        exec::remove_many::<D, M, T>(self.txn, keys)
    }

    /// Removes every record of the model and empties its indexes.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn clear(&self) -> Result<()> {
        exec::clear::<D, M, T>(self.txn)
    }
}
