//! Catch-up between nodes: the store's reconciler over libp2p request-response.
//!
//! Two nodes that replicate the same models and were apart (offline, partitioned)
//! bring each other up to date by range-based set reconciliation
//! ([`netabase_store::sync`]): they exchange fingerprints of key ranges, split the
//! ranges that differ and send only the records that differ, so the bytes grow with
//! the number of differences, not with the size of the store.
//!
//! - **Protocol** [`SYNC_PROTOCOL`] (`/netabase/sync/1.0.0`): a session opens with
//!   the memberships each side holds ([`SyncRequest::Members`], answered by
//!   [`SyncReply::Members`]); then each request is one reconciliation
//!   [`Message`](netabase_store::sync::Message) (postcard bytes,
//!   [`SyncRequest::Message`]), each response the peer's answer ([`SyncReply`]).
//!   Frames are a 4-byte big-endian length and the body; a frame longer than
//!   [`NetabaseConfig::max_sync_message_bytes`](crate::NetabaseConfig::max_sync_message_bytes)
//!   is refused before its body is read (and never sent).
//! - **When**: a node starts a session with a peer when it dials it, and with every
//!   connected peer each [`NetabaseConfig::sync_interval`](crate::NetabaseConfig::sync_interval).
//!   Only nodes that replicate models
//!   ([`NetabaseConfig::replicate`](crate::NetabaseConfig::replicate)) speak the protocol.
//! - **Where**: every step runs on the storage worker, never on the event loop: the
//!   event loop only moves bytes.
//! - **Signatures**: every record sent carries its author's ed25519 signature over the
//!   record key, the value and the stamp (the bytes a signed DHT record signs, rebuilt
//!   from the record: the proof is the 64-byte signature alone), taken from the signed
//!   record held for that version (a replicated model's typed version and its signed
//!   record share their stamp). Only a version of the node's own without a signed
//!   record is signed at send time. The tombstone a lost unique key leaves has no
//!   author: the signed record it removed goes in its place
//!   ([`Attestation::stand_in`]), and the receiver derives the same tombstone.
//! - **One apply path**: the receiver's reconciler makes the cheap checks, then hands
//!   the records to `NodeSink`, the node's one apply path of signed records
//!   (signature, version rule, permissions, record store and typed store in one
//!   transaction), as a DHT put or a live update; memberships go the same way. A
//!   refused record is counted and broadcast like a refusal of the other routes, and
//!   the session goes on.
//! - **Reports**: both ends of a session broadcast
//!   [`NetabaseEvent::Synced`](crate::NetabaseEvent::Synced) (bytes each way, round
//!   trips, records applied and refused, and [`SyncRole`](crate::SyncRole)): the
//!   initiator when the last answer is in, the responder when it answers that it has
//!   nothing left to say ([`SyncReply::Done`]) or when the initiator closes the
//!   session ([`SyncRequest::Done`], sent when the responder's last answer needs no
//!   reply). Both sides count in [`NodeStats`](crate::NodeStats).

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::kad::{Record, RecordKey};
use libp2p::request_response::{
    self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::{PeerId, StreamProtocol};
use netabase_store::NetabaseError;
use netabase_store::backend::Backend;
use netabase_store::codec::key::KeyCodec;
use netabase_store::kad::{
    KadStore, RecordSigner, SignedRecord, SignedRecordError, UnverifiedRecord, record_key_for,
    validate_record, wall_millis,
};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::sync::{
    Attestation, ReconcileOptions, Reconciler, RecordSink, SinkReport, StandIn, SyncRecord,
    SyncRefusal, Version,
};
use tokio::sync::{broadcast, mpsc};

use crate::event::{Counters, NetabaseEvent, RecordOrigin, RefusalKind, SyncRole};
use crate::replication::{MEMBERS_MODEL, check_membership_value, membership_group};
use crate::worker::{InboundOutcome, Storage, StorageWorker};

/// The reconciliation protocol of netabase nodes.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/netabase/sync/1.0.0");

/// A response of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncReply {
    /// The next reconciliation message.
    Message(Vec<u8>),
    /// Nothing left to say: the session is complete.
    Done,
    /// The memberships this node holds, in answer to the peer's.
    Members(Vec<u8>),
    /// The request could not be served (not a message of this definition, a model this
    /// node does not sync, a storage failure, a busy node); the session ends.
    Refused(String),
}

/// A request of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// The memberships the sender holds, at the start of its session: the peer applies
    /// them and answers with its own ([`SyncReply::Members`]).
    Members(Vec<u8>),
    /// A reconciliation message.
    Message(Vec<u8>),
    /// The session is over: the sender has nothing left to say after the peer's last
    /// answer. It lets the peer report its side of the session; the peer answers
    /// [`SyncReply::Done`].
    Done,
}

impl SyncRequest {
    /// The encoded length of the body, in bytes.
    pub fn len(&self) -> usize {
        match self {
            SyncRequest::Members(bytes) | SyncRequest::Message(bytes) => bytes.len() + 1,
            SyncRequest::Done => 1,
        }
    }

    /// Whether the body is empty (never: the kind takes a byte).
    pub fn is_empty(&self) -> bool {
        false
    }
}

const REPLY_MESSAGE: u8 = 0;
const REPLY_DONE: u8 = 1;
const REPLY_REFUSED: u8 = 2;
const REPLY_MEMBERS: u8 = 3;

const REQUEST_MESSAGE: u8 = 0;
const REQUEST_MEMBERS: u8 = 1;
const REQUEST_DONE: u8 = 2;

/// The framing of the sync protocol: a 4-byte big-endian length, then the body. A
/// frame longer than the limit is refused on read before its body is read, and on
/// write before anything is sent.
#[derive(Debug, Clone)]
pub struct SyncCodec {
    max_bytes: usize,
    /// Counts the frames refused on read (libp2p reports no failure of its own for a
    /// request that cannot be read).
    refused: Arc<AtomicU64>,
}

impl SyncCodec {
    /// A codec refusing frames longer than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SyncCodec {
            max_bytes,
            refused: Arc::default(),
        }
    }

    /// A codec that counts in `refused` the frames it refuses to read.
    pub(crate) fn counting(max_bytes: usize, refused: Arc<AtomicU64>) -> Self {
        SyncCodec { max_bytes, refused }
    }

    /// How many frames this codec (and its clones) refused to read.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The largest frame body accepted.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn too_large(&self, len: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "sync message of {len} bytes is larger than the limit of {} bytes",
                self.max_bytes
            ),
        )
    }

    /// Reads one frame.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] when the announced length is over the limit
    /// (nothing more is read); the reader's errors.
    pub async fn read_frame<T: AsyncRead + Unpin>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max_bytes {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(len, max = self.max_bytes, "oversized sync message refused");
            return Err(self.too_large(len));
        }
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        Ok(body)
    }

    /// Writes one frame.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] when `body` is over the limit (nothing is
    /// written); the writer's errors.
    pub async fn write_frame<T: AsyncWrite + Unpin>(
        &self,
        io: &mut T,
        body: &[u8],
    ) -> io::Result<()> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|_| body.len() <= self.max_bytes)
            .ok_or_else(|| self.too_large(body.len()))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(body).await?;
        io.flush().await
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncReply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut body = self.read_frame(io).await?;
        if body.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty sync request",
            ));
        }
        match body.remove(0) {
            REQUEST_MESSAGE => Ok(SyncRequest::Message(body)),
            REQUEST_MEMBERS => Ok(SyncRequest::Members(body)),
            REQUEST_DONE => Ok(SyncRequest::Done),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown sync request kind {other}"),
            )),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncReply>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut body = self.read_frame(io).await?;
        if body.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty sync reply",
            ));
        }
        let tag = body.remove(0);
        match tag {
            REPLY_MESSAGE => Ok(SyncReply::Message(body)),
            REPLY_DONE => Ok(SyncReply::Done),
            REPLY_MEMBERS => Ok(SyncReply::Members(body)),
            REPLY_REFUSED => Ok(SyncReply::Refused(
                String::from_utf8_lossy(&body).into_owned(),
            )),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown sync reply kind {other}"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let (kind, mut body) = match request {
            SyncRequest::Message(bytes) => (REQUEST_MESSAGE, bytes),
            SyncRequest::Members(bytes) => (REQUEST_MEMBERS, bytes),
            SyncRequest::Done => (REQUEST_DONE, Vec::new()),
        };
        body.insert(0, kind);
        self.write_frame(io, &body).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        reply: SyncReply,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = match reply {
            SyncReply::Message(mut bytes) => {
                bytes.insert(0, REPLY_MESSAGE);
                bytes
            }
            SyncReply::Done => vec![REPLY_DONE],
            SyncReply::Members(mut bytes) => {
                bytes.insert(0, REPLY_MEMBERS);
                bytes
            }
            SyncReply::Refused(reason) => {
                let mut bytes = vec![REPLY_REFUSED];
                bytes.extend_from_slice(reason.as_bytes());
                bytes
            }
        };
        self.write_frame(io, &body).await
    }
}

/// The request-response behaviour of the protocol, as a node composes it.
pub(crate) fn behaviour(
    max_bytes: usize,
    timeout: Duration,
    refused: Arc<AtomicU64>,
) -> request_response::Behaviour<SyncCodec> {
    request_response::Behaviour::with_codec(
        SyncCodec::counting(max_bytes, refused),
        [(SYNC_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(timeout),
    )
}

/// Signatures on the records a node sends, the cheap checks of those it receives.
///
/// The signature of a received record is not verified here: the records that pass
/// these checks go to the node's one apply path ([`NodeSink`]), which verifies them
/// in batches, as it does the records of every other route.
pub(crate) struct NodeAttestation<D, B> {
    /// Reads of the node's signed DHT records (snapshots of the shared database).
    reads: KadStore<Arc<B>>,
    signer: Arc<RecordSigner>,
    max_clock_skew: Duration,
    max_value_bytes: usize,
    /// Refusals of the cheap checks are counted by kind, as the other routes' are.
    counters: Arc<Counters>,
    _definition: PhantomData<fn() -> D>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> NodeAttestation<D, B> {
    pub(crate) fn new(
        reads: KadStore<Arc<B>>,
        signer: Arc<RecordSigner>,
        counters: Arc<Counters>,
    ) -> Self {
        let limits = reads.config().clone();
        NodeAttestation {
            reads,
            signer,
            max_clock_skew: limits.max_clock_skew,
            max_value_bytes: limits.max_value_bytes,
            counters,
            _definition: PhantomData,
        }
    }

    fn cheap_checks(
        &self,
        v: &Version<'_>,
        proof: Option<&[u8]>,
    ) -> Result<(), (RefusalKind, String)> {
        let key = record_key_for::<D>(v.model, v.key).ok_or_else(|| {
            (
                RefusalKind::MalformedKey,
                format!("`{}` is not a model of `{}`", v.model, D::NAME),
            )
        })?;
        if proof.is_none_or(|p| p.len() != SIGNATURE_LEN) {
            return Err((
                RefusalKind::Unsigned,
                "the record carries no signature".into(),
            ));
        }
        // A stamp far ahead would win its key and drag this node's clock along.
        let skew = u64::try_from(self.max_clock_skew.as_millis()).unwrap_or(u64::MAX);
        if v.stamp.hlc.millis > wall_millis().saturating_add(skew) {
            return Err((
                RefusalKind::FutureStamp,
                format!(
                    "a stamp more than {:?} ahead of this node's clock",
                    self.max_clock_skew
                ),
            ));
        }
        if let Some(value) = v.value {
            // The model must decode (within the size limit) before it reaches the
            // apply path, as an inbound DHT put's must.
            validate_record::<D>(&Record::new(key, value.to_vec()), self.max_value_bytes)
                .map_err(|e| (RefusalKind::of(&e), e.to_string()))?;
        }
        Ok(())
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> Attestation for NodeAttestation<D, B> {
    fn attach(&self, v: &Version<'_>) -> Option<Vec<u8>> {
        let key = record_key_for::<D>(v.model, v.key)?;
        // The signed record of this very version carries its author's signature: a
        // replicated model's typed version and its signed record share their stamp.
        if let Ok(Some(held)) = self.reads.held_envelope(&key)
            && held.stamp == v.stamp
            && held.tombstone == v.value.is_none()
            && held.value.as_slice() == v.value.unwrap_or_default()
        {
            return Some(held.signature);
        }
        // A typed version of this node's own with no signed record of that version
        // (written before the model was replicated, or a tombstone left by a unique
        // key it won): it signs it now. Any other version it cannot vouch for.
        self.signer.sign_version(&key, v.stamp, v.value)
    }

    /// The tombstone a record's loss of a unique key left here (stamped with the
    /// successor of the record's stamp) has no author to sign it: the signed record it
    /// removed, still held in the record store, goes in its place. The receiver, which
    /// gets the winner in the same exchange, removes it with the same tombstone.
    fn stand_in(&self, v: &Version<'_>) -> Option<StandIn> {
        if v.value.is_some() {
            return None;
        }
        let key = record_key_for::<D>(v.model, v.key)?;
        let held = self.reads.held_envelope(&key).ok()??;
        (!held.tombstone && held.stamp.successor() == v.stamp)
            .then(|| StandIn::new(held.stamp, Some(held.value), held.signature))
    }

    fn check(&self, v: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
        self.cheap_checks(v, proof).map_err(|(kind, reason)| {
            self.counters.refused(kind);
            reason
        })
    }
}

/// The ed25519 signature length.
const SIGNATURE_LEN: usize = 64;

/// What a refused record's counters and event need.
struct Refused {
    key: RecordKey,
    kind: RefusalKind,
    reason: String,
}

/// Where the records a node receives by reconciliation go: the worker's one apply
/// path of signed records ([`Storage::apply_signed_batch`]: signature, version rule,
/// permissions, record store and typed store with the record's stamp, in one
/// transaction), exactly as a DHT put or a live update. Refusals are counted and
/// broadcast as those of the other routes are.
pub(crate) struct NodeSink<'a, D: NetabaseDefinitionTrait, B: Backend> {
    storage: &'a Storage<D, B>,
    peer: PeerId,
    ctx: &'a StepContext,
}

/// What a worker step shares with the node: its clock, counters and event channel.
pub(crate) struct StepContext {
    signer: Arc<RecordSigner>,
    counters: Arc<Counters>,
    events: broadcast::Sender<NetabaseEvent>,
    max_bytes: usize,
}

impl StepContext {
    fn refuse(&self, peer: PeerId, refused: Refused) {
        self.counters.refused(refused.kind);
        let _ = self.events.send(NetabaseEvent::RecordRefused {
            key: refused.key,
            source: Some(peer),
            origin: RecordOrigin::Sync,
            kind: refused.kind,
            reason: refused.reason,
        });
    }
}

/// Applies `batch` (records received from `peer`, each with what its refusal names)
/// through the one apply path; the number applied and the refusals.
fn apply_received<D: NetabaseDefinitionTrait, B: Backend, T>(
    storage: &Storage<D, B>,
    ctx: &StepContext,
    peer: PeerId,
    batch: Vec<(UnverifiedRecord, T)>,
) -> Result<(u64, Vec<(T, String)>), String> {
    let (records, tags): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|(record, tag)| {
            let key = record.key().clone();
            let stamp = record.stamp();
            ((record, Some(peer)), (tag, key, stamp))
        })
        .unzip();
    let outcomes = storage.apply_signed_batch(records);
    let mut applied = 0;
    let mut refusals = Vec::new();
    for (outcome, (tag, key, stamp)) in outcomes.into_iter().zip(tags) {
        let (kind, reason) = match outcome {
            InboundOutcome::Stored => {
                ctx.signer.observe(stamp);
                applied += 1;
                continue;
            }
            // It lost to the version held here: the merge rule chose the local one.
            InboundOutcome::Refused(SignedRecordError::Superseded { .. }) => continue,
            InboundOutcome::Refused(e) => (RefusalKind::of_signed(&e), e.to_string()),
            InboundOutcome::NotPermitted(reason) => (RefusalKind::NotPermitted, reason),
            InboundOutcome::StoreFull(e) => (RefusalKind::StoreFull, e.to_string()),
            InboundOutcome::Failed(message) => return Err(message),
        };
        ctx.refuse(
            peer,
            Refused {
                key,
                kind,
                reason: reason.clone(),
            },
        );
        refusals.push((tag, reason));
    }
    Ok((applied, refusals))
}

impl<D: NetabaseDefinitionTrait, B: Backend> RecordSink for NodeSink<'_, D, B> {
    fn apply(
        &self,
        received: Vec<(&'static str, Vec<SyncRecord>)>,
    ) -> netabase_store::Result<SinkReport> {
        let mut report = SinkReport::default();
        let mut batch = Vec::new();
        for (model, records) in received {
            for rec in records {
                let tag = (model, rec.key.clone(), rec.stamp);
                let unverified = record_key_for::<D>(model, &rec.key)
                    .ok_or_else(|| format!("`{model}` is not a model of `{}`", D::NAME))
                    .and_then(|key| {
                        let proof = rec.proof.as_deref().unwrap_or_default();
                        UnverifiedRecord::from_version(key, rec.stamp, rec.value, proof)
                            .map_err(|e| e.to_string())
                    });
                match unverified {
                    Ok(record) => batch.push((record, tag)),
                    // Not reached: the attestation checked the key and the proof.
                    Err(reason) => report
                        .refusals
                        .push(SyncRefusal::new(tag.0, tag.1, tag.2, reason)),
                }
            }
        }
        let (applied, refusals) = apply_received(self.storage, self.ctx, self.peer, batch)
            .map_err(|e| NetabaseError::backend("netabase", "apply synced records", e))?;
        report.applied = applied;
        report.refusals.extend(
            refusals
                .into_iter()
                .map(|((model, key, stamp), reason)| SyncRefusal::new(model, key, stamp, reason)),
        );
        Ok(report)
    }
}

/// The memberships this node holds (signed records under the reserved
/// [`MEMBERS_MODEL`] keys), encoded for the start of a session: at most `max_bytes`.
fn held_memberships<D: NetabaseDefinitionTrait, B: Backend>(
    storage: &Storage<D, B>,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let prefix = (D::NAME.to_owned(), MEMBERS_MODEL.to_owned()).to_key_bytes();
    let records = storage
        .records
        .try_records_with_prefix(&prefix)
        .map_err(|e| format!("reading the memberships: {e}"))?;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(records.len());
    let mut size = 0;
    for record in &records {
        let Some(bytes) = crate::live::encode(record) else {
            continue;
        };
        size += bytes.len() + 8;
        if size > max_bytes {
            tracing::warn!("memberships over half a sync message: the rest are not sent");
            break;
        }
        out.push(bytes);
    }
    postcard::to_allocvec(&out).map_err(|e| e.to_string())
}

/// Applies the memberships a peer sent at the start of a session through the one apply
/// path; the number applied and refused.
fn apply_memberships<D: NetabaseDefinitionTrait, B: Backend>(
    storage: &Storage<D, B>,
    ctx: &StepContext,
    peer: PeerId,
    bytes: &[u8],
) -> Result<(u64, u64), String> {
    let list: Vec<Vec<u8>> =
        postcard::from_bytes(bytes).map_err(|e| format!("not a list of memberships: {e}"))?;
    let mut batch = Vec::with_capacity(list.len());
    let mut refused = 0;
    for item in list {
        let checked = crate::live::decode(&item)
            .map_err(|reason| (None, reason))
            .and_then(|record| {
                let named = |reason: String| (Some(record.key.clone()), reason);
                let group = membership_group::<D>(&record.key)
                    .ok_or_else(|| named("not a membership of this definition".to_owned()))?;
                let unverified =
                    SignedRecord::decode_unverified(&record).map_err(|e| named(e.to_string()))?;
                check_membership_value(&group, unverified.value()).map_err(named)?;
                Ok(unverified)
            });
        match checked {
            Ok(record) => batch.push((record, ())),
            Err((key, reason)) => {
                refused += 1;
                ctx.refuse(
                    peer,
                    Refused {
                        key: key.unwrap_or_else(|| RecordKey::new(&Vec::<u8>::new())),
                        kind: RefusalKind::MalformedKey,
                        reason,
                    },
                );
            }
        }
    }
    let (applied, refusals) = apply_received(storage, ctx, peer, batch)?;
    Ok((applied, refused + refusals.len() as u64))
}

/// What a worker step sends next.
enum Outgoing {
    /// This node's memberships.
    Members(Vec<u8>),
    /// A reconciliation message.
    Message(Vec<u8>),
}

/// What a worker step is given.
enum StepIn {
    /// The start of a session: this node's memberships go first.
    Start,
    /// The memberships a peer answered with: apply them, then start reconciling.
    PeerMembersThenInitiate(Vec<u8>),
    /// The memberships a peer opened its session with: apply them, answer with ours.
    PeerMembersThenAnswer(Vec<u8>),
    /// A reconciliation message of the peer.
    Message(Vec<u8>),
}

/// The outcome of one reconciler step on the worker.
struct StepOut {
    reply: Option<Outgoing>,
    applied: u64,
    refused: u64,
}

/// One step of a session on the worker. Records received (memberships first, then the
/// reconciled models) go through the one apply path ([`NodeSink`]).
fn step<D: NetabaseDefinitionTrait, B: Backend>(
    storage: &Storage<D, B>,
    attestation: &Arc<NodeAttestation<D, B>>,
    ctx: &StepContext,
    peer: PeerId,
    input: StepIn,
) -> Result<StepOut, String> {
    let mut out = StepOut {
        reply: None,
        applied: 0,
        refused: 0,
    };
    let incoming = match input {
        StepIn::Start => {
            out.reply = Some(Outgoing::Members(held_memberships(
                storage,
                ctx.max_bytes / 2,
            )?));
            return Ok(out);
        }
        StepIn::PeerMembersThenAnswer(bytes) => {
            (out.applied, out.refused) = apply_memberships(storage, ctx, peer, &bytes)?;
            out.reply = Some(Outgoing::Members(held_memberships(
                storage,
                ctx.max_bytes / 2,
            )?));
            return Ok(out);
        }
        StepIn::PeerMembersThenInitiate(bytes) => {
            (out.applied, out.refused) = apply_memberships(storage, ctx, peer, &bytes)?;
            None
        }
        StepIn::Message(bytes) => Some(bytes),
    };
    let shared: Arc<dyn Attestation> = attestation.clone();
    let sink = NodeSink { storage, peer, ctx };
    // Records fill at most half a message; the rest of a large catch-up travels in
    // the next round trips, so no message outgrows the limit.
    let options = ReconcileOptions::default().max_record_bytes(ctx.max_bytes / 2);
    let mut reconciler = Reconciler::new(&storage.store)
        .map_err(|e| e.to_string())?
        .with_options(options)
        .with_shared_attestation(shared)
        .with_sink(&sink);
    let reply = match incoming {
        None => reconciler.initiate().map(Some),
        Some(bytes) => reconciler.respond(&bytes),
    }
    .map_err(|e| e.to_string())?;
    let stats = reconciler.stats();
    out.applied += stats.records_applied;
    out.refused += stats.records_refused;
    out.reply = reply.map(Outgoing::Message);
    Ok(out)
}

/// Who a finished worker step was for.
enum StepFor {
    /// A session this node started with `peer`.
    Session(PeerId),
    /// A request from a peer, to be answered on `channel`.
    Request {
        peer: PeerId,
        channel: ResponseChannel<SyncReply>,
    },
}

impl StepFor {
    fn peer(&self) -> PeerId {
        match self {
            StepFor::Session(peer) | StepFor::Request { peer, .. } => *peer,
        }
    }
}

/// A finished worker step.
pub(crate) struct StepDone {
    to: StepFor,
    result: Result<StepOut, String>,
}

/// A session with a peer: one this node started, or one it answers.
#[derive(Debug)]
struct Session {
    started: Instant,
    bytes_sent: u64,
    bytes_received: u64,
    /// Round trips (on the answering side: requests answered).
    round_trips: u64,
    /// Reconciliation messages received (on the answering side).
    messages: u64,
    /// Whether its opening may dial the peer (a session asked for by the application)
    /// or needs a connection open already (a periodic one).
    may_dial: bool,
    records_applied: u64,
    records_refused: u64,
}

impl Session {
    fn new() -> Self {
        Session {
            started: Instant::now(),
            bytes_sent: 0,
            bytes_received: 0,
            round_trips: 0,
            messages: 0,
            may_dial: false,
            records_applied: 0,
            records_refused: 0,
        }
    }
}

/// The node side of the protocol, driven by the event loop: sessions, requests in
/// flight, and the worker steps' results.
pub(crate) struct SyncDriver<D: NetabaseDefinitionTrait, B: Backend> {
    enabled: bool,
    worker: StorageWorker<D, B>,
    attestation: Arc<NodeAttestation<D, B>>,
    ctx: Arc<StepContext>,
    sessions: HashMap<PeerId, Session>,
    /// The sessions peers started with this node, by peer: one per peer at a time (a
    /// new session of a peer replaces one it left unfinished).
    answering: HashMap<PeerId, Session>,
    requests: HashMap<OutboundRequestId, PeerId>,
    /// Worker steps done; as many as steps queued, so bounded by the worker's queue.
    pub(crate) steps: mpsc::UnboundedReceiver<StepDone>,
    steps_sender: mpsc::UnboundedSender<StepDone>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> SyncDriver<D, B> {
    pub(crate) fn new(
        enabled: bool,
        worker: StorageWorker<D, B>,
        attestation: NodeAttestation<D, B>,
        events: broadcast::Sender<NetabaseEvent>,
        counters: Arc<Counters>,
        max_bytes: usize,
    ) -> Self {
        let (steps_sender, steps) = mpsc::unbounded_channel();
        let ctx = StepContext {
            signer: Arc::clone(&attestation.signer),
            counters,
            events,
            max_bytes,
        };
        SyncDriver {
            enabled,
            worker,
            attestation: Arc::new(attestation),
            ctx: Arc::new(ctx),
            sessions: HashMap::new(),
            answering: HashMap::new(),
            requests: HashMap::new(),
            steps,
            steps_sender,
        }
    }

    fn emit(&self, event: NetabaseEvent) {
        let _ = self.ctx.events.send(event);
    }

    /// Queues a step on the worker; gives `to` back if its queue is full.
    fn queue(&self, to: StepFor, input: StepIn) -> Result<(), StepFor> {
        let attestation = Arc::clone(&self.attestation);
        let ctx = Arc::clone(&self.ctx);
        let sender = self.steps_sender.clone();
        let peer = to.peer();
        // The step owns its destination, so a full queue gives it back.
        let slot = Arc::new(Mutex::new(Some(to)));
        let inside = Arc::clone(&slot);
        let queued = self.worker.try_run(move |storage| {
            let result = step(storage, &attestation, &ctx, peer, input);
            if let Some(to) = inside.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = sender.send(StepDone { to, result });
            }
        });
        if queued {
            return Ok(());
        }
        let to = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        to.map_or(Ok(()), Err)
    }

    /// Starts a session with `peer`, unless one is running or sync is off. Only a
    /// session that `may_dial` connects to a peer that is not connected when its
    /// opening is sent (one the application asked for); the others (periodic, or on a
    /// connection) end quietly if the peer left meanwhile.
    pub(crate) fn start(&mut self, peer: PeerId, may_dial: bool) {
        if !self.enabled || self.sessions.contains_key(&peer) {
            return;
        }
        self.sessions.insert(
            peer,
            Session {
                may_dial,
                ..Session::new()
            },
        );
        if self.queue(StepFor::Session(peer), StepIn::Start).is_err() {
            self.fail(peer, "the storage worker is busy".into());
        }
    }

    /// A worker step is done: send its message, or finish.
    pub(crate) fn on_step(
        &mut self,
        done: StepDone,
        rr: &mut request_response::Behaviour<SyncCodec>,
    ) {
        let max_bytes = self.ctx.max_bytes;
        let out = done.result.inspect(|out| {
            self.ctx.counters.sync_records(out.applied, out.refused);
        });
        match done.to {
            StepFor::Session(peer) => {
                let out = match out {
                    Ok(out) => out,
                    Err(reason) => return self.fail(peer, reason),
                };
                let Some(session) = self.sessions.get_mut(&peer) else {
                    return;
                };
                session.records_applied += out.applied;
                session.records_refused += out.refused;
                // Only the opening of a session the application asked for dials the
                // peer: a peer taken apart (`Netabase::disconnect`) stays apart.
                let opening = matches!(out.reply, Some(Outgoing::Members(_)));
                let dials = session.may_dial && opening;
                if out.reply.is_some() && !dials && !rr.is_connected(&peer) {
                    // A periodic session whose peer left before it opened: nothing
                    // to report.
                    if !session.may_dial && session.bytes_sent == 0 {
                        self.sessions.remove(&peer);
                        return;
                    }
                    return self.fail(peer, "the connection closed during the session".into());
                }
                let request = match out.reply {
                    None => {
                        // The peer's last answer needs none: tell it the session is
                        // over, so that it reports its side (its answer is not
                        // awaited; an older peer that cannot read the request reports
                        // a failed inbound request, after the session is complete).
                        if rr.is_connected(&peer) {
                            self.ctx.counters.sync_sent(SyncRequest::Done.len());
                            rr.send_request(&peer, SyncRequest::Done);
                        }
                        return self.finish(peer);
                    }
                    Some(Outgoing::Members(bytes)) => SyncRequest::Members(bytes),
                    Some(Outgoing::Message(bytes)) => SyncRequest::Message(bytes),
                };
                let len = request.len();
                if len > max_bytes {
                    return self.fail(
                        peer,
                        format!("the next message is {len} bytes, over the limit of {max_bytes}"),
                    );
                }
                session.bytes_sent += len as u64;
                self.ctx.counters.sync_sent(len);
                let id = rr.send_request(&peer, request);
                self.requests.insert(id, peer);
            }
            StepFor::Request { peer, channel } => {
                if let (Ok(out), Some(session)) = (&out, self.answering.get_mut(&peer)) {
                    session.records_applied += out.applied;
                    session.records_refused += out.refused;
                }
                let reply = match out {
                    Ok(out) => match out.reply {
                        Some(Outgoing::Message(bytes) | Outgoing::Members(bytes))
                            if bytes.len() >= max_bytes =>
                        {
                            SyncReply::Refused(format!(
                                "the answer is {} bytes, over the limit of {max_bytes}",
                                bytes.len(),
                            ))
                        }
                        Some(Outgoing::Message(bytes)) => SyncReply::Message(bytes),
                        Some(Outgoing::Members(bytes)) => SyncReply::Members(bytes),
                        None => SyncReply::Done,
                    },
                    Err(reason) => SyncReply::Refused(reason),
                };
                if let Some(session) = self.answering.get_mut(&peer) {
                    session.round_trips += 1;
                }
                match &reply {
                    SyncReply::Message(bytes) | SyncReply::Members(bytes) => {
                        self.ctx.counters.sync_sent(bytes.len());
                        if let Some(session) = self.answering.get_mut(&peer) {
                            session.bytes_sent += bytes.len() as u64;
                        }
                    }
                    SyncReply::Refused(reason) => {
                        self.answering.remove(&peer);
                        self.ctx.counters.sync_failed();
                        self.emit(NetabaseEvent::SyncFailed {
                            peer,
                            reason: reason.clone(),
                        });
                    }
                    SyncReply::Done => {}
                }
                let done = matches!(reply, SyncReply::Done);
                let _ = rr.send_response(channel, reply);
                if done {
                    self.answered(peer);
                }
            }
        }
    }

    /// An event of the request-response behaviour.
    pub(crate) fn on_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncReply>,
        rr: &mut request_response::Behaviour<SyncCodec>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.ctx.counters.sync_received(request.len());
                    if !self.enabled {
                        // Not reached: a node that replicates nothing does not speak
                        // the protocol. Answer anyway rather than drop the channel.
                        let _ = rr.send_response(
                            channel,
                            SyncReply::Refused("this node replicates no model".into()),
                        );
                        return;
                    }
                    let len = request.len() as u64;
                    let input = match request {
                        SyncRequest::Members(bytes) => {
                            // A session starts with the memberships.
                            self.answering.insert(peer, Session::new());
                            StepIn::PeerMembersThenAnswer(bytes)
                        }
                        SyncRequest::Message(bytes) => {
                            let session = self.answering.entry(peer).or_insert_with(Session::new);
                            session.messages += 1;
                            StepIn::Message(bytes)
                        }
                        SyncRequest::Done => {
                            // A close that overtook the next session's opening finds
                            // no reconciliation message answered yet: not this one's.
                            if self.answering.get(&peer).is_some_and(|s| s.messages > 0) {
                                self.answered(peer);
                            }
                            let _ = rr.send_response(channel, SyncReply::Done);
                            return;
                        }
                    };
                    if let Some(session) = self.answering.get_mut(&peer) {
                        session.bytes_received += len;
                    }
                    let to = StepFor::Request { peer, channel };
                    if let Err(StepFor::Request { channel, .. }) = self.queue(to, input) {
                        self.answering.remove(&peer);
                        let _ = rr.send_response(
                            channel,
                            SyncReply::Refused("the storage worker is busy".into()),
                        );
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some(peer) = self.requests.remove(&request_id) else {
                        return;
                    };
                    if let Some(session) = self.sessions.get_mut(&peer) {
                        session.round_trips += 1;
                    }
                    let input = match response {
                        SyncReply::Message(bytes) => StepIn::Message(bytes),
                        SyncReply::Members(bytes) => StepIn::PeerMembersThenInitiate(bytes),
                        SyncReply::Done => return self.finish(peer),
                        SyncReply::Refused(reason) => {
                            return self.fail(peer, format!("the peer refused: {reason}"));
                        }
                    };
                    let len = match &input {
                        StepIn::Message(bytes) | StepIn::PeerMembersThenInitiate(bytes) => {
                            bytes.len()
                        }
                        _ => 0,
                    };
                    self.ctx.counters.sync_received(len);
                    if let Some(session) = self.sessions.get_mut(&peer) {
                        session.bytes_received += len as u64;
                    }
                    if self.queue(StepFor::Session(peer), input).is_err() {
                        self.fail(peer, "the storage worker is busy".into());
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                // Not a request of a running session (the close of a finished one):
                // nothing to report.
                if self.requests.remove(&request_id).is_none() {
                    return;
                }
                match error {
                    // The peer does not sync: nothing to report.
                    OutboundFailure::UnsupportedProtocols => {
                        self.sessions.remove(&peer);
                    }
                    error => self.fail(peer, error.to_string()),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.answering.remove(&peer);
                self.ctx.counters.sync_failed();
                self.emit(NetabaseEvent::SyncFailed {
                    peer,
                    reason: format!("answering the peer: {error}"),
                });
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The session with `peer` ended with nothing left to send.
    fn finish(&mut self, peer: PeerId) {
        let Some(session) = self.sessions.remove(&peer) else {
            return;
        };
        self.ctx.counters.sync_session();
        tracing::debug!(%peer, ?session, "sync session complete");
        self.report(peer, SyncRole::Initiator, &session);
    }

    /// The session `peer` started with this node ended: this node answered that it
    /// had nothing left to say, or the peer said so.
    fn answered(&mut self, peer: PeerId) {
        let Some(session) = self.answering.remove(&peer) else {
            return;
        };
        self.ctx.counters.sync_answered();
        tracing::debug!(%peer, ?session, "sync session answered");
        self.report(peer, SyncRole::Responder, &session);
    }

    /// Broadcasts the report of a finished session, in which this node was `role`.
    fn report(&self, peer: PeerId, role: SyncRole, session: &Session) {
        self.emit(NetabaseEvent::Synced {
            peer,
            role,
            bytes_sent: session.bytes_sent,
            bytes_received: session.bytes_received,
            round_trips: session.round_trips,
            records_applied: session.records_applied,
            records_refused: session.records_refused,
            elapsed: session.started.elapsed(),
        });
    }

    fn fail(&mut self, peer: PeerId, reason: String) {
        self.sessions.remove(&peer);
        self.ctx.counters.sync_failed();
        self.emit(NetabaseEvent::SyncFailed { peer, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn frame(len: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() -> io::Result<()> {
        use request_response::Codec;
        let mut codec = SyncCodec::new(8);
        for reply in [
            SyncReply::Message(b"1234567".to_vec()),
            SyncReply::Done,
            SyncReply::Members(b"123".to_vec()),
            SyncReply::Refused("no".into()),
        ] {
            let mut out = Cursor::new(Vec::new());
            codec
                .write_response(&SYNC_PROTOCOL, &mut out, reply.clone())
                .await?;
            let mut back = Cursor::new(out.into_inner());
            assert_eq!(codec.read_response(&SYNC_PROTOCOL, &mut back).await?, reply);
        }
        // A frame announcing 9 bytes is refused before its body is read.
        let mut input = Cursor::new(frame(9, b"123456789"));
        let err = codec.read_request(&SYNC_PROTOCOL, &mut input).await;
        assert!(matches!(err, Err(e) if e.kind() == io::ErrorKind::InvalidData));
        assert_eq!(input.position(), 4);
        assert_eq!(codec.refused(), 1);
        let mut huge = Cursor::new(frame(u32::MAX, b""));
        assert!(codec.read_request(&SYNC_PROTOCOL, &mut huge).await.is_err());
        // Nothing over the limit is written either.
        let mut out = Cursor::new(Vec::new());
        let err = codec
            .write_request(&SYNC_PROTOCOL, &mut out, SyncRequest::Message(vec![0; 9]))
            .await;
        assert!(err.is_err());
        assert!(out.into_inner().is_empty());
        // A truncated body and an unknown reply kind are errors, not panics.
        let mut short = Cursor::new(frame(5, b"12"));
        assert!(
            codec
                .read_request(&SYNC_PROTOCOL, &mut short)
                .await
                .is_err()
        );
        let mut odd = Cursor::new(frame(1, &[9]));
        assert!(codec.read_response(&SYNC_PROTOCOL, &mut odd).await.is_err());
        Ok(())
    }
}
