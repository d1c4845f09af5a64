//! Catch-up between nodes: the store's reconciler over libp2p request-response.
//!
//! Two nodes that replicate the same models and were apart (offline, partitioned)
//! bring each other up to date by range-based set reconciliation
//! ([`netabase_store::sync`]): they exchange fingerprints of key ranges, split the
//! ranges that differ and send only the records that differ, so the bytes grow with
//! the number of differences, not with the size of the store.
//!
//! - **Protocol** [`SYNC_PROTOCOL`] (`/netabase/sync/1.0.0`): each request is one
//!   reconciliation [`Message`](netabase_store::sync::Message) (postcard bytes), each
//!   response the peer's answer ([`SyncReply`]). Frames are a 4-byte big-endian length
//!   and the body; a frame longer than
//!   [`NetabaseConfig::max_sync_message_bytes`](crate::NetabaseConfig::max_sync_message_bytes)
//!   is refused before its body is read (and never sent).
//! - **When**: a node starts a session with a peer when it dials it, and with every
//!   connected peer each [`NetabaseConfig::sync_interval`](crate::NetabaseConfig::sync_interval).
//!   Only nodes that replicate models
//!   ([`NetabaseConfig::replicate`](crate::NetabaseConfig::replicate)) speak the protocol.
//! - **Where**: every reconciler step runs on the storage worker, never on the event
//!   loop: the event loop only moves bytes.
//! - **Signatures**: every record sent carries its author's ed25519 signature over the
//!   record key, the value and the stamp (the bytes a signed DHT record signs, rebuilt
//!   from the record: the proof is the 64-byte signature alone). It is taken from the
//!   node's signed DHT record of that version, or made by the node for a version it
//!   wrote itself. The receiver verifies it before anything is written; a record that
//!   fails is refused, counted, and the session goes on. Records that pass are also
//!   kept as signed DHT records, so the node can pass them on with their signatures.
//! - **Reports**: the initiator of a session broadcasts
//!   [`NetabaseEvent::Synced`](crate::NetabaseEvent::Synced) (bytes each way, round
//!   trips, records applied and refused); both sides count in
//!   [`NodeStats`](crate::NodeStats).

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::{
    self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::{PeerId, StreamProtocol};
use netabase_store::backend::Backend;
use netabase_store::kad::{KadStore, RecordSigner, SignedRecord, record_key_for, wall_millis};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::sync::{Attestation, ReconcileOptions, ReconcileStats, Reconciler, Version};
use tokio::sync::{broadcast, mpsc};

use crate::event::{Counters, NetabaseEvent};
use crate::worker::{Storage, StorageWorker};

/// The reconciliation protocol of netabase nodes.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/netabase/sync/1.0.0");

/// A response of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncReply {
    /// The next reconciliation message.
    Message(Vec<u8>),
    /// Nothing left to say: the session is complete.
    Done,
    /// The request could not be served (not a message of this definition, a model this
    /// node does not sync, a storage failure, a busy node); the session ends.
    Refused(String),
}

const REPLY_MESSAGE: u8 = 0;
const REPLY_DONE: u8 = 1;
const REPLY_REFUSED: u8 = 2;

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
    type Request = Vec<u8>;
    type Response = SyncReply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io).await
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
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, &request).await
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

/// Signatures on the records a node sends, verification of those it receives.
pub(crate) struct NodeAttestation<D, B> {
    /// Reads of the node's signed DHT records (snapshots of the shared database).
    reads: KadStore<Arc<B>>,
    signer: Arc<RecordSigner>,
    max_clock_skew: Duration,
    max_value_bytes: usize,
    /// Records verified during the current step, kept as signed DHT records after it.
    verified: Mutex<Vec<SignedRecord>>,
    _definition: PhantomData<fn() -> D>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> NodeAttestation<D, B> {
    pub(crate) fn new(reads: KadStore<Arc<B>>, signer: Arc<RecordSigner>) -> Self {
        let limits = reads.config().clone();
        NodeAttestation {
            reads,
            signer,
            max_clock_skew: limits.max_clock_skew,
            max_value_bytes: limits.max_value_bytes,
            verified: Mutex::new(Vec::new()),
            _definition: PhantomData,
        }
    }

    fn take_verified(&self) -> Vec<SignedRecord> {
        std::mem::take(&mut *self.verified.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> Attestation for NodeAttestation<D, B> {
    fn attach(&self, v: &Version<'_>) -> Option<Vec<u8>> {
        let key = record_key_for::<D>(v.model, v.key)?;
        // The signed DHT record of this very version carries its author's signature.
        if let Ok(Some(held)) = self.reads.held_envelope(&key)
            && held.stamp == v.stamp
            && held.tombstone == v.value.is_none()
            && held.value.as_slice() == v.value.unwrap_or_default()
        {
            return Some(held.signature);
        }
        // A version this node wrote itself (its stamps name its identity key): it
        // signs it now. Any other version it cannot vouch for; the peer refuses it.
        self.signer.sign_version(&key, v.stamp, v.value)
    }

    fn check(&self, v: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
        let key = record_key_for::<D>(v.model, v.key)
            .ok_or_else(|| format!("`{}` is not a model of `{}`", v.model, D::NAME))?;
        let proof = proof.ok_or("the record carries no signature")?;
        if v.value
            .is_some_and(|value| value.len() > self.max_value_bytes)
        {
            return Err(format!(
                "a value larger than the limit of {} bytes",
                self.max_value_bytes
            ));
        }
        let signed = SignedRecord::from_version(key, v.stamp, v.value.map(<[u8]>::to_vec), proof)
            .map_err(|e| e.to_string())?;
        signed
            .check_skew(self.max_clock_skew, wall_millis())
            .map_err(|e| e.to_string())?;
        // The node's write policy (who may write which model) applies here, once
        // there is one: a refusal keeps the record out like a bad signature.
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(signed);
        Ok(())
    }
}

/// The outcome of one reconciler step on the worker.
struct StepOut {
    reply: Option<Vec<u8>>,
    stats: ReconcileStats,
}

/// One reconciler step, on the worker: the first message (`incoming` is `None`) or the
/// answer to the peer's message; records received are verified, applied through the
/// write pipeline, and kept as signed DHT records.
fn step<D: NetabaseDefinitionTrait, B: Backend>(
    storage: &Storage<D, B>,
    attestation: &Arc<NodeAttestation<D, B>>,
    incoming: Option<&[u8]>,
    max_message_bytes: usize,
) -> Result<StepOut, String> {
    let shared: Arc<dyn Attestation> = attestation.clone();
    // Records fill at most half a message; the rest of a large catch-up travels in
    // the next round trips, so no message outgrows the limit.
    let options = ReconcileOptions::default().max_record_bytes(max_message_bytes / 2);
    let mut reconciler = Reconciler::new(&storage.store)
        .map_err(|e| e.to_string())?
        .with_options(options)
        .with_shared_attestation(shared);
    let reply = match incoming {
        None => reconciler.initiate().map(Some),
        Some(bytes) => reconciler.respond(bytes),
    };
    let verified = attestation.take_verified();
    let reply = reply.map_err(|e| e.to_string())?;
    if !verified.is_empty() {
        // Kept so that this node can pass them on with their signatures; a version
        // older than the one held (or over the store's limits) is simply not kept.
        storage
            .records
            .put_signed_batch(verified)
            .map_err(|e| format!("keeping the signed records: {e}"))?;
    }
    Ok(StepOut {
        reply,
        stats: reconciler.stats().clone(),
    })
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

/// A finished worker step.
pub(crate) struct StepDone {
    to: StepFor,
    result: Result<StepOut, String>,
}

/// A session this node started.
#[derive(Debug)]
struct Session {
    started: Instant,
    bytes_sent: u64,
    bytes_received: u64,
    round_trips: u64,
    records_applied: u64,
    records_refused: u64,
}

/// The node side of the protocol, driven by the event loop: sessions, requests in
/// flight, and the worker steps' results.
pub(crate) struct SyncDriver<D: NetabaseDefinitionTrait, B: Backend> {
    enabled: bool,
    worker: StorageWorker<D, B>,
    attestation: Arc<NodeAttestation<D, B>>,
    events: broadcast::Sender<NetabaseEvent>,
    counters: Arc<Counters>,
    max_bytes: usize,
    sessions: HashMap<PeerId, Session>,
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
        SyncDriver {
            enabled,
            worker,
            attestation: Arc::new(attestation),
            events,
            counters,
            max_bytes,
            sessions: HashMap::new(),
            requests: HashMap::new(),
            steps,
            steps_sender,
        }
    }

    fn emit(&self, event: NetabaseEvent) {
        let _ = self.events.send(event);
    }

    /// Queues a reconciler step on the worker; false if its queue is full.
    fn queue(&self, to: StepFor, incoming: Option<Vec<u8>>) -> Result<(), StepFor> {
        let attestation = Arc::clone(&self.attestation);
        let sender = self.steps_sender.clone();
        let max_bytes = self.max_bytes;
        // The step owns its destination, so a full queue gives it back.
        let slot = Arc::new(Mutex::new(Some(to)));
        let inside = Arc::clone(&slot);
        let queued = self.worker.try_run(move |storage| {
            let result = step(storage, &attestation, incoming.as_deref(), max_bytes);
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

    /// Starts a session with `peer`, unless one is running or sync is off.
    pub(crate) fn start(&mut self, peer: PeerId) {
        if !self.enabled || self.sessions.contains_key(&peer) {
            return;
        }
        self.sessions.insert(
            peer,
            Session {
                started: Instant::now(),
                bytes_sent: 0,
                bytes_received: 0,
                round_trips: 0,
                records_applied: 0,
                records_refused: 0,
            },
        );
        if self.queue(StepFor::Session(peer), None).is_err() {
            self.fail(peer, "the storage worker is busy".into());
        }
    }

    /// A worker step is done: send its message, or finish.
    pub(crate) fn on_step(
        &mut self,
        done: StepDone,
        rr: &mut request_response::Behaviour<SyncCodec>,
    ) {
        match done.to {
            StepFor::Session(peer) => {
                let out = match done.result {
                    Ok(out) => out,
                    Err(reason) => return self.fail(peer, reason),
                };
                self.count_step(&out.stats);
                let Some(session) = self.sessions.get_mut(&peer) else {
                    return;
                };
                session.records_applied += out.stats.records_applied;
                session.records_refused += out.stats.records_refused;
                match out.reply {
                    Some(bytes) if bytes.len() > self.max_bytes => self.fail(
                        peer,
                        format!(
                            "the next message is {} bytes, over the limit of {}",
                            bytes.len(),
                            self.max_bytes
                        ),
                    ),
                    Some(bytes) => {
                        session.bytes_sent += bytes.len() as u64;
                        self.counters.sync_sent(bytes.len());
                        let id = rr.send_request(&peer, bytes);
                        self.requests.insert(id, peer);
                    }
                    None => self.finish(peer),
                }
            }
            StepFor::Request { peer, channel } => {
                let reply = match done.result {
                    Ok(out) => {
                        self.count_step(&out.stats);
                        match out.reply {
                            Some(bytes) if bytes.len() >= self.max_bytes => {
                                SyncReply::Refused(format!(
                                    "the answer is {} bytes, over the limit of {}",
                                    bytes.len(),
                                    self.max_bytes
                                ))
                            }
                            Some(bytes) => SyncReply::Message(bytes),
                            None => SyncReply::Done,
                        }
                    }
                    Err(reason) => SyncReply::Refused(reason),
                };
                if let SyncReply::Message(bytes) = &reply {
                    self.counters.sync_sent(bytes.len());
                }
                if let SyncReply::Refused(reason) = &reply {
                    self.counters.sync_failed();
                    self.emit(NetabaseEvent::SyncFailed {
                        peer,
                        reason: reason.clone(),
                    });
                }
                let _ = rr.send_response(channel, reply);
            }
        }
    }

    fn count_step(&self, stats: &ReconcileStats) {
        self.counters
            .sync_records(stats.records_applied, stats.records_refused);
    }

    /// An event of the request-response behaviour.
    pub(crate) fn on_event(
        &mut self,
        event: request_response::Event<Vec<u8>, SyncReply>,
        rr: &mut request_response::Behaviour<SyncCodec>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.counters.sync_received(request.len());
                    let to = StepFor::Request { peer, channel };
                    if !self.enabled {
                        // Not reached: a node without synced models does not speak
                        // the protocol. Answer anyway rather than drop the channel.
                        if let StepFor::Request { channel, .. } = to {
                            let _ = rr.send_response(
                                channel,
                                SyncReply::Refused("this node syncs no model".into()),
                            );
                        }
                        return;
                    }
                    if let Err(StepFor::Request { channel, .. }) = self.queue(to, Some(request)) {
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
                    match response {
                        SyncReply::Message(bytes) => {
                            self.counters.sync_received(bytes.len());
                            if let Some(session) = self.sessions.get_mut(&peer) {
                                session.bytes_received += bytes.len() as u64;
                            }
                            if self.queue(StepFor::Session(peer), Some(bytes)).is_err() {
                                self.fail(peer, "the storage worker is busy".into());
                            }
                        }
                        SyncReply::Done => self.finish(peer),
                        SyncReply::Refused(reason) => {
                            self.fail(peer, format!("the peer refused: {reason}"));
                        }
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.requests.remove(&request_id);
                match error {
                    // The peer does not sync: nothing to report.
                    OutboundFailure::UnsupportedProtocols => {
                        self.sessions.remove(&peer);
                    }
                    error => self.fail(peer, error.to_string()),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.counters.sync_failed();
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
        self.counters.sync_session();
        tracing::debug!(%peer, ?session, "sync session complete");
        self.emit(NetabaseEvent::Synced {
            peer,
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
        self.counters.sync_failed();
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
            .write_request(&SYNC_PROTOCOL, &mut out, vec![0; 9])
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
