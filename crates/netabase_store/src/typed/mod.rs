//! The typed layer: models in, bytes out, indexes kept exact. Written once over the
//! backend trait.

pub mod batch;
pub mod exec;
pub mod plan;
pub mod store;
pub mod tree;
pub mod txn;
