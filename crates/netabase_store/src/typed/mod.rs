//! The typed layer: models in, bytes out, indexes kept exact. Written once over the
//! backend trait.
//!
//! Reads go through `read.rs`; every write goes through the one pipeline of
//! `write.rs` ([`write::Writer`]), whose index maintenance is planned by the pure code
//! of `plan.rs` and whose commit point yields a [`changes::ChangeSet`].

pub mod batch;
pub mod changes;
pub(crate) mod chunk;
pub mod dynamic;
pub(crate) mod links;
pub mod meta;
pub mod migrate;
mod navigate;
pub mod plan;
pub(crate) mod read;
pub mod shape;
pub mod store;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod write;

pub use read::{ModelIter, SecondaryIter};
