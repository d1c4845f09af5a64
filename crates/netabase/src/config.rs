//! [`NetabaseConfig`]: everything a node needs to start, with sensible defaults.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::kad::{Mode, Quorum};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use netabase_store::kad::KadStoreConfig;
use netabase_store::sync::WriterId;

use crate::replication::{Replicated, Replication, WritePolicy};

/// The Kademlia protocol name of netabase: a private DHT, apart from the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/netabase/kad/1.0.0");

/// The Identify protocol version announced by netabase nodes.
pub const IDENTIFY_PROTOCOL: &str = "/netabase/id/1.0.0";

/// Room in a Kademlia message for everything but the value: key, publisher, TTL,
/// framing. `max_packet_size` is the store's maximum value size plus this.
pub const PACKET_OVERHEAD: usize = 16 * 1024;

/// Where a node keeps its models, its DHT records and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageConfig {
    /// A redb database file: records and identity survive a restart.
    Redb(PathBuf),
    /// A redb database in a temporary directory, deleted when the node is dropped.
    TempRedb,
    /// In memory (redb's in-memory storage): a new identity and no records at every
    /// start.
    Memory,
}

/// Connection limits, enforced by `libp2p::connection_limits`; `None` means unlimited.
/// A connection over a limit is refused and reported as
/// [`NetabaseEvent::ConnectionRefused`](crate::NetabaseEvent::ConnectionRefused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Established inbound connections.
    pub max_established_incoming: Option<u32>,
    /// Established outbound connections.
    pub max_established_outgoing: Option<u32>,
    /// Established connections in total.
    pub max_established: Option<u32>,
    /// Established connections to one peer.
    pub max_established_per_peer: Option<u32>,
    /// Inbound connections still being negotiated.
    pub max_pending_incoming: Option<u32>,
    /// Outbound connections still being negotiated.
    pub max_pending_outgoing: Option<u32>,
}

impl ConnectionLimits {
    /// The same limits, with at most `max` established inbound connections.
    pub fn with_max_established_incoming(mut self, max: Option<u32>) -> Self {
        self.max_established_incoming = max;
        self
    }
    /// The same limits, with at most `max` established outbound connections.
    pub fn with_max_established_outgoing(mut self, max: Option<u32>) -> Self {
        self.max_established_outgoing = max;
        self
    }
    /// The same limits, with at most `max` established connections in total.
    pub fn with_max_established(mut self, max: Option<u32>) -> Self {
        self.max_established = max;
        self
    }
    /// The same limits, with at most `max` established connections per peer.
    pub fn with_max_established_per_peer(mut self, max: Option<u32>) -> Self {
        self.max_established_per_peer = max;
        self
    }

    pub(crate) fn to_libp2p(self) -> libp2p::connection_limits::ConnectionLimits {
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(self.max_established_incoming)
            .with_max_established_outgoing(self.max_established_outgoing)
            .with_max_established(self.max_established)
            .with_max_established_per_peer(self.max_established_per_peer)
            .with_max_pending_incoming(self.max_pending_incoming)
            .with_max_pending_outgoing(self.max_pending_outgoing)
    }
}

/// The configuration of a [`Netabase`](crate::Netabase) node.
///
/// Build it from [`NetabaseConfig::default`] (listen on every interface, mDNS on,
/// in-memory storage) or [`NetabaseConfig::loopback`] (127.0.0.1 only, no mDNS: tests
/// and local experiments), then adjust with the `with_*` methods.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use netabase::NetabaseConfig;
///
/// let config = NetabaseConfig::default()
///     .with_storage_path("node.redb")
///     .with_mdns(false)
///     .with_record_ttl(Some(Duration::from_secs(3600)));
/// assert_eq!(config.kad_protocol.as_ref(), "/netabase/kad/1.0.0");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetabaseConfig {
    /// Addresses to listen on (port 0 picks a free port).
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers added to the routing table and dialled at start; a bootstrap runs if any.
    pub bootstrap_peers: Vec<(PeerId, Multiaddr)>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Run Identify; it feeds Kademlia with the listen addresses of peers that speak
    /// [`NetabaseConfig::kad_protocol`]. Without it, peers must be added by hand.
    pub identify: bool,
    /// Connection limits.
    pub connection_limits: ConnectionLimits,
    /// The Kademlia protocol name; nodes with different names do not talk.
    pub kad_protocol: StreamProtocol,
    /// The Kademlia mode: `Some(Mode::Server)` (the default) answers queries and stores
    /// records for others; `None` lets libp2p choose (client until an external address
    /// is confirmed).
    pub kad_mode: Option<Mode>,
    /// How many peers a record is stored on (Kademlia's `k`).
    pub replication_factor: NonZeroUsize,
    /// How many peers must store a put for it to succeed.
    pub quorum: Quorum,
    /// How long other peers keep a record published by this node (`None`: forever).
    pub record_ttl: Option<Duration>,
    /// How long other peers keep a provider record of this node.
    pub provider_record_ttl: Option<Duration>,
    /// How often every stored record (this node's and those it holds for others) is
    /// re-sent to the closest peers of its key (`None`: only with each publication
    /// run). Records are signed by their author, so any peer may replicate any valid
    /// record: a record outlives its publisher's absence, and a newer version or a
    /// tombstone reaches the peers that missed it. Every hour by default.
    pub replication_interval: Option<Duration>,
    /// How often this node republishes the records it published (`None`: never).
    pub publication_interval: Option<Duration>,
    /// How often this node re-announces the keys it provides.
    pub provider_publication_interval: Option<Duration>,
    /// How long a DHT query may run.
    pub query_timeout: Duration,
    /// How often expired records are deleted from the store.
    pub sweep_interval: Duration,
    /// How long an unused connection stays open.
    pub idle_connection_timeout: Duration,
    /// Limits of the record store; `max_value_bytes` also sets the Kademlia packet size.
    pub store_limits: KadStoreConfig,
    /// Where the node keeps its data.
    pub storage: StorageConfig,
    /// Capacity of the command channel from handles to the node task.
    pub command_buffer: usize,
    /// Capacity of the event broadcast channel; a slower subscriber misses events and
    /// is told how many (`RecvError::Lagged`).
    pub event_buffer: usize,
    /// The models this node replicates and the write permissions it enforces (see
    /// [`crate::replication`]). Nothing replicated and everything open by default.
    pub replication: Replication,
    /// How often a node reconciles with each connected peer, besides when it connects
    /// (`None`: only on connection).
    pub sync_interval: Option<Duration>,
    /// The largest reconciliation message sent or accepted, in bytes; a peer sending a
    /// larger one is refused before its body is read.
    pub max_sync_message_bytes: usize,
}

impl Default for NetabaseConfig {
    fn default() -> Self {
        let listen = ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"];
        NetabaseConfig {
            listen_addrs: listen.iter().filter_map(|a| a.parse().ok()).collect(),
            bootstrap_peers: Vec::new(),
            mdns: true,
            identify: true,
            connection_limits: ConnectionLimits::default(),
            kad_protocol: KAD_PROTOCOL,
            kad_mode: Some(Mode::Server),
            replication_factor: libp2p::kad::K_VALUE,
            quorum: Quorum::One,
            record_ttl: Some(Duration::from_secs(36 * 60 * 60)),
            provider_record_ttl: Some(Duration::from_secs(48 * 60 * 60)),
            replication_interval: Some(Duration::from_secs(60 * 60)),
            publication_interval: Some(Duration::from_secs(22 * 60 * 60)),
            provider_publication_interval: Some(Duration::from_secs(12 * 60 * 60)),
            query_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(60),
            idle_connection_timeout: Duration::from_secs(60),
            store_limits: KadStoreConfig::default(),
            storage: StorageConfig::Memory,
            command_buffer: 64,
            event_buffer: 1024,
            replication: Replication::default(),
            sync_interval: Some(Duration::from_secs(60)),
            max_sync_message_bytes: 64 * 1024 * 1024,
        }
    }
}

impl NetabaseConfig {
    /// A node on 127.0.0.1 (TCP, free port), without mDNS, storing in memory: for tests,
    /// examples and several nodes in one process.
    pub fn loopback() -> Self {
        NetabaseConfig {
            listen_addrs: "/ip4/127.0.0.1/tcp/0".parse().into_iter().collect(),
            mdns: false,
            ..Self::default()
        }
    }

    /// The Kademlia packet size: the store's maximum value size plus
    /// [`PACKET_OVERHEAD`], so a message can carry any value the store accepts, and
    /// little more.
    pub fn max_packet_size(&self) -> usize {
        self.store_limits
            .max_value_bytes
            .saturating_add(PACKET_OVERHEAD)
    }

    /// Listen on these addresses instead.
    pub fn with_listen_addrs(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.listen_addrs = addrs.into_iter().collect();
        self
    }
    /// Adds a bootstrap peer.
    pub fn with_bootstrap_peer(mut self, peer: PeerId, addr: Multiaddr) -> Self {
        self.bootstrap_peers.push((peer, addr));
        self
    }
    /// Turns mDNS discovery on or off.
    pub fn with_mdns(mut self, on: bool) -> Self {
        self.mdns = on;
        self
    }
    /// Turns Identify on or off.
    pub fn with_identify(mut self, on: bool) -> Self {
        self.identify = on;
        self
    }
    /// Sets the connection limits.
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connection_limits = limits;
        self
    }
    /// Sets the Kademlia protocol name.
    pub fn with_kad_protocol(mut self, protocol: StreamProtocol) -> Self {
        self.kad_protocol = protocol;
        self
    }
    /// Sets the Kademlia mode (`None`: automatic).
    pub fn with_kad_mode(mut self, mode: Option<Mode>) -> Self {
        self.kad_mode = mode;
        self
    }
    /// Sets the replication factor.
    pub fn with_replication_factor(mut self, factor: NonZeroUsize) -> Self {
        self.replication_factor = factor;
        self
    }
    /// Sets the write quorum.
    pub fn with_quorum(mut self, quorum: Quorum) -> Self {
        self.quorum = quorum;
        self
    }
    /// Sets the record TTL.
    pub fn with_record_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.record_ttl = ttl;
        self
    }
    /// Sets the provider record TTL.
    pub fn with_provider_record_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.provider_record_ttl = ttl;
        self
    }
    /// Sets the replication interval.
    pub fn with_replication_interval(mut self, interval: Option<Duration>) -> Self {
        self.replication_interval = interval;
        self
    }
    /// Sets the publication interval.
    pub fn with_publication_interval(mut self, interval: Option<Duration>) -> Self {
        self.publication_interval = interval;
        self
    }
    /// Sets the provider publication interval.
    pub fn with_provider_publication_interval(mut self, interval: Option<Duration>) -> Self {
        self.provider_publication_interval = interval;
        self
    }
    /// Sets the query timeout.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }
    /// Sets how often expired records are swept.
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }
    /// Sets the idle connection timeout.
    pub fn with_idle_connection_timeout(mut self, timeout: Duration) -> Self {
        self.idle_connection_timeout = timeout;
        self
    }
    /// Sets how long a tombstone (a signed removal) is kept and wins over older copies
    /// ([`KadStoreConfig::tombstone_ttl`]).
    pub fn with_tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.store_limits.tombstone_ttl = ttl;
        self
    }
    /// Sets the record store limits.
    pub fn with_store_limits(mut self, limits: KadStoreConfig) -> Self {
        self.store_limits = limits;
        self
    }
    /// Sets where the node keeps its data.
    pub fn with_storage(mut self, storage: StorageConfig) -> Self {
        self.storage = storage;
        self
    }
    /// Keeps the node's data in the redb file at `path`.
    pub fn with_storage_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.storage = StorageConfig::Redb(path.into());
        self
    }
    // ----- replication and permissions ----------------------------------------------

    /// Replicates the models with these names: every valid signed record of them this
    /// node receives is applied to its typed store, and it exchanges live updates with
    /// the other replicas of the definition. The store is opened with sync on for
    /// them (recorded in the database, see `OpenOptions::sync_model`).
    pub fn replicate<S: Into<String>>(mut self, models: impl IntoIterator<Item = S>) -> Self {
        let mut names = match std::mem::take(&mut self.replication.models) {
            Replicated::Models(names) => names,
            _ => Default::default(),
        };
        names.extend(models.into_iter().map(Into::into));
        self.replication.models = Replicated::Models(names);
        self
    }
    /// Replicates every model of the definition ([`NetabaseConfig::replicate`]).
    pub fn replicate_all(mut self) -> Self {
        self.replication.models = Replicated::All;
        self
    }
    /// Sets the write policy of the definition's models without an override.
    pub fn with_write_policy(mut self, policy: WritePolicy) -> Self {
        self.replication.permissions.default = policy;
        self
    }
    /// Sets the write policy of the model `model`, overriding the definition's.
    pub fn with_model_policy(mut self, model: impl Into<String>, policy: WritePolicy) -> Self {
        self.replication
            .permissions
            .models
            .insert(model.into(), policy);
        self
    }
    /// Declares `admin` (an author id: an ed25519 public key) allowed to sign group
    /// memberships.
    pub fn with_admin(mut self, admin: WriterId) -> Self {
        self.replication.permissions.admins.insert(admin);
        self
    }
    /// Sets how often the node reconciles with each connected peer
    /// ([`NetabaseConfig::sync_interval`]).
    pub fn with_sync_interval(mut self, interval: Option<Duration>) -> Self {
        self.sync_interval = interval;
        self
    }
    /// Sets the largest reconciliation message
    /// ([`NetabaseConfig::max_sync_message_bytes`]).
    pub fn with_max_sync_message_bytes(mut self, max: usize) -> Self {
        self.max_sync_message_bytes = max;
        self
    }
}
