//! The asynchronous typed API: [`AsyncStore`], [`AsyncTree`], [`AsyncTxn`] and
//! [`AsyncTreeView`], with the names and the semantics of the synchronous API, each
//! operation awaited.
//!
//! It runs over an [`AsyncBackend`]: IndexedDB in the browser (feature `indexeddb`), or
//! any synchronous backend through [`Threaded`] (feature `threaded`), whose transactions
//! run on a pool of threads so that an async runtime never blocks on the engine. Every
//! write goes through the one write pipeline: the same plan (`typed/plan.rs`) and the
//! same decisions (`typed/chunk.rs`), awaited step by step by [`AsyncWriter`].
//!
//! Scans (`iter`, `range`, `range_by_secondary_key`) return their records collected in
//! a `Vec`, read in one transaction.
//!
//! The type-state is the synchronous API's: a view of a read transaction has no write
//! methods that compile.
//!
//! ```
//! # #[cfg(feature = "threaded")] {
//! # use netabase_store::prelude::*;
//! # #[netabase_definition_module(AppDefinition, AppKeys)]
//! # pub mod app {
//! #     use netabase_store::prelude::*;
//! #     use serde::{Deserialize, Serialize};
//! #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #     #[netabase(AppDefinition)]
//! #     pub struct Note { #[primary_key] pub id: u64, #[secondary_key] pub tag: String }
//! # }
//! # use app::*;
//! futures::executor::block_on(async {
//!     let store = AppDefinition::open_memory()?.into_async();
//!     let notes = store.open_tree::<Note>();
//!     notes.put(Note { id: 1, tag: "todo".into() }).await?;
//!     let txn = store.write().await?;
//!     txn.open_tree::<Note>().put(Note { id: 2, tag: "todo".into() }).await?;
//!     txn.commit().await?;
//!     assert_eq!(notes.get_by_secondary_key(NoteTagSecondaryKey("todo".into())).await?.len(), 2);
//!     Ok::<(), NetabaseError>(())
//! })?;
//! # }
//! # Ok::<(), netabase_store::NetabaseError>(())
//! ```

mod backend;
mod links;
mod read;
mod store;
#[cfg(feature = "threaded")]
mod threaded;
mod write;

#[cfg(all(feature = "indexeddb", target_arch = "wasm32"))]
pub(crate) use backend::reads_through;
pub use backend::{AsyncBackend, AsyncReadTxn, AsyncWriteTxn, AtCommit};
pub use store::{
    AsyncBatch, AsyncStore, AsyncTree, AsyncTreeView, AsyncTxn, AsyncTxnMode, AsyncViewTxn,
    AsyncWriteAccess,
};
#[cfg(feature = "threaded")]
pub use threaded::{Threaded, ThreadedTxn, ThreadedWriteTxn};
pub use write::AsyncWriter;

#[cfg(feature = "threaded")]
impl<D, B> crate::NetabaseStore<D, B>
where
    D: crate::schema::NetabaseDefinitionTrait,
    B: crate::backend::Backend,
{
    /// The same store, used through the asynchronous API: its transactions run on a
    /// pool of threads, so an async runtime (tokio, or the `netabase` node) never blocks
    /// on the engine. The format and schema were checked when this store was opened.
    /// It shares the store's subscriptions, and keeps the sync metadata of its synced
    /// models (module `sync`) at every commit, as the synchronous store does.
    pub fn into_async(self) -> AsyncStore<D, Threaded<B>> {
        AsyncStore::checked(
            std::sync::Arc::new(Threaded::from_shared(self.shared_backend())),
            std::sync::Arc::clone(self.hub()),
            self.sync_state().cloned(),
        )
    }
}
