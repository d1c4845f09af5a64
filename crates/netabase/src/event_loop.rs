//! The node task: the only owner of the swarm.
//!
//! Handles send [`Command`]s over a bounded channel, each with a oneshot reply. Commands
//! that start a Kademlia query park their reply in a `pending_*` map keyed by the
//! query's `QueryId`; the swarm event that finishes the query takes it out and answers.
//! No state is shared with the handles except the event broadcast and the counters.
//!
//! The task never calls the store: inbound records and provider records that pass
//! validation are handed to the storage worker, whose answers come back on the
//! `settled` channel once their commit is durable; only then is the sender of a record
//! acknowledged (see [`crate::acks`]). The expiry sweep is a worker job too.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::kad::{
    self, GetClosestPeersError, GetProvidersOk, GetRecordError, GetRecordOk, InboundRequest,
    PeerRecord, ProviderRecord, PutRecordError, QueryId, QueryResult, Quorum, Record, RecordKey,
};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use netabase_store::backend::Backend;
use netabase_store::kad::{
    KadStore, KadStoreError, RecordSigner, SignedRecord, SignedRecordError, UnverifiedRecord,
    parse_record_key, validate_record, wall_millis,
};
use netabase_store::schema::{DiscriminantTrait, NetabaseDefinitionTrait};
use netabase_store::sync::VersionStamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::NetabaseConfig;
use crate::error::{Error, Result};
use crate::event::{Counters, Discovery, NetabaseEvent, RecordOrigin, RefusalKind};
use crate::node::PutOutcome;
use crate::replication::{check_membership_value, membership_group, replicas_key};
use crate::swarm::{Behaviour, BehaviourEvent};
use crate::sync_protocol::{NodeAttestation, SyncDriver};
use crate::view::RecordView;
use crate::worker::{InboundOutcome, StorageWorker};

type Reply<T> = oneshot::Sender<Result<T>>;

/// A request from a handle to the node task.
pub(crate) enum Command<D> {
    /// Sends a record already stored locally (in the same transaction as its model)
    /// to the closest peers.
    PublishRecord {
        record: Record,
        reply: Reply<PutOutcome>,
    },
    GetRecord {
        key: RecordKey,
        reply: Reply<Option<D>>,
    },
    StartProviding {
        key: RecordKey,
        reply: Reply<()>,
    },
    StopProviding {
        key: RecordKey,
        reply: Reply<()>,
    },
    GetProviders {
        key: RecordKey,
        reply: Reply<HashSet<PeerId>>,
    },
    Bootstrap {
        reply: Reply<()>,
    },
    AddAddress {
        peer: PeerId,
        address: Multiaddr,
        reply: Reply<()>,
    },
    RemoveAddress {
        peer: PeerId,
        address: Multiaddr,
        reply: Reply<bool>,
    },
    RemovePeer {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Mode {
        reply: Reply<kad::Mode>,
    },
    SetMode {
        mode: Option<kad::Mode>,
        reply: Reply<()>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    ConnectedPeers {
        reply: Reply<Vec<PeerId>>,
    },
    SyncWith {
        peer: PeerId,
        reply: Reply<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A get collecting the valid versions found until its query finishes; the winner
/// (greatest stamp) answers it.
struct PendingGet<D> {
    best: Option<(SignedRecord, Option<D>)>,
    reply: Reply<Option<D>>,
}

/// A put waiting for its closest-peers lookup, then for the peers' acknowledgements.
struct PendingPut {
    key: RecordKey,
    record: Option<Record>,
    reply: Reply<PutOutcome>,
}

/// What the storage worker did with something the swarm received.
enum Settled {
    Record {
        source: PeerId,
        connection: ConnectionId,
        key: RecordKey,
        /// The stamp the record claims; verified if the outcome is `Stored`.
        stamp: VersionStamp,
        outcome: InboundOutcome,
    },
    Provider {
        key: RecordKey,
        provider: PeerId,
        outcome: InboundOutcome,
    },
    /// A live update from a replica (`source`: the peer that forwarded it).
    LiveUpdate {
        source: PeerId,
        key: RecordKey,
        stamp: VersionStamp,
        outcome: InboundOutcome,
    },
}

pub(crate) struct EventLoop<D: NetabaseDefinitionTrait, B: Backend> {
    swarm: Swarm<Behaviour<D, B>>,
    worker: StorageWorker<D, B>,
    /// The worker's answers; as many as records handed to it, so bounded by its queue.
    settled: mpsc::UnboundedReceiver<Settled>,
    settled_sender: mpsc::UnboundedSender<Settled>,
    commands: mpsc::Receiver<Command<D>>,
    events: broadcast::Sender<NetabaseEvent>,
    counters: Arc<Counters>,
    /// The node's signer, whose clock observes the stamps of the records this node
    /// accepts or reads, so its next write of a key supersedes what it has seen.
    signer: Arc<RecordSigner>,
    config: NetabaseConfig,
    listen_addrs: Vec<Multiaddr>,
    pending_listeners: HashMap<ListenerId, Multiaddr>,
    ready: Option<oneshot::Sender<Result<()>>>,
    pending_closest: HashMap<QueryId, PendingPut>,
    pending_put: HashMap<QueryId, PendingPut>,
    pending_get: HashMap<QueryId, PendingGet<D>>,
    pending_providing: HashMap<QueryId, Reply<()>>,
    pending_providers: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    pending_bootstrap: HashMap<QueryId, Reply<()>>,
    /// Lookups of the other replicas of the definition ([`replicas_key`]).
    discovery: HashSet<QueryId>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Reconciliation sessions with peers (`crate::sync_protocol`).
    sync: SyncDriver<D, B>,
    _definition: PhantomData<fn() -> D>,
}

/// The next tick of `interval`, or never.
async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends a reply; a handle that stopped waiting is not an error.
fn answer<T>(reply: oneshot::Sender<T>, value: T) {
    let _ = reply.send(value);
}

impl<D: NetabaseDefinitionTrait, B: Backend> EventLoop<D, B> {
    pub(crate) fn new(
        swarm: Swarm<Behaviour<D, B>>,
        worker: StorageWorker<D, B>,
        commands: mpsc::Receiver<Command<D>>,
        events: broadcast::Sender<NetabaseEvent>,
        counters: Arc<Counters>,
        signer: Arc<RecordSigner>,
        config: NetabaseConfig,
    ) -> Self {
        let (settled_sender, settled) = mpsc::unbounded_channel();
        let sync = SyncDriver::new(
            !config.replication.models.is_none(),
            worker.clone(),
            NodeAttestation::new(
                KadStore::new(
                    worker.backend(),
                    worker.peer_id(),
                    config.store_limits.clone(),
                ),
                Arc::clone(&signer),
                Arc::clone(&counters),
            ),
            events.clone(),
            Arc::clone(&counters),
            config.max_sync_message_bytes,
        );
        EventLoop {
            swarm,
            worker,
            settled,
            settled_sender,
            commands,
            events,
            counters,
            signer,
            config,
            listen_addrs: Vec::new(),
            pending_listeners: HashMap::new(),
            ready: None,
            pending_closest: HashMap::new(),
            pending_put: HashMap::new(),
            pending_get: HashMap::new(),
            pending_providing: HashMap::new(),
            pending_providers: HashMap::new(),
            discovery: HashSet::new(),
            pending_bootstrap: HashMap::new(),
            shutdown: None,
            sync,
            _definition: PhantomData,
        }
    }

    fn emit(&self, event: NetabaseEvent) {
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn kad(&mut self) -> &mut kad::Behaviour<RecordView<D, B>> {
        self.swarm.behaviour_mut().kad.inner_mut()
    }

    /// Runs the node until a shutdown command or until every handle is dropped. `ready`
    /// is answered once every listener has an address (or one failed).
    pub(crate) async fn run(mut self, ready: oneshot::Sender<Result<()>>) {
        self.ready = Some(ready);
        for address in self.config.listen_addrs.clone() {
            match self.swarm.listen_on(address.clone()) {
                Ok(id) => {
                    self.pending_listeners.insert(id, address);
                }
                Err(e) => {
                    self.fail_start(Error::Listen {
                        address,
                        reason: e.to_string(),
                    });
                    return;
                }
            }
        }
        if self.pending_listeners.is_empty() {
            self.started();
        }
        self.join_bootstrap_peers();
        self.discover_replicas();

        // Expired records are never served, so the first sweep can wait a full interval.
        let period = self.config.sweep_interval;
        let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = self
            .config
            .sync_interval
            .filter(|_| !self.config.replication.models.is_none())
            .map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown = Some(reply);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(settled) = self.settled.recv() => self.on_settled(settled),
                _ = sweep.tick() => self.sweep(),
                Some(step) = self.sync.steps.recv() => {
                    if let Some(rr) = self.swarm.behaviour_mut().sync.as_mut() {
                        self.sync.on_step(step, rr);
                    }
                }
                _ = tick(sync_tick.as_mut()) => {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for peer in peers {
                        self.sync.start(peer, false);
                    }
                    self.discover_replicas();
                }
            }
            self.report_store_errors();
        }
        // Drop the swarm (and with it the record store and its database handle) before
        // telling `close` that the node is down, so the database can be reopened at once.
        let shutdown = self.shutdown.take();
        drop(self);
        if let Some(reply) = shutdown {
            answer(reply, ());
        }
    }

    fn fail_start(&mut self, error: Error) {
        if let Some(ready) = self.ready.take() {
            answer(ready, Err(error));
        }
    }

    fn started(&mut self) {
        if let Some(ready) = self.ready.take() {
            answer(ready, Ok(()));
        }
    }

    fn join_bootstrap_peers(&mut self) {
        let peers = self.config.bootstrap_peers.clone();
        for (peer, address) in &peers {
            self.kad().add_address(peer, address.clone());
            let _ = self.swarm.dial(with_peer(address.clone(), *peer));
        }
        if !peers.is_empty() {
            let _ = self.kad().bootstrap();
        }
    }

    /// Queues the expiry sweep to the worker (skipped if its queue is full: the next
    /// tick sweeps, and expired records are never served meanwhile).
    fn sweep(&mut self) {
        let events = self.events.clone();
        self.worker
            .try_run(move |storage| match storage.records.sweep_expired() {
                Ok(stats) if stats.records + stats.providers > 0 => {
                    let _ = events.send(NetabaseEvent::RecordsExpired {
                        records: stats.records,
                        providers: stats.providers,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = events.send(NetabaseEvent::StoreError {
                        message: format!("sweeping expired records: {e}"),
                    });
                }
            });
    }

    /// Failures swallowed inside `RecordStore` reads made by libp2p itself.
    fn report_store_errors(&mut self) {
        if let Some(message) = self.kad().store_mut().reads().take_last_error() {
            self.emit(NetabaseEvent::StoreError { message });
        }
    }

    fn refuse(
        &self,
        key: RecordKey,
        source: Option<PeerId>,
        origin: RecordOrigin,
        kind: RefusalKind,
        reason: String,
    ) {
        self.counters.refused(kind);
        tracing::debug!(?key, ?source, ?origin, ?kind, %reason, "record refused");
        self.emit(NetabaseEvent::RecordRefused {
            key,
            source,
            origin,
            kind,
            reason,
        });
    }

    /// Verifies `record` (received from `sender`, if known) and checks the model it
    /// carries: the signed record and its model (`None` for a tombstone), or why it is
    /// refused. For the versions a get finds; inbound puts take
    /// [`EventLoop::check_inbound`] and are verified by the worker.
    fn check_record(
        &self,
        record: &Record,
        sender: Option<&PeerId>,
    ) -> std::result::Result<(SignedRecord, Option<D>), (RefusalKind, String)> {
        let refused = |e: SignedRecordError| (RefusalKind::of_signed(&e), e.to_string());
        let signed = SignedRecord::open_from(record, sender).map_err(refused)?;
        // A stamp far ahead would win its key and drag this node's clock along.
        let skew = self.config.store_limits.max_clock_skew;
        signed.check_skew(skew, wall_millis()).map_err(refused)?;
        let model = match signed.payload() {
            Some(payload) => {
                let max = self.config.store_limits.max_value_bytes;
                let model = validate_record::<D>(&payload, max)
                    .map_err(|e| (RefusalKind::of(&e), e.to_string()))?;
                Some(model)
            }
            None => {
                check_key::<D>(&record.key).map_err(|r| (RefusalKind::MalformedKey, r))?;
                None
            }
        };
        Ok((signed, model))
    }

    /// The cheap checks of an inbound record, run on this task: its envelope decodes
    /// (with a value that matches its digest) and its model (or, for a tombstone, its
    /// key) is one of this definition, within the size limit. The signature is not
    /// verified here: the storage worker verifies it, once, in its batch, and its
    /// refusal is counted by kind in [`EventLoop::on_settled`].
    fn check_inbound(
        &self,
        record: &Record,
    ) -> std::result::Result<UnverifiedRecord, (RefusalKind, String)> {
        let refused = |e: SignedRecordError| (RefusalKind::of_signed(&e), e.to_string());
        let unverified = SignedRecord::decode_unverified(record).map_err(refused)?;
        // A membership record carries no model: its value must be a membership.
        if let Some(group) = membership_group::<D>(&record.key) {
            check_membership_value(&group, unverified.value())
                .map_err(|r| (RefusalKind::Undecodable, r))?;
            return Ok(unverified);
        }
        match unverified.payload() {
            Some(payload) => {
                let max = self.config.store_limits.max_value_bytes;
                validate_record::<D>(&payload, max)
                    .map_err(|e| (RefusalKind::of(&e), e.to_string()))?;
            }
            None => {
                check_key::<D>(&record.key).map_err(|r| (RefusalKind::MalformedKey, r))?;
            }
        }
        Ok(unverified)
    }

    // ----- commands -------------------------------------------------------------------

    fn on_command(&mut self, command: Command<D>) {
        match command {
            Command::PublishRecord { record, reply } => self.publish_record(record, reply),
            Command::GetRecord { key, reply } => {
                // The local version, if any, is queued as the query's first result.
                let id = self.kad().get_record(key);
                self.pending_get
                    .insert(id, PendingGet { best: None, reply });
            }
            Command::StartProviding { key, reply } => match self.kad().start_providing(key) {
                Ok(id) => {
                    self.pending_providing.insert(id, reply);
                }
                Err(e) => answer(reply, Err(KadStoreError::Limit(e).into())),
            },
            Command::StopProviding { key, reply } => {
                self.kad().stop_providing(&key);
                answer(reply, Ok(()));
            }
            Command::GetProviders { key, reply } => {
                let id = self.kad().get_providers(key);
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            Command::Bootstrap { reply } => match self.kad().bootstrap() {
                Ok(id) => {
                    self.pending_bootstrap.insert(id, reply);
                }
                Err(_) => answer(reply, Err(Error::NoKnownPeers)),
            },
            Command::AddAddress {
                peer,
                address,
                reply,
            } => {
                self.kad().add_address(&peer, address.clone());
                let dialled = if self.swarm.is_connected(&peer) {
                    Ok(())
                } else {
                    self.swarm
                        .dial(with_peer(address.clone(), peer))
                        .map_err(|e| Error::Dial {
                            address,
                            reason: e.to_string(),
                        })
                };
                answer(reply, dialled);
            }
            Command::RemoveAddress {
                peer,
                address,
                reply,
            } => {
                let removed = self.kad().remove_address(&peer, &address).is_some();
                answer(reply, Ok(removed));
            }
            Command::RemovePeer { peer, reply } => {
                let removed = self.kad().remove_peer(&peer).is_some();
                answer(reply, Ok(removed));
            }
            Command::Disconnect { peer, reply } => {
                // Out of the routing table too, so no query dials it back.
                self.kad().remove_peer(&peer);
                let connected = self.swarm.disconnect_peer_id(peer).is_ok();
                answer(reply, Ok(connected));
            }
            Command::Mode { reply } => {
                let mode = self.swarm.behaviour().kad.inner().mode();
                answer(reply, Ok(mode));
            }
            Command::SetMode { mode, reply } => {
                self.kad().set_mode(mode);
                answer(reply, Ok(()));
            }
            Command::ListenAddrs { reply } => answer(reply, Ok(self.listen_addrs.clone())),
            Command::ConnectedPeers { reply } => {
                answer(reply, Ok(self.swarm.connected_peers().copied().collect()));
            }
            Command::SyncWith { peer, reply } => {
                if self.config.replication.models.is_none() {
                    answer(reply, Err(Error::NotSynced));
                } else {
                    self.sync.start(peer, true);
                    answer(reply, Ok(()));
                }
            }
            // Handled by the loop itself.
            Command::Shutdown { reply } => answer(reply, ()),
        }
    }

    /// Looks up the `replication_factor` closest peers of a record the handle already
    /// stored locally and sends it to all of them, so the outcome can say exactly how
    /// many stored it.
    fn publish_record(&mut self, record: Record, reply: Reply<PutOutcome>) {
        self.push_live_update(&record);
        let factor = self.config.replication_factor;
        let id = self.kad().get_n_closest_peers(record.key.to_vec(), factor);
        self.pending_closest.insert(
            id,
            PendingPut {
                key: record.key.clone(),
                record: Some(record),
                reply,
            },
        );
    }

    fn required_quorum(&self) -> usize {
        let k = self.config.replication_factor.get();
        match self.config.quorum {
            Quorum::One => 1,
            Quorum::Majority => k / 2 + 1,
            Quorum::All => k,
            Quorum::N(n) => n.get().min(k),
        }
    }

    fn closest_peers_found(&mut self, mut pending: PendingPut, peers: Vec<PeerId>) {
        let Some(record) = pending.record.take() else {
            return;
        };
        if peers.is_empty() {
            self.put_finished(pending, 0);
            return;
        }
        let id = self
            .kad()
            .put_record_to(record, peers.into_iter(), Quorum::All);
        self.pending_put.insert(id, pending);
    }

    fn put_finished(&mut self, pending: PendingPut, stored_on: usize) {
        let required = self.required_quorum();
        let outcome = if stored_on >= required {
            Ok(PutOutcome {
                key: pending.key,
                stored_on,
            })
        } else {
            Err(Error::QuorumFailed {
                key: pending.key,
                stored_on,
                required,
            })
        };
        answer(pending.reply, outcome);
    }

    // ----- swarm events ---------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent<D, B>>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                self.listen_addrs.push(address.clone());
                self.emit(NetabaseEvent::ListeningOn { address });
                if self.pending_listeners.remove(&listener_id).is_some()
                    && self.pending_listeners.is_empty()
                {
                    self.started();
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(address) = self.pending_listeners.remove(&listener_id) {
                    self.fail_start(Error::Listen {
                        address,
                        reason: error.to_string(),
                    });
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(address) = self.pending_listeners.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "the listener closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    self.fail_start(Error::Listen { address, reason });
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                self.emit(NetabaseEvent::PeerConnected {
                    peer: peer_id,
                    address: endpoint.get_remote_address().clone(),
                });
                // The dialer starts the catch-up, so one session runs per connection.
                if endpoint.is_dialer() {
                    self.sync.start(peer_id, false);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.emit(NetabaseEvent::PeerDisconnected { peer: peer_id }),
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                peer_id,
                ..
            } => self.connection_refused(peer_id, true, cause.to_string()),
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                peer_id,
                ..
            } => self.connection_refused(peer_id, false, cause.to_string()),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => {
                if let Some(rr) = self.swarm.behaviour_mut().sync.as_mut() {
                    self.sync.on_event(event, rr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip_event(event),
            _ => {}
        }
    }

    fn connection_refused(&mut self, peer: Option<PeerId>, inbound: bool, reason: String) {
        self.counters.connection_refused();
        self.emit(NetabaseEvent::ConnectionRefused {
            peer,
            inbound,
            reason,
        });
    }

    /// Identify feeds Kademlia: a peer that speaks our Kademlia protocol enters the
    /// routing table with the addresses it listens on.
    fn on_identify_event(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if !info.protocols.contains(&self.config.kad_protocol) {
            return;
        }
        for address in &info.listen_addrs {
            self.kad().add_address(&peer_id, address.clone());
        }
        if let Some(address) = info.listen_addrs.first() {
            self.emit(NetabaseEvent::PeerDiscovered {
                peer: peer_id,
                address: address.clone(),
                via: Discovery::Identify,
            });
        }
    }

    /// mDNS finds every libp2p node on the network, netabase or not: dial them and let
    /// Identify decide which ones enter the routing table.
    fn on_mdns_event(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        for (peer, address) in found {
            self.emit(NetabaseEvent::PeerDiscovered {
                peer,
                address: address.clone(),
                via: Discovery::Mdns,
            });
            if !self.swarm.is_connected(&peer) {
                let _ = self.swarm.dial(with_peer(address, peer));
            }
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    InboundRequest::PutRecord {
                        source,
                        connection,
                        record: Some(record),
                    },
            } => self.on_inbound_put(source, connection, record),
            kad::Event::InboundRequest {
                request:
                    InboundRequest::AddProvider {
                        record: Some(record),
                    },
            } => self.on_inbound_provider(record),
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => self.on_query_progress(id, result, stats, step),
            kad::Event::RoutingUpdated { peer, .. } => {
                self.emit(NetabaseEvent::RoutingUpdated { peer });
            }
            kad::Event::ModeChanged { new_mode } => {
                self.emit(NetabaseEvent::ModeChanged { mode: new_mode });
            }
            _ => {}
        }
    }

    /// Checks an inbound `PUT_VALUE` (envelope, model, size: the cheap checks) and
    /// hands it to the worker only if it passes them; the worker verifies its signature
    /// (the costly check, kept off this task), stores it if it wins over the version
    /// held, and the sender is answered when the worker has settled it. Any peer may
    /// send any valid record: the signature, not the sender, says who wrote it.
    fn on_inbound_put(&mut self, source: PeerId, connection: ConnectionId, record: Record) {
        let key = record.key.clone();
        let origin = RecordOrigin::InboundPut;
        let unverified = match self.check_inbound(&record) {
            Ok(unverified) => unverified,
            Err((kind, reason)) => {
                self.refuse(key.clone(), Some(source), origin, kind, reason);
                self.settle(source, connection, key, true);
                return;
            }
        };
        let stamp = unverified.stamp();
        let settled = self.settled_sender.clone();
        let done_key = key.clone();
        let queued = self.worker.try_store_inbound(
            unverified,
            source,
            Box::new(move |outcome| {
                let _ = settled.send(Settled::Record {
                    source,
                    connection,
                    key: done_key,
                    stamp,
                    outcome,
                });
            }),
        );
        if !queued {
            let reason = "the storage worker's queue is full".to_owned();
            let kind = RefusalKind::StoreFull;
            self.refuse(key.clone(), Some(source), origin, kind, reason);
            self.settle(source, connection, key, true);
        }
    }

    /// Releases the answer to the sender of an inbound record, or (`answer` false, for
    /// a record whose commit failed) closes its stream unanswered (see [`crate::acks`]).
    fn settle(&mut self, source: PeerId, connection: ConnectionId, key: RecordKey, answer: bool) {
        self.swarm
            .behaviour_mut()
            .kad
            .settle(source, connection, key, answer);
    }

    /// The worker's answer for an inbound record or provider record.
    fn on_settled(&mut self, settled: Settled) {
        match settled {
            Settled::Record {
                source,
                connection,
                key,
                stamp,
                outcome,
            } => {
                // Refusals get the protocol's usual answer; a failed commit none.
                let answer = !matches!(outcome, InboundOutcome::Failed(_));
                let origin = RecordOrigin::InboundPut;
                match outcome {
                    InboundOutcome::Stored => {
                        // The worker verified the stamp: a later local write of this
                        // key must win over what this node has accepted.
                        self.signer.observe(stamp);
                        self.counters.record_accepted();
                        self.emit(NetabaseEvent::RecordStored {
                            key: key.clone(),
                            source,
                        });
                    }
                    InboundOutcome::Refused(e) => {
                        let kind = RefusalKind::of_signed(&e);
                        self.refuse(key.clone(), Some(source), origin, kind, e.to_string());
                    }
                    InboundOutcome::StoreFull(e) => {
                        let kind = RefusalKind::StoreFull;
                        self.refuse(key.clone(), Some(source), origin, kind, e.to_string());
                    }
                    InboundOutcome::NotPermitted(reason) => {
                        let kind = RefusalKind::NotPermitted;
                        self.refuse(key.clone(), Some(source), origin, kind, reason);
                    }
                    InboundOutcome::Failed(message) => {
                        self.emit(NetabaseEvent::StoreError { message });
                    }
                }
                self.settle(source, connection, key, answer);
            }
            Settled::LiveUpdate {
                source,
                key,
                stamp,
                outcome,
            } => self.live_update_settled(source, key, stamp, outcome),
            Settled::Provider {
                key,
                provider,
                outcome,
            } => match outcome {
                InboundOutcome::Stored => {
                    self.counters.provider_accepted();
                    self.emit(NetabaseEvent::ProviderStored { key, provider });
                }
                InboundOutcome::StoreFull(e) => {
                    let origin = RecordOrigin::InboundProvider;
                    let kind = RefusalKind::StoreFull;
                    self.refuse(key, Some(provider), origin, kind, e.to_string());
                }
                InboundOutcome::Refused(_) | InboundOutcome::NotPermitted(_) => {}
                InboundOutcome::Failed(message) => {
                    self.emit(NetabaseEvent::StoreError { message });
                }
            },
        }
    }

    /// Checks an inbound `ADD_PROVIDER` (libp2p already checked that the provider is the
    /// sender): the key must be a record key of this definition.
    fn on_inbound_provider(&mut self, record: ProviderRecord) {
        let key = record.key.clone();
        let provider = record.provider;
        let origin = RecordOrigin::InboundProvider;
        // The replicas key is the one key of a reserved model a peer may provide: "I
        // replicate `D`".
        if key != replicas_key::<D>()
            && let Err(reason) = check_key::<D>(&key)
        {
            self.refuse(
                key,
                Some(provider),
                origin,
                RefusalKind::MalformedKey,
                reason,
            );
            return;
        }
        let settled = self.settled_sender.clone();
        let refused_key = key.clone();
        let queued = self.worker.try_run(move |storage| {
            let outcome = match storage.records.try_add_provider(&record) {
                Ok(()) => InboundOutcome::Stored,
                Err(KadStoreError::Limit(e)) => InboundOutcome::StoreFull(e),
                Err(e) => InboundOutcome::Failed(e.to_string()),
            };
            let _ = settled.send(Settled::Provider {
                key,
                provider,
                outcome,
            });
        });
        if !queued {
            let reason = "the storage worker's queue is full".to_owned();
            let kind = RefusalKind::StoreFull;
            self.refuse(refused_key, Some(provider), origin, kind, reason);
        }
    }

    fn on_query_progress(
        &mut self,
        id: QueryId,
        result: QueryResult,
        stats: kad::QueryStats,
        step: kad::ProgressStep,
    ) {
        match result {
            QueryResult::GetClosestPeers(result) => {
                if let Some(pending) = self.pending_closest.remove(&id) {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    let peers = peers.into_iter().map(|p| p.peer_id).collect();
                    self.closest_peers_found(pending, peers);
                }
            }
            QueryResult::PutRecord(result) => {
                if let Some(pending) = self.pending_put.remove(&id) {
                    let stored_on = match result {
                        Ok(_) => usize::try_from(stats.num_successes()).unwrap_or(usize::MAX),
                        Err(PutRecordError::QuorumFailed { success, .. })
                        | Err(PutRecordError::Timeout { success, .. }) => success.len(),
                    };
                    self.put_finished(pending, stored_on);
                }
            }
            QueryResult::GetRecord(result) => self.on_get_record(id, result, step.last),
            QueryResult::GetProviders(result) if self.discovery.contains(&id) => {
                if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
                    self.join_replicas(providers);
                }
                if step.last {
                    self.discovery.remove(&id);
                }
            }
            QueryResult::GetProviders(result) => {
                let Some((mut found, reply)) = self.pending_providers.remove(&id) else {
                    return;
                };
                let done = match result {
                    Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                        found.extend(providers);
                        step.last
                    }
                    Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => true,
                    Err(_) if found.is_empty() => {
                        answer(
                            reply,
                            Err(Error::Timeout {
                                operation: "get_providers",
                            }),
                        );
                        return;
                    }
                    Err(_) => true,
                };
                if done {
                    answer(reply, Ok(found));
                } else {
                    self.pending_providers.insert(id, (found, reply));
                }
            }
            QueryResult::StartProviding(result) => {
                if let Some(reply) = self.pending_providing.remove(&id) {
                    let outcome = result.map(|_| ()).map_err(|_| Error::Timeout {
                        operation: "start_providing",
                    });
                    answer(reply, outcome);
                }
            }
            QueryResult::Bootstrap(result) => {
                if result.is_err() {
                    if let Some(reply) = self.pending_bootstrap.remove(&id) {
                        answer(
                            reply,
                            Err(Error::Timeout {
                                operation: "bootstrap",
                            }),
                        );
                    }
                } else if step.last
                    && let Some(reply) = self.pending_bootstrap.remove(&id)
                {
                    answer(reply, Ok(()));
                }
            }
            _ => {}
        }
    }

    /// Every version found (the local one first) is verified and checked; invalid ones
    /// are refused and the query goes on. When the query finishes, the winner (the
    /// greatest stamp) answers: its model, or nothing if it is a tombstone.
    fn on_get_record(
        &mut self,
        id: QueryId,
        result: std::result::Result<GetRecordOk, GetRecordError>,
        last: bool,
    ) {
        let finished = match result {
            Ok(GetRecordOk::FoundRecord(PeerRecord { peer, record })) => {
                match self.check_record(&record, peer.as_ref()) {
                    Ok((signed, model)) => self.found_version(id, signed, model),
                    Err((kind, reason)) => {
                        let origin = RecordOrigin::GetResult;
                        self.refuse(record.key, peer, origin, kind, reason);
                    }
                }
                last.then_some(Ok(()))
            }
            Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. })
            | Err(GetRecordError::NotFound { .. }) => Some(Ok(())),
            Err(GetRecordError::Timeout { .. }) => Some(Err(Error::Timeout {
                operation: "get_record",
            })),
        };
        let Some(finished) = finished else {
            return;
        };
        let Some(pending) = self.pending_get.remove(&id) else {
            return;
        };
        let outcome = match (pending.best, finished) {
            (Some((winner, model)), _) => {
                self.signer.observe(winner.stamp());
                Ok(model)
            }
            (None, Ok(())) => Ok(None),
            (None, Err(e)) => Err(e),
        };
        answer(pending.reply, outcome);
    }

    fn found_version(&mut self, id: QueryId, signed: SignedRecord, model: Option<D>) {
        let Some(pending) = self.pending_get.get_mut(&id) else {
            return;
        };
        let wins = pending
            .best
            .as_ref()
            .is_none_or(|(best, _)| signed.compare(best) == std::cmp::Ordering::Greater);
        if wins {
            pending.best = Some((signed, model));
        }
    }
}

/// Checks that `key` is a record key of a model of `D` (for records that carry no
/// model: tombstones and provider records).
fn check_key<D: NetabaseDefinitionTrait>(key: &RecordKey) -> std::result::Result<(), String> {
    let parts = parse_record_key(key).map_err(|e| e.to_string())?;
    if parts.definition != D::NAME {
        Err(format!("key of definition `{}`", parts.definition))
    } else if D::Discriminant::from_name(&parts.model).is_none() {
        Err(format!("key of unknown model `{}`", parts.model))
    } else {
        Ok(())
    }
}

/// `address` with `/p2p/<peer>` appended, unless it already ends with a peer id.
fn with_peer(address: Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(address.iter().last(), Some(Protocol::P2p(_))) {
        address
    } else {
        address.with(Protocol::P2p(peer))
    }
}

// ----- replica discovery --------------------------------------------------------------

impl<D: NetabaseDefinitionTrait, B: Backend> EventLoop<D, B> {
    /// If this node replicates models: announces it as a provider of the definition's
    /// [`replicas_key`] and looks the other providers up, to connect to them
    /// ([`EventLoop::join_replicas`]). Runs at start and every `sync_interval`, so
    /// replicas that share no connection find each other through any peer of the DHT.
    fn discover_replicas(&mut self) {
        if self.config.replication.models.is_none() {
            return;
        }
        let key = replicas_key::<D>();
        // The announcement is repeated every round, so the provider record need not be
        // kept in this node's own store (the record store keeps only received ones).
        if let Err(e) = self.kad().start_providing(key.clone()) {
            tracing::debug!(error = %e, "cannot announce this node as a replica");
        }
        let id = self.kad().get_providers(key);
        self.discovery.insert(id);
    }

    /// Connects to the replicas found that this node is not connected to yet; the
    /// connection starts a catch-up session and joins the live-update topic.
    fn join_replicas(&mut self, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        for peer in providers {
            if peer != local && !self.swarm.is_connected(&peer) {
                // Kademlia supplies the addresses (its routing table, or what the
                // lookup learnt); a replica it cannot reach is tried again next round.
                let _ = self.swarm.dial(peer);
            }
        }
    }
}

// ----- live updates -------------------------------------------------------------------

impl<D: NetabaseDefinitionTrait, B: Backend> EventLoop<D, B> {
    /// Pushes a record this node committed to the replicas of its definition, if this
    /// node replicates (its record's model, or a membership). A replica that is not
    /// reachable now catches up later (DHT replication, reconciliation).
    fn push_live_update(&mut self, record: &Record) {
        let Some(gossip) = self.swarm.behaviour_mut().gossip.as_mut() else {
            return;
        };
        let replicated = membership_group::<D>(&record.key).is_some()
            || parse_record_key(&record.key)
                .is_ok_and(|p| self.config.replication.models.includes(&p.model));
        if !replicated {
            return;
        }
        let Some(message) = crate::live::encode(record) else {
            return;
        };
        if let Err(e) = gossip.publish(crate::live::topic(D::NAME), message) {
            // No replica subscribed yet is the usual case of a lone node.
            tracing::debug!(key = ?record.key, error = %e, "live update not sent");
        }
    }

    fn on_gossip_event(&mut self, event: libp2p::gossipsub::Event) {
        match event {
            libp2p::gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            } => self.on_live_update(propagation_source, &message.data),
            libp2p::gossipsub::Event::Subscribed { peer_id, topic, .. }
                if topic == crate::live::topic(D::NAME).hash() =>
            {
                self.emit(NetabaseEvent::ReplicaJoined { peer: peer_id });
            }
            _ => {}
        }
    }

    /// A live update: checked like an inbound DHT put, then handed to the worker's
    /// apply path.
    fn on_live_update(&mut self, source: PeerId, data: &[u8]) {
        let origin = RecordOrigin::LiveUpdate;
        let record = match crate::live::decode(data) {
            Ok(record) => record,
            Err(reason) => {
                let key = RecordKey::new(&Vec::<u8>::new());
                self.refuse(key, Some(source), origin, RefusalKind::Undecodable, reason);
                return;
            }
        };
        let key = record.key.clone();
        let unverified = match self.check_inbound(&record) {
            Ok(unverified) => unverified,
            Err((kind, reason)) => {
                self.refuse(key, Some(source), origin, kind, reason);
                return;
            }
        };
        let stamp = unverified.stamp();
        let settled = self.settled_sender.clone();
        let done_key = key.clone();
        // The forwarding peer is not the author: the signature alone says who wrote it.
        let queued = self.worker.try_store_inbound_from(
            unverified,
            None,
            Box::new(move |outcome| {
                let _ = settled.send(Settled::LiveUpdate {
                    source,
                    key: done_key,
                    stamp,
                    outcome,
                });
            }),
        );
        if !queued {
            let reason = "the storage worker's queue is full".to_owned();
            self.refuse(key, Some(source), origin, RefusalKind::StoreFull, reason);
        }
    }

    fn live_update_settled(
        &mut self,
        source: PeerId,
        key: RecordKey,
        stamp: VersionStamp,
        outcome: InboundOutcome,
    ) {
        let origin = RecordOrigin::LiveUpdate;
        match outcome {
            InboundOutcome::Stored => {
                self.signer.observe(stamp);
                self.counters.live_update_accepted();
                self.emit(NetabaseEvent::RecordStored { key, source });
            }
            // The same version again (it also came by the DHT) is not news.
            InboundOutcome::Refused(SignedRecordError::Superseded { held, offered })
                if held == offered => {}
            InboundOutcome::Refused(e) => {
                let kind = RefusalKind::of_signed(&e);
                self.refuse(key, Some(source), origin, kind, e.to_string());
            }
            InboundOutcome::StoreFull(e) => {
                self.refuse(
                    key,
                    Some(source),
                    origin,
                    RefusalKind::StoreFull,
                    e.to_string(),
                );
            }
            InboundOutcome::NotPermitted(reason) => {
                self.refuse(key, Some(source), origin, RefusalKind::NotPermitted, reason);
            }
            InboundOutcome::Failed(message) => self.emit(NetabaseEvent::StoreError { message }),
        }
    }
}
