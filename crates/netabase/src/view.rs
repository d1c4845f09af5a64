//! Read-only access to a node's database: [`NodeView`] for the application, and the
//! record store that the Kademlia behaviour reads from.
//!
//! Neither can take the database's writer lock: every write goes to the storage worker
//! (see [`crate::worker`]). Reads are read transactions, which on redb, sled and the
//! in-memory backend never wait for a writer (and on redb and in memory are snapshots).

use std::borrow::Cow;
use std::sync::Arc;

use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use netabase_store::backend::{Backend, Capabilities};
use netabase_store::kad::KadStore;
use netabase_store::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use netabase_store::sync::{Fingerprint, SyncedTree};
use netabase_store::watch::StoreWatch;
use netabase_store::{NetabaseStore, ReadOnly, TxnGuard};
use tokio::sync::broadcast;

use crate::event::NetabaseEvent;
use crate::worker::StorageWorker;

/// A read-only view of a node's typed store: the models this node put
/// ([`Netabase::put_record`](crate::Netabase::put_record)), for local queries by
/// secondary key, range or iteration.
///
/// It offers read transactions only. The node's writes run on its storage worker, so
/// an application holding a view (or a read transaction of it) never holds the
/// database's writer lock and cannot stall or deadlock the node: a read never waits for
/// a writer, nor a writer for a read.
///
/// # Examples
/// ```no_run
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, #[secondary_key] pub tag: String }
/// # }
/// # use app::*;
/// use netabase::{Netabase, NetabaseConfig};
///
/// # async fn run() -> netabase::Result<()> {
/// let node = Netabase::<AppDefinition>::new(NetabaseConfig::loopback()).await?;
/// node.put_record(Note { id: 1, tag: "todo".into() }).await?;
/// let view = node.view();
/// let txn = view.read()?;
/// let todo = txn
///     .open_tree::<Note>()
///     .get_by_secondary_key(NoteSecondaryKeys::Tag(NoteTagSecondaryKey("todo".into())))?;
/// assert_eq!(todo.len(), 1);
/// // Holding `txn` across node calls is fine: it is a snapshot, not a lock.
/// node.put_record(Note { id: 2, tag: "todo".into() }).await?;
/// # Ok(()) }
/// ```
///
/// The view cannot write, so a write held across a node call (which used to deadlock
/// the node) does not compile: there is no write transaction to take ...
/// ```compile_fail
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub tag: String }
/// # }
/// # use app::*;
/// # async fn run(node: netabase::Netabase<AppDefinition>) -> netabase::Result<()> {
/// let view = node.view();
/// let txn = view.write()?;
/// node.put_record(Note { id: 2, tag: "todo".into() }).await?;
/// txn.commit()?;
/// # Ok(()) }
/// ```
/// ... and a read transaction has no write methods:
/// ```compile_fail
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub tag: String }
/// # }
/// # use app::*;
/// # fn run(node: netabase::Netabase<AppDefinition>) -> netabase::Result<()> {
/// node.view().read()?.open_tree::<Note>().put(Note { id: 1, tag: "todo".into() })?;
/// # Ok(()) }
/// ```
pub struct NodeView<D, B> {
    store: NetabaseStore<D, B>,
}

impl<D, B> Clone for NodeView<D, B> {
    fn clone(&self) -> Self {
        NodeView {
            store: self.store.clone(),
        }
    }
}

impl<D, B: std::fmt::Debug> std::fmt::Debug for NodeView<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeView")
            .field("store", &self.store)
            .finish()
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> NodeView<D, B> {
    pub(crate) fn new(store: NetabaseStore<D, B>) -> Self {
        NodeView { store }
    }

    /// Begins a read transaction: one consistent snapshot for every tree opened in it.
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Backend`] when the engine cannot start one.
    pub fn read(&self) -> netabase_store::Result<TxnGuard<'_, D, B, ReadOnly>> {
        self.store.read()
    }

    /// The model `M` with primary key `key`, read in a transaction of its own.
    ///
    /// # Errors
    /// As [`NodeView::read`]; a decoding error if the stored bytes do not decode.
    pub fn get<M: NetabaseModelTrait<D>>(
        &self,
        key: impl Into<M::PrimaryKey>,
    ) -> netabase_store::Result<Option<M>> {
        self.store.read()?.open_tree::<M>().get(key)
    }

    /// The fingerprint of every version of `M` held (tombstones included): two nodes
    /// with equal fingerprints hold the same records with the same stamps.
    ///
    /// # Errors
    /// As [`NodeView::version`].
    pub fn sync_fingerprint<M: NetabaseModelTrait<D>>(
        &self,
    ) -> netabase_store::Result<Fingerprint> {
        self.store.open_tree::<M>().fingerprint::<M::PrimaryKey>(..)
    }

    /// Checks the sync metadata of every replicated model against the records held: the
    /// fingerprint tree against the version entries, and every record against the entry
    /// of its stored value ([`netabase_store::sync::check`]; a full scan, for tests and
    /// tools).
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Sync`] naming the first disagreement, or if no
    /// model is synced; backend errors.
    pub fn sync_check(&self) -> netabase_store::Result<()> {
        netabase_store::sync::check(&self.store)
    }

    /// What sending every synced record of this node in one message would cost, in
    /// bytes: the baseline that reconciliation is measured against
    /// ([`netabase_store::sync::full_transfer_bytes`]).
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Sync`] if no model is synced; backend errors.
    pub fn sync_full_transfer_bytes(&self) -> netabase_store::Result<u64> {
        netabase_store::sync::full_transfer_bytes(&self.store)
    }

    /// Subscribes to the changes the node commits to its typed store (see
    /// [`NetabaseStore::watch`]).
    pub fn watch(&self) -> StoreWatch<'_, D, B> {
        self.store.watch()
    }

    /// The version of the record of model `M` at `key` that the typed store holds: its
    /// stamp (for a replicated model, the stamp of the signed record it came from) and
    /// whether it is a tombstone; `None` if the key was never written here.
    ///
    /// # Errors
    /// [`netabase_store::NetabaseError::Sync`] if `M` is not replicated by this node
    /// (nor otherwise synced); a backend error.
    pub fn version<M: NetabaseModelTrait<D>>(
        &self,
        key: impl Into<M::PrimaryKey>,
    ) -> netabase_store::Result<Option<netabase_store::sync::RecordVersion>> {
        self.store.open_tree::<M>().version(key)
    }

    /// The backend's name (`"redb"`, `"sled"`, `"memory"`).
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// What the backend guarantees: with `snapshot_reads`, a read transaction sees one
    /// snapshot however long it is held (redb, the in-memory backend); without (sled),
    /// each read sees the latest commit. Either way a read never waits for the writer.
    pub fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }
}

/// The record store the Kademlia behaviour owns. libp2p calls it synchronously: to
/// answer a peer's `GET_VALUE` and `GET_PROVIDERS`, and to list the records and
/// provided keys its republication jobs send. Those reads are read transactions of
/// the node's database. Its writes never run here: the node writes DHT records, local
/// provider records and inbound records through the worker before libp2p sees them, and
/// the few writes libp2p makes itself (removing a record or a provider it found
/// expired) are queued to the worker.
pub(crate) struct RecordView<D: NetabaseDefinitionTrait, B: Backend> {
    reads: KadStore<Arc<B>>,
    worker: StorageWorker<D, B>,
    events: broadcast::Sender<NetabaseEvent>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> RecordView<D, B> {
    pub(crate) fn new(
        reads: KadStore<Arc<B>>,
        worker: StorageWorker<D, B>,
        events: broadcast::Sender<NetabaseEvent>,
    ) -> Self {
        RecordView {
            reads,
            worker,
            events,
        }
    }

    /// The read side, for the errors its reads swallowed.
    pub(crate) fn reads(&self) -> &KadStore<Arc<B>> {
        &self.reads
    }

    /// Queues a write to the worker; a failure (or a full queue) is reported as a
    /// store error event.
    fn queue<E: std::fmt::Display>(
        &self,
        what: &'static str,
        write: impl FnOnce(&KadStore<Arc<B>>) -> Result<(), E> + Send + 'static,
    ) {
        let events = self.events.clone();
        let queued = self.worker.try_run(move |storage| {
            if let Err(e) = write(&storage.records) {
                let _ = events.send(NetabaseEvent::StoreError {
                    message: format!("{what}: {e}"),
                });
            }
        });
        if !queued {
            let _ = self.events.send(NetabaseEvent::StoreError {
                message: format!("{what}: the storage worker's queue is full"),
            });
        }
    }

    fn is_local(&self, peer: &PeerId) -> bool {
        *peer == self.reads.local_peer_id()
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> RecordStore for RecordView<D, B> {
    type RecordsIter<'a>
        = <KadStore<Arc<B>> as RecordStore>::RecordsIter<'a>
    where
        Self: 'a;
    type ProvidedIter<'a>
        = <KadStore<Arc<B>> as RecordStore>::ProvidedIter<'a>
    where
        Self: 'a;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.reads.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        // The node never calls `kad::Behaviour::put_record` (its puts are written by
        // the worker); a put from libp2p is queued all the same.
        if r.value.len() > self.reads.config().max_value_bytes {
            return Err(store::Error::ValueTooLarge);
        }
        self.queue("storing a record", move |records| records.try_put(&r));
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        let key = k.clone();
        self.queue("removing a record", move |records| {
            records.try_remove(&key).map(|_| ())
        });
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.reads.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        // The local provider record was written (and its limits checked) by the worker
        // before the node called `start_providing`.
        if !self.is_local(&record.provider) {
            self.queue("storing a provider record", move |records| {
                records.try_add_provider(&record)
            });
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.reads.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.reads.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        // The local provider record is removed by the worker before the node calls
        // `stop_providing`.
        if !self.is_local(p) {
            let (key, peer) = (k.clone(), *p);
            self.queue("removing a provider record", move |records| {
                records.try_remove_provider(&key, &peer)
            });
        }
    }
}
