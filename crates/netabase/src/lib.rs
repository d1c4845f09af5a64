//! Netabase: a peer-to-peer database node.
//!
//! A [`Netabase`] node runs a libp2p swarm (Kademlia DHT, Identify, mDNS, connection
//! limits) whose DHT record store is the node's own `netabase_store` database. The
//! application talks to it through a cheap, cloneable handle: typed `put_record`,
//! `get_record`, provider announcements, and a broadcast of events.
//!
//! - Records are models of one definition. The record key of a model is computed from
//!   its primary key alone (see `netabase_store::kad`), so any peer can find
//!   `UserPrimaryKey(7)`; the value is the encoded model.
//! - Every record is signed by its author (the node identity, ed25519) over key, value
//!   and version stamp; any peer may replicate it. For one key every node keeps the
//!   version with the greatest stamp; removals are signed tombstones.
//! - Every inbound record is validated before it is stored: its signature must verify,
//!   it must decode as the model its key names, carry that model's key, fit the size
//!   limit, and win over the version held. Refusals are counted ([`Netabase::stats`])
//!   and broadcast ([`NetabaseEvent::RecordRefused`]).
//! - A node may replicate models ([`replication`]): every valid record of them it
//!   receives (DHT puts, live updates from the other replicas over gossipsub) is
//!   applied to its typed store with the record's own stamp, and write permissions
//!   (per definition and model, group memberships signed by an admin, application
//!   rules) are enforced on every inbound path and on its own writes.
//! - The node identity is stored in the database, so a restarted node keeps its
//!   `PeerId` and keeps serving and republishing its records.
//! - Kademlia runs under the private protocol name `/netabase/kad/1.0.0`.

mod acks;
mod config;
mod error;
mod event;
mod event_loop;
pub mod live;
mod node;
mod parted;
pub mod replication;
mod swarm;
pub mod sync_protocol;
mod view;
pub mod worker;

pub use config::{
    ConnectionLimits, IDENTIFY_PROTOCOL, KAD_PROTOCOL, NetabaseConfig, PACKET_OVERHEAD,
    StorageConfig,
};
pub use error::{Error, Result};
pub use event::{Discovery, NetabaseEvent, NodeStats, RecordOrigin, RefusalKind, SyncRole};
pub use node::{Netabase, PutOutcome};
pub use replication::{
    Membership, Permissions, PolicyReader, Replicated, Replication, WritePolicy, WriteRequest,
    WriteRule, membership_key,
};
pub use swarm::NODE_TABLE;
pub use view::NodeView;

/// The libp2p version this crate is built on, re-exported so applications name the
/// same types (`PeerId`, `Multiaddr`, `kad::Mode`).
pub use libp2p;
pub use netabase_store;

/// The README's examples (the store's and the node's), compiled and run as doctests
/// here, where both crates are available.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}
