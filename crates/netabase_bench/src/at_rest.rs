//! The at-rest workloads: a compressible document model, and a store for each value
//! transform (plain, LZ4, zstd, encrypted, zstd + encrypted), so that the costs of
//! compression and encryption are measured against plain values in the same run.

use netabase_store::NetabaseStore;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::transform::{Compression, EncryptionKey, Transformed, Transforms};

/// The schema of the at-rest benchmarks.
#[netabase_store::prelude::netabase_definition_module(DocDefinition, DocKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A text document: compressible, like most application records.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(DocDefinition)]
    pub struct Doc {
        /// The primary key.
        #[primary_key]
        pub id: u64,
        /// The author; about ten documents share each.
        #[secondary_key]
        pub author: u32,
        /// A short title.
        pub title: String,
        /// About 500 bytes of text drawn from a small vocabulary.
        pub body: String,
        /// A few tags.
        pub tags: Vec<String>,
    }
}

pub use schema::{Doc, DocDefinition};

/// A store of documents over a transformed redb backend.
pub type DocStore = NetabaseStore<DocDefinition, Transformed<RedbBackend>>;

/// The transforms measured, by name; `plain` is the baseline.
pub const TRANSFORMS: [&str; 5] = ["plain", "lz4", "zstd", "encrypted", "zstd+encrypted"];

/// The transforms called `name` in [`TRANSFORMS`].
pub fn transforms(name: &str) -> Transforms {
    let key = || EncryptionKey::new([0x5a; 32]);
    match name {
        "lz4" => Transforms::new().compression(Compression::Lz4),
        "zstd" => Transforms::new().compression(Compression::Zstd(3)),
        "encrypted" => Transforms::new().encryption(key()),
        "zstd+encrypted" => Transforms::new()
            .compression(Compression::Zstd(3))
            .encryption(key()),
        _ => Transforms::new(),
    }
}

/// A document store with the transforms `name`, on redb at `path` (a temporary file
/// when `None`).
///
/// # Errors
/// The store's error when it cannot be opened.
pub fn open(name: &str, path: Option<&std::path::Path>) -> netabase_store::Result<DocStore> {
    let backend = match path {
        Some(path) => RedbBackend::create(path)?,
        None => RedbBackend::temp()?,
    };
    NetabaseStore::from_backend(Transformed::new(backend, transforms(name))?)
}

const WORDS: [&str; 32] = [
    "the", "store", "keeps", "every", "record", "in", "order", "and", "each", "index", "stays",
    "exact", "after", "a", "write", "commits", "values", "are", "small", "keys", "sorted", "by",
    "their", "natural", "order", "so", "ranges", "work", "with", "no", "surprise", "today",
];

/// `n` documents with deterministic content.
pub fn docs(n: usize) -> Vec<Doc> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n as u64)
        .map(|id| {
            let mut body = String::with_capacity(560);
            while body.len() < 500 {
                body.push_str(WORDS[(next() % 32) as usize]);
                body.push(' ');
            }
            Doc {
                id: crate::data::mix(id),
                author: u32::try_from(id / 10).unwrap_or(u32::MAX),
                title: format!("document {id} about {}", WORDS[(next() % 32) as usize]),
                body,
                tags: vec![WORDS[(id % 32) as usize].to_owned(), "draft".to_owned()],
            }
        })
        .collect()
}
