//! Range-based set reconciliation between two stores of one definition.
//!
//! Each side holds a set of record versions per synced model: (primary key, stamp,
//! value or tombstone). A [`Reconciler`] produces and consumes [`Message`]s (postcard
//! bytes on the wire; the transport is the caller's):
//!
//! 1. the initiator sends the fingerprint of each synced model's whole key range;
//! 2. a side that receives a fingerprint compares it with its own for the same range:
//!    equal ranges are done; a differing range is answered with the side's list of
//!    (key, stamp) when it holds few records, or else split into `branching` sub-ranges
//!    of equal record counts, each sent with its fingerprint (or its one record);
//! 3. a side that receives a list compares it with its own records in the range and
//!    sends the records the other side lacks or holds in an older version, and asks
//!    (`want`) for the ones it lacks itself;
//! 4. records received are merged by the [`MergeRule`] and written through the store's
//!    write pipeline (indexes, unique keys, sync metadata) with their original stamps.
//!
//! The exchange ends when a side has nothing to send. Its cost grows with the number of
//! differing records times the logarithm of the store size, not with the store size.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, ReadTxn};
use crate::codec::key::KeyCodec;
use crate::codec::value::decode_model;
use crate::error::{NetabaseError, Result, SyncConflict, SyncProblem};
use crate::schema::{DiscriminantTrait, ModelVisitor, NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::typed::store::NetabaseStore;
use crate::typed::write::Writer;

use super::stamp::VersionStamp;
use super::state::{SyncState, SyncWrite, SyncedModel};
use super::tree::{self, Entry, Fingerprint};

/// One message of the reconciliation protocol. Encode it with [`Message::to_bytes`]
/// (postcard) to carry it over any transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// The definition both stores must share.
    pub definition: String,
    /// What the message says about each model.
    pub models: Vec<ModelMessage>,
}

impl Message {
    /// The postcard encoding.
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] if serialization fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_stdvec(self).map_err(|e| protocol(None, format!("cannot encode: {e}")))
    }

    /// Decodes [`Message::to_bytes`].
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] ([`SyncProblem::Protocol`]) if `bytes` is not a message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        postcard::from_bytes(bytes).map_err(|e| protocol(None, format!("not a message: {e}")))
    }
}

/// The part of a [`Message`] about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ModelMessage {
    /// The model's position in the definition.
    pub model: u16,
    /// Ranges to compare.
    pub ranges: Vec<RangeMessage>,
    /// Records sent.
    pub records: Vec<SyncRecord>,
    /// Encoded primary keys whose records the sender asks for.
    pub want: Vec<Vec<u8>>,
}

impl ModelMessage {
    fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.records.is_empty() && self.want.is_empty()
    }
}

/// A range of encoded primary keys `[lower, upper)` and what the sender holds in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RangeMessage {
    /// The inclusive lower bound (empty: from the first key).
    pub lower: Vec<u8>,
    /// The exclusive upper bound (`None`: to the last key).
    pub upper: Option<Vec<u8>>,
    /// The sender's fingerprint or list of the range.
    pub payload: RangePayload,
}

/// What a [`RangeMessage`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RangePayload {
    /// The fingerprint of the sender's records in the range.
    Fingerprint(Fingerprint),
    /// Every record version the sender holds in the range.
    Items(Vec<ItemVersion>),
}

/// A record version named by key and stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ItemVersion {
    /// The encoded primary key.
    pub key: Vec<u8>,
    /// Its stamp.
    pub stamp: VersionStamp,
}

/// A record version in full: its stored value (header included), or `None` for a
/// tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncRecord {
    /// The encoded primary key.
    pub key: Vec<u8>,
    /// Its stamp.
    pub stamp: VersionStamp,
    /// The stored value, or `None` when the record was removed.
    pub value: Option<Vec<u8>>,
    /// What vouches for this version, from the sender's [`Attestation::attach`] (for a
    /// node: its author's 64-byte signature); `None` when the sender attaches nothing.
    pub proof: Option<Vec<u8>>,
}

/// One side of a conflict, as a [`MergeRule`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Version<'a> {
    /// The model's name.
    pub model: &'static str,
    /// The encoded primary key.
    pub key: &'a [u8],
    /// The version's stamp.
    pub stamp: VersionStamp,
    /// The stored value (header ++ postcard), or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

/// Which version a [`MergeRule`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Keep the local version.
    Local,
    /// Replace it with the remote one.
    Remote,
}

/// Decides which of two versions of a record both replicas keep.
///
/// Both sides run the rule with the roles swapped, so it must pick the same version
/// whichever side asks: `choose(a, b) == Local` exactly when `choose(b, a) == Remote`,
/// for versions with different stamps. A rule that breaks this leaves the stores
/// different.
pub trait MergeRule: Send + Sync {
    /// The version to keep.
    fn choose(&self, local: &Version<'_>, remote: &Version<'_>) -> Choice;

    /// Whether the choice depends only on the stamps, the greater winning: then only
    /// the winning version travels. Otherwise both sides send their versions of every
    /// differing record.
    fn by_stamp_only(&self) -> bool {
        false
    }
}

/// The default rule: the greater stamp wins (hybrid clock, then writer id), whether it
/// is a value or a tombstone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatestWins;

impl MergeRule for LatestWins {
    fn choose(&self, local: &Version<'_>, remote: &Version<'_>) -> Choice {
        if remote.stamp > local.stamp {
            Choice::Remote
        } else {
            Choice::Local
        }
    }

    fn by_stamp_only(&self) -> bool {
        true
    }
}

/// Vouches for the records a [`Reconciler`] sends, and checks those it receives
/// before anything of them is written ([`Reconciler::with_attestation`]).
///
/// Between nodes a record must carry its author's signature: the sending side attaches
/// it ([`Attestation::attach`]), the receiving side verifies it and applies its
/// permission policy ([`Attestation::check`]). A record whose check fails is not
/// written, is counted in [`ReconcileStats::records_refused`] (and listed in
/// [`ReconcileStats::refusals`]), and does not stop the exchange.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # use netabase_store::sync::{Attestation, Reconciler, Version};
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
/// /// Accepts only records that carry the shared word.
/// struct Password;
/// impl Attestation for Password {
///     fn attach(&self, _: &Version<'_>) -> Option<Vec<u8>> {
///         Some(b"open sesame".to_vec())
///     }
///     fn check(&self, _: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
///         (proof == Some(b"open sesame")).then_some(()).ok_or_else(|| "wrong word".into())
///     }
/// }
/// let open = || NetabaseStore::<AppDefinition, _>::from_backend_with(
///     MemoryBackend::new(), OpenOptions::default().sync_all());
/// let (a, b) = (open()?, open()?);
/// a.open_tree::<Note>().put(Note { id: 1, text: "from a".into() })?;
///
/// // `a` attaches nothing: `b` refuses its record.
/// let mut left = Reconciler::new(&a)?;
/// let mut right = Reconciler::new(&b)?.with_attestation(Password);
/// let mut message = Some(left.initiate()?);
/// let mut to_right = true;
/// while let Some(bytes) = message {
///     message = if to_right { right.respond(&bytes)? } else { left.respond(&bytes)? };
///     to_right = !to_right;
/// }
/// assert_eq!(right.stats().records_refused, 1);
/// assert_eq!(b.open_tree::<Note>().len()?, 0);
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub trait Attestation: Send + Sync {
    /// The proof to send with `version`, or `None` when this side cannot vouch for
    /// it (the receiver then decides; a checking receiver refuses it).
    fn attach(&self, version: &Version<'_>) -> Option<Vec<u8>>;

    /// Whether a received `version` with `proof` may be applied: `Err` with the reason
    /// refuses it. Runs before the merge rule and before any write.
    ///
    /// # Errors
    /// The reason the record is refused.
    fn check(&self, version: &Version<'_>, proof: Option<&[u8]>)
    -> std::result::Result<(), String>;

    /// An older version of the same key to send in place of `version`, which this
    /// side cannot vouch for ([`Attestation::attach`] gave `None`), when the receiver
    /// derives `version` from it. The case it exists for: the tombstone a record's
    /// loss of a unique key leaves (stamped with the successor of the record's stamp,
    /// [`StampedWrite::UniqueKeyHeld`](super::StampedWrite::UniqueKeyHeld)) has no
    /// author to sign it, but the lost record has one; a receiver that also holds the
    /// winner (sent in the same exchange) removes it with the very same tombstone,
    /// provided it writes received records as stamped writes
    /// ([`TreeView::put_stamped`](crate::TreeView::put_stamped): a [`RecordSink`] such
    /// as a node's; the reconciler's own writes would report a unique-key conflict).
    /// `None` (the default) sends `version` as it is.
    fn stand_in(&self, version: &Version<'_>) -> Option<StandIn> {
        let _ = version;
        None
    }
}

/// A version sent in place of another ([`Attestation::stand_in`]): an older version of
/// the same key, with its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StandIn {
    /// Its stamp.
    pub stamp: VersionStamp,
    /// Its stored value (header included), or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Its proof.
    pub proof: Vec<u8>,
}

impl StandIn {
    /// A version stamped `stamp` holding `value` (`None`: a tombstone), vouched for by
    /// `proof`.
    pub fn new(stamp: VersionStamp, value: Option<Vec<u8>>, proof: Vec<u8>) -> Self {
        StandIn {
            stamp,
            value,
            proof,
        }
    }
}

/// Takes over the writing of received records from a [`Reconciler`]
/// ([`Reconciler::with_sink`]): the records of each message that passed the
/// [`Attestation`] are handed to it, in order, instead of being merged into the store
/// by the reconciler itself.
///
/// A P2P node uses it to put every received record through the path that applies
/// signed records from any route (signature, version rule, permissions, record store
/// and typed store in one transaction), so a record has the same outcome whether it
/// came by reconciliation or otherwise. The sink must apply the same merge rule as the
/// reconciler's (for the default [`LatestWins`]: the greater stamp wins), or the two
/// sides will not converge.
pub trait RecordSink {
    /// Applies `received`: for each synced model (by name), the records of it that
    /// the message carried.
    ///
    /// # Errors
    /// A failure that ends the reconciliation (the storage failed); a record the sink
    /// refuses is reported in [`SinkReport::refusals`] instead.
    fn apply(&self, received: Vec<(&'static str, Vec<SyncRecord>)>) -> Result<SinkReport>;
}

/// What a [`RecordSink`] did with the records of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Records written (counted in [`ReconcileStats::records_applied`]).
    pub applied: u64,
    /// Records refused (counted in [`ReconcileStats::records_refused`]); records
    /// neither applied nor refused lost to the version held.
    pub refusals: Vec<SyncRefusal>,
}

/// A received record that an [`Attestation`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncRefusal {
    /// The model's name.
    pub model: &'static str,
    /// The encoded primary key.
    pub key: Vec<u8>,
    /// The stamp the record claimed.
    pub stamp: VersionStamp,
    /// Why it was refused.
    pub reason: String,
}

impl SyncRefusal {
    /// The refusal of the record of `model` at `key` with `stamp`, for `reason`.
    pub fn new(model: &'static str, key: Vec<u8>, stamp: VersionStamp, reason: String) -> Self {
        SyncRefusal {
            model,
            key,
            stamp,
            reason,
        }
    }
}

/// At most this many refusals are listed in [`ReconcileStats::refusals`] (all are
/// counted): a peer sending garbage must not grow the list without bound.
pub const MAX_LISTED_REFUSALS: usize = 64;

/// The bytes of records one message may still carry ([`ReconcileOptions::max_record_bytes`]).
struct Budget {
    left: usize,
    /// Whether a record was added: the first always is, whatever its size.
    used: bool,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.used && self.left == 0
    }

    fn spend(&mut self, rec: &SyncRecord) {
        // The encoded size, near enough: bytes, stamp, length prefixes.
        let size = rec.key.len()
            + rec.value.as_ref().map_or(0, Vec::len)
            + rec.proof.as_ref().map_or(0, Vec::len)
            + VersionStamp::LEN
            + 8;
        self.left = self.left.saturating_sub(size);
        self.used = true;
    }
}

/// A range that may well be equal on the other side is sent as a list only when the
/// list is no larger than a fingerprint: one record version.
const INLINE_ITEMS: usize = 1;

/// Tuning of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileOptions {
    /// Into how many sub-ranges a differing range is split (at least 2).
    pub branching: usize,
    /// A range known to differ that holds at most this many records here is answered
    /// with the list of its records instead of being split further. (Sub-ranges that
    /// may be equal travel as fingerprints unless they hold a single record.)
    pub item_limit: usize,
    /// About how many bytes of records one message carries at most (at least one
    /// record travels per message, whatever its size). When the records to send in a
    /// range do not fit, the rest of the range is offered again as a fingerprint and
    /// travels in the next round trips, so a transport with a message size limit can
    /// carry a catch-up of any size.
    pub max_record_bytes: usize,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            branching: 16,
            item_limit: 16,
            max_record_bytes: 16 * 1024 * 1024,
        }
    }
}

impl ReconcileOptions {
    /// Sets [`ReconcileOptions::branching`] (at least 2).
    #[must_use]
    pub fn branching(mut self, branching: usize) -> Self {
        self.branching = branching.max(2);
        self
    }

    /// Sets [`ReconcileOptions::item_limit`].
    #[must_use]
    pub fn item_limit(mut self, item_limit: usize) -> Self {
        self.item_limit = item_limit;
        self
    }

    /// Sets [`ReconcileOptions::max_record_bytes`].
    #[must_use]
    pub fn max_record_bytes(mut self, max_record_bytes: usize) -> Self {
        self.max_record_bytes = max_record_bytes;
        self
    }
}

/// What one side of a reconciliation sent, received and applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Encoded bytes sent.
    pub bytes_sent: u64,
    /// Encoded bytes received.
    pub bytes_received: u64,
    /// Records (values and tombstones) sent.
    pub records_sent: u64,
    /// Records received.
    pub records_received: u64,
    /// Records received that the merge rule chose and that were written.
    pub records_applied: u64,
    /// Records chosen by the merge rule that could not be written (unique keys).
    pub conflicts: Vec<SyncConflict>,
    /// Records received that the [`Attestation`] refused (not written).
    pub records_refused: u64,
    /// The first [`MAX_LISTED_REFUSALS`] of them, with the reasons.
    pub refusals: Vec<SyncRefusal>,
}

/// One side of a reconciliation: produces and consumes messages as bytes.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # use netabase_store::sync::Reconciler;
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
/// let open = || NetabaseStore::<AppDefinition, _>::from_backend_with(
///     MemoryBackend::new(), OpenOptions::default().sync_all());
/// let (a, b) = (open()?, open()?);
/// a.open_tree::<Note>().put(Note { id: 1, text: "from a".into() })?;
///
/// let (mut left, mut right) = (Reconciler::new(&a)?, Reconciler::new(&b)?);
/// let mut message = Some(left.initiate()?);
/// let mut to_right = true;
/// while let Some(bytes) = message {
///     message = if to_right { right.respond(&bytes)? } else { left.respond(&bytes)? };
///     to_right = !to_right;
/// }
/// assert_eq!(b.open_tree::<Note>().get(1)?.map(|n| n.text), Some("from a".into()));
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub struct Reconciler<'s, D, B> {
    store: &'s NetabaseStore<D, B>,
    state: Arc<SyncState>,
    rule: Arc<dyn MergeRule>,
    attestation: Option<Arc<dyn Attestation>>,
    sink: Option<&'s dyn RecordSink>,
    options: ReconcileOptions,
    stats: ReconcileStats,
}

impl<D, B> std::fmt::Debug for Reconciler<'_, D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("definition", &self.state.definition)
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish()
    }
}

fn protocol(model: Option<&str>, reason: impl Into<String>) -> NetabaseError {
    NetabaseError::Sync(Box::new(crate::error::SyncError {
        definition: "",
        model: model.map(str::to_owned),
        problem: SyncProblem::Protocol,
        reason: reason.into(),
    }))
}

impl<'s, D: NetabaseDefinitionTrait, B: Backend> Reconciler<'s, D, B> {
    /// A reconciler over `store`, with the default rule ([`LatestWins`]) and options.
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] ([`SyncProblem::NotSynced`]) when no model of the store
    /// is synced.
    pub fn new(store: &'s NetabaseStore<D, B>) -> Result<Self> {
        let state = store.sync_state().cloned().ok_or_else(|| {
            NetabaseError::sync(
                D::NAME,
                None,
                SyncProblem::NotSynced,
                "no model is synced: open the store with `OpenOptions::sync_all()` or \
                 `OpenOptions::sync_model(..)`",
            )
        })?;
        Ok(Reconciler {
            store,
            state,
            rule: Arc::new(LatestWins),
            attestation: None,
            sink: None,
            options: ReconcileOptions::default(),
            stats: ReconcileStats::default(),
        })
    }

    /// Uses `rule` to merge differing records (both sides must use the same rule).
    #[must_use]
    pub fn with_rule(mut self, rule: impl MergeRule + 'static) -> Self {
        self.rule = Arc::new(rule);
        self
    }

    /// Vouches for the records sent and checks the records received with
    /// `attestation` (see [`Attestation`]); without one, records travel without proof
    /// and every received record goes to the merge rule.
    #[must_use]
    pub fn with_attestation(self, attestation: impl Attestation + 'static) -> Self {
        self.with_shared_attestation(Arc::new(attestation))
    }

    /// [`Reconciler::with_attestation`] with an attestation shared with other
    /// reconcilers (one per session step, say).
    #[must_use]
    pub fn with_shared_attestation(mut self, attestation: Arc<dyn Attestation>) -> Self {
        self.attestation = Some(attestation);
        self
    }

    /// Hands the received records that pass the attestation to `sink` instead of
    /// merging them into the store itself (see [`RecordSink`]).
    #[must_use]
    pub fn with_sink(mut self, sink: &'s dyn RecordSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Uses `options`.
    #[must_use]
    pub fn with_options(mut self, options: ReconcileOptions) -> Self {
        self.options = ReconcileOptions {
            branching: options.branching.max(2),
            ..options
        };
        self
    }

    /// What this side sent, received and applied so far.
    pub fn stats(&self) -> &ReconcileStats {
        &self.stats
    }

    /// The first message: the fingerprint (or, when small, the list) of every synced
    /// model.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn initiate(&mut self) -> Result<Vec<u8>> {
        let txn = self.store.raw_backend().begin_read()?;
        let mut message = Message {
            definition: D::NAME.to_owned(),
            models: Vec::new(),
        };
        for model in &self.state.models {
            let fp = tree::sum_below(&txn, &model.tables, None)?;
            let range = self.range(&txn, model, (Vec::new(), None), fp, INLINE_ITEMS)?;
            message.models.push(ModelMessage {
                model: model.index,
                ranges: vec![range],
                ..ModelMessage::default()
            });
        }
        self.send(&message)
    }

    /// Consumes a message from the other side: applies the records it carries and
    /// returns the answer, or `None` when there is nothing left to say (the
    /// reconciliation is complete).
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] when the message is not a message of this definition or
    /// names a model this store does not sync; errors of the write pipeline when a
    /// received record cannot be written (except unique-key conflicts, which are
    /// collected in [`ReconcileStats::conflicts`]).
    pub fn respond(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        self.stats.messages_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let incoming = Message::from_bytes(bytes)?;
        if incoming.definition != D::NAME {
            return Err(NetabaseError::sync(
                D::NAME,
                None,
                SyncProblem::Protocol,
                format!("the message is for definition `{}`", incoming.definition),
            ));
        }
        let mut reply = Message {
            definition: D::NAME.to_owned(),
            models: Vec::new(),
        };
        let mut received = Vec::new();
        let mut budget = Budget {
            left: self.options.max_record_bytes,
            used: false,
        };
        {
            let txn = self.store.raw_backend().begin_read()?;
            for part in incoming.models {
                let model = self.state.by_index(part.model).ok_or_else(|| {
                    NetabaseError::sync(
                        D::NAME,
                        None,
                        SyncProblem::NotSynced,
                        format!(
                            "the other side syncs model #{}, this store does not",
                            part.model
                        ),
                    )
                })?;
                let mut out = ModelMessage {
                    model: part.model,
                    ..ModelMessage::default()
                };
                // Wanted records that do not fit in this message: the range from the
                // first to the last of them is offered again as a fingerprint.
                let mut deferred: Option<(&[u8], &[u8])> = None;
                for key in &part.want {
                    if budget.exhausted() {
                        let (first, last) = deferred.get_or_insert((key, key));
                        *first = (*first).min(key.as_slice());
                        *last = (*last).max(key.as_slice());
                        continue;
                    }
                    if let Some(entry) = tree::entry(&txn, &model.tables, key)? {
                        let rec = self.record(&txn, model, key.clone(), &entry)?;
                        budget.spend(&rec);
                        out.records.push(rec);
                    }
                }
                if let Some((first, last)) = deferred {
                    let mut upper = last.to_vec();
                    upper.push(0);
                    let fp = tree::fingerprint(&txn, &model.tables, first, Some(&upper))?;
                    out.ranges.push(RangeMessage {
                        lower: first.to_vec(),
                        upper: Some(upper),
                        payload: RangePayload::Fingerprint(fp),
                    });
                }
                for range in part.ranges {
                    self.answer(&txn, model, range, &mut out, &mut budget)?;
                }
                if !part.records.is_empty() {
                    received.push((part.model, part.records));
                }
                if !out.is_empty() {
                    reply.models.push(out);
                }
            }
        }
        let received = self.checked(received);
        self.apply(received)?;
        if reply.models.is_empty() {
            return Ok(None);
        }
        self.send(&reply).map(Some)
    }

    /// The full record of `key` whose entry is `entry`, with its proof attached.
    fn record<T: ReadTxn + ?Sized>(
        &self,
        txn: &T,
        model: &SyncedModel,
        key: Vec<u8>,
        entry: &Entry,
    ) -> Result<SyncRecord> {
        let mut rec = record(txn, model, key, entry)?;
        if let Some(attestation) = &self.attestation {
            let version = Version {
                model: model.info.name,
                key: &rec.key,
                stamp: rec.stamp,
                value: rec.value.as_deref(),
            };
            let proof = attestation.attach(&version);
            let stand_in = match proof {
                Some(_) => None,
                None => attestation.stand_in(&version),
            };
            rec.proof = proof;
            if let Some(stand_in) = stand_in {
                rec.stamp = stand_in.stamp;
                rec.value = stand_in.value;
                rec.proof = Some(stand_in.proof);
            }
        }
        Ok(rec)
    }

    /// Drops the received records that the attestation refuses, counting them.
    fn checked(&mut self, received: Vec<(u16, Vec<SyncRecord>)>) -> Vec<(u16, Vec<SyncRecord>)> {
        let Some(attestation) = self.attestation.clone() else {
            return received;
        };
        let mut kept = Vec::with_capacity(received.len());
        for (index, records) in received {
            let Some(model) = self.state.by_index(index) else {
                continue;
            };
            let verdicts = verdicts(&*attestation, model.info.name, &records);
            let mut ok = Vec::with_capacity(records.len());
            for (rec, verdict) in records.into_iter().zip(verdicts) {
                match verdict {
                    Ok(()) => ok.push(rec),
                    Err(reason) => {
                        self.stats.records_received += 1;
                        self.stats.records_refused += 1;
                        if self.stats.refusals.len() < MAX_LISTED_REFUSALS {
                            self.stats.refusals.push(SyncRefusal {
                                model: model.info.name,
                                key: rec.key,
                                stamp: rec.stamp,
                                reason,
                            });
                        }
                    }
                }
            }
            if !ok.is_empty() {
                kept.push((index, ok));
            }
        }
        kept
    }

    fn send(&mut self, message: &Message) -> Result<Vec<u8>> {
        let bytes = message.to_bytes()?;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.records_sent += message
            .models
            .iter()
            .map(|m| m.records.len() as u64)
            .sum::<u64>();
        Ok(bytes)
    }

    /// The range `[lower, upper)` whose fingerprint here is `fp`: as a list when it
    /// holds at most `limit` records, else as a fingerprint.
    fn range<T: ReadTxn + ?Sized>(
        &self,
        txn: &T,
        model: &SyncedModel,
        (lower, upper): (Vec<u8>, Option<Vec<u8>>),
        fp: Fingerprint,
        limit: usize,
    ) -> Result<RangeMessage> {
        let payload = if fp.count <= limit as u64 {
            RangePayload::Items(
                tree::entries_in(txn, &model.tables, &lower, upper.as_deref())?
                    .into_iter()
                    .map(|(key, e)| ItemVersion {
                        key,
                        stamp: e.stamp,
                    })
                    .collect(),
            )
        } else {
            RangePayload::Fingerprint(fp)
        };
        Ok(RangeMessage {
            lower,
            upper,
            payload,
        })
    }

    fn answer<T: ReadTxn + ?Sized>(
        &self,
        txn: &T,
        model: &SyncedModel,
        range: RangeMessage,
        out: &mut ModelMessage,
        budget: &mut Budget,
    ) -> Result<()> {
        let tables = &model.tables;
        let (lower, upper) = (range.lower, range.upper);
        if upper.as_ref().is_some_and(|u| *u <= lower) {
            return Err(protocol(
                Some(model.info.name),
                "a range whose upper bound is not above its lower bound",
            ));
        }
        match range.payload {
            RangePayload::Fingerprint(theirs) => {
                let mine = tree::fingerprint(txn, tables, &lower, upper.as_deref())?;
                if mine == theirs {
                    return Ok(());
                }
                if mine.count <= self.options.item_limit as u64 {
                    out.ranges.push(self.range(
                        txn,
                        model,
                        (lower, upper),
                        mine,
                        self.options.item_limit,
                    )?);
                    return Ok(());
                }
                let first = tree::sum_below(txn, tables, Some(&lower))?.count;
                let parts = self.options.branching as u64;
                let mut bounds = vec![lower];
                for i in 1..parts {
                    let rank = first + mine.count * i / parts;
                    if let Some(key) = tree::key_at_rank(txn, tables, rank)?
                        && bounds.last().is_some_and(|last| key > *last)
                        && upper.as_ref().is_none_or(|u| key < *u)
                    {
                        bounds.push(key);
                    }
                }
                let mut uppers: Vec<Option<Vec<u8>>> =
                    bounds[1..].iter().cloned().map(Some).collect();
                uppers.push(upper);
                for (lo, hi) in bounds.into_iter().zip(uppers) {
                    let fp = tree::fingerprint(txn, tables, &lo, hi.as_deref())?;
                    out.ranges
                        .push(self.range(txn, model, (lo, hi), fp, INLINE_ITEMS)?);
                }
            }
            RangePayload::Items(theirs) => {
                let mine = tree::entries_in(txn, tables, &lower, upper.as_deref())?;
                let theirs: BTreeMap<Vec<u8>, VersionStamp> =
                    theirs.into_iter().map(|i| (i.key, i.stamp)).collect();
                let both = !self.rule.by_stamp_only();
                // Where the records stop fitting in this message: the range from there
                // on is offered again as a fingerprint, and settled in later rounds.
                let mut cut: Option<&[u8]> = None;
                for (key, entry) in &mine {
                    let (send, want) = match theirs.get(key) {
                        None => (true, false),
                        Some(stamp) if *stamp == entry.stamp => (false, false),
                        Some(stamp) => (both || entry.stamp > *stamp, both || *stamp > entry.stamp),
                    };
                    if send {
                        if budget.exhausted() {
                            cut = Some(key);
                            break;
                        }
                        let rec = self.record(txn, model, key.clone(), entry)?;
                        budget.spend(&rec);
                        out.records.push(rec);
                    }
                    if want {
                        out.want.push(key.clone());
                    }
                }
                let mine: BTreeMap<&[u8], ()> =
                    mine.iter().map(|(k, _)| (k.as_slice(), ())).collect();
                for key in theirs.keys() {
                    if cut.is_some_and(|cut| key.as_slice() >= cut) {
                        break;
                    }
                    if !mine.contains_key(key.as_slice()) {
                        out.want.push(key.clone());
                    }
                }
                if let Some(cut) = cut {
                    let rest = tree::fingerprint(txn, tables, cut, upper.as_deref())?;
                    out.ranges.push(RangeMessage {
                        lower: cut.to_vec(),
                        upper,
                        payload: RangePayload::Fingerprint(rest),
                    });
                }
            }
        }
        Ok(())
    }

    /// Merges the received records into the store in one write transaction (or hands
    /// them to the sink).
    fn apply(&mut self, received: Vec<(u16, Vec<SyncRecord>)>) -> Result<()> {
        if received.is_empty() {
            return Ok(());
        }
        if let Some(sink) = self.sink {
            let mut named = Vec::with_capacity(received.len());
            for (index, records) in received {
                // The sink observes the stamps it accepts: a refused record must
                // not advance this store's clock.
                if let Some(model) = self.state.by_index(index) {
                    self.stats.records_received += records.len() as u64;
                    named.push((model.info.name, records));
                }
            }
            let report = sink.apply(named)?;
            self.stats.records_applied += report.applied;
            self.stats.records_refused += report.refusals.len() as u64;
            let room = MAX_LISTED_REFUSALS.saturating_sub(self.stats.refusals.len());
            self.stats
                .refusals
                .extend(report.refusals.into_iter().take(room));
            return Ok(());
        }
        let state = Arc::clone(&self.state);
        let rule = Arc::clone(&self.rule);
        let mut count = 0u64;
        let (applied, conflicts) = self.store.write_with(|w| {
            let sync = w.sync().ok_or_else(|| {
                NetabaseError::sync(D::NAME, None, SyncProblem::NotSynced, "no sync state")
            })?;
            let mut deferred = Vec::new();
            let mut applied = 0u64;
            for (index, records) in &received {
                let Some(model) = state.by_index(*index) else {
                    continue;
                };
                for rec in records {
                    count += 1;
                    state.clock.observe(rec.stamp.hlc);
                    if !chosen::<B>(w, model, rec, &*rule)? {
                        continue;
                    }
                    match write_record::<D, B>(w, sync, model, rec) {
                        Ok(()) => applied += 1,
                        Err(NetabaseError::UniqueViolation(v)) => deferred.push((model, rec, v)),
                        Err(e) => return Err(e),
                    }
                }
            }
            // A record may free a unique key that an earlier one needed: retry while
            // that makes progress.
            loop {
                let before = deferred.len();
                let mut still = Vec::new();
                for (model, rec, v) in deferred {
                    match write_record::<D, B>(w, sync, model, rec) {
                        Ok(()) => applied += 1,
                        Err(NetabaseError::UniqueViolation(v)) => still.push((model, rec, v)),
                        Err(e) => {
                            drop(v);
                            return Err(e);
                        }
                    }
                }
                deferred = still;
                if deferred.is_empty() || deferred.len() == before {
                    break;
                }
            }
            let conflicts: Vec<SyncConflict> = deferred
                .into_iter()
                .map(|(model, rec, v)| SyncConflict {
                    model: model.info.name,
                    key: rec.key.clone(),
                    reason: v.to_string(),
                })
                .collect();
            Ok((applied, conflicts))
        })?;
        self.stats.records_received += count;
        self.stats.records_applied += applied;
        self.stats.conflicts.extend(conflicts);
        Ok(())
    }
}

/// Below this many records a message's checks run on the calling thread.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_CHECKS: usize = 256;

/// The attestation's verdict on each of `records` (of `model`), in order. Checks are
/// independent (a signature check costs tens of microseconds), so a large message is
/// checked on as many threads as the machine has cores.
fn verdicts(
    attestation: &dyn Attestation,
    model: &'static str,
    records: &[SyncRecord],
) -> Vec<std::result::Result<(), String>> {
    let check = |rec: &SyncRecord| {
        let version = Version {
            model,
            key: &rec.key,
            stamp: rec.stamp,
            value: rec.value.as_deref(),
        };
        attestation.check(&version, rec.proof.as_deref())
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        if threads > 1 && records.len() >= PARALLEL_CHECKS {
            let part = records.len().div_ceil(threads);
            return std::thread::scope(|scope| {
                let parts: Vec<_> = records
                    .chunks(part)
                    .map(|chunk| {
                        (
                            chunk.len(),
                            scope.spawn(move || chunk.iter().map(check).collect::<Vec<_>>()),
                        )
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|(len, handle)| {
                        // A check that panicked refuses its part rather than unwinding
                        // through the reconciler.
                        handle.join().unwrap_or_else(|_| {
                            vec![Err("the record check panicked".to_owned()); len]
                        })
                    })
                    .collect()
            });
        }
    }
    records.iter().map(check).collect()
}

/// The full record of `key` whose entry is `entry`.
fn record<T: ReadTxn + ?Sized>(
    txn: &T,
    model: &SyncedModel,
    key: Vec<u8>,
    entry: &Entry,
) -> Result<SyncRecord> {
    let value = if entry.tombstone {
        None
    } else {
        Some(txn.get(model.info.table, &key)?.ok_or_else(|| {
            NetabaseError::decode(model.info.table, &key, "a live sync entry has no record")
        })?)
    };
    Ok(SyncRecord {
        key,
        stamp: entry.stamp,
        value,
        proof: None,
    })
}

/// Whether the merge rule keeps the received `rec` over the local version.
fn chosen<B: Backend>(
    w: &Writer<'_, B>,
    model: &SyncedModel,
    rec: &SyncRecord,
    rule: &dyn MergeRule,
) -> Result<bool> {
    let txn = w.reader();
    let Some(local) = tree::entry(txn, &model.tables, &rec.key)? else {
        return Ok(true);
    };
    if local.stamp == rec.stamp {
        return Ok(false);
    }
    let value = if local.tombstone {
        None
    } else {
        txn.get(model.info.table, &rec.key)?
    };
    let local = Version {
        model: model.info.name,
        key: &rec.key,
        stamp: local.stamp,
        value: value.as_deref(),
    };
    let remote = Version {
        model: model.info.name,
        key: &rec.key,
        stamp: rec.stamp,
        value: rec.value.as_deref(),
    };
    Ok(rule.choose(&local, &remote) == Choice::Remote)
}

/// Writes a received record through the write pipeline with its own stamp.
fn write_record<D: NetabaseDefinitionTrait, B: Backend>(
    w: &Writer<'_, B>,
    sync: &SyncWrite,
    model: &SyncedModel,
    rec: &SyncRecord,
) -> Result<()> {
    let discriminant = D::Discriminant::from_index(model.index)
        .ok_or_else(|| protocol(Some(model.info.name), "no model at this position"))?;
    sync.stamp(
        model.info.table,
        rec.key.clone(),
        rec.stamp,
        rec.value.is_none(),
    );
    let result = D::visit_model(
        discriminant,
        WriteRecord {
            writer: w,
            key: &rec.key,
            value: rec.value.as_deref(),
        },
    );
    if result.is_err() {
        sync.forget(model.info.table, &rec.key);
    }
    result
}

struct WriteRecord<'a, 'w, B: Backend> {
    writer: &'a Writer<'w, B>,
    key: &'a [u8],
    value: Option<&'a [u8]>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> ModelVisitor<D> for WriteRecord<'_, '_, B> {
    type Output = Result<()>;

    fn visit<M: NetabaseModelTrait<D>>(self) -> Result<()> {
        match self.value {
            None => {
                let pk = M::PrimaryKey::from_key_bytes(self.key)
                    .map_err(|e| NetabaseError::decode(M::INFO.table, self.key, e))?;
                self.writer
                    .remove_many::<D, M>(std::iter::once(pk))
                    .map(drop)
            }
            Some(value) => {
                let model = decode_model::<D, M>(self.key, value)?;
                if model.primary_key().to_key_bytes() != self.key {
                    return Err(protocol(
                        Some(M::INFO.name),
                        "a received record's value holds another primary key",
                    ));
                }
                self.writer.put_encoded::<D, M>(&model, value.to_vec())
            }
        }
    }
}

/// What [`reconcile`] did: both sides' statistics and the length of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// The first store's side (the initiator).
    pub a: ReconcileStats,
    /// The second store's side.
    pub b: ReconcileStats,
    /// Messages exchanged.
    pub messages: u64,
    /// Round trips: messages / 2, rounded up.
    pub round_trips: u64,
}

impl ReconcileReport {
    /// Encoded bytes exchanged in both directions.
    pub fn bytes(&self) -> u64 {
        self.a.bytes_sent + self.b.bytes_sent
    }
}

impl std::fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages ({} round trips), {} bytes; a → b: {} records ({} bytes), \
             b → a: {} records ({} bytes)",
            self.messages,
            self.round_trips,
            self.bytes(),
            self.a.records_sent,
            self.a.bytes_sent,
            self.b.records_sent,
            self.b.bytes_sent
        )
    }
}

/// Reconciles two stores in one process with the default rule and options; afterwards
/// both hold the same records (and indexes and sync metadata).
///
/// # Errors
/// As [`Reconciler::respond`]; [`NetabaseError::Sync`] with
/// [`SyncProblem::Conflicts`] when records chosen by the rule could not be written
/// because of unique keys (everything else is applied).
pub fn reconcile<D, A, B>(
    a: &NetabaseStore<D, A>,
    b: &NetabaseStore<D, B>,
) -> Result<ReconcileReport>
where
    D: NetabaseDefinitionTrait,
    A: Backend,
    B: Backend,
{
    reconcile_with(a, b, LatestWins, ReconcileOptions::default())
}

/// [`reconcile`] with a merge rule and options.
///
/// # Errors
/// As [`reconcile`].
pub fn reconcile_with<D, A, B, R>(
    a: &NetabaseStore<D, A>,
    b: &NetabaseStore<D, B>,
    rule: R,
    options: ReconcileOptions,
) -> Result<ReconcileReport>
where
    D: NetabaseDefinitionTrait,
    A: Backend,
    B: Backend,
    R: MergeRule + Clone + 'static,
{
    let mut left = Reconciler::new(a)?
        .with_rule(rule.clone())
        .with_options(options);
    let mut right = Reconciler::new(b)?.with_rule(rule).with_options(options);
    let mut message = Some(left.initiate()?);
    let mut messages = 0u64;
    let mut to_right = true;
    while let Some(bytes) = message {
        messages += 1;
        if messages > 100_000 {
            return Err(protocol(None, "the exchange does not end"));
        }
        message = if to_right {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        to_right = !to_right;
    }
    let report = ReconcileReport {
        a: left.stats,
        b: right.stats,
        messages,
        round_trips: messages.div_ceil(2),
    };
    let conflicts: Vec<SyncConflict> = report
        .a
        .conflicts
        .iter()
        .chain(&report.b.conflicts)
        .cloned()
        .collect();
    if !conflicts.is_empty() {
        return Err(NetabaseError::sync(
            D::NAME,
            conflicts.first().map(|c| c.model),
            SyncProblem::Conflicts(conflicts.clone()),
            format!(
                "{} records could not be applied because of unique keys held by other \
                 records; everything else was reconciled",
                conflicts.len()
            ),
        ));
    }
    Ok(report)
}

/// Bound helpers shared with the module's public functions.
pub(crate) fn lower_of(bound: Bound<Vec<u8>>) -> Vec<u8> {
    match bound {
        Bound::Included(k) => k,
        Bound::Excluded(mut k) => {
            k.push(0);
            k
        }
        Bound::Unbounded => Vec::new(),
    }
}

/// The exclusive upper key of `bound` (`None`: unbounded).
pub(crate) fn upper_of(bound: Bound<Vec<u8>>) -> Option<Vec<u8>> {
    match bound {
        Bound::Included(mut k) => {
            k.push(0);
            Some(k)
        }
        Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}
