//! The error type of the node.

use libp2p::Multiaddr;
use libp2p::kad::RecordKey;
use netabase_store::NetabaseError;
use netabase_store::kad::{KadStoreError, RecordError};
use thiserror::Error;

/// Everything that can go wrong in a [`Netabase`](crate::Netabase) node.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The local store failed.
    #[error("local store: {0}")]
    Store(#[from] NetabaseError),
    /// The record store refused or failed a write.
    #[error("{0}")]
    RecordStore(#[from] KadStoreError),
    /// A record is not a valid record of the definition.
    #[error("invalid record: {0}")]
    InvalidRecord(#[from] RecordError),
    /// The transport could not be built.
    #[error("cannot build the {what} transport: {reason}")]
    Transport {
        /// Which transport.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A listen address was refused or its listener failed.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A dial failed at once.
    #[error("cannot dial {address}: {reason}")]
    Dial {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The node identity stored in the database does not decode.
    #[error("the node identity stored in the database is invalid: {0}")]
    Identity(String),
    /// The node has stopped (closed, or its task ended).
    #[error("the node has stopped")]
    Stopped,
    /// The node was already started.
    #[error("the node is already started")]
    AlreadyStarted,
    /// Fewer peers than the quorum stored a put. The record is stored locally and will
    /// be republished.
    #[error(
        "record {key:?} was stored on {stored_on} peer(s), fewer than the quorum of {required}"
    )]
    QuorumFailed {
        /// The record key.
        key: RecordKey,
        /// How many peers stored it.
        stored_on: usize,
        /// How many were required.
        required: usize,
    },
    /// A DHT query timed out.
    #[error("{operation} timed out")]
    Timeout {
        /// The operation, e.g. `"get_record"`.
        operation: &'static str,
    },
    /// The routing table is empty, so there is no one to bootstrap from.
    #[error("no known peers to bootstrap from")]
    NoKnownPeers,
    /// A record of another model was returned for a key (a definition mismatch between
    /// peers).
    #[error("the record at this key holds another model than the one asked for")]
    ModelMismatch,
    /// A reconciliation was asked of a node that replicates no model
    /// ([`NetabaseConfig::replicate`](crate::NetabaseConfig::replicate)).
    #[error("this node replicates no model: see `NetabaseConfig::replicate`")]
    NotSynced,

    // ----- replication and permissions ----------------------------------------------
    /// The write permissions refuse this node's write (see
    /// [`Permissions`](crate::Permissions)); nothing was written.
    #[error("writing {key:?} is not permitted: {reason}")]
    NotPermitted {
        /// The record key.
        key: RecordKey,
        /// Why.
        reason: String,
    },
    /// The permissions stored in the database by
    /// [`Netabase::set_permissions`](crate::Netabase::set_permissions) (table
    /// `__netabase/node`, key `permissions`) do not decode: the node does not start
    /// rather than enforce other permissions than the ones set.
    #[error(
        "the permissions stored in the node's database (`__netabase/node`, `permissions`) are invalid: {0}"
    )]
    StoredPermissions(String),
}

/// `Result` with the node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
