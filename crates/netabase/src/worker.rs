//! The storage worker: the one owner of a node's database.
//!
//! Every write of a node — the models and DHT records it puts, the records and provider
//! records peers send it, the expiry sweep, its identity — runs on one dedicated thread,
//! never on the async runtime. The event loop and the handles send it messages over a
//! bounded channel and get their answers back on oneshot channels (or callbacks), so a
//! slow disk delays storage, not the swarm.
//!
//! Inbound records are group-committed: the worker takes the first one off the channel,
//! drains whatever other inbound records are already waiting (up to [`MAX_BATCH`]),
//! writes them all in one transaction and commits once; each sender is told the outcome
//! of its record only after that commit has returned, that is once it is durable.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use libp2p::kad::Record;
use netabase_store::backend::Backend;
use netabase_store::kad::{
    BatchPut, KadStore, KadStoreConfig, SignedRecord, SignedRecordError, UnverifiedRecord,
    author_of,
};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::{NetabaseStore, OpenOptions};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::swarm::load_or_create_identity;
use crate::view::NodeView;

/// The most inbound records committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// The capacity of a worker's channel, in messages.
pub const WORKER_QUEUE: usize = 4096;

/// What the worker holds: the typed store and the record store, over one database.
pub(crate) struct Storage<D, B> {
    /// The typed store (models), for node puts and removes.
    pub(crate) store: NetabaseStore<D, B>,
    /// The record store (`__netabase/kad/*`).
    pub(crate) records: KadStore<Arc<B>>,
}

/// A job run on the worker thread, in its own transaction(s).
type Job<D, B> = Box<dyn FnOnce(&Storage<D, B>) + Send>;

/// Called with the outcome of an inbound record once its batch is committed.
pub(crate) type Done = Box<dyn FnOnce(InboundOutcome) + Send>;

enum Message<D, B> {
    /// A record whose envelope and model were checked, but not its signature: the
    /// batch verifies it (once, here, off the swarm task), with the peer it came from.
    Inbound {
        record: Box<UnverifiedRecord>,
        sender: Option<PeerId>,
        done: Done,
    },
    Run(Job<D, B>),
    /// Stop after the messages already taken, drop the database, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// What became of a record given to [`StorageWorker::store_inbound`]; returned only
/// after the transaction that holds it is durable.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum InboundOutcome {
    /// Stored: the commit that holds it has returned.
    Stored,
    /// Not stored: not validly signed, or it loses to the version held (see
    /// [`netabase_store::kad::SignedRecordError`]).
    Refused(SignedRecordError),
    /// Not stored: a limit of the record store was reached.
    StoreFull(libp2p::kad::store::Error),
    /// Not stored: the database failed (the whole batch is then lost).
    Failed(String),
}

/// The storage worker of a node: a dedicated thread that owns the node's database and
/// runs every write to it. A [`Netabase`](crate::Netabase) node starts one; it can also
/// run on its own, to measure or embed the storage side of a node.
///
/// Handles are cheap to clone. The thread stops on [`StorageWorker::close`], or when
/// every handle is dropped.
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
/// use netabase::worker::{InboundOutcome, StorageWorker};
/// use netabase_store::backend::memory::MemoryBackend;
/// use netabase_store::kad::{DefinitionRecordExt, KadStoreConfig, RecordSigner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let worker =
///     StorageWorker::<AppDefinition, _>::spawn(MemoryBackend::new(), KadStoreConfig::default())?;
/// // Records are signed by their author.
/// let author = RecordSigner::new(&libp2p::identity::Keypair::generate_ed25519())?;
/// let unsigned = AppDefinition::Note(Note { id: 1, text: "hi".into() }).to_record()?;
/// let record = author
///     .seal(unsigned.key, Some(unsigned.value), author.next_stamp(None))
///     .to_record();
/// let outcome = worker.store_inbound(record).await?;
/// assert!(matches!(outcome, InboundOutcome::Stored));
///
/// // An unsigned record is refused.
/// let unsigned = AppDefinition::Note(Note { id: 2, text: "?".into() }).to_record()?;
/// let outcome = worker.store_inbound(unsigned).await?;
/// assert!(matches!(outcome, InboundOutcome::Refused(_)));
/// worker.close().await;
/// # Ok(()) }
/// ```
pub struct StorageWorker<D: NetabaseDefinitionTrait, B: Backend> {
    sender: mpsc::Sender<Message<D, B>>,
    view: NodeView<D, B>,
    keypair: Keypair,
    backend: Arc<B>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> Clone for StorageWorker<D, B> {
    fn clone(&self) -> Self {
        StorageWorker {
            sender: self.sender.clone(),
            view: self.view.clone(),
            keypair: self.keypair.clone(),
            backend: Arc::clone(&self.backend),
        }
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> std::fmt::Debug for StorageWorker<D, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageWorker")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> StorageWorker<D, B> {
    /// Starts the worker thread on `backend`: it opens the typed store (checking the
    /// format and schema), loads the node identity stored in the database (or creates
    /// and stores one), then serves messages. Returns once the database is open.
    ///
    /// # Errors
    /// [`Error::Store`] if the database cannot be opened, [`Error::Identity`] if the
    /// stored identity is invalid, [`Error::Stopped`] if the thread cannot start.
    pub fn spawn(backend: B, limits: KadStoreConfig) -> Result<Self> {
        Self::spawn_synced(backend, limits, Vec::new())
    }

    /// [`StorageWorker::spawn`] with sync on for the models named in `sync_models`
    /// (see [`NetabaseConfig::sync_models`](crate::NetabaseConfig::sync_models)): the
    /// typed store stamps its writes with the node's identity key as writer id.
    ///
    /// # Errors
    /// As [`StorageWorker::spawn`].
    pub fn spawn_synced(
        backend: B,
        limits: KadStoreConfig,
        sync_models: Vec<String>,
    ) -> Result<Self> {
        let backend = Arc::new(backend);
        let (sender, receiver) = mpsc::channel(WORKER_QUEUE);
        let (opened, open) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::clone(&backend);
        std::thread::Builder::new()
            .name("netabase-storage".into())
            .spawn(move || {
                let storage = match open_storage::<D, B>(backend, limits, &sync_models) {
                    Ok((storage, keypair)) => {
                        let view = NodeView::new(storage.store.clone());
                        if opened.send(Ok((view, keypair))).is_err() {
                            return;
                        }
                        storage
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                serve(storage, receiver);
            })
            .map_err(|_| Error::Stopped)?;
        // The database is opened once, at creation, before the node runs: waiting for
        // it here is what opening it inline did before.
        let (view, keypair) = open.recv().map_err(|_| Error::Stopped)??;
        Ok(StorageWorker {
            sender,
            view,
            keypair,
            backend: shared,
        })
    }

    /// The peer id of the identity stored in the database.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The database, for the read transactions of the behaviour's record store.
    pub(crate) fn backend(&self) -> Arc<B> {
        Arc::clone(&self.backend)
    }

    /// A read-only view of the database.
    pub fn view(&self) -> NodeView<D, B> {
        self.view.clone()
    }

    /// Stores a record received from the network, group-committed with the other
    /// inbound records waiting for the worker; resolves once the commit that holds it
    /// is durable (or refused, see [`InboundOutcome`]). The envelope is decoded here
    /// ([`SignedRecord::decode_unverified`]: an unsigned or altered record is refused
    /// at once); the signature is verified on the worker thread, in the batch, and the
    /// version rule applied there (a record older than the version held is refused). A
    /// node validates the model itself before it hands records over.
    ///
    /// # Errors
    /// [`Error::Stopped`] if the worker has stopped.
    pub async fn store_inbound(&self, record: Record) -> Result<InboundOutcome> {
        let record = match SignedRecord::decode_unverified(&record) {
            Ok(record) => record,
            Err(refused) => return Ok(InboundOutcome::Refused(refused)),
        };
        let (reply, outcome) = oneshot::channel();
        let done: Done = Box::new(move |outcome| {
            let _ = reply.send(outcome);
        });
        self.sender
            .send(Message::Inbound {
                record: Box::new(record),
                sender: None,
                done,
            })
            .await
            .map_err(|_| Error::Stopped)?;
        outcome.await.map_err(|_| Error::Stopped)
    }

    /// [`StorageWorker::store_inbound`] of a record already decoded (and its model
    /// checked), received from `sender`, without waiting: the worker verifies its
    /// signature in the batch, and `done` is called on the worker thread after the
    /// commit. Returns false (and drops `done`) when the queue is full or the worker has
    /// stopped.
    pub(crate) fn try_store_inbound(
        &self,
        record: UnverifiedRecord,
        sender: PeerId,
        done: Done,
    ) -> bool {
        self.sender
            .try_send(Message::Inbound {
                record: Box::new(record),
                sender: Some(sender),
                done,
            })
            .is_ok()
    }

    /// Runs `job` on the worker and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Storage<D, B>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = oneshot::channel();
        let job: Job<D, B> = Box::new(move |storage| {
            let _ = reply.send(job(storage));
        });
        self.sender
            .send(Message::Run(job))
            .await
            .map_err(|_| Error::Stopped)?;
        result.await.map_err(|_| Error::Stopped)?
    }

    /// Queues `job` without waiting for it (from synchronous code); returns whether
    /// it was queued (not when the queue is full or the worker has stopped).
    pub(crate) fn try_run(&self, job: impl FnOnce(&Storage<D, B>) + Send + 'static) -> bool {
        self.sender.try_send(Message::Run(Box::new(job))).is_ok()
    }

    /// Stops the worker: messages already queued are served first, then the database
    /// is dropped (views obtained from [`StorageWorker::view`] keep it open until they
    /// are dropped too). Closing twice is harmless.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn open_storage<D: NetabaseDefinitionTrait, B: Backend>(
    backend: Arc<B>,
    limits: KadStoreConfig,
    sync_models: &[String],
) -> Result<(Storage<D, B>, Keypair)> {
    let keypair = load_or_create_identity(&*backend)?;
    let peer_id = keypair.public().to_peer_id();
    // The typed store and the record store share one database: the record store keeps
    // netabase's own tables (`__netabase/kad/*`) beside the models.
    let mut options = OpenOptions::default();
    if !sync_models.is_empty() {
        // Stamps name the node's identity key: the versions it writes are the ones it
        // can sign when it reconciles them with peers.
        let writer = author_of(&peer_id)
            .ok_or_else(|| Error::Identity("synced models need an ed25519 node identity".into()))?;
        options = options.writer_id(writer);
        for model in sync_models {
            options = options.sync_model(model.clone());
        }
    }
    let store = NetabaseStore::<D, B>::from_shared_backend_with(Arc::clone(&backend), options)?;
    let records = KadStore::new(backend, peer_id, limits);
    Ok((Storage { store, records }, keypair))
}

/// The worker loop: one message at a time, inbound records in batches.
fn serve<D: NetabaseDefinitionTrait, B: Backend>(
    storage: Storage<D, B>,
    mut receiver: mpsc::Receiver<Message<D, B>>,
) {
    let mut next = None;
    let mut shutdown = None;
    loop {
        let Some(message) = next.take().or_else(|| receiver.blocking_recv()) else {
            break;
        };
        match message {
            Message::Run(job) => job(&storage),
            Message::Shutdown(reply) => {
                shutdown = Some(reply);
                break;
            }
            Message::Inbound {
                record,
                sender,
                done,
            } => {
                let mut records = vec![(*record, sender)];
                let mut dones = vec![done];
                while records.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(Message::Inbound {
                            record,
                            sender,
                            done,
                        }) => {
                            records.push((*record, sender));
                            dones.push(done);
                        }
                        // Anything else runs after this batch, in the order it came.
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_inbound(&storage, records, dones);
            }
        }
    }
    // Drop the database before answering, so that it can be reopened at once.
    drop(receiver);
    drop(storage);
    if let Some(reply) = shutdown {
        let _ = reply.send(());
    }
}

/// Verifies a batch of inbound records (each signature once, here), writes the valid
/// ones in one transaction and tells each sender its outcome after the commit.
fn commit_inbound<D, B: Backend>(
    storage: &Storage<D, B>,
    records: Vec<(UnverifiedRecord, Option<PeerId>)>,
    dones: Vec<Done>,
) {
    // The signatures and the version rule decide (inside the batch).
    let committed = storage.records.try_put_unverified_batch(records);
    match committed {
        Ok(outcomes) => {
            for (done, outcome) in dones.into_iter().zip(outcomes) {
                done(match outcome {
                    BatchPut::Stored => InboundOutcome::Stored,
                    BatchPut::Refused(e) => InboundOutcome::Refused(e),
                    BatchPut::Declined => InboundOutcome::Failed("declined".into()),
                    BatchPut::Limit(limit) => InboundOutcome::StoreFull(limit),
                    _ => InboundOutcome::Failed("unknown batch outcome".into()),
                });
            }
        }
        Err(e) => {
            let message = e.to_string();
            for done in dones {
                done(InboundOutcome::Failed(message.clone()));
            }
        }
    }
}
