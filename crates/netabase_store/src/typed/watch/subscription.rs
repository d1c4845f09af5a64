//! `Subscription`: the reading end, blocking or asynchronous.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::{ClosedError, NetabaseError, Result};
use crate::typed::changes::Change;

use super::hub::{Ended, Hub, Pending, Sink, Taken};
use super::{Commit, Event};

/// A subscription to the changes of a store, made by
/// [`Tree::watch`](crate::Tree::watch) (events of
/// [`TypedChange`](crate::TypedChange)) or
/// [`NetabaseStore::watch`](crate::NetabaseStore::watch) (events of
/// [`DefinitionChange`](super::DefinitionChange)).
///
/// Read it like a channel, blocking ([`Subscription::recv`],
/// [`Subscription::try_recv`], [`Subscription::recv_timeout`], or as an iterator:
/// [`Subscription::iter`], `for event in subscription`),
/// or asynchronously as a `futures::Stream`; both forms deliver the same events. The
/// iterator and the stream end when every handle on the store has been dropped and the
/// buffer has been read. Dropping the subscription unregisters it.
///
/// Events are decoded when they are read; a change that does not decode makes that
/// read fail with the decoding error (the commit is consumed) and the next read goes
/// on.
///
/// # Examples
/// Asynchronously, under any executor:
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
/// use futures::StreamExt;
/// use netabase_store::watch::{Event, Filter};
///
/// let store = AppDefinition::open_memory()?;
/// let notes = store.open_tree::<Note>();
/// let mut watcher = notes.watch(Filter::all());
/// notes.put(Note { id: 1, text: "hello".into() })?;
/// drop((notes, store)); // the stream ends after the last commit
///
/// futures::executor::block_on(async {
///     let mut commits = 0;
///     while let Some(event) = watcher.next().await {
///         if let Event::Commit(commit) = event? {
///             commits += commit.changes.len();
///         }
///     }
///     assert_eq!(commits, 1);
///     Ok::<(), NetabaseError>(())
/// })?;
/// # Ok::<(), NetabaseError>(())
/// ```
pub struct Subscription<C> {
    sink: Arc<Sink>,
    hub: Weak<Hub>,
    decode: fn(&Change) -> Result<Option<C>>,
    definition: &'static str,
}

impl<C> std::fmt::Debug for Subscription<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("definition", &self.definition)
            .finish_non_exhaustive()
    }
}

impl<C> Subscription<C> {
    /// Registers a subscription to `sink` with `hub`, decoding changes with `decode`.
    pub(super) fn register(
        hub: &Arc<Hub>,
        sink: Sink,
        decode: fn(&Change) -> Result<Option<C>>,
        definition: &'static str,
    ) -> Self {
        let sink = Arc::new(sink);
        hub.register(Arc::clone(&sink));
        Subscription {
            sink,
            hub: Arc::downgrade(hub),
            decode,
            definition,
        }
    }

    /// The next event, waiting for it.
    ///
    /// # Errors
    /// [`NetabaseError::Closed`] once every handle on the store has been dropped and
    /// every buffered event has been read; [`NetabaseError::Decode`] or
    /// [`NetabaseError::Version`] when a change of the commit does not decode.
    pub fn recv(&self) -> Result<Event<C>> {
        match self.sink.take_until(None) {
            Ok(Some(taken)) => self.event(taken),
            // Without a deadline the wait ends only with an event or the end.
            Ok(None) | Err(Ended) => Err(self.closed()),
        }
    }

    /// The next event if one is buffered, without waiting: `Ok(None)` when there is
    /// none yet.
    ///
    /// # Errors
    /// As [`Subscription::recv`].
    pub fn try_recv(&self) -> Result<Option<Event<C>>> {
        match self.sink.try_take() {
            Ok(taken) => taken.map(|t| self.event(t)).transpose(),
            Err(Ended) => Err(self.closed()),
        }
    }

    /// The next event, waiting for it at most `timeout`: `Ok(None)` when none came.
    ///
    /// # Errors
    /// As [`Subscription::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Event<C>>> {
        let deadline = Instant::now().checked_add(timeout);
        match self.sink.take_until(deadline) {
            Ok(taken) => taken.map(|t| self.event(t)).transpose(),
            Err(Ended) => Err(self.closed()),
        }
    }

    fn closed(&self) -> NetabaseError {
        NetabaseError::Closed(Box::new(ClosedError {
            definition: self.definition,
        }))
    }

    fn event(&self, taken: Taken) -> Result<Event<C>> {
        match taken {
            Taken::Missed(n) => Ok(Event::Lagged(n)),
            Taken::Commit(pending) => self.decode_commit(&pending).map(Event::Commit),
        }
    }

    fn decode_commit(&self, pending: &Pending) -> Result<Commit<C>> {
        let mut changes = Vec::new();
        for change in pending.changes() {
            if let Some(change) = (self.decode)(change)? {
                changes.push(change);
            }
        }
        Ok(Commit {
            seq: pending.seq,
            changes,
        })
    }

    /// The end of the iterator and the stream: `None` once closed.
    fn item(&self, result: Result<Event<C>>) -> Option<Result<Event<C>>> {
        match result {
            Err(NetabaseError::Closed(_)) => None,
            other => Some(other),
        }
    }
}

impl<C> Drop for Subscription<C> {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(&self.sink);
        }
    }
}

impl<C> Subscription<C> {
    /// A blocking iterator over the events: each `next` waits as
    /// [`Subscription::recv`] does, and the iterator ends once every handle on the
    /// store has been dropped and the buffer has been read.
    pub fn iter(&self) -> Iter<'_, C> {
        Iter { subscription: self }
    }
}

/// A blocking iterator over the events of a borrowed [`Subscription`]
/// ([`Subscription::iter`]).
pub struct Iter<'a, C> {
    subscription: &'a Subscription<C>,
}

impl<C> std::fmt::Debug for Iter<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Iter").field(self.subscription).finish()
    }
}

impl<C> Iterator for Iter<'_, C> {
    type Item = Result<Event<C>>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = self.subscription.recv();
        self.subscription.item(result)
    }
}

/// A blocking iterator that owns its [`Subscription`] (`for event in subscription`).
pub struct IntoIter<C> {
    subscription: Subscription<C>,
}

impl<C> std::fmt::Debug for IntoIter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IntoIter").field(&self.subscription).finish()
    }
}

impl<C> Iterator for IntoIter<C> {
    type Item = Result<Event<C>>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = self.subscription.recv();
        self.subscription.item(result)
    }
}

impl<'a, C> IntoIterator for &'a Subscription<C> {
    type Item = Result<Event<C>>;
    type IntoIter = Iter<'a, C>;

    fn into_iter(self) -> Iter<'a, C> {
        self.iter()
    }
}

impl<C> IntoIterator for Subscription<C> {
    type Item = Result<Event<C>>;
    type IntoIter = IntoIter<C>;

    fn into_iter(self) -> IntoIter<C> {
        IntoIter { subscription: self }
    }
}

/// The same events as the iterator, without blocking: the writer that queues an event
/// wakes the task. Works under any executor (tokio, async-std, `futures::executor`).
impl<C> futures_core::Stream for Subscription<C> {
    type Item = Result<Event<C>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.sink.poll_take(cx.waker()) {
            Ok(Some(taken)) => {
                let result = this.event(taken);
                Poll::Ready(this.item(result))
            }
            Ok(None) => Poll::Pending,
            Err(Ended) => Poll::Ready(None),
        }
    }
}
