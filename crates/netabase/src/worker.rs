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
//!
//! Their signatures are verified in a pipeline stage of its own, on a second thread, in
//! batches ([`verify_batch`]), a large batch split over the machine's cores (at most
//! [`MAX_VERIFY_THREADS`]): while the storage thread writes and commits one batch, the
//! verifier checks the next. Every message goes through the verifier, in order, so
//! a job or a shutdown sent after a record still runs after that record's commit. The
//! threads that verify the parts of a split batch are started with the worker and fed
//! over channels; [`StorageWorker::close`] returns once every thread of the worker has
//! been joined.

mod verifier;

use std::cell::RefCell;
use std::sync::mpsc as sync_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use libp2p::kad::Record;
use netabase_store::backend::Backend;
use netabase_store::kad::{
    BatchPut, DefinitionRecordExt, KadStore, KadStoreConfig, KadStoreError, SignedRecord,
    SignedRecordError, UnverifiedRecord, author_of, parse_record_key, verify_batch,
};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::{NetabaseStore, ReadWrite, TxnGuard};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::replication::{
    Denied, Enforcer, MEMBERS_MODEL, Replication, apply_typed, stored_permissions,
};
use crate::swarm::load_or_create_identity;
use crate::view::NodeView;
use verifier::{Unverified, Verifiers};

/// The most inbound records committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// The capacity of a worker's channel, in messages.
pub const WORKER_QUEUE: usize = 4096;

/// The most threads that verify the signatures of one batch of inbound records.
pub const MAX_VERIFY_THREADS: usize = 4;

/// How many verified batches may wait for the storage thread while it commits: the
/// verifier runs at most this far ahead of the commits.
const VERIFIED_AHEAD: usize = 2;

/// What the worker holds: the typed store and the record store, over one database.
pub(crate) struct Storage<D, B> {
    /// The typed store (models), for node puts and removes.
    pub(crate) store: NetabaseStore<D, B>,
    /// The record store (`__netabase/kad/*`).
    pub(crate) records: KadStore<Arc<B>>,
    /// The replicated models and write permissions, with the application's rules
    /// (added by jobs, hence the cell: only the worker thread touches it).
    pub(crate) enforcer: RefCell<Enforcer<D>>,
    /// The worker's signature verifiers, shared with its verifier stage.
    verifiers: Arc<Verifiers>,
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

/// What the verifier hands the storage thread, in the order the messages came.
enum Verified<D, B> {
    /// Inbound records whose signatures were verified (or refused), to commit.
    Batch {
        records: Vec<VerifiedRecord>,
        dones: Vec<Done>,
    },
    Run(Job<D, B>),
    Shutdown(oneshot::Sender<()>),
}

/// A verified record and its expiry, or why its signature was refused.
type VerifiedRecord = std::result::Result<(SignedRecord, Option<Instant>), SignedRecordError>;

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
    /// Not stored: the write permissions refuse its author this write.
    NotPermitted(String),
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
    /// The storage thread, joined by the first [`StorageWorker::close`].
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> Clone for StorageWorker<D, B> {
    fn clone(&self) -> Self {
        StorageWorker {
            sender: self.sender.clone(),
            view: self.view.clone(),
            keypair: self.keypair.clone(),
            backend: Arc::clone(&self.backend),
            thread: Arc::clone(&self.thread),
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
        Self::spawn_replicating(backend, limits, Replication::default())
    }

    /// [`StorageWorker::spawn`] for a node that replicates models and enforces write
    /// permissions (see [`crate::replication`]): the typed store is opened with sync on
    /// for the replicated models, and every inbound record goes through
    /// the worker's one apply path, which checks the permissions and applies records
    /// of replicated models to the typed store with their stamps.
    ///
    /// # Errors
    /// As [`StorageWorker::spawn`].
    pub fn spawn_replicating(
        backend: B,
        limits: KadStoreConfig,
        replication: Replication,
    ) -> Result<Self> {
        let backend = Arc::new(backend);
        let (sender, receiver) = mpsc::channel(WORKER_QUEUE);
        let (opened, open) = std::sync::mpsc::sync_channel(1);
        let (verified, to_commit) = sync_mpsc::sync_channel(VERIFIED_AHEAD);
        let shared = Arc::clone(&backend);
        // The verifier stage is one verifying thread; the helpers are the others.
        let verifiers = Verifiers::start(verify_threads() - 1, verify_batch)
            .map(Arc::new)
            .map_err(|_| Error::Stopped)?;
        let stage_verifiers = Arc::clone(&verifiers);
        let stage = std::thread::Builder::new()
            .name("netabase-verify".into())
            .spawn(move || verify_stage(receiver, verified, stage_verifiers))
            .map_err(|_| Error::Stopped)?;
        let thread = std::thread::Builder::new()
            .name("netabase-storage".into())
            .spawn(move || {
                let opened_storage = open_storage::<D, B>(backend, limits, replication, verifiers);
                let storage = match opened_storage {
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
                serve(storage, to_commit, stage);
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
            thread: Arc::new(Mutex::new(Some(thread))),
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

    /// [`StorageWorker::try_store_inbound`] of a record whose sender is not its
    /// publisher (a live update forwarded by a replica): `sender` `None` skips the
    /// sender check of the signature.
    pub(crate) fn try_store_inbound_from(
        &self,
        record: UnverifiedRecord,
        sender: Option<PeerId>,
        done: Done,
    ) -> bool {
        self.sender
            .try_send(Message::Inbound {
                record: Box::new(record),
                sender,
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

    /// Stops the worker: messages already queued are served first (each inbound record
    /// among them is committed and answered), then the database is dropped (views
    /// obtained from [`StorageWorker::view`] keep it open until they are dropped too)
    /// and every thread of the worker is joined. Closing twice is harmless.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        // The storage thread answers as its last act, after joining the verifiers, so
        // this join does not wait on any work.
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the storage thread panicked");
        }
    }
}

fn open_storage<D: NetabaseDefinitionTrait, B: Backend>(
    backend: Arc<B>,
    limits: KadStoreConfig,
    replication: Replication,
    verifiers: Arc<Verifiers>,
) -> Result<(Storage<D, B>, Keypair)> {
    let keypair = load_or_create_identity(&*backend)?;
    let peer_id = keypair.public().to_peer_id();
    // The typed store and the record store share one database: the record store keeps
    // netabase's own tables (`__netabase/kad/*`) beside the models. Replicated models
    // are synced, stamped with the node's author id.
    let options = replication.models.open_options(author_of(&peer_id));
    let store = NetabaseStore::<D, B>::from_shared_backend_with(Arc::clone(&backend), options)?;
    // Permissions set at run time hold across restarts, while the configuration the
    // node started with when they were set stays.
    let mut replication = replication;
    let configured = replication.permissions.clone();
    if let Some(set) = stored_permissions(&*backend, &configured)? {
        replication.permissions = set;
    }
    let records = KadStore::new(backend, peer_id, limits);
    adopt_replicas::<D, B>(&records, &replication)?;
    let enforcer = RefCell::new(Enforcer::new(replication, configured));
    Ok((
        Storage {
            store,
            records,
            enforcer,
            verifiers,
        },
        keypair,
    ))
}

/// Moves the signed copies of the records this node keeps as a replica (the models it
/// replicates, and the memberships when it enforces anything: what
/// [`Storage::apply_verified_batch`] keeps with [`KadStore::put_replica_in`]) out of the
/// DHT's records, where a database written before replicas were kept apart holds them,
/// so that they stop counting toward the record limit. Once moved, a reopen finds
/// nothing to move.
fn adopt_replicas<D: NetabaseDefinitionTrait, B: Backend>(
    records: &KadStore<Arc<B>>,
    replication: &Replication,
) -> Result<()> {
    let memberships = replication.is_active();
    if !memberships && replication.models.is_none() {
        return Ok(());
    }
    let moved = records.adopt_replicas(|key| {
        parse_record_key(key).is_ok_and(|parts| {
            parts.definition == D::NAME
                && ((memberships && parts.model == MEMBERS_MODEL)
                    || (parts.model != MEMBERS_MODEL && replication.models.includes(&parts.model)))
        })
    })?;
    if moved > 0 {
        tracing::info!(moved, "replica copies moved out of the DHT's records");
    }
    Ok(())
}

/// The verifier stage: takes the messages off the channel, one at a time, inbound
/// records in batches (the first one and those already waiting, up to [`MAX_BATCH`]),
/// verifies each batch's signatures and passes everything on to the storage thread in
/// the order it came. Stops after passing a shutdown on, or when every handle is gone.
fn verify_stage<D, B>(
    mut receiver: mpsc::Receiver<Message<D, B>>,
    verified: sync_mpsc::SyncSender<Verified<D, B>>,
    verifiers: Arc<Verifiers>,
) {
    let mut next = None;
    loop {
        let Some(message) = next.take().or_else(|| receiver.blocking_recv()) else {
            break;
        };
        let forward = match message {
            Message::Run(job) => Verified::Run(job),
            Message::Shutdown(reply) => {
                let _ = verified.send(Verified::Shutdown(reply));
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
                        // Anything else goes on after this batch, in the order it came.
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Verified::Batch {
                    records: verify(&verifiers, records),
                    dones,
                }
            }
        };
        if verified.send(forward).is_err() {
            // The storage thread has stopped: nothing more can be stored.
            break;
        }
    }
}

/// Verifies the signatures of a batch of inbound records (each once, here; see
/// [`verify_batch`]) on the worker's verifiers, keeping each record's expiry. A large
/// batch is split over up to [`MAX_VERIFY_THREADS`] threads (no more than the machine's
/// cores), each verifying its part as a batch of its own.
fn verify(verifiers: &Verifiers, records: Vec<Unverified>) -> Vec<VerifiedRecord> {
    let expiries: Vec<Option<Instant>> =
        records.iter().map(|(record, _)| record.expires()).collect();
    verifiers
        .verify(records)
        .into_iter()
        .zip(expiries)
        .map(|(verified, expires)| verified.map(|signed| (signed, expires)))
        .collect()
}

/// How many threads verify a large batch: the machine's cores, at most
/// [`MAX_VERIFY_THREADS`].
fn verify_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_VERIFY_THREADS)
    })
}

/// The storage thread's loop: one message at a time, in order; verified batches that
/// are waiting together are committed together.
fn serve<D: NetabaseDefinitionTrait, B: Backend>(
    storage: Storage<D, B>,
    receiver: sync_mpsc::Receiver<Verified<D, B>>,
    stage: JoinHandle<()>,
) {
    let mut next = None;
    let mut shutdown = None;
    loop {
        let Some(message) = next.take().or_else(|| receiver.recv().ok()) else {
            break;
        };
        match message {
            Verified::Run(job) => job(&storage),
            Verified::Shutdown(reply) => {
                shutdown = Some(reply);
                break;
            }
            Verified::Batch {
                mut records,
                mut dones,
            } => {
                while records.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(Verified::Batch {
                            records: more,
                            dones: more_dones,
                        }) => {
                            records.extend(more);
                            dones.extend(more_dones);
                        }
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
    // The verifier stage has passed its last message on (the shutdown, or nothing once
    // every handle is gone) and stops; whichever of the two threads drops the verifiers
    // last joins their helpers.
    if stage.join().is_err() {
        tracing::error!("the signature verifier stage panicked");
    }
    if let Some(reply) = shutdown {
        let _ = reply.send(());
    }
}

/// Writes the verified records of a batch in one transaction and tells each sender its
/// outcome after the commit.
fn commit_inbound<D: NetabaseDefinitionTrait, B: Backend>(
    storage: &Storage<D, B>,
    records: Vec<VerifiedRecord>,
    dones: Vec<Done>,
) {
    let outcomes = storage.apply_verified_batch(records);
    for (done, outcome) in dones.into_iter().zip(outcomes) {
        done(outcome);
    }
}

impl<D: NetabaseDefinitionTrait, B: Backend> Storage<D, B> {
    /// **The one apply path of signed records received from other nodes** — DHT puts,
    /// live updates, and reconciliation: verifies each record's signature (once, here,
    /// in batches; with the peer it came from, if known), then applies them
    /// ([`Storage::apply_verified_batch`]). Inbound DHT records and live updates are
    /// verified on the worker's verifier stage instead, ahead of the commit.
    pub(crate) fn apply_signed_batch(
        &self,
        records: Vec<(UnverifiedRecord, Option<PeerId>)>,
    ) -> Vec<InboundOutcome> {
        self.apply_verified_batch(verify(&self.verifiers, records))
    }

    /// Applies records whose signatures were verified (or the reason each was not) in
    /// one write transaction, record by record in order: the version rule (a record
    /// older than the version held is [`SignedRecordError::Superseded`]), the write
    /// permissions ([`InboundOutcome::NotPermitted`]), the record store write, and, for a
    /// model this node replicates, the typed store write with the record's own stamp
    /// (indexes, unique keys decided by the stamps, `watch` events at the commit).
    /// Returns one outcome per record, in order, once the commit has returned (every
    /// outcome is [`InboundOutcome::Failed`] if it failed).
    ///
    /// A node that neither replicates nor restricts writes takes the record store's
    /// group commit alone ([`KadStore::try_put_verified_batch`]).
    pub(crate) fn apply_verified_batch(&self, records: Vec<VerifiedRecord>) -> Vec<InboundOutcome> {
        let enforcer = self.enforcer.borrow();
        let count = records.len();
        let outcomes = if enforcer.is_active() {
            self.apply_checked(&enforcer, records)
        } else {
            self.records
                .try_put_verified_batch(records)
                .map(|outcomes| outcomes.into_iter().map(batch_outcome).collect())
                .map_err(Error::from)
        };
        outcomes.unwrap_or_else(|e| {
            let message = e.to_string();
            vec![InboundOutcome::Failed(message); count]
        })
    }

    fn apply_checked(
        &self,
        enforcer: &Enforcer<D>,
        records: Vec<VerifiedRecord>,
    ) -> Result<Vec<InboundOutcome>> {
        let txn = self.store.write()?;
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let outcome = match record {
                Ok((signed, expires)) => self.apply_one(enforcer, &txn, &signed, expires)?,
                Err(refused) => InboundOutcome::Refused(refused),
            };
            outcomes.push(outcome);
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// Applies one verified record inside `txn` (see [`Storage::apply_signed_batch`]).
    fn apply_one(
        &self,
        enforcer: &Enforcer<D>,
        txn: &TxnGuard<'_, D, B, ReadWrite>,
        signed: &SignedRecord,
        expires: Option<std::time::Instant>,
    ) -> Result<InboundOutcome> {
        let key = signed.key();
        // The version rule comes first: an old version is superseded, whoever wrote it.
        let offered = (signed.stamp(), signed.envelope().digest);
        let held = self.records.held_in(txn, key)?.map(|h| (h.stamp, h.digest));
        if let Some(held) = held
            && held > offered
        {
            return Ok(InboundOutcome::Refused(SignedRecordError::Superseded {
                held: held.0,
                offered: offered.0,
            }));
        }
        // The version held offered again (the DHT re-replicates records) was allowed
        // when it came: a membership change since does not make it news to refuse.
        if held != Some(offered) {
            match enforcer.check(&self.records, txn, key, signed.value(), signed.author()) {
                Ok(()) => {}
                Err(Denied::NotPermitted(reason)) => {
                    return Ok(InboundOutcome::NotPermitted(reason));
                }
                Err(Denied::Store(e)) => return Err(e.into()),
            }
        }
        let parts = parse_record_key(key).ok();
        let membership = parts
            .as_ref()
            .is_some_and(|parts| parts.model == MEMBERS_MODEL);
        let replicated = !membership
            && parts
                .as_ref()
                .is_some_and(|parts| enforcer.config.models.includes(&parts.model));
        // A replica's signed copy is kept as long as the typed store holds it (to pass it
        // on), and so is a membership (the permissions depend on it): no expiry, no
        // record limit. Other records are held for the DHT under its limits.
        let put = if replicated || membership {
            self.records.put_replica_in(txn, signed)
        } else {
            self.records.put_verified_in(txn, signed, expires)
        };
        match put {
            Ok(()) => {}
            Err(KadStoreError::Refused(e)) => return Ok(InboundOutcome::Refused(e)),
            Err(KadStoreError::Limit(limit)) => return Ok(InboundOutcome::StoreFull(limit)),
            Err(e) => return Err(e.into()),
        }
        // Memberships live in the record store only.
        let Some(parts) = parts.filter(|_| replicated) else {
            return Ok(InboundOutcome::Stored);
        };
        let value = match signed.payload() {
            Some(payload) => Some(D::from_record(&payload)?),
            None => None,
        };
        match apply_typed(txn, &parts.model, &parts.primary_key, value, signed.stamp()) {
            Ok(_) => {}
            // A refusal of the typed layer (a link to a record not held here) leaves the
            // signed record stored for the network; the typed store skips it.
            Err(e) if !is_engine_failure(&e) => {
                tracing::debug!(model = %parts.model, error = %e, "record not applied to the typed store");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(InboundOutcome::Stored)
    }

    /// Checks that this node (`author`) may write `value` (`None`: remove) under `key`
    /// in `txn`: the write permissions apply to local writes too.
    ///
    /// # Errors
    /// [`Error::NotPermitted`] if they refuse it; [`Error::RecordStore`] if the store
    /// fails while deciding.
    pub(crate) fn check_local(
        &self,
        txn: &TxnGuard<'_, D, B, ReadWrite>,
        key: &libp2p::kad::RecordKey,
        value: Option<&[u8]>,
        author: netabase_store::sync::WriterId,
    ) -> Result<()> {
        let enforcer = self.enforcer.borrow();
        if !enforcer.is_active() {
            return Ok(());
        }
        match enforcer.check(&self.records, txn, key, value, author) {
            Ok(()) => Ok(()),
            Err(Denied::NotPermitted(reason)) => Err(Error::NotPermitted {
                key: key.clone(),
                reason,
            }),
            Err(Denied::Store(e)) => Err(e.into()),
        }
    }

    /// Whether the model `name` is replicated by this node.
    pub(crate) fn replicates(&self, name: &str) -> bool {
        self.enforcer.borrow().config.models.includes(name)
    }
}

/// Whether a typed-layer error is an engine failure (which fails the batch) rather than
/// a refusal of one record.
fn is_engine_failure(e: &netabase_store::NetabaseError) -> bool {
    matches!(
        e,
        netabase_store::NetabaseError::Backend(_) | netabase_store::NetabaseError::Poisoned(_)
    )
}

fn batch_outcome(outcome: BatchPut) -> InboundOutcome {
    match outcome {
        BatchPut::Stored => InboundOutcome::Stored,
        BatchPut::Refused(e) => InboundOutcome::Refused(e),
        BatchPut::Declined => InboundOutcome::Failed("declined".into()),
        BatchPut::Limit(limit) => InboundOutcome::StoreFull(limit),
        _ => InboundOutcome::Failed("unknown batch outcome".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use libp2p::identity::Keypair;
    use libp2p::kad::{Record, RecordKey};
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::kad::{Envelope, RecordSigner, VERIFY_CHUNK};
    use netabase_store::prelude::*;

    use super::*;

    #[netabase_definition_module(TestDefinition, TestKeys)]
    pub mod schema {
        use netabase_store::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[netabase(TestDefinition)]
        pub struct Note {
            #[primary_key]
            pub id: u64,
        }
    }
    use schema::TestDefinition;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// How long the test waits for any one answer before it fails.
    const WAIT: Duration = Duration::from_secs(30);

    /// One batch of inbound records, large enough to be split over the verifier
    /// threads, with bad records at its ends, around the middle and in runs of one
    /// verification chunk, has exactly its bad records refused, each for its own
    /// reason, and every good one stored. (With one core the worker has one verifying
    /// thread and does not split it; the verifier pool's own tests split a batch over
    /// four threads on any machine.)
    #[test]
    fn one_split_batch_refuses_exactly_its_bad_records() -> TestResult {
        let backend = MemoryBackend::new();
        let worker =
            StorageWorker::<TestDefinition, _>::spawn(backend.clone(), KadStoreConfig::default())?;
        // Hold the storage thread, and fill the verified queue behind it, so that the
        // verifier is held too: every record below is waiting when it takes the first,
        // and it takes them all as one batch.
        let (release, held) = std_mpsc::channel::<()>();
        assert!(worker.try_run(move |_| {
            let _ = held.recv();
        }));
        for _ in 0..=VERIFIED_AHEAD {
            assert!(worker.try_run(|_| {}));
        }
        let author = RecordSigner::new(&Keypair::generate_ed25519())?;
        let thief = Keypair::generate_ed25519();
        let len = 4 * VERIFY_CHUNK + 9;
        let badly_signed = [0, 1, 70, 131, 132, 133, 200, len - 1];
        let stolen = [2, 134, 199, len - 2];
        let (answer, answers) = std_mpsc::channel();
        for index in 0..len {
            let key = RecordKey::new(&format!("record {index}"));
            let sealed = author
                .seal(key.clone(), Some(vec![1; 32]), author.next_stamp(None))
                .to_record();
            let mut envelope = Envelope::decode(&sealed.value)?;
            let record = if badly_signed.contains(&index) {
                if let Some(byte) = envelope.signature.first_mut() {
                    *byte ^= 0x55;
                }
                Record::new(key, envelope.encode())
            } else if stolen.contains(&index) {
                envelope.signature = thief.sign(&envelope.signing_bytes(&key))?;
                let mut forged = Record::new(key, envelope.encode());
                forged.publisher = Some(thief.public().to_peer_id());
                forged
            } else {
                sealed
            };
            let answer = answer.clone();
            let done: Done = Box::new(move |outcome| {
                let _ = answer.send((index, outcome));
            });
            let queued = worker.try_store_inbound_from(
                SignedRecord::decode_unverified(&record)?,
                None,
                done,
            );
            assert!(queued, "record {index} not queued");
        }
        release.send(())?;
        let mut outcomes = vec![None; len];
        for _ in 0..len {
            let (index, outcome) = answers.recv_timeout(WAIT)?;
            outcomes[index] = Some(outcome);
        }
        for (index, outcome) in outcomes.into_iter().enumerate() {
            let fine = match &outcome {
                Some(InboundOutcome::Stored) => {
                    !badly_signed.contains(&index) && !stolen.contains(&index)
                }
                Some(InboundOutcome::Refused(SignedRecordError::BadSignature { .. })) => {
                    badly_signed.contains(&index)
                }
                Some(InboundOutcome::Refused(SignedRecordError::StolenAuthorship { .. })) => {
                    stolen.contains(&index)
                }
                _ => false,
            };
            assert!(fine, "record {index}: {outcome:?}");
        }
        let records = KadStore::new(backend, PeerId::random(), KadStoreConfig::default());
        let stored = len - badly_signed.len() - stolen.len();
        assert_eq!(
            libp2p::kad::store::RecordStore::records(&records).count(),
            stored
        );
        Ok(())
    }
}
