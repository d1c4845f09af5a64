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
//!
//! This module holds the task, its commands and the swarm's connection events;
//! `records` handles Kademlia records and queries, `replicas` the discovery of the
//! other replicas and live updates.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, QueryId, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use netabase_store::backend::Backend;
use netabase_store::kad::{KadStore, KadStoreError, RecordSigner, SignedRecord};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::sync::VersionStamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::NetabaseConfig;
use crate::error::{Error, Result};
use crate::event::{Counters, Discovery, NetabaseEvent};
use crate::node::PutOutcome;
use crate::parted::PartedPeer;
use crate::swarm::{Behaviour, BehaviourEvent};
use crate::sync_protocol::{NodeAttestation, SyncDriver};
use crate::view::RecordView;
use crate::worker::{InboundOutcome, StorageWorker};

mod records;
mod replicas;

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
                self.swarm.behaviour_mut().parted.rejoin(&peer);
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
                // Out of the routing table, and never dialled until the application
                // names it again: neither a query that learns of it from a third peer,
                // nor replica discovery, nor a periodic session dials it back.
                self.swarm.behaviour_mut().parted.part(peer);
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
                    self.swarm.behaviour_mut().parted.rejoin(&peer);
                    self.sync.start(peer, true);
                    answer(reply, Ok(()));
                }
            }
            // Handled by the loop itself.
            Command::Shutdown { reply } => answer(reply, ()),
        }
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
            } if cause.downcast_ref::<PartedPeer>().is_some() => {
                tracing::debug!(?peer_id, "not dialling a peer the application parted from");
            }
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
}

/// `address` with `/p2p/<peer>` appended, unless it already ends with a peer id.
fn with_peer(address: Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(address.iter().last(), Some(Protocol::P2p(_))) {
        address
    } else {
        address.with(Protocol::P2p(peer))
    }
}
