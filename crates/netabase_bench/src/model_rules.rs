//! The models and records of the model-rules benchmark (`benches/model_rules.rs`) and of
//! its instruction counts (`src/bin/rules_profile.rs`): the same fields with no rules,
//! with an index, and with one validated field and one link.

use netabase_store::NetabaseStore;
use netabase_store::backend::Backend;
use netabase_store::prelude::*;

/// Two models with the same fields: `Plain` without rules, `Ruled` with a length rule
/// on `name` and a link from `owner` to `Owner`.
#[netabase_definition_module(RulesBench, RulesBenchKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The link target.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Owner {
        /// Unique id.
        #[primary_key]
        pub id: u64,
    }

    /// No rules.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Plain {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name.
        pub name: String,
        /// An owner id.
        pub owner: u64,
    }

    /// No rules, `owner` indexed: the index a link keeps, without the checks.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Indexed {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name.
        pub name: String,
        /// An owner id.
        #[secondary_key]
        pub owner: u64,
    }

    /// One validated field and one link.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Ruled {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name of 1 to 64 bytes.
        #[validate(len(min = 1, max = 64))]
        pub name: String,
        /// The owner, which must exist.
        #[link(Owner)]
        pub owner: u64,
    }
}

pub use schema::*;

/// How many `Owner` records the linked records point at.
pub const OWNERS: u64 = 100;

/// The primary key of record `i`.
pub fn key(i: u64) -> u64 {
    // A fixed permutation, so keys arrive in random order.
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// `n` records without rules.
pub fn plain(n: u64) -> Vec<Plain> {
    (0..n)
        .map(|i| Plain {
            id: key(i),
            name: format!("record number {i}"),
            owner: i % OWNERS,
        })
        .collect()
}

/// `n` records with one validated field and one link.
pub fn ruled(n: u64) -> Vec<Ruled> {
    plain(n)
        .into_iter()
        .map(|p| Ruled {
            id: p.id,
            name: p.name,
            owner: p.owner,
        })
        .collect()
}

/// `n` records with `owner` indexed.
pub fn indexed(n: u64) -> Vec<Indexed> {
    plain(n)
        .into_iter()
        .map(|p| Indexed {
            id: p.id,
            name: p.name,
            owner: p.owner,
        })
        .collect()
}

/// A store over `backend` holding the [`OWNERS`] link targets.
///
/// # Errors
/// Whatever the store reports.
pub fn store<B: Backend>(backend: B) -> netabase_store::Result<NetabaseStore<RulesBench, B>> {
    let store = NetabaseStore::from_backend(backend)?;
    store
        .open_tree::<Owner>()
        .put_many((0..OWNERS).map(|id| Owner { id }))?;
    Ok(store)
}
