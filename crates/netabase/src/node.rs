//! [`Netabase`]: the handle of a node.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::kad::{Mode, ProviderRecord, RecordKey};
use libp2p::{Multiaddr, PeerId};
use netabase_store::kad::{
    DefinitionRecordExt, KadStore, KadStoreError, RecordSigner, SignedRecord, record_key,
    validate_record,
};
use netabase_store::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{NetabaseConfig, StorageConfig};
use crate::error::{Error, Result};
use crate::event::{Counters, NetabaseEvent, NodeStats};
use crate::event_loop::{Command, EventLoop};
use crate::replication::{
    Membership, Permissions, WriteRule, membership_key, replicas_key, store_permissions,
};
use crate::swarm::build_swarm;
use crate::view::{NodeView, RecordView};
use crate::worker::StorageWorker;
use netabase_store::backend::Backend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::sync::{StampedWrite, VersionStamp, WriterId};
use netabase_store::{NetabaseError, ReadWrite, TxnGuard};

/// What a successful [`Netabase::put_record`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOutcome {
    /// The record key.
    pub key: RecordKey,
    /// How many peers acknowledged storing the record (the local copy not counted).
    pub stored_on: usize,
}

/// A peer-to-peer database node for the models of definition `D`.
///
/// A background tokio task owns the libp2p swarm (Kademlia, Identify, mDNS, connection
/// limits); this handle sends it commands and awaits their replies. Handles are cheap to
/// clone and can be used from any task. The node stops on [`Netabase::close`], or when
/// the last handle is dropped.
///
/// The node keeps its data in one database ([`NetabaseConfig::storage`]): the typed
/// models this node put ([`Netabase::view`]), the DHT records it holds for the network
/// (tables `__netabase/kad/*`) and its identity. One storage worker thread
/// ([`crate::worker`]) owns it and runs every write; the swarm task and the handles send
/// it messages and never write inline. The application reads through a read-only
/// [`NodeView`].
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
/// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
/// # }
/// # use app::*;
/// use netabase::{Netabase, NetabaseConfig};
///
/// # async fn run() -> netabase::Result<()> {
/// let node = Netabase::<AppDefinition>::new(NetabaseConfig::default()).await?;
/// node.put_record(Note { id: 1, text: "hello".into() }).await?;
/// let note: Option<Note> = node.get_record(NotePrimaryKey(1)).await?;
/// node.close().await;
/// # Ok(()) }
/// ```
pub struct Netabase<D: NetabaseDefinitionTrait, B: Backend = RedbBackend> {
    inner: Arc<Shared<D, B>>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> Clone for Netabase<D, B> {
    fn clone(&self) -> Self {
        Netabase {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> std::fmt::Debug for Netabase<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netabase")
            .field("peer_id", &self.inner.peer_id)
            .field("definition", &D::NAME)
            .finish_non_exhaustive()
    }
}

struct Shared<D: NetabaseDefinitionTrait, B: Backend> {
    commands: mpsc::Sender<Command<D>>,
    events: broadcast::Sender<NetabaseEvent>,
    counters: Arc<Counters>,
    peer_id: PeerId,
    max_value_bytes: usize,
    /// The owner of the database: every write runs there.
    worker: StorageWorker<D, B>,
    /// Signs this node's records with its identity key and its clock.
    signer: Arc<RecordSigner>,
    /// The event loop until [`Netabase::start`] spawns it.
    unstarted: Mutex<Option<EventLoop<D, B>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The redb database that [`NetabaseConfig::storage`] describes.
fn open_redb(storage: &StorageConfig) -> Result<RedbBackend> {
    Ok(match storage {
        StorageConfig::Redb(path) => RedbBackend::create(path)?,
        StorageConfig::TempRedb => RedbBackend::temp()?,
        StorageConfig::Memory => RedbBackend::in_memory()?,
    })
}

impl<D: NetabaseDefinitionTrait> Netabase<D, RedbBackend> {
    /// Creates and starts a node on the redb database of [`NetabaseConfig::storage`]
    /// (a file, a temporary file, or redb in memory): opens it, loads (or creates) its
    /// identity, listens on the configured addresses and joins the bootstrap peers.
    /// Returns once every listener has an address. [`Netabase::with_backend`] runs a
    /// node on any other backend.
    ///
    /// # Errors
    /// [`Error::Store`] if the database cannot be opened, [`Error::Identity`] if the
    /// stored identity is invalid, [`Error::Transport`] or [`Error::Listen`] if the
    /// network cannot be set up.
    pub async fn new(config: NetabaseConfig) -> Result<Self> {
        let node = Self::create(config)?;
        node.start().await?;
        Ok(node)
    }

    /// Creates a node without starting it, so subscribers can attach
    /// ([`Netabase::subscribe_to_broadcasts`]) before the first event. Commands sent
    /// before [`Netabase::start`] wait in the command channel.
    ///
    /// Must be called within a tokio runtime (the transports register with it).
    ///
    /// # Errors
    /// As [`Netabase::new`], except for listening errors, which [`Netabase::start`]
    /// reports.
    pub fn create(config: NetabaseConfig) -> Result<Self> {
        let backend = open_redb(&config.storage)?;
        Self::create_with_backend(backend, config)
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> Netabase<D, B> {
    /// Creates and starts a node whose database is `backend` (any backend of
    /// `netabase_store`: redb, sled, in memory, ...), which takes the place of
    /// [`NetabaseConfig::storage`].
    ///
    /// # Errors
    /// As [`Netabase::new`].
    pub async fn with_backend(backend: B, config: NetabaseConfig) -> Result<Self> {
        let node = Self::create_with_backend(backend, config)?;
        node.start().await?;
        Ok(node)
    }

    /// [`Netabase::create`] on `backend`: creates a node without starting it.
    ///
    /// # Errors
    /// As [`Netabase::create`].
    pub fn create_with_backend(backend: B, config: NetabaseConfig) -> Result<Self> {
        // The worker opens the database (format, schema, identity) on its own thread.
        let worker = StorageWorker::<D, B>::spawn_replicating(
            backend,
            config.store_limits.clone(),
            config.replication.clone(),
        )?;
        let keypair = worker.keypair().clone();
        let peer_id = keypair.public().to_peer_id();
        let signer = RecordSigner::new(&keypair).map_err(|e| Error::Identity(e.to_string()))?;
        let signer = Arc::new(signer);
        let (commands, command_rx) = mpsc::channel(config.command_buffer.max(1));
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        // Kademlia reads the records through snapshots; its writes go to the worker.
        let reads = KadStore::new(worker.backend(), peer_id, config.store_limits.clone());
        let record_view = RecordView::new(reads, worker.clone(), events.clone());
        let counters = Arc::new(Counters::default());
        let swarm = build_swarm(
            keypair,
            &config,
            record_view,
            counters.sync_refused_messages(),
        )?;
        let max_value_bytes = config.store_limits.max_value_bytes;
        let event_loop = EventLoop::new(
            swarm,
            worker.clone(),
            command_rx,
            events.clone(),
            Arc::clone(&counters),
            Arc::clone(&signer),
            config,
        );
        Ok(Netabase {
            inner: Arc::new(Shared {
                commands,
                events,
                counters,
                peer_id,
                max_value_bytes,
                worker,
                signer,
                unstarted: Mutex::new(Some(event_loop)),
                task: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Starts a node made with [`Netabase::create`]; returns once every listener has an
    /// address.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a started node; [`Error::Listen`] if a listen
    /// address is refused (the node is then stopped).
    pub async fn start(&self) -> Result<()> {
        let event_loop = self
            .inner
            .unstarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(Error::AlreadyStarted)?;
        let (ready, started) = oneshot::channel();
        let task = tokio::spawn(event_loop.run(ready));
        *self.inner.task.lock().await = Some(task);
        started.await.map_err(|_| Error::Stopped)?
    }

    /// Stops the node gracefully: the task finishes the command it is running, drops the
    /// swarm, and ends; then the storage worker finishes the writes already queued and
    /// drops the database; this waits for both. Pending queries of other handles fail
    /// with [`Error::Stopped`]. Closing twice is harmless.
    ///
    /// The database closes when the last handle and every view obtained from
    /// [`Netabase::view`] are dropped too.
    pub async fn close(&self) {
        drop(
            self.inner
                .unstarted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        if let Some(task) = self.inner.task.lock().await.take() {
            let _ = task.await;
        }
        self.inner.worker.close().await;
    }

    /// A receiver of the node's events, from now on. Works before and after start.
    pub fn subscribe_to_broadcasts(&self) -> broadcast::Receiver<NetabaseEvent> {
        self.inner.events.subscribe()
    }

    /// The node's peer id (persisted with the store: it survives restarts).
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The counters of accepted and refused records and refused connections.
    pub fn stats(&self) -> NodeStats {
        self.inner.counters.snapshot()
    }

    /// A read-only view of this node's typed store, for local queries (secondary keys,
    /// ranges) over the models it put, and over every record of the models it
    /// replicates ([`NetabaseConfig::replicate`]). Other records received from the DHT
    /// are not in it (see [`Netabase::query_local_records`]). The view has read transactions only: the
    /// node's storage worker is the one writer, so holding a view (or a read
    /// transaction) across node calls never blocks the node.
    pub fn view(&self) -> NodeView<D, B> {
        self.inner.worker.view()
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command<D>,
    ) -> Result<T> {
        let (reply, response) = oneshot::channel();
        self.inner
            .commands
            .send(command(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        response.await.map_err(|_| Error::Stopped)?
    }

    /// Stores `model` in the local typed store and publishes it in the DHT: locally, then
    /// on the `replication_factor` peers closest to its key. The record is signed with
    /// this node's identity key and stamped with a version greater than any this node
    /// holds for the key; this node republishes it every `publication_interval`, and
    /// every holder replicates it every `replication_interval`.
    ///
    /// The typed model and this node's DHT record are written in one transaction, by the
    /// node's storage worker (never on the async runtime): either both are stored or
    /// neither, and both are durable before the record is sent to peers.
    ///
    /// # Errors
    /// [`Error::RecordStore`] if the encoded model is larger than the store accepts or
    /// the store is full; [`Error::Store`] if the local write fails (for example a unique
    /// key held by another model); [`Error::QuorumFailed`] if fewer peers than the quorum
    /// stored it (the record stays stored locally and is republished);
    /// [`Error::Stopped`] if the node is stopped.
    pub async fn put_record<M: NetabaseModelTrait<D>>(&self, model: M) -> Result<PutOutcome> {
        let unsigned = model.clone().into_definition().to_record()?;
        if unsigned.value.len() > self.inner.max_value_bytes {
            return Err(KadStoreError::Limit(libp2p::kad::store::Error::ValueTooLarge).into());
        }
        let signer = Arc::clone(&self.inner.signer);
        // Our own copy does not expire: this node republishes it. Peers get the TTL.
        let signed = self
            .inner
            .worker
            .run(move |storage| {
                let txn = storage.store.write()?;
                storage.check_local(&txn, &unsigned.key, Some(&unsigned.value), signer.author())?;
                let replicated = storage.replicates(M::INFO.name);
                // A replica's signed copy is kept like its typed record: no record limit.
                let signed = if replicated {
                    storage.records.put_signed_replica_in(
                        &txn,
                        &signer,
                        unsigned.key,
                        Some(unsigned.value),
                    )?
                } else {
                    storage.records.put_signed_in(
                        &txn,
                        &signer,
                        unsigned.key,
                        Some(unsigned.value),
                    )?
                };
                if replicated {
                    // One version: the typed store records the signed record's stamp.
                    put_replicated(&txn, model, signed.stamp())?;
                } else {
                    txn.open_tree::<M>().put(model)?;
                }
                txn.commit()?;
                Ok(signed)
            })
            .await?;
        self.publish(&signed).await
    }

    async fn publish(&self, signed: &SignedRecord) -> Result<PutOutcome> {
        let record = signed.to_record();
        self.request(|reply| Command::PublishRecord { record, reply })
            .await
    }

    /// Looks the model with primary key `key` up: in the local record store first, then
    /// in the DHT. The first record that passes validation (the value decodes as `M` and
    /// its key is `key`) is returned; invalid records are refused and reported.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the query timed out before any valid record or a definite
    /// "not found"; [`Error::Stopped`] if the node is stopped.
    pub async fn get_record<M: NetabaseModelTrait<D>>(
        &self,
        key: M::PrimaryKey,
    ) -> Result<Option<M>> {
        let key = record_key::<D, M>(&key);
        let found = self
            .request(|reply| Command::GetRecord { key, reply })
            .await?;
        found
            .map(|definition| M::try_from_definition(definition).map_err(|_| Error::ModelMismatch))
            .transpose()
    }

    /// Removes the model with primary key `key` from the network: removes it from the
    /// local typed store and replaces its record with a signed tombstone, in one
    /// transaction of the storage worker, then publishes the tombstone like a put. The
    /// tombstone's stamp is greater than any version this node holds, so every node
    /// that receives it drops that version and refuses older copies until the
    /// tombstone expires ([`KadStoreConfig::tombstone_ttl`](netabase_store::kad::KadStoreConfig)).
    /// Returns whether the record store held a live version of the key.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::RecordStore`] if a store fails;
    /// [`Error::QuorumFailed`] if fewer peers than the quorum stored the tombstone (it
    /// stays stored locally and is republished); [`Error::Stopped`].
    pub async fn remove_record<M: NetabaseModelTrait<D>>(
        &self,
        key: M::PrimaryKey,
    ) -> Result<bool> {
        let record_key = record_key::<D, M>(&key);
        let signer = Arc::clone(&self.inner.signer);
        let (tombstone, held) = self
            .inner
            .worker
            .run(move |storage| {
                let held = match storage.records.try_get(&record_key)? {
                    Some(record) => SignedRecord::open(&record).is_ok_and(|r| !r.is_tombstone()),
                    None => false,
                };
                let txn = storage.store.write()?;
                storage.check_local(&txn, &record_key, None, signer.author())?;
                let replicated = storage.replicates(M::INFO.name);
                let tombstone = if replicated {
                    storage
                        .records
                        .put_signed_replica_in(&txn, &signer, record_key, None)?
                } else {
                    storage
                        .records
                        .put_signed_in(&txn, &signer, record_key, None)?
                };
                if replicated {
                    txn.open_tree::<M>()
                        .remove_stamped(key, tombstone.stamp())?;
                } else {
                    txn.open_tree::<M>().remove(key)?;
                }
                txn.commit()?;
                Ok((tombstone, held))
            })
            .await?;
        self.publish(&tombstone).await?;
        Ok(held)
    }

    /// Announces this node as a provider of the model with primary key `key`, and keeps
    /// announcing it every `provider_publication_interval`. Returns when the first
    /// announcement has finished.
    ///
    /// # Errors
    /// [`Error::RecordStore`] if the provider store is full; [`Error::Timeout`] if the
    /// announcement timed out (the node still provides the key); [`Error::Stopped`].
    pub async fn start_providing<M: NetabaseModelTrait<D>>(
        &self,
        key: M::PrimaryKey,
    ) -> Result<()> {
        let key = record_key::<D, M>(&key);
        // The local provider record is durable (and its limits checked) before Kademlia
        // announces it.
        let local = ProviderRecord::new(key.clone(), self.inner.peer_id, Vec::new());
        self.inner
            .worker
            .run(move |storage| Ok(storage.records.try_add_provider(&local)?))
            .await?;
        self.request(|reply| Command::StartProviding { key, reply })
            .await
    }

    /// Stops announcing this node as a provider of `key` (a local operation: peers
    /// forget it when their provider records expire).
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn stop_providing<M: NetabaseModelTrait<D>>(&self, key: M::PrimaryKey) -> Result<()> {
        let key = record_key::<D, M>(&key);
        let (local, removed) = (self.inner.peer_id, key.clone());
        self.inner
            .worker
            .run(move |storage| Ok(storage.records.try_remove_provider(&removed, &local)?))
            .await?;
        self.request(|reply| Command::StopProviding { key, reply })
            .await
    }

    /// The peers that provide the model with primary key `key` (this node included if it
    /// does).
    ///
    /// # Errors
    /// [`Error::Timeout`] if the query timed out without finding any provider;
    /// [`Error::Stopped`].
    pub async fn get_providers<M: NetabaseModelTrait<D>>(
        &self,
        key: M::PrimaryKey,
    ) -> Result<HashSet<PeerId>> {
        let key = record_key::<D, M>(&key);
        self.request(|reply| Command::GetProviders { key, reply })
            .await
    }

    /// The peers that announce themselves as replicas of this definition (nodes that
    /// replicate some of its models, [`NetabaseConfig::replicate`]), found through the
    /// DHT: a replicating node announces itself at start and every `sync_interval`, and
    /// connects to the replicas it finds, so replicas that share no connection still
    /// find each other. This node is not included.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the lookup timed out without finding any replica;
    /// [`Error::Stopped`].
    pub async fn replicas(&self) -> Result<HashSet<PeerId>> {
        let key = replicas_key::<D>();
        self.request(|reply| Command::GetProviders { key, reply })
            .await
    }

    /// Joins the DHT through the peers in the routing table: looks up this node's own
    /// id, then refreshes the buckets. Returns when the bootstrap has finished.
    ///
    /// # Errors
    /// [`Error::NoKnownPeers`] if the routing table is empty; [`Error::Timeout`];
    /// [`Error::Stopped`].
    pub async fn bootstrap(&self) -> Result<()> {
        self.request(|reply| Command::Bootstrap { reply }).await
    }

    /// Adds `address` of `peer` to the routing table and connects to it (unless already
    /// connected).
    ///
    /// # Errors
    /// [`Error::Dial`] if the dial cannot start (a connection that fails later is
    /// reported as an event); [`Error::Stopped`].
    pub async fn add_address(&self, peer: PeerId, address: Multiaddr) -> Result<()> {
        self.request(|reply| Command::AddAddress {
            peer,
            address,
            reply,
        })
        .await
    }

    /// Removes `address` of `peer` from the routing table; returns whether the peer was
    /// in it.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn remove_address(&self, peer: PeerId, address: Multiaddr) -> Result<bool> {
        self.request(|reply| Command::RemoveAddress {
            peer,
            address,
            reply,
        })
        .await
    }

    /// Removes `peer` from the routing table; returns whether it was in it.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn remove_peer(&self, peer: PeerId) -> Result<bool> {
        self.request(|reply| Command::RemovePeer { peer, reply })
            .await
    }

    /// Closes every connection with `peer`, removes it from the routing table and
    /// stops dialling it, whatever asks (a query that learns of it from a third peer,
    /// replica discovery, a periodic catch-up session), until the application names it
    /// again with [`Netabase::add_address`] or [`Netabase::sync_with`]: say, to take a
    /// node apart from another and later reconnect them, which reconciles them. The
    /// peer itself may still connect to this node (disconnect on both sides to keep
    /// two nodes apart). Returns whether it was connected.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool> {
        self.request(|reply| Command::Disconnect { peer, reply })
            .await
    }

    /// The current Kademlia mode.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn mode(&self) -> Result<Mode> {
        self.request(|reply| Command::Mode { reply }).await
    }

    /// Sets the Kademlia mode (`None`: automatic).
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn set_mode(&self, mode: Option<Mode>) -> Result<()> {
        self.request(|reply| Command::SetMode { mode, reply }).await
    }

    /// The addresses the node listens on.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>> {
        self.request(|reply| Command::ListenAddrs { reply }).await
    }

    /// Starts a reconciliation of the synced models with `peer` (dialling it if
    /// needed, even after [`Netabase::disconnect`]), unless one is already running;
    /// returns once it is started. Its end
    /// is broadcast as [`NetabaseEvent::Synced`](crate::NetabaseEvent::Synced) or
    /// [`NetabaseEvent::SyncFailed`](crate::NetabaseEvent::SyncFailed). Nodes also
    /// reconcile on connection and every
    /// [`NetabaseConfig::sync_interval`](crate::NetabaseConfig::sync_interval).
    ///
    /// # Errors
    /// [`Error::NotSynced`] on a node without synced models; [`Error::Stopped`].
    pub async fn sync_with(&self, peer: PeerId) -> Result<()> {
        self.request(|reply| Command::SyncWith { peer, reply })
            .await
    }

    /// The peers with at least one open connection.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>> {
        self.request(|reply| Command::ConnectedPeers { reply })
            .await
    }

    /// This node's author id: the ed25519 public key its records are signed with, the
    /// id that [`WritePolicy::Members`](crate::WritePolicy::Members), memberships and
    /// admin declarations name.
    pub fn author(&self) -> WriterId {
        self.inner.signer.author()
    }

    /// Publishes the membership of `group` ([`WritePolicy::Group`](crate::WritePolicy::Group)):
    /// a [`Membership`] record signed by this node, which must be an admin
    /// ([`NetabaseConfig::with_admin`]), stamped above the membership held, stored and
    /// sent like any record (DHT and live updates). The newest membership wins on every
    /// node.
    ///
    /// # Errors
    /// [`Error::NotPermitted`] if this node is not an admin; otherwise as
    /// [`Netabase::put_record`].
    pub async fn set_members(
        &self,
        group: &str,
        members: impl IntoIterator<Item = WriterId>,
    ) -> Result<PutOutcome> {
        let membership = Membership::new(group, members);
        let value = membership
            .encode()
            .map_err(|e| NetabaseError::encode("membership", e))?;
        let key = membership_key::<D>(group);
        let signer = Arc::clone(&self.inner.signer);
        let signed = self
            .inner
            .worker
            .run(move |storage| {
                let txn = storage.store.write()?;
                storage.check_local(&txn, &key, Some(&value), signer.author())?;
                // The permissions depend on it: kept whatever the record limit.
                let signed =
                    storage
                        .records
                        .put_signed_replica_in(&txn, &signer, key, Some(value))?;
                txn.commit()?;
                Ok(signed)
            })
            .await?;
        self.publish(&signed).await
    }

    /// Replaces the write permissions this node enforces (those of
    /// [`NetabaseConfig::replication`] at start): for permissions known only once the
    /// nodes' author ids are. Every replica of the definition must enforce the same.
    ///
    /// They are kept in the node's database, and a node restarted on it enforces them
    /// again from its start (it would otherwise accept, until the application set them
    /// again, records every other replica refuses) — as long as it is configured with
    /// the permissions it had when they were set: a node started with other configured
    /// permissions enforces those (the configuration changed since, deliberately) and
    /// drops the stored ones. Setting the configured permissions again removes them.
    /// Write rules ([`Netabase::set_write_rule`]) are code, not data: set them at every
    /// start.
    ///
    /// # Errors
    /// [`Error::Store`] if they cannot be stored (nothing changes then);
    /// [`Error::Stopped`] if the node is stopped.
    pub async fn set_permissions(&self, permissions: Permissions) -> Result<()> {
        self.inner
            .worker
            .run(move |storage| {
                let mut enforcer = storage.enforcer.borrow_mut();
                store_permissions(
                    storage.store.raw_backend(),
                    &enforcer.configured,
                    &permissions,
                )?;
                enforcer.config.permissions = permissions;
                Ok(())
            })
            .await
    }

    /// The write permissions this node enforces: those of its configuration, or those
    /// set by [`Netabase::set_permissions`] (kept across restarts).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the node is stopped.
    pub async fn permissions(&self) -> Result<Permissions> {
        self.inner
            .worker
            .run(|storage| Ok(storage.enforcer.borrow().config.permissions.clone()))
            .await
    }

    /// Adds an application rule for the records of model `M`, checked after the
    /// model's [`WritePolicy`](crate::WritePolicy) on every inbound path and on this
    /// node's writes (replacing an earlier rule of `M`). Every replica of the
    /// definition must run the same rule.
    ///
    /// # Errors
    /// [`Error::Stopped`] if the node is stopped.
    pub async fn set_write_rule<M: NetabaseModelTrait<D>>(
        &self,
        rule: impl WriteRule<D>,
    ) -> Result<()> {
        let rule: Arc<dyn WriteRule<D>> = Arc::new(rule);
        self.inner
            .worker
            .run(move |storage| {
                storage
                    .enforcer
                    .borrow_mut()
                    .add_rule(M::INFO.name.to_owned(), rule);
                Ok(())
            })
            .await
    }

    /// Up to `limit` valid, unexpired records held in this node's record store (its own
    /// and those it stores for the network), decoded, in record-key order.
    ///
    /// # Errors
    /// [`Error::RecordStore`] if the store fails; [`Error::Stopped`].
    pub async fn query_local_records(&self, limit: usize) -> Result<Vec<D>> {
        let max = self.inner.max_value_bytes;
        self.inner
            .worker
            .run(move |storage| {
                let records = storage.records.try_records()?;
                Ok(records
                    .iter()
                    .filter_map(|r| {
                        let payload = SignedRecord::open(r).ok()?.payload()?;
                        validate_record::<D>(&payload, max).ok()
                    })
                    .take(limit)
                    .collect())
            })
            .await
    }
}

/// This node's put of a replicated model, with the stamp of the record it signed. It
/// is the newest version the node has seen, so it wins its key; a unique key held by
/// another record is refused, as any local put refuses it (the transaction is dropped,
/// so a holder the version rule displaced stays).
fn put_replicated<D: NetabaseDefinitionTrait, B: Backend, M: NetabaseModelTrait<D>>(
    txn: &TxnGuard<'_, D, B, ReadWrite>,
    model: M,
    stamp: VersionStamp,
) -> Result<()> {
    match txn.open_tree::<M>().put_stamped(model, stamp)? {
        StampedWrite::Applied { mut displaced } if !displaced.is_empty() => {
            Err(NetabaseError::UniqueViolation(Box::new(displaced.swap_remove(0))).into())
        }
        StampedWrite::UniqueKeyHeld { violation, .. } => {
            Err(NetabaseError::UniqueViolation(violation).into())
        }
        _ => Ok(()),
    }
}
