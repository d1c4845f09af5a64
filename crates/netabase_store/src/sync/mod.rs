//! Synchronising two stores: range fingerprints and set reconciliation.
//!
//! Sync is turned on per model when a store is opened
//! ([`crate::OpenOptions::sync_model`], [`crate::OpenOptions::sync_all`]) and recorded
//! in the database, so it stays on at every later open. For a synced model the store
//! keeps, in the same write transaction as every change to its records:
//!
//! - a **sync entry** per record: the [`VersionStamp`] of the write that made it (a
//!   hybrid logical clock reading and the store's [`WriterId`]), and its BLAKE3 hash
//!   over key, stamp and stored value, kept in leaves of about 32 records
//!   (`__netabase/sync/<Definition>/<Model>`). Removing a record leaves a **tombstone**
//!   entry with the stamp of the removal, so that reconciliation does not bring the
//!   record back; [`prune_tombstones`] drops old ones;
//! - a **fingerprint tree** over those entries (in the same table): the leaves' sums,
//!   then block sums at two more levels of a skip-list–like hierarchy (fan-out 64)
//!   whose boundaries depend on the keys alone. The [`Fingerprint`] of any primary-key
//!   range costs `O(log n)` table reads and never scans the range
//!   ([`SyncedTree::fingerprint`]).
//!
//! A [`Reconciler`] on each side exchanges [`Message`]s (postcard bytes; the transport is
//! the caller's) following range-based set reconciliation: compare fingerprints of key
//! ranges, split those that differ, list the small ones, send only the records that
//! differ. Records are merged by a [`MergeRule`] applied identically on both sides (by
//! default [`LatestWins`]: the greater stamp wins, ties broken by writer id) and written
//! through the store's write pipeline, so indexes and unique keys stay exact.
//! [`reconcile`] runs both sides in one process.
//!
//! ```
//! # use netabase_store::prelude::*;
//! # use netabase_store::{NetabaseStore, OpenOptions, backend::memory::MemoryBackend};
//! # #[netabase_definition_module(AppDefinition, AppKeys)]
//! # pub mod app {
//! #     use netabase_store::prelude::*;
//! #     use serde::{Deserialize, Serialize};
//! #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #     #[netabase(AppDefinition)]
//! #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
//! # }
//! # use app::*;
//! let open = || NetabaseStore::<AppDefinition, _>::from_backend_with(
//!     MemoryBackend::new(), OpenOptions::default().sync_all());
//! let (laptop, phone) = (open()?, open()?);
//! laptop.open_tree::<Note>().put(Note { id: 1, text: "written offline".into() })?;
//! phone.open_tree::<Note>().put(Note { id: 2, text: "on the phone".into() })?;
//!
//! let report = netabase_store::sync::reconcile(&laptop, &phone)?;
//! assert_eq!(report.a.records_sent + report.b.records_sent, 2);
//! assert_eq!(laptop.open_tree::<Note>().len()?, 2);
//! assert_eq!(phone.open_tree::<Note>().len()?, 2);
//! # Ok::<(), netabase_store::NetabaseError>(())
//! ```
//!
//! See `docs/sync.md` for the design: what is hashed, the tree, the protocol, the merge
//! rule and what happens when a merged record breaks a unique key.

mod reconcile;
pub(crate) mod stamp;
mod stamped;
pub(crate) mod state;
pub(crate) mod tree;

use std::ops::RangeBounds;
use std::time::Duration;

use crate::backend::Backend;
use crate::codec::key::KeyCodec;
use crate::error::{NetabaseError, Result, SyncProblem};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::typed::read::primary_bounds;
use crate::typed::store::NetabaseStore;
use crate::typed::tree::Tree;

pub use reconcile::StandIn;
pub use reconcile::{
    Attestation, Choice, ItemVersion, LatestWins, MAX_LISTED_REFUSALS, MergeRule, Message,
    ModelMessage, RangeMessage, RangePayload, ReconcileOptions, ReconcileReport, ReconcileStats,
    Reconciler, RecordSink, SinkReport, SyncRecord, SyncRefusal, Version, reconcile,
    reconcile_with,
};
pub use stamp::{Hlc, VersionStamp, WriterId};
pub use stamped::StampedWrite;
pub use tree::Fingerprint;

/// The sync metadata of one record ([`SyncedTree::version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordVersion {
    /// The stamp of the write (or removal) that made this version.
    pub stamp: VersionStamp,
    /// Whether the record was removed (this is its tombstone).
    pub tombstone: bool,
}

fn synced<'a, D: NetabaseDefinitionTrait, B: Backend>(
    store: &'a NetabaseStore<D, B>,
    model: Option<&'static str>,
) -> Result<&'a state::SyncState> {
    let state = store.sync_state().ok_or_else(|| not_synced::<D>(model))?;
    if let Some(name) = model
        && !state.models.iter().any(|m| m.info.name == name)
    {
        return Err(not_synced::<D>(model));
    }
    Ok(state)
}

/// The sync state of model `M` of `store`, when it is synced.
fn synced_model<D, M, B>(store: &NetabaseStore<D, B>) -> Result<&state::SyncedModel>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    synced(store, Some(M::INFO.name))?
        .model(M::INFO.table)
        .ok_or_else(|| not_synced::<D>(Some(M::INFO.name)))
}

/// The refusal of a sync query on a store (or a model, when named) that is not synced.
fn not_synced<D: NetabaseDefinitionTrait>(model: Option<&'static str>) -> NetabaseError {
    NetabaseError::sync(
        D::NAME,
        model,
        SyncProblem::NotSynced,
        "not synced: open the store with `OpenOptions::sync_model(..)` or `sync_all()`",
    )
}

/// Sync queries on the [`Tree`] of a synced model.
pub trait SyncedTree<M> {
    /// The primary key type.
    type Key;

    /// The sync metadata of the record at `key`: its stamp, or its tombstone's; `None`
    /// when the key was never written (or its tombstone was pruned).
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] if the model is not synced; [`NetabaseError::Backend`]
    /// on engine failure.
    fn version(&self, key: impl Into<Self::Key>) -> Result<Option<RecordVersion>>;

    /// The fingerprint of the record versions (tombstones included) whose primary key
    /// lies in `range`, in `O(log n)` reads.
    ///
    /// # Errors
    /// As [`SyncedTree::version`].
    fn fingerprint<K>(&self, range: impl RangeBounds<K>) -> Result<Fingerprint>
    where
        K: Into<Self::Key> + Clone;
}

impl<D, M, B> SyncedTree<M> for Tree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    type Key = M::PrimaryKey;

    fn version(&self, key: impl Into<M::PrimaryKey>) -> Result<Option<RecordVersion>> {
        let model = synced_model::<D, M, B>(self.store())?;
        let txn = self.store().raw_backend().begin_read()?;
        let key = key.into().to_key_bytes();
        Ok(
            tree::entry(&txn, &model.tables, &key)?.map(|e| RecordVersion {
                stamp: e.stamp,
                tombstone: e.tombstone,
            }),
        )
    }

    fn fingerprint<K>(&self, range: impl RangeBounds<K>) -> Result<Fingerprint>
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        let model = synced_model::<D, M, B>(self.store())?;
        let bounds = primary_bounds::<M::PrimaryKey, K>(&range);
        let lower = reconcile::lower_of(bounds.start);
        let upper = reconcile::upper_of(bounds.end);
        if upper.as_ref().is_some_and(|u| *u <= lower) {
            return Ok(Fingerprint::default());
        }
        let txn = self.store().raw_backend().begin_read()?;
        tree::fingerprint(&txn, &model.tables, &lower, upper.as_deref())
    }
}

/// The writer id of `store`'s stamps, or `None` when no model is synced.
pub fn writer_id<D: NetabaseDefinitionTrait, B: Backend>(
    store: &NetabaseStore<D, B>,
) -> Option<WriterId> {
    store.sync_state().map(|s| s.writer)
}

/// Removes the tombstones older than `older_than` from every synced model of `store`;
/// returns how many were removed.
///
/// A tombstone is what keeps a removal from being undone by a replica that still holds
/// the record: prune only tombstones older than the longest time a replica may stay
/// out of reach.
///
/// # Errors
/// [`NetabaseError::Sync`] if no model is synced; [`NetabaseError::Backend`] on engine
/// failure.
pub fn prune_tombstones<D: NetabaseDefinitionTrait, B: Backend>(
    store: &NetabaseStore<D, B>,
    older_than: Duration,
) -> Result<u64> {
    let state = synced(store, None)?;
    let age = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
    let cutoff = stamp::now_millis().saturating_sub(age);
    state::prune(store.raw_backend(), state, cutoff)
}

/// Brings the sync metadata of every synced model of `store` back in step with its
/// records, as if the writes that bypassed it (a tool writing the tables directly, an
/// older program) had gone through the write pipeline; returns how many entries were
/// written. A record without its version, or whose stored value is not the version
/// recorded, gets a new version stamped now; a version whose record is gone becomes a
/// tombstone stamped now; blocks that disagree with their entries are recomputed.
/// Replicas then receive the repaired versions at their next reconciliation.
/// [`check`] finds what this repairs.
///
/// # Errors
/// [`NetabaseError::Sync`] if no model is synced; [`NetabaseError::Decode`] when a
/// sync table does not decode (nothing is written); [`NetabaseError::Backend`] on
/// engine failure.
pub fn repair<D: NetabaseDefinitionTrait, B: Backend>(store: &NetabaseStore<D, B>) -> Result<u64> {
    let state = synced(store, None)?;
    state::repair(store.raw_backend(), state)
}

/// Checks every synced model's fingerprint tree against its sync entries, and its sync
/// entries against its stored records: every record has a live entry fingerprinting
/// its stored value, and every live entry has its record (a full scan: for tests and
/// tools, like an integrity check).
///
/// # Errors
/// [`NetabaseError::Sync`] with [`SyncProblem::Damaged`] naming the first difference;
/// [`NetabaseError::Sync`] if no model is synced; [`NetabaseError::Backend`] on engine
/// failure.
pub fn check<D: NetabaseDefinitionTrait, B: Backend>(store: &NetabaseStore<D, B>) -> Result<()> {
    let state = synced(store, None)?;
    let txn = store.raw_backend().begin_read()?;
    for model in &state.models {
        if let Some(problem) = tree::check(&txn, &model.tables)? {
            return Err(NetabaseError::sync(
                D::NAME,
                Some(model.info.name),
                SyncProblem::Damaged,
                problem,
            ));
        }
        if let Some((key, problem)) = tree::check_records(&txn, &model.tables, model.info.table)?
            .into_iter()
            .next()
        {
            return Err(NetabaseError::sync(
                D::NAME,
                Some(model.info.name),
                SyncProblem::Damaged,
                format!("{problem}, at key {}", crate::error::hex(&key)),
            ));
        }
    }
    Ok(())
}

/// The encoded size of one message carrying every record version of every synced model
/// of `store`: what sending the whole store would cost, the baseline that
/// reconciliation is measured against.
///
/// # Errors
/// [`NetabaseError::Sync`] if no model is synced; [`NetabaseError::Backend`] on engine
/// failure.
pub fn full_transfer_bytes<D: NetabaseDefinitionTrait, B: Backend>(
    store: &NetabaseStore<D, B>,
) -> Result<u64> {
    let state = synced(store, None)?;
    let txn = store.raw_backend().begin_read()?;
    let mut models = Vec::new();
    for model in &state.models {
        let mut records = Vec::new();
        for (key, entry) in tree::entries_in(&txn, &model.tables, &[], None)? {
            let value = if entry.tombstone {
                None
            } else {
                crate::backend::ReadTxn::get(&txn, model.info.table, &key)?
            };
            records.push(SyncRecord {
                key,
                stamp: entry.stamp,
                value,
                proof: None,
            });
        }
        models.push(ModelMessage {
            model: model.index,
            records,
            ..ModelMessage::default()
        });
    }
    let message = Message {
        definition: D::NAME.to_owned(),
        models,
    };
    Ok(message.to_bytes()?.len() as u64)
}
