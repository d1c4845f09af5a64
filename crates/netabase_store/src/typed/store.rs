//! `NetabaseStore`: a typed handle over one backend.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, ReadTxn, WriteTxn};
use crate::error::{NetabaseError, Result};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::tree::Tree;
use super::txn::{ReadOnly, ReadWrite, TxnGuard};

/// The table that records the storage format and the schemas written to a database.
pub const META_TABLE: &str = "__netabase/meta";

/// The storage format this build reads and writes (keys, values and table layout).
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &[u8] = b"format";

/// A typed store of the models of definition `D` on backend `B`.
///
/// Cloning is cheap (an `Arc`); clones share the database.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
/// # }
/// # use app::*;
/// let store = NetabaseStore::<AppDefinition, _>::memory()?;
/// let notes = store.open_tree::<Note>();
/// notes.put(Note { id: 1, text: "hello".into() })?;
/// assert_eq!(notes.get(NotePrimaryKey(1))?.map(|n| n.text), Some("hello".to_string()));
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub struct NetabaseStore<D, B> {
    backend: Arc<B>,
    _definition: PhantomData<fn() -> D>,
}

impl<D, B> Clone for NetabaseStore<D, B> {
    fn clone(&self) -> Self {
        NetabaseStore {
            backend: Arc::clone(&self.backend),
            _definition: PhantomData,
        }
    }
}

impl<D, B: std::fmt::Debug> std::fmt::Debug for NetabaseStore<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetabaseStore")
            .field("definition", &std::any::type_name::<D>())
            .field("backend", &self.backend)
            .finish()
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> NetabaseStore<D, B> {
    /// A store over an opened backend. Checks the storage format of the database and
    /// records this definition's schema in it.
    ///
    /// # Errors
    /// [`NetabaseError::UnsupportedFormat`] if the database was written in another
    /// format; [`NetabaseError::Backend`] on engine failure.
    pub fn from_backend(backend: B) -> Result<Self> {
        check_format::<D, B>(&backend, true)?;
        Ok(Self::from_checked(backend))
    }

    /// A store over a backend that is only ever read: checks the format but writes
    /// nothing (for read-only databases).
    ///
    /// # Errors
    /// As [`NetabaseStore::from_backend`].
    pub fn from_backend_read_only(backend: B) -> Result<Self> {
        check_format::<D, B>(&backend, false)?;
        Ok(Self::from_checked(backend))
    }

    fn from_checked(backend: B) -> Self {
        NetabaseStore {
            backend: Arc::new(backend),
            _definition: PhantomData,
        }
    }

    /// The backend under the store.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// A handle on the records of model `M`; each of its methods runs in a transaction
    /// of its own.
    pub fn open_tree<M: NetabaseModelTrait<D>>(&self) -> Tree<D, M, B> {
        Tree::new(self.clone())
    }

    /// Begins a read transaction: one consistent snapshot for every tree opened in it
    /// (on backends with snapshot reads, see [`crate::backend::Capabilities`]).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] when the engine cannot start one.
    pub fn read(&self) -> Result<TxnGuard<'_, D, B, ReadOnly>> {
        Ok(TxnGuard::new(self.backend.begin_read()?))
    }

    /// Begins a write transaction. Everything written through it becomes visible at once
    /// on [`TxnGuard::commit`]; dropped without commit, nothing is applied. One write
    /// transaction runs at a time: this waits for the previous one to end.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] when the engine cannot start one.
    pub fn write(&self) -> Result<TxnGuard<'_, D, B, ReadWrite>> {
        Ok(TxnGuard::new(self.backend.begin_write()?))
    }
}

fn check_format<D: NetabaseDefinitionTrait, B: Backend>(backend: &B, record: bool) -> Result<()> {
    let schema = schema_descriptor::<D>();
    let schema_key = format!("schema/{}", D::NAME);
    let (format, stored_schema) = {
        let txn = backend.begin_read()?;
        (
            txn.get(META_TABLE, FORMAT_KEY)?,
            txn.get(META_TABLE, schema_key.as_bytes())?,
        )
    };
    match format {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    NetabaseError::decode(META_TABLE, FORMAT_KEY, "format version is not 4 bytes")
                })?;
            if found != FORMAT_VERSION {
                return Err(NetabaseError::UnsupportedFormat {
                    table: META_TABLE.to_owned(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        None if !record => {}
        None => {
            let txn = backend.begin_write()?;
            txn.put(META_TABLE, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
            txn.put(META_TABLE, schema_key.as_bytes(), schema.as_bytes())?;
            return txn.commit();
        }
    }
    if record && stored_schema.as_deref() != Some(schema.as_bytes()) {
        let txn = backend.begin_write()?;
        txn.put(META_TABLE, schema_key.as_bytes(), schema.as_bytes())?;
        txn.commit()?;
    }
    Ok(())
}

/// A readable description of the definition's tables, stored in the meta table so a
/// database can be inspected without the program that wrote it.
fn schema_descriptor<D: NetabaseDefinitionTrait>() -> String {
    let mut out = format!("definition {}\n", D::NAME);
    for model in D::MODELS {
        out.push_str(&format!(
            "model {} v{} table {}\n",
            model.name, model.version, model.table
        ));
        for key in model.secondary_keys {
            let kind = if key.unique { "unique" } else { "index" };
            out.push_str(&format!("  {kind} {} table {}\n", key.field, key.table));
        }
    }
    out
}

impl<D: NetabaseDefinitionTrait> NetabaseStore<D, MemoryBackend> {
    /// A new, empty in-memory store with real transactions (snapshot reads, atomic
    /// commit, rollback on drop).
    ///
    /// # Errors
    /// Never in practice; the signature matches the other constructors.
    pub fn memory() -> Result<Self> {
        Self::from_backend(MemoryBackend::new())
    }
}

#[cfg(feature = "redb")]
impl<D: NetabaseDefinitionTrait> NetabaseStore<D, crate::backend::redb::RedbBackend> {
    /// Opens (or creates) the redb database file at `path`: the embedded default.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] if the file cannot be opened or is not a redb database;
    /// [`NetabaseError::UnsupportedFormat`] if it holds another netabase format.
    pub fn redb(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_backend(crate::backend::redb::RedbBackend::create(path)?)
    }

    /// A redb store in a new temporary directory, deleted when the last handle is
    /// dropped: for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the directory cannot be created.
    pub fn temp() -> Result<Self> {
        Self::from_backend(crate::backend::redb::RedbBackend::temp()?)
    }
}
