//! Change subscriptions: typed events for every committed write that matches a filter.
//!
//! [`Tree::watch`](crate::Tree::watch) subscribes to the changes of one model,
//! [`NetabaseStore::watch`](crate::NetabaseStore::watch) to those of several models at
//! once. A [`Subscription`] receives one [`Event::Commit`] per committed write
//! transaction that changed something its filters match, in commit order, holding the
//! matching changes of that transaction only. It reads like a channel: blocking
//! ([`Subscription::recv`], [`Subscription::try_recv`], [`Subscription::recv_timeout`],
//! and as an iterator, [`Subscription::iter`]) or as an asynchronous `futures::Stream` (woken by the writer,
//! no runtime needed).
//!
//! # Guarantees
//! - Changes are delivered after their transaction committed; a transaction that is
//!   rolled back, dropped, refused or poisoned delivers nothing.
//! - Every write path is observed: one-shot tree writes, `put_many`, `remove_many`,
//!   `clear`, batches and explicit transactions over several models. A subscription sees
//!   every transaction that begins after [`Tree::watch`](crate::Tree::watch) returns.
//! - Writers never wait for subscribers: each subscription has a bounded buffer of
//!   commits ([`DEFAULT_CAPACITY`] unless set). When it is full, the oldest commit is
//!   dropped, and the reader is told how many it missed with [`Event::Lagged`] before it
//!   receives the newer ones; it can then resynchronise by reading the tree.
//! - With no subscription on a store, a write pays one atomic load and nothing else.
//! - Dropping a [`Subscription`] unregisters it. When every handle on the store is
//!   dropped, a subscription reads what is left in its buffer and then ends (the
//!   iterator and the stream return `None`, `recv` fails with
//!   [`NetabaseError::Closed`](crate::NetabaseError::Closed)).
//!
//! # Cost
//! Filters on the primary key compare encoded keys, so they cost the writer a few byte
//! comparisons per change. A secondary-key filter decodes the changed records of its
//! model on the writing thread to read the key; decoding into typed changes happens on
//! the reader's side, when an event is received.
//!
//! # Examples
//! ```
//! # use netabase_store::prelude::*;
//! # #[netabase_definition_module(AppDefinition, AppKeys)]
//! # pub mod app {
//! #     use netabase_store::prelude::*;
//! #     use serde::{Deserialize, Serialize};
//! #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #     #[netabase(AppDefinition)]
//! #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
//! # }
//! # use app::*;
//! use netabase_store::watch::{Event, Filter};
//! use netabase_store::TypedChange;
//!
//! let store = AppDefinition::open_memory()?;
//! let notes = store.open_tree::<Note>();
//! let watcher = notes.watch(Filter::range(1..100));
//!
//! notes.put(Note { id: 7, text: "hello".into() })?;
//! notes.put(Note { id: 700, text: "out of range".into() })?;
//!
//! let Some(Event::Commit(commit)) = watcher.try_recv()? else { panic!("one commit") };
//! assert!(matches!(&commit.changes[..], [TypedChange::Put { old: None, new, .. }] if new.id == 7));
//! assert!(watcher.try_recv()?.is_none(), "id 700 is outside the filter");
//! # Ok::<(), NetabaseError>(())
//! ```

mod filter;
mod hub;
mod store;
mod subscription;

pub use filter::Filter;
pub(crate) use hub::Hub;
pub use store::{DefinitionChange, StoreWatch};
pub use subscription::{IntoIter, Iter, Subscription};

/// How many commits a subscription buffers unless told otherwise
/// ([`Tree::watch_with_capacity`](crate::Tree::watch_with_capacity),
/// [`StoreWatch::capacity`]).
pub const DEFAULT_CAPACITY: usize = 1024;

/// What a [`Subscription`] receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<C> {
    /// The matching changes of one committed write transaction.
    Commit(Commit<C>),
    /// The subscription's buffer overflowed: this many commits (each one that held a
    /// matching change) were dropped, the oldest first, between the event received
    /// before this one and the event after it. Read the tree to resynchronise.
    Lagged(u64),
}

/// The matching changes of one committed write transaction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Commit<C> {
    /// The transaction's place in the store's commit order: it grows by one with every
    /// committed transaction that changed a record while the store had a subscription,
    /// so a reader that sees a gap knows that transactions it did not match (or missed)
    /// came in between.
    pub seq: u64,
    /// The changes, one per record, in the order the transaction first wrote each
    /// record; a clear of the model comes where it was made.
    pub changes: Vec<C>,
}
