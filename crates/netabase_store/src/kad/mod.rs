//! A persistent Kademlia record store and the typed bridge between models and DHT
//! records (feature `libp2p`).
//!
//! [`KadStore`] implements [`libp2p::kad::store::RecordStore`] on top of the
//! [`Backend`](crate::backend::Backend) trait, so the DHT records of a node live in the
//! same database as its models, on every backend, in tables of their own:
//!
//! | table | key | value |
//! |---|---|---|
//! | [`RECORDS_TABLE`] | record key | format byte ++ postcard(signed envelope, publisher, wall-clock expiry) |
//! | [`REPLICAS_TABLE`] | record key | as [`RECORDS_TABLE`]: the signed copies of a replica |
//! | [`PROVIDERS_TABLE`] | record key | format byte ++ postcard(providers, oldest first) |
//! | [`PROVIDED_TABLE`] | record key | format byte ++ postcard(the local provider record) |
//! | [`EXPIRY_TABLE`] | kind ++ time ++ table tag ++ record key | empty: the expiry index |
//!
//! Expiry is stored as wall-clock time (a [`std::time::Instant`] means nothing after a
//! restart), so a record that expired while the node was down is not served when it comes
//! back. [`KadStore::sweep_expired`] deletes expired records and provider records; the
//! node calls it periodically. It reads only what is due, from [`EXPIRY_TABLE`]: every
//! expiry and every tombstone's stamp, in time order, kept in the transaction of each
//! write (a store written before the index existed gets it when it is opened).
//!
//! A node that replicates a model keeps the signed copy of each of its records as a
//! **replica** ([`KadStore::put_replica_in`]), in [`REPLICAS_TABLE`]: apart from the
//! records it holds for the DHT, so that [`KadStoreConfig::max_records`] and the sweep
//! a full store runs concern the DHT's records only. A key is held in one of the two
//! tables, never both; every read looks in both.
//!
//! Every record is signed by its author and versioned ([`signed`]): the store verifies
//! each record before storing it and keeps per key the version with the greatest stamp;
//! removals are signed tombstones.
//!
//! The typed side is [`DefinitionRecordExt`]: every definition can turn a model into a
//! [`Record`](libp2p::kad::Record) and back, and [`record_key`] computes the record key of a
//! model from its primary key alone, so any peer can look a model up by key.

mod encoding;
mod expiry;
pub mod signed;
mod store;
mod typed;

pub use signed::{
    Envelope, RecordSigner, SignedRecord, SignedRecordError, UnverifiedRecord, VERIFY_CHUNK,
    author_of, verify_batch, wall_millis,
};
pub use store::{BatchPut, KadStore, KadStoreConfig, KadStoreError, SweepStats};
pub use typed::{
    DefinitionRecordExt, RecordError, RecordKeyParts, parse_record_key, record_key, record_key_for,
    record_key_of, validate_record,
};

/// The table of DHT value records.
pub const RECORDS_TABLE: &str = "__netabase/kad/records";
/// The table of a replica's signed copies of replicated records (and memberships): no
/// expiry, no record limit; a key held here is not in [`RECORDS_TABLE`].
pub const REPLICAS_TABLE: &str = "__netabase/kad/replicas";
/// The table of provider records, one entry per record key.
pub const PROVIDERS_TABLE: &str = "__netabase/kad/providers";
/// The table of the keys this node provides itself.
pub const PROVIDED_TABLE: &str = "__netabase/kad/provided";
/// The expiry index: one empty entry per expiry (of a record, a replica's copy or a
/// provider record) and per tombstone stamp, keyed so that byte order is time order;
/// the sweeps read only its due prefix.
pub const EXPIRY_TABLE: &str = "__netabase/kad/expiry";
