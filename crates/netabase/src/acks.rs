//! Kademlia with durable acknowledgements of inbound puts.
//!
//! With `StoreInserts::FilterBoth`, libp2p's Kademlia hands an inbound `PUT_VALUE` to
//! the application as an event and, in the same breath, queues the response to the
//! sender. [`DurableKad`] wraps the behaviour and holds that response back until the
//! node settles the record ([`DurableKad::settle`]): a stored record is answered once
//! the storage worker's commit that holds it is durable; a record the worker failed to
//! commit is not answered at all (its stream is closed, which the sender sees as a
//! failed request). A record refused by validation gets the protocol's usual response,
//! as libp2p gives it: the Kademlia protocol has no refusal message, and libp2p-kad
//! 0.49 leaves a closed inbound stream unpolled until its connection ends, so closing
//! the stream of every refused record would let refusals use up a connection's
//! inbound streams.
//!
//! The event comes out of the behaviour before its response, and the node may settle a
//! record before or after the response is polled: whichever of the two comes second
//! completes the pair. Everything held for a connection is dropped when it closes.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::store::{MemoryStore, RecordStore};
use libp2p::kad::{self, InboundRequest, RecordKey};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The messages Kademlia sends its connection handlers. The handler does not depend on
/// the record store, so naming it through any store names the same type.
type KadIn = THandlerInEvent<kad::Behaviour<MemoryStore>>;

type Out = ToSwarm<kad::Event, KadIn>;

/// An inbound put: who sent it, on which connection, for which key.
type Ticket = (PeerId, ConnectionId, RecordKey);

/// Kademlia, with the responses to inbound puts held until the node settles them.
pub(crate) struct DurableKad<S: RecordStore + Send + 'static> {
    inner: kad::Behaviour<S>,
    /// Inbound puts handed to the node whose response has not been polled yet.
    expected: HashMap<Ticket, usize>,
    /// Responses polled before the node settled them.
    held: HashMap<Ticket, VecDeque<KadIn>>,
    /// Settlements made before the response was polled.
    settled: HashMap<Ticket, VecDeque<bool>>,
    /// Responses released, to be returned by `poll`.
    released: VecDeque<Out>,
    waker: Option<Waker>,
}

impl<S: RecordStore + Send + 'static> DurableKad<S> {
    pub(crate) fn new(inner: kad::Behaviour<S>) -> Self {
        DurableKad {
            inner,
            expected: HashMap::new(),
            held: HashMap::new(),
            settled: HashMap::new(),
            released: VecDeque::new(),
            waker: None,
        }
    }

    /// The Kademlia behaviour.
    pub(crate) fn inner(&self) -> &kad::Behaviour<S> {
        &self.inner
    }

    /// The Kademlia behaviour.
    pub(crate) fn inner_mut(&mut self) -> &mut kad::Behaviour<S> {
        &mut self.inner
    }

    /// Answers the inbound put of `key` that `peer` sent on `connection`: with the
    /// protocol's response if `answer`, else by closing its stream unanswered.
    pub(crate) fn settle(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        key: RecordKey,
        answer: bool,
    ) {
        let ticket = (peer, connection, key);
        match pop(&mut self.held, &ticket) {
            Some(response) => self.release(peer, connection, response, answer),
            None => self.settled.entry(ticket).or_default().push_back(answer),
        }
    }

    fn release(&mut self, peer: PeerId, connection: ConnectionId, response: KadIn, answer: bool) {
        let event = if answer {
            response
        } else {
            match response {
                KadIn::PutRecordRes { request_id, .. } => KadIn::Reset(request_id),
                other => other,
            }
        };
        self.released.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event,
        });
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Holds the response of an inbound put handed to the node, or passes anything
    /// else through.
    fn intercept(&mut self, event: Out) -> Option<Out> {
        match event {
            ToSwarm::GenerateEvent(kad::Event::InboundRequest {
                request:
                    InboundRequest::PutRecord {
                        source,
                        connection,
                        record: Some(ref record),
                    },
            }) => {
                *self
                    .expected
                    .entry((source, connection, record.key.clone()))
                    .or_default() += 1;
                Some(event)
            }
            ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: response @ KadIn::PutRecordRes { .. },
            } => {
                let KadIn::PutRecordRes { key, .. } = &response else {
                    return None;
                };
                let ticket = (peer_id, connection, key.clone());
                let Some(waiting) = self.expected.get_mut(&ticket) else {
                    // Not handed to the node (a record naming this node as publisher,
                    // which libp2p ignores): answered as libp2p answers it.
                    return Some(ToSwarm::NotifyHandler {
                        peer_id,
                        handler: NotifyHandler::One(connection),
                        event: response,
                    });
                };
                *waiting -= 1;
                if *waiting == 0 {
                    self.expected.remove(&ticket);
                }
                match pop(&mut self.settled, &ticket) {
                    Some(answer) => self.release(peer_id, connection, response, answer),
                    None => self.held.entry(ticket).or_default().push_back(response),
                }
                None
            }
            other => Some(other),
        }
    }

    fn forget_connection(&mut self, connection: ConnectionId) {
        self.expected.retain(|(_, c, _), _| *c != connection);
        self.held.retain(|(_, c, _), _| *c != connection);
        self.settled.retain(|(_, c, _), _| *c != connection);
    }
}

fn pop<T>(map: &mut HashMap<Ticket, VecDeque<T>>, ticket: &Ticket) -> Option<T> {
    let queue = map.get_mut(ticket)?;
    let first = queue.pop_front();
    if queue.is_empty() {
        map.remove(ticket);
    }
    first
}

impl<S: RecordStore + Send + 'static> NetworkBehaviour for DurableKad<S> {
    type ConnectionHandler = THandler<kad::Behaviour<S>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = &event {
            self.forget_connection(closed.connection_id);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Out> {
        if let Some(event) = self.released.pop_front() {
            return Poll::Ready(event);
        }
        self.waker = Some(cx.waker().clone());
        loop {
            match self.inner.poll(cx) {
                Poll::Ready(event) => {
                    if let Some(event) = self.intercept(event) {
                        return Poll::Ready(event);
                    }
                    if let Some(event) = self.released.pop_front() {
                        return Poll::Ready(event);
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
