//! The publisher: the subscriptions of one store, and the hand-over of each committed
//! `ChangeSet` to them.
//!
//! Writers never wait for readers. Each subscription owns a bounded queue behind a lock
//! that both sides hold only to push or pop; a full queue drops its oldest commit and
//! counts it. Commit order comes from the store's one write lock: a writer takes the
//! publishing lock while it still holds the backend's write transaction, commits, hands
//! the changes over, and only then lets the next writer publish.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use crate::typed::changes::{Change, ChangeSet};

use super::filter::Watched;

/// The subscriptions of one store (shared by its clones).
#[derive(Default)]
pub(crate) struct Hub {
    /// How many subscriptions are registered: the one thing a write reads when nobody
    /// watches.
    watchers: AtomicUsize,
    /// The number of the last commit published; held from just before the backend
    /// commit until the changes are handed over, so they are handed over in commit order.
    order: Mutex<u64>,
    /// The registered subscriptions.
    sinks: Mutex<Vec<Arc<Sink>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("watchers", &self.watchers.load(Ordering::Relaxed))
            .finish()
    }
}

/// Locks `mutex`; every state behind these locks is complete between two statements,
/// so a lock poisoned by a panicking thread is still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Whether a write must record and publish its changes.
    pub(crate) fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Acquire) != 0
    }

    /// How many subscriptions are registered.
    pub(crate) fn count(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    /// Takes the publishing turn of a writer that holds the backend's write transaction
    /// and is about to commit it.
    pub(crate) fn begin_publish(&self) -> Publish<'_> {
        Publish {
            hub: self,
            last: lock(&self.order),
        }
    }

    /// Registers `sink`; writes that begin from now on publish to it.
    pub(super) fn register(&self, sink: Arc<Sink>) {
        lock(&self.sinks).push(sink);
        self.watchers.fetch_add(1, Ordering::Release);
    }

    /// Forgets `sink`.
    pub(super) fn unregister(&self, sink: &Arc<Sink>) {
        let mut sinks = lock(&self.sinks);
        let before = sinks.len();
        sinks.retain(|s| !Arc::ptr_eq(s, sink));
        if sinks.len() < before {
            self.watchers.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Drop for Hub {
    /// The last handle on the store is gone: no commit will come, so every subscription
    /// ends once it has read its buffer.
    fn drop(&mut self) {
        let sinks = std::mem::take(&mut *lock(&self.sinks));
        for sink in sinks {
            sink.close();
        }
    }
}

/// A writer's turn to publish, taken before its backend commit (see
/// [`Hub::begin_publish`]). Dropped without [`Publish::send`] (the commit failed), it
/// publishes nothing.
pub(crate) struct Publish<'h> {
    hub: &'h Hub,
    last: MutexGuard<'h, u64>,
}

impl Publish<'_> {
    /// Hands the committed `changes` to every subscription they match, and gives
    /// them back when the committer reads them (`read`); a one-shot write that does
    /// not gets an empty set, so its changes are shared with the subscriptions without
    /// a copy.
    pub(crate) fn send(mut self, changes: ChangeSet, read: bool) -> ChangeSet {
        if changes.is_empty() {
            return changes;
        }
        *self.last += 1;
        let seq = *self.last;
        let mut changes = Shared::Own(changes);
        let mut wakers = Vec::new();
        for sink in lock(&self.hub.sinks).iter() {
            sink.offer(seq, &mut changes, &mut wakers);
        }
        // Tasks are woken after the turn is handed on: a waker may run code that
        // writes to this store.
        drop(self);
        wakers.into_iter().for_each(Waker::wake);
        match changes {
            Shared::Own(changes) => changes,
            Shared::Arc(_) if !read => ChangeSet::default(),
            Shared::Arc(changes) => Arc::try_unwrap(changes).unwrap_or_else(|c| (*c).clone()),
        }
    }
}

/// A commit's changes, moved into an `Arc` by the first subscription they match.
enum Shared {
    Own(ChangeSet),
    Arc(Arc<ChangeSet>),
}

impl Shared {
    fn get(&self) -> &ChangeSet {
        match self {
            Shared::Own(changes) => changes,
            Shared::Arc(changes) => changes,
        }
    }

    fn share(&mut self) -> Arc<ChangeSet> {
        let shared = match std::mem::replace(self, Shared::Own(ChangeSet::default())) {
            Shared::Own(changes) => Arc::new(changes),
            Shared::Arc(changes) => changes,
        };
        *self = Shared::Arc(Arc::clone(&shared));
        shared
    }
}

/// One subscription's side of the hand-over: its filters and its bounded queue.
pub(super) struct Sink {
    /// The models watched, each with its filters; empty means every model.
    watched: Vec<Watched>,
    state: Mutex<State>,
    /// Signalled when a commit arrives or the store closes, for blocking readers.
    ready: Condvar,
}

/// A subscription's queue and its reader's situation.
struct State {
    queue: VecDeque<Pending>,
    capacity: usize,
    /// Commits dropped from the queue since the reader last heard of it.
    missed: u64,
    /// No commit will come any more.
    closed: bool,
    /// The task of an asynchronous reader waiting for a commit.
    waker: Option<Waker>,
}

/// A commit waiting to be read: the transaction's changes (shared by every
/// subscription) and which of them match.
pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) changes: Arc<ChangeSet>,
    /// The positions of the matching changes, or `None` when all of them match.
    pub(super) picks: Option<Vec<usize>>,
}

impl Pending {
    /// The matching changes.
    pub(super) fn changes(&self) -> impl Iterator<Item = &Change> {
        let all = self.changes.changes();
        let picked = self
            .picks
            .as_ref()
            .map(|picks| picks.iter().filter_map(|&i| all.get(i)));
        let every = self.picks.is_none().then(|| all.iter());
        picked
            .into_iter()
            .flatten()
            .chain(every.into_iter().flatten())
    }
}

/// The queue is empty and no commit will come: the store was dropped.
pub(super) struct Ended;

/// What a reader takes from the queue.
pub(super) enum Taken {
    /// Commits were dropped before the ones still queued.
    Missed(u64),
    /// The next commit.
    Commit(Pending),
}

impl Sink {
    /// A subscription to `watched` (every model when empty) buffering up to `capacity`
    /// commits (at least one).
    pub(super) fn new(watched: Vec<Watched>, capacity: usize) -> Self {
        Sink {
            watched,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                missed: 0,
                closed: false,
                waker: None,
            }),
            ready: Condvar::new(),
        }
    }

    /// Which changes of `changes` match: `None` when none does, `Some(None)` when all
    /// do.
    fn pick(&self, changes: &ChangeSet) -> Option<Option<Vec<usize>>> {
        if self.watched.is_empty() {
            return Some(None);
        }
        let mut picks = Vec::new();
        let mut all = true;
        for (i, change) in changes.changes().iter().enumerate() {
            let table = change.table();
            let hit = self
                .watched
                .iter()
                .filter(|w| w.table == table)
                .any(|w| w.takes_all() || (w.test)(&w.rules, change));
            if hit {
                picks.push(i);
            } else {
                all = false;
            }
        }
        match (picks.is_empty(), all) {
            (true, _) => None,
            (false, true) => Some(None),
            (false, false) => Some(Some(picks)),
        }
    }

    /// Queues the matching part of commit `seq`, dropping the oldest queued commit when
    /// the queue is full; the waker of a waiting task is added to `wakers`.
    fn offer(&self, seq: u64, changes: &mut Shared, wakers: &mut Vec<Waker>) {
        let Some(picks) = self.pick(changes.get()) else {
            return;
        };
        let changes = changes.share();
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        if state.queue.len() >= state.capacity {
            state.queue.pop_front();
            state.missed += 1;
        }
        state.queue.push_back(Pending {
            seq,
            changes,
            picks,
        });
        if let Some(waker) = state.waker.take() {
            wakers.push(waker);
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Ends the subscription: no commit will come.
    fn close(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next thing to read, if any; `Err(Ended)` when the queue is empty and no commit
    /// will come.
    pub(super) fn try_take(&self) -> Result<Option<Taken>, Ended> {
        take(&mut lock(&self.state))
    }

    /// The next thing to read, waiting for it until `deadline` (forever when `None`).
    pub(super) fn take_until(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<Taken>, Ended> {
        let mut state = lock(&self.state);
        loop {
            if let Some(taken) = take(&mut state)? {
                return Ok(Some(taken));
            }
            state = match deadline {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    self.ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// The next thing to read, or registers `waker` to be woken when there is one.
    pub(super) fn poll_take(&self, waker: &Waker) -> Result<Option<Taken>, Ended> {
        let mut state = lock(&self.state);
        let taken = take(&mut state)?;
        if taken.is_none() {
            match &mut state.waker {
                Some(w) => w.clone_from(waker),
                slot @ None => *slot = Some(waker.clone()),
            }
        }
        Ok(taken)
    }
}

/// Takes what a reader reads next from `state`: first how many commits it missed, then
/// the queued commits in order; `Err(Ended)` once the queue is empty and closed.
fn take(state: &mut State) -> Result<Option<Taken>, Ended> {
    if state.missed > 0 {
        return Ok(Some(Taken::Missed(std::mem::take(&mut state.missed))));
    }
    match state.queue.pop_front() {
        Some(pending) => Ok(Some(Taken::Commit(pending))),
        None if state.closed => Err(Ended),
        None => Ok(None),
    }
}
