//! The libp2p side: the composed behaviour, the node identity and the swarm.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use libp2p::identity::Keypair;
use libp2p::kad::{self, StoreInserts};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Swarm, SwarmBuilder, connection_limits, identify, mdns, noise, request_response, tcp, yamux,
};
use netabase_store::backend::{Backend, ReadTxn, WriteTxn};
use netabase_store::schema::NetabaseDefinitionTrait;

use crate::acks::DurableKad;
use crate::config::{IDENTIFY_PROTOCOL, NetabaseConfig};
use crate::error::{Error, Result};
use crate::sync_protocol::SyncCodec;
use crate::view::RecordView;

/// The table that holds the node's own data (its identity).
pub const NODE_TABLE: &str = "__netabase/node";
const IDENTITY_KEY: &[u8] = b"identity";

/// The behaviours of a node. Connection limits come first so that a refused connection
/// never reaches the others.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour<D: NetabaseDefinitionTrait, B: Backend> {
    pub(crate) limits: connection_limits::Behaviour,
    /// The peers the application disconnected, which the node does not dial.
    pub(crate) parted: crate::parted::Parted,
    pub(crate) kad: DurableKad<RecordView<D, B>>,
    pub(crate) identify: Toggle<identify::Behaviour>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Reconciliation with peers, on nodes with synced models.
    pub(crate) sync: Toggle<request_response::Behaviour<SyncCodec>>,
    /// Live updates between replicas (only on a node that replicates models).
    pub(crate) gossip: Toggle<libp2p::gossipsub::Behaviour>,
}

/// The node's keypair: read from the database, or generated and stored on first start,
/// so a restarted node keeps its `PeerId` (and with it its place in the DHT and the
/// records it published). Runs on the storage worker, when it opens the database.
pub(crate) fn load_or_create_identity<B: Backend>(backend: &B) -> Result<Keypair> {
    if let Some(bytes) = backend.begin_read()?.get(NODE_TABLE, IDENTITY_KEY)? {
        return Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Identity(e.to_string()));
    }
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair
        .to_protobuf_encoding()
        .map_err(|e| Error::Identity(e.to_string()))?;
    let txn = backend.begin_write()?;
    txn.put(NODE_TABLE, IDENTITY_KEY, &bytes)?;
    txn.commit()?;
    Ok(keypair)
}

fn kad_config(config: &NetabaseConfig) -> kad::Config {
    let mut kad = kad::Config::new(config.kad_protocol.clone());
    kad.set_record_filtering(StoreInserts::FilterBoth)
        .set_replication_factor(config.replication_factor)
        .set_record_ttl(config.record_ttl)
        .set_provider_record_ttl(config.provider_record_ttl)
        .set_replication_interval(config.replication_interval)
        .set_publication_interval(config.publication_interval)
        .set_provider_publication_interval(config.provider_publication_interval)
        .set_query_timeout(config.query_timeout)
        .set_max_packet_size(config.max_packet_size());
    kad
}

fn behaviour<D: NetabaseDefinitionTrait, B: Backend>(
    key: &Keypair,
    config: &NetabaseConfig,
    store: RecordView<D, B>,
    sync_refused: Arc<AtomicU64>,
) -> std::result::Result<Behaviour<D, B>, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config(config));
    kad.set_mode(config.kad_mode);
    let identify = config.identify.then(|| {
        identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("netabase/{}", env!("CARGO_PKG_VERSION"))),
        )
    });
    let mdns = if config.mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            peer_id,
        )?)
    } else {
        None
    };
    let gossip = if config.replication.models.is_none() {
        None
    } else {
        Some(crate::live::behaviour(key, config, D::NAME)?)
    };
    Ok(Behaviour {
        gossip: gossip.into(),
        limits: connection_limits::Behaviour::new(config.connection_limits.to_libp2p()),
        parted: crate::parted::Parted::default(),
        kad: DurableKad::new(kad),
        identify: identify.into(),
        mdns: mdns.into(),
        sync: (!config.replication.models.is_none())
            .then(|| {
                crate::sync_protocol::behaviour(
                    config.max_sync_message_bytes,
                    config.query_timeout,
                    sync_refused,
                )
            })
            .into(),
    })
}

/// Where the system keeps its resolver configuration, read by [`SwarmBuilder::with_dns`].
const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The swarm of a node: TCP (noise, yamux) and QUIC, with DNS resolution.
///
/// DNS uses the system's resolver configuration when it can be read. Without one (many
/// minimal containers have no `/etc/resolv.conf`) the node still starts, with hickory's
/// default resolvers, instead of failing: DNS names in addresses are rare for a DHT, and
/// a node that cannot start is worse than one that resolves through public servers.
pub(crate) fn build_swarm<D: NetabaseDefinitionTrait, B: Backend>(
    keypair: Keypair,
    config: &NetabaseConfig,
    store: RecordView<D, B>,
    sync_refused: Arc<AtomicU64>,
) -> Result<Swarm<Behaviour<D, B>>> {
    let idle = config.idle_connection_timeout;
    let transports = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| Error::Transport {
            what: "tcp",
            reason: e.to_string(),
        })?
        .with_quic();
    // The two DNS set-ups give builders of different types; each finishes the same way.
    macro_rules! finish {
        ($builder:expr) => {
            $builder
                .with_behaviour(|key| behaviour(key, config, store, sync_refused))
                .map_err(|e| Error::Transport {
                    what: "behaviour",
                    reason: e.to_string(),
                })?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        };
    }
    let swarm = if std::fs::metadata(SYSTEM_RESOLV_CONF).is_ok() {
        finish!(transports.with_dns().map_err(|e| Error::Transport {
            what: "dns",
            reason: e.to_string(),
        })?)
    } else {
        finish!(transports.with_dns_config(
            libp2p::dns::ResolverConfig::default(),
            libp2p::dns::ResolverOpts::default(),
        ))
    };
    Ok(swarm)
}
