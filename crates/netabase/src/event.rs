//! Events broadcast by a node, and its counters.

use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::kad::{Mode, RecordKey};
use libp2p::{Multiaddr, PeerId};
use netabase_store::kad::{RecordError, SignedRecordError};

/// How a peer was discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discovery {
    /// Through mDNS on the local network.
    Mdns,
    /// Through Identify: the peer speaks our Kademlia protocol.
    Identify,
}

/// Why an inbound record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The value is larger than the store's limit.
    TooLarge,
    /// The key is not a record key of this node's definition.
    MalformedKey,
    /// The value does not decode as the model named by the key.
    Undecodable,
    /// The value is a model whose key is not the record key.
    KeyMismatch,
    /// The store is full (record count or provider keys).
    StoreFull,
    /// The record is not signed (its value is not a signed envelope).
    Unsigned,
    /// The value was altered after it was signed.
    TamperedValue,
    /// The signature does not verify under the author the record names.
    BadSignature,
    /// The record was signed by one peer (the sender, or the publisher it names) but
    /// claims another as its author.
    StolenAuthor,
    /// A newer version of the key is held (the winner rule keeps it), or the record is
    /// an expired tombstone.
    Superseded,
    /// The record's stamp lies further in the future than the allowed clock skew.
    FutureStamp,
    /// The write permissions refuse its author this write (a non-member, an update of
    /// someone else's record under `AuthorOnly`, a membership change not signed by an
    /// admin, an application rule).
    NotPermitted,
}

impl RefusalKind {
    pub(crate) fn of(error: &RecordError) -> Self {
        match error {
            RecordError::ValueTooLarge { .. } => RefusalKind::TooLarge,
            RecordError::UndecodableValue { .. } | RecordError::NonCanonicalValue { .. } => {
                RefusalKind::Undecodable
            }
            RecordError::KeyMismatch { .. } => RefusalKind::KeyMismatch,
            _ => RefusalKind::MalformedKey,
        }
    }

    pub(crate) fn of_signed(error: &SignedRecordError) -> Self {
        match error {
            SignedRecordError::TamperedValue => RefusalKind::TamperedValue,
            SignedRecordError::BadSignature { .. } => RefusalKind::BadSignature,
            SignedRecordError::StolenAuthorship { .. } => RefusalKind::StolenAuthor,
            SignedRecordError::FutureStamp { .. } => RefusalKind::FutureStamp,
            SignedRecordError::Superseded { .. } | SignedRecordError::ExpiredTombstone { .. } => {
                RefusalKind::Superseded
            }
            _ => RefusalKind::Unsigned,
        }
    }
}

/// Where a refused record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordOrigin {
    /// A peer asked this node to store it (`PUT_VALUE`).
    InboundPut,
    /// A replica pushed it as a live update (gossip).
    LiveUpdate,
    /// A peer announced itself as a provider (`ADD_PROVIDER`).
    InboundProvider,
    /// A peer returned it for a `get_record` of this node.
    GetResult,
    /// A peer sent it in a reconciliation (catch-up).
    Sync,
}

/// What a node broadcasts to its subscribers
/// ([`Netabase::subscribe_to_broadcasts`](crate::Netabase::subscribe_to_broadcasts)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NetabaseEvent {
    /// A listener is ready on `address`.
    ListeningOn {
        /// The address.
        address: Multiaddr,
    },
    /// A connection to `peer` was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Its address (the remote address of the connection).
        address: Multiaddr,
    },
    /// The last connection to `peer` was closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A connection was refused by a connection limit.
    ConnectionRefused {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// Whether the connection was inbound.
        inbound: bool,
        /// The limit that refused it.
        reason: String,
    },
    /// A peer was discovered and its address learnt.
    PeerDiscovered {
        /// The peer.
        peer: PeerId,
        /// One of its addresses.
        address: Multiaddr,
        /// How.
        via: Discovery,
    },
    /// A peer entered the Kademlia routing table.
    RoutingUpdated {
        /// The peer.
        peer: PeerId,
    },
    /// A record sent by `source` passed validation and was stored.
    RecordStored {
        /// The record key.
        key: RecordKey,
        /// The sending peer.
        source: PeerId,
    },
    /// A provider record passed validation and was stored.
    ProviderStored {
        /// The key provided.
        key: RecordKey,
        /// The provider.
        provider: PeerId,
    },
    /// A record was refused; nothing of it reached the store.
    RecordRefused {
        /// The record key.
        key: RecordKey,
        /// The peer it came from, when known.
        source: Option<PeerId>,
        /// Where it came from.
        origin: RecordOrigin,
        /// Why, in one word.
        kind: RefusalKind,
        /// Why, in a sentence.
        reason: String,
    },
    /// The periodic sweep deleted expired records.
    RecordsExpired {
        /// Value records deleted.
        records: usize,
        /// Provider records deleted.
        providers: usize,
    },
    /// The local store failed; the operation that hit it was skipped.
    StoreError {
        /// What failed.
        message: String,
    },
    /// The Kademlia mode changed.
    ModeChanged {
        /// The new mode.
        mode: Mode,
    },
    /// A reconciliation with `peer` is complete: both sides now hold the same
    /// versions of the synced models (but for refused records). Both ends report it,
    /// each with its own figures: the node that started it (`role`
    /// [`SyncRole::Initiator`]) when the last answer is in, the peer that answered it
    /// ([`SyncRole::Responder`]) when it answers that it has nothing left to say, or
    /// when the initiator tells it that the session is over.
    Synced {
        /// The peer.
        peer: PeerId,
        /// Which side of the session this node was.
        role: SyncRole,
        /// Bytes of reconciliation messages this node sent.
        bytes_sent: u64,
        /// Bytes of reconciliation messages the peer sent.
        bytes_received: u64,
        /// Request-response round trips (on the responder: requests answered).
        round_trips: u64,
        /// Records received and written here (those the merge rule chose).
        records_applied: u64,
        /// Records received whose signature (or policy) check failed: not written.
        records_refused: u64,
        /// How long the session took.
        elapsed: std::time::Duration,
    },
    /// A reconciliation with `peer` failed (a refused or oversized message, a
    /// timeout, a storage failure); what was applied before stays applied.
    SyncFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A peer replicating this node's definition joined its live updates (it
    /// subscribed to the definition's topic): from now on it receives this node's
    /// writes as they commit.
    ReplicaJoined {
        /// The peer.
        peer: PeerId,
    },
}

/// Which side of a catch-up session a node was ([`NetabaseEvent::Synced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncRole {
    /// This node started the session (it sends requests).
    Initiator,
    /// The peer started it; this node answered its requests.
    Responder,
}

/// A snapshot of a node's counters ([`Netabase::stats`](crate::Netabase::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Inbound records validated and stored.
    pub records_accepted: u64,
    /// Inbound provider records stored.
    pub providers_accepted: u64,
    /// Records refused because they were too large.
    pub refused_too_large: u64,
    /// Records refused because their key is not a key of the definition.
    pub refused_malformed_key: u64,
    /// Records refused because the value does not decode.
    pub refused_undecodable: u64,
    /// Records refused because the value's key is not the record key.
    pub refused_key_mismatch: u64,
    /// Records refused because the store was full.
    pub refused_store_full: u64,
    /// Records refused because they were not signed.
    pub refused_unsigned: u64,
    /// Records refused because their value was altered after signing.
    pub refused_tampered: u64,
    /// Records refused because their signature did not verify.
    pub refused_bad_signature: u64,
    /// Records refused because they were signed by another peer than the author they
    /// claim.
    pub refused_stolen_author: u64,
    /// Records refused because a newer version of their key was held.
    pub refused_superseded: u64,
    /// Records refused because their stamp lay too far in the future.
    pub refused_future_stamp: u64,
    /// Connections refused by a connection limit.
    pub connections_refused: u64,
    /// Reconciliations this node started that completed.
    pub sync_sessions: u64,
    /// Reconciliations a peer started that completed (this node answered them).
    pub sync_sessions_answered: u64,
    /// Reconciliations (started here or by a peer) that failed.
    pub sync_failures: u64,
    /// Bytes of reconciliation messages sent (sessions of both sides).
    pub sync_bytes_sent: u64,
    /// Bytes of reconciliation messages received (sessions of both sides).
    pub sync_bytes_received: u64,
    /// Records received by reconciliation and written.
    pub sync_records_applied: u64,
    /// Records received by reconciliation whose signature check failed.
    pub sync_records_refused: u64,
    /// Reconciliation messages refused unread: over the size limit or malformed.
    pub sync_messages_refused: u64,
    /// Records refused by the write permissions.
    pub refused_not_permitted: u64,
    /// Live updates received from replicas and stored.
    pub live_updates_accepted: u64,
}

impl NodeStats {
    /// Every refused record, whatever the reason.
    pub fn records_refused(&self) -> u64 {
        self.refused_too_large
            + self.refused_malformed_key
            + self.refused_undecodable
            + self.refused_key_mismatch
            + self.refused_store_full
            + self.refused_unsigned
            + self.refused_tampered
            + self.refused_bad_signature
            + self.refused_stolen_author
            + self.refused_superseded
            + self.refused_future_stamp
            + self.refused_not_permitted
    }
}

/// The live counters, shared by the node task (writer) and the handles (readers).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    records_accepted: AtomicU64,
    providers_accepted: AtomicU64,
    refused: [AtomicU64; 12],
    live_updates_accepted: AtomicU64,
    connections_refused: AtomicU64,
    sync: [AtomicU64; 7],
    /// Shared with the sync codec, which refuses oversized messages before any event.
    sync_refused_messages: std::sync::Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn record_accepted(&self) {
        self.records_accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn live_update_accepted(&self) {
        self.live_updates_accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn provider_accepted(&self) {
        self.providers_accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn refused(&self, kind: RefusalKind) {
        let index = match kind {
            RefusalKind::TooLarge => 0,
            RefusalKind::MalformedKey => 1,
            RefusalKind::Undecodable => 2,
            RefusalKind::KeyMismatch => 3,
            RefusalKind::StoreFull => 4,
            RefusalKind::Unsigned => 5,
            RefusalKind::TamperedValue => 6,
            RefusalKind::BadSignature => 7,
            RefusalKind::StolenAuthor => 8,
            RefusalKind::Superseded => 9,
            RefusalKind::FutureStamp => 10,
            RefusalKind::NotPermitted => 11,
        };
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }
    fn add_sync(&self, index: usize, n: u64) {
        self.sync[index].fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn sync_session(&self) {
        self.add_sync(0, 1);
    }
    pub(crate) fn sync_answered(&self) {
        self.add_sync(6, 1);
    }
    pub(crate) fn sync_failed(&self) {
        self.add_sync(1, 1);
    }
    pub(crate) fn sync_sent(&self, bytes: usize) {
        self.add_sync(2, bytes as u64);
    }
    pub(crate) fn sync_received(&self, bytes: usize) {
        self.add_sync(3, bytes as u64);
    }
    pub(crate) fn sync_records(&self, applied: u64, refused: u64) {
        self.add_sync(4, applied);
        self.add_sync(5, refused);
    }
    pub(crate) fn sync_refused_messages(&self) -> std::sync::Arc<AtomicU64> {
        std::sync::Arc::clone(&self.sync_refused_messages)
    }
    pub(crate) fn snapshot(&self) -> NodeStats {
        let r = |i: usize| self.refused[i].load(Ordering::Relaxed);
        let s = |i: usize| self.sync[i].load(Ordering::Relaxed);
        NodeStats {
            records_accepted: self.records_accepted.load(Ordering::Relaxed),
            providers_accepted: self.providers_accepted.load(Ordering::Relaxed),
            refused_too_large: r(0),
            refused_malformed_key: r(1),
            refused_undecodable: r(2),
            refused_key_mismatch: r(3),
            refused_store_full: r(4),
            refused_unsigned: r(5),
            refused_tampered: r(6),
            refused_bad_signature: r(7),
            refused_stolen_author: r(8),
            refused_superseded: r(9),
            refused_future_stamp: r(10),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            sync_sessions: s(0),
            sync_sessions_answered: s(6),
            sync_failures: s(1),
            sync_bytes_sent: s(2),
            sync_bytes_received: s(3),
            sync_records_applied: s(4),
            sync_records_refused: s(5),
            sync_messages_refused: self.sync_refused_messages.load(Ordering::Relaxed),
            refused_not_permitted: r(11),
            live_updates_accepted: self.live_updates_accepted.load(Ordering::Relaxed),
        }
    }
}
