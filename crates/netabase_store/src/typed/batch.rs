//! `Batch`: writes queued on a tree and applied all together, or not at all.

use crate::backend::Backend;
use crate::codec::key::KeyCodec;
use crate::codec::value::encode_value;
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::changes::ChangeSet;
use super::store::NetabaseStore;
use super::tree::Tree;

/// One queued write of a batch (of [`Batch`] and of the asynchronous batch).
pub(crate) enum Op<M, K> {
    /// The model and its stored bytes, encoded once when queued.
    Put(M, Vec<u8>),
    /// The primary key of the record to remove.
    Remove(K),
}

impl<M, K> Op<M, K> {
    /// The put of `model`, encoded here, once, so that an error points at the call
    /// that queued it.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Encode`] if the model cannot be serialized.
    pub(crate) fn put<D>(model: M) -> Result<Self>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let value = encode_value(M::INFO.name, M::INFO.version, &model)?;
        Ok(Op::Put(model, value))
    }
}

/// Puts and removes of model `M`, queued in memory and applied in one write transaction
/// by [`Batch::commit`]: every one of them with its index entries, or none of them if one
/// fails (a unique key held by another record, for instance). A batch that is dropped
/// without commit applies nothing.
///
/// Nothing is locked while the batch is built; the write transaction is taken by
/// `commit` alone. The operations run in the order they were queued, through the same
/// index maintenance as every other write.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct User {
/// #         #[primary_key] pub id: u64,
/// #         #[secondary_key(unique)] pub email: String,
/// #     }
/// # }
/// # use app::*;
/// let store = NetabaseStore::<AppDefinition, _>::memory()?;
/// let users = store.open_tree::<User>();
/// users.put(User { id: 1, email: "old@example.com".into() })?;
///
/// let mut batch = users.create_batch();
/// batch.put(User { id: 2, email: "ada@example.com".into() })?;
/// batch.remove(1);
/// batch.commit()?;
/// assert_eq!(users.len()?, 1);
///
/// // A batch with a unique-key violation applies nothing.
/// let mut batch = users.create_batch();
/// batch.put(User { id: 3, email: "new@example.com".into() })?;
/// batch.put(User { id: 4, email: "ada@example.com".into() })?;
/// assert!(matches!(batch.commit(), Err(NetabaseError::UniqueViolation(_))));
/// assert_eq!(users.get(3)?, None);
/// # Ok::<(), NetabaseError>(())
/// ```
#[must_use = "a batch applies nothing until `commit` is called"]
pub struct Batch<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    store: NetabaseStore<D, B>,
    /// Removals hold the encoded primary key.
    ops: Vec<Op<M, Vec<u8>>>,
}

impl<D, M, B> std::fmt::Debug for Batch<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("model", &M::INFO.name)
            .field("operations", &self.ops.len())
            .finish()
    }
}

impl<D, M, B> Tree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    /// An empty [`Batch`] of writes to this tree.
    pub fn create_batch(&self) -> Batch<D, M, B> {
        Batch {
            store: self.store().clone(),
            ops: Vec::new(),
        }
    }
}

impl<D, M, B> Batch<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    /// Queues storing `model` (replacing the record with the same primary key).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Encode`] if the model cannot be serialized: it is encoded
    /// here, once, so the error points at the call that queued it. Nothing is queued then.
    pub fn put(&mut self, model: M) -> Result<()> {
        self.ops.push(Op::put::<D>(model)?);
        Ok(())
    }

    /// Queues removing the record with primary key `key` (nothing happens at commit if
    /// there is none).
    pub fn remove(&mut self, key: impl Into<M::PrimaryKey>) {
        self.ops.push(Op::Remove(key.into().to_key_bytes()));
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
    /// or none. Returns what changed, one [`crate::Change`] per record.
    ///
    /// # Errors
    /// [`crate::NetabaseError::UniqueViolation`] if a put claims a unique key held by
    /// another record (including one put earlier in the batch);
    /// [`crate::NetabaseError::Decode`] if a replaced or removed record does not decode;
    /// [`crate::NetabaseError::ReadOnly`] on a read-only store;
    /// [`crate::NetabaseError::Backend`] on engine failure. In every case nothing of the
    /// batch is applied.
    pub fn commit(self) -> Result<ChangeSet> {
        if self.ops.is_empty() {
            return Ok(ChangeSet::default());
        }
        // The operations stay queued until the commit succeeds: a commit that loses a
        // race with a concurrent writer runs them again.
        self.store.write_changes(|w| {
            for op in &self.ops {
                match op {
                    Op::Put(model, value) => w.put_encoded::<D, M>(model, value.clone())?,
                    Op::Remove(key) => {
                        w.remove_encoded::<D, M>(std::slice::from_ref(key))?;
                    }
                }
            }
            Ok(())
        })
    }
}
