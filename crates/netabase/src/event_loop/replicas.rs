//! Replication: finding the other replicas of the definition, and live updates over
//! gossipsub.

use std::collections::HashSet;

use libp2p::PeerId;
use libp2p::kad::{Record, RecordKey};
use netabase_store::backend::Backend;
use netabase_store::kad::{SignedRecordError, parse_record_key};
use netabase_store::schema::NetabaseDefinitionTrait;
use netabase_store::sync::VersionStamp;

use crate::event::{NetabaseEvent, RecordOrigin, RefusalKind};
use crate::replication::{membership_group, replicas_key};
use crate::worker::InboundOutcome;

use super::{EventLoop, Settled};

// ----- replica discovery --------------------------------------------------------------

impl<D: NetabaseDefinitionTrait, B: Backend> EventLoop<D, B> {
    /// If this node replicates models: announces it as a provider of the definition's
    /// [`replicas_key`] and looks the other providers up, to connect to them
    /// ([`EventLoop::join_replicas`]). Runs at start and every `sync_interval`, so
    /// replicas that share no connection find each other through any peer of the DHT.
    pub(super) fn discover_replicas(&mut self) {
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
    pub(super) fn join_replicas(&mut self, providers: HashSet<PeerId>) {
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
    pub(super) fn push_live_update(&mut self, record: &Record) {
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

    pub(super) fn on_gossip_event(&mut self, event: libp2p::gossipsub::Event) {
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
    pub(super) fn on_live_update(&mut self, source: PeerId, data: &[u8]) {
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

    pub(super) fn live_update_settled(
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
