//! Kademlia records and queries: checks of inbound records, publication, the storage
//! worker's answers, provider records and `get_record` queries.

use libp2p::PeerId;
use libp2p::kad::{
    self, GetClosestPeersError, GetProvidersOk, GetRecordError, GetRecordOk, InboundRequest,
    PeerRecord, ProviderRecord, PutRecordError, QueryId, QueryResult, Quorum, Record, RecordKey,
};
use libp2p::swarm::ConnectionId;
use netabase_store::backend::Backend;
use netabase_store::kad::{
    KadStoreError, SignedRecord, SignedRecordError, UnverifiedRecord, parse_record_key,
    validate_record, wall_millis,
};
use netabase_store::schema::{DiscriminantTrait, NetabaseDefinitionTrait};

use crate::error::Error;
use crate::event::{NetabaseEvent, RecordOrigin, RefusalKind};
use crate::node::PutOutcome;
use crate::replication::{check_membership_value, membership_group, replicas_key};
use crate::worker::InboundOutcome;

use super::{EventLoop, PendingPut, Reply, Settled, answer};

impl<D: NetabaseDefinitionTrait, B: Backend> EventLoop<D, B> {
    pub(super) fn refuse(
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
    pub(super) fn check_record(
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
    pub(super) fn check_inbound(
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

    /// Looks up the `replication_factor` closest peers of a record the handle already
    /// stored locally and sends it to all of them, so the outcome can say exactly how
    /// many stored it.
    pub(super) fn publish_record(&mut self, record: Record, reply: Reply<PutOutcome>) {
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

    pub(super) fn required_quorum(&self) -> usize {
        let k = self.config.replication_factor.get();
        match self.config.quorum {
            Quorum::One => 1,
            Quorum::Majority => k / 2 + 1,
            Quorum::All => k,
            Quorum::N(n) => n.get().min(k),
        }
    }

    pub(super) fn closest_peers_found(&mut self, mut pending: PendingPut, peers: Vec<PeerId>) {
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

    pub(super) fn put_finished(&mut self, pending: PendingPut, stored_on: usize) {
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

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
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
    pub(super) fn on_inbound_put(
        &mut self,
        source: PeerId,
        connection: ConnectionId,
        record: Record,
    ) {
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
    pub(super) fn settle(
        &mut self,
        source: PeerId,
        connection: ConnectionId,
        key: RecordKey,
        answer: bool,
    ) {
        self.swarm
            .behaviour_mut()
            .kad
            .settle(source, connection, key, answer);
    }

    /// The worker's answer for an inbound record or provider record.
    pub(super) fn on_settled(&mut self, settled: Settled) {
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
    pub(super) fn on_inbound_provider(&mut self, record: ProviderRecord) {
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

    pub(super) fn on_query_progress(
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
    pub(super) fn on_get_record(
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

    pub(super) fn found_version(&mut self, id: QueryId, signed: SignedRecord, model: Option<D>) {
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
