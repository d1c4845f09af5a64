//! Netabase store: typed models with primary and secondary keys over interchangeable
//! embedded backends.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod codec;
pub mod config;
mod error;
#[cfg(feature = "libp2p")]
pub mod kad;
#[cfg_attr(docsrs, doc(cfg(any(feature = "threaded", feature = "indexeddb"))))]
pub mod nonblocking;
pub mod rules;
pub mod schema;
pub mod sync;
pub mod typed;

pub use config::{BackendStore, ConfiguredBackend, FileConfig};
pub use typed::batch::Batch;
pub use typed::changes::{Change, ChangeSet, TypedChange};
pub use typed::meta::{IndexBuild, OpenOptions};
pub use typed::migrate::MigrateProgress;
pub use typed::store::{FORMAT_VERSION, META_TABLE, NetabaseStore, OpenStore};
pub use typed::store::{StoreStats, TableStats};
pub use typed::tree::Tree;
pub use typed::txn::{ReadOnly, ReadWrite, TreeView, TxnGuard};
pub use typed::watch;
pub use typed::watch::Subscription;

/// A store on the embedded default, redb.
#[cfg(feature = "redb")]
pub type RedbStore<D> = NetabaseStore<D, backend::redb::RedbBackend>;
/// A store on sled.
#[cfg(feature = "sled")]
pub type SledStore<D> = NetabaseStore<D, backend::sled::SledBackend>;
/// An in-memory store.
pub type MemoryStore<D> = NetabaseStore<D, backend::memory::MemoryBackend>;

/// Everything a user of the store needs, in one import: `use netabase_store::prelude::*;`.
pub mod prelude {
    pub use crate::backend::Backend;
    pub use crate::codec::key::{KeyCodec, PrimaryKeyCodec};
    pub use crate::config::{BackendStore, FileConfig};
    pub use crate::error::{NetabaseError, Result as NetabaseResult};
    pub use crate::rules::{Child, Link, OnDelete};
    pub use crate::schema::{
        DiscriminantTrait, NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum,
        SecondaryKeyField, UniqueKeyField,
    };
    pub use crate::typed::batch::Batch;
    pub use crate::typed::changes::{Change, ChangeSet};
    pub use crate::typed::store::{NetabaseStore, OpenStore};
    pub use crate::typed::tree::Tree;
    pub use crate::typed::txn::{ReadOnly, ReadWrite, TreeView, TxnGuard};
    pub use netabase_macros::*;
}

pub use error::ClosedError;
pub use error::InactiveError;
pub use error::{
    BackendError, ConfigError, ConflictError, CorruptedError, DecodeError, DecodeReason,
    EncodeError, FormatError, IoError, PoisonedError, ReadOnlyError, SchemaError, UniqueViolation,
    VersionError, VersionProblem,
};
pub use error::{BoxedError, NetabaseError, Result};
pub use error::{DanglingLinkError, InvalidError, StillReferencedError};
pub use error::{ShapeError, TransformError, TransformProblem};
pub use error::{SyncConflict, SyncError, SyncProblem};

/// Re-exports used by the code that the macros generate; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use postcard;
    pub use serde;
}

pub use serde;
