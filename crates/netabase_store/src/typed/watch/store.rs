//! Where subscriptions are made: `Tree::watch` for one model, `NetabaseStore::watch`
//! for several, with its definition-level change type.

use crate::backend::Backend;
use crate::error::Result;
use crate::schema::{DiscriminantTrait, NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::typed::changes::{Change, TypedChange};
use crate::typed::store::NetabaseStore;
use crate::typed::tree::Tree;

use super::filter::{Filter, Watched};
use super::hub::{Hub, Sink};
use super::{DEFAULT_CAPACITY, Subscription};
use std::marker::PhantomData;
use std::sync::Arc;

impl<D, M, B> Tree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    /// Subscribes to the changes of this model that `filter` matches, buffering up to
    /// [`DEFAULT_CAPACITY`] commits. See [`crate::watch`] for what is delivered and
    /// when.
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
    /// #     pub struct User {
    /// #         #[primary_key] pub id: u64,
    /// #         #[secondary_key] pub age: u32,
    /// #     }
    /// # }
    /// # use app::*;
    /// use netabase_store::watch::{Event, Filter};
    /// use netabase_store::TypedChange;
    ///
    /// let store = AppDefinition::open_memory()?;
    /// let users = store.open_tree::<User>();
    /// users.put(User { id: 1, age: 17 })?;
    /// let adults = users.watch(Filter::secondary_range(UserAgeSecondaryKey(18)..));
    ///
    /// users.put(User { id: 1, age: 18 })?; // becomes an adult: reported
    /// users.put(User { id: 2, age: 5 })?; // not an adult: not reported
    ///
    /// match adults.try_recv()? {
    ///     Some(Event::Commit(commit)) => match &commit.changes[..] {
    ///         [TypedChange::Put { old: Some(old), new, .. }] => {
    ///             assert_eq!((old.age, new.age), (17, 18));
    ///         }
    ///         other => panic!("unexpected {other:?}"),
    ///     },
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// assert!(adults.try_recv()?.is_none());
    /// # Ok::<(), NetabaseError>(())
    /// ```
    pub fn watch(&self, filter: Filter<D, M>) -> Subscription<TypedChange<D, M>> {
        self.watch_with_capacity(filter, DEFAULT_CAPACITY)
    }

    /// [`Tree::watch`] with a buffer of `capacity` commits (at least one): a reader that
    /// falls further behind receives [`Event::Lagged`](super::Event::Lagged).
    pub fn watch_with_capacity(
        &self,
        filter: Filter<D, M>,
        capacity: usize,
    ) -> Subscription<TypedChange<D, M>> {
        Subscription::for_model(self.store().hub(), filter, capacity)
    }
}

impl<D, M> Subscription<TypedChange<D, M>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    /// A subscription to the changes of model `M` that `filter` matches.
    pub(crate) fn for_model(hub: &Arc<Hub>, filter: Filter<D, M>, capacity: usize) -> Self {
        let watched = vec![Watched::model::<D, M>(vec![filter.rule])];
        Subscription::register(
            hub,
            Sink::new(watched, capacity),
            |change| change.decode::<D, M>(),
            D::NAME,
        )
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> NetabaseStore<D, B> {
    /// Starts a subscription to several models at once: name each with
    /// [`StoreWatch::model`] and a filter (a model named twice matches either filter),
    /// then call [`StoreWatch::subscribe`]. With no model named, every model is
    /// watched. Its events hold [`DefinitionChange`]s, in the order of each commit.
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
    /// #     pub struct User { #[primary_key] pub id: u64 }
    /// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// #     #[netabase(AppDefinition)]
    /// #     pub struct Post { #[primary_key] pub id: u64, pub author: u64 }
    /// # }
    /// # use app::*;
    /// use netabase_store::watch::{DefinitionChange, Event, Filter};
    ///
    /// let store = AppDefinition::open_memory()?;
    /// let watcher = store
    ///     .watch()
    ///     .model::<User>(Filter::all())
    ///     .model::<Post>(Filter::key(1))
    ///     .subscribe();
    ///
    /// let txn = store.write()?;
    /// txn.open_tree::<User>().put(User { id: 9 })?;
    /// txn.open_tree::<Post>().put(Post { id: 1, author: 9 })?;
    /// txn.commit()?;
    ///
    /// let Some(Event::Commit(commit)) = watcher.try_recv()? else { panic!() };
    /// assert_eq!(commit.changes.len(), 2, "one commit, both changes");
    /// assert!(matches!(
    ///     &commit.changes[1],
    ///     DefinitionChange::Put { new: AppDefinition::Post(p), .. } if p.author == 9
    /// ));
    /// # Ok::<(), NetabaseError>(())
    /// ```
    pub fn watch(&self) -> StoreWatch<'_, D, B> {
        StoreWatch::new(self.hub())
    }

    /// How many subscriptions (of trees and of the store) are registered: dropped ones
    /// are not counted. While it is zero, writes record no changes.
    pub fn subscriptions(&self) -> usize {
        self.hub().count()
    }
}

/// A subscription to several models being set up ([`NetabaseStore::watch`], or
/// [`crate::nonblocking::AsyncStore::watch`]).
#[must_use = "nothing is watched until `subscribe` is called"]
pub struct StoreWatch<'s, D, B> {
    hub: &'s Arc<Hub>,
    watched: Vec<Watched>,
    capacity: usize,
    _store: PhantomData<fn() -> (D, B)>,
}

impl<D, B> std::fmt::Debug for StoreWatch<'_, D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWatch")
            .field(
                "models",
                &self.watched.iter().map(|w| w.table).collect::<Vec<_>>(),
            )
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<'s, D: NetabaseDefinitionTrait, B> StoreWatch<'s, D, B> {
    pub(crate) fn new(hub: &'s Arc<Hub>) -> Self {
        StoreWatch {
            hub,
            watched: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            _store: PhantomData,
        }
    }

    /// Watches the changes of model `M` that `filter` matches.
    pub fn model<M: NetabaseModelTrait<D>>(mut self, filter: Filter<D, M>) -> Self {
        match self.watched.iter_mut().find(|w| w.table == M::INFO.table) {
            Some(watched) => watched.rules.push(filter.rule),
            None => self.watched.push(Watched::model::<D, M>(vec![filter.rule])),
        }
        self
    }

    /// Buffers up to `capacity` commits (at least one; [`DEFAULT_CAPACITY`] unless
    /// set): a reader that falls further behind receives
    /// [`Event::Lagged`](super::Event::Lagged).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Registers the subscription: it receives every matching commit of a transaction
    /// that begins from now on.
    pub fn subscribe(self) -> Subscription<DefinitionChange<D>> {
        Subscription::register(
            self.hub,
            Sink::new(self.watched, self.capacity),
            DefinitionChange::decode,
            D::NAME,
        )
    }
}

/// A change to any model of definition `D`: what a subscription made by
/// [`NetabaseStore::watch`] receives. Records are held in the definition enum
/// (`AppDefinition::User(..)`); the primary key is the record's own.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DefinitionChange<D: NetabaseDefinitionTrait> {
    /// A record was stored: created (`old` is `None`) or replaced.
    Put {
        /// The record it replaced.
        old: Option<D>,
        /// The record stored.
        new: D,
    },
    /// A record was removed.
    Removed {
        /// The record removed.
        old: D,
    },
    /// Every record of a model was removed.
    Cleared {
        /// The model cleared.
        model: D::Discriminant,
    },
}

impl<D: NetabaseDefinitionTrait> DefinitionChange<D> {
    /// The model the change concerns.
    pub fn model(&self) -> D::Discriminant {
        match self {
            DefinitionChange::Put { new, .. } => new.discriminant(),
            DefinitionChange::Removed { old } => old.discriminant(),
            DefinitionChange::Cleared { model } => *model,
        }
    }

    /// Decodes a recorded change; `None` for a model that `D` does not hold.
    fn decode(change: &Change) -> Result<Option<Self>> {
        let Some(model) = D::Discriminant::from_name(change.model()) else {
            return Ok(None);
        };
        let decode = |bytes: &[u8]| D::decode_value(model, bytes);
        Ok(Some(match change {
            Change::Put { old, new, .. } => DefinitionChange::Put {
                old: old.as_deref().map(decode).transpose()?,
                new: decode(new)?,
            },
            Change::Removed { old, .. } => DefinitionChange::Removed { old: decode(old)? },
            Change::Cleared { .. } => DefinitionChange::Cleared { model },
        }))
    }
}

impl<D> PartialEq for DefinitionChange<D>
where
    D: NetabaseDefinitionTrait + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (DefinitionChange::Put { old, new }, DefinitionChange::Put { old: o, new: n }) => {
                old == o && new == n
            }
            (DefinitionChange::Removed { old }, DefinitionChange::Removed { old: o }) => old == o,
            (DefinitionChange::Cleared { model }, DefinitionChange::Cleared { model: m }) => {
                model == m
            }
            _ => false,
        }
    }
}
