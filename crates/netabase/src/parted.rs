//! Peers the application took the node apart from ([`crate::Netabase::disconnect`]):
//! the node does not dial them, whatever asks (a Kademlia query that learns of them
//! from a third peer, replica discovery, a periodic catch-up session), until the
//! application names them again (`add_address`, `sync_with`). They may still connect
//! to this node.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Denies outbound connections to the parted peers; nothing else.
#[derive(Debug, Default)]
pub(crate) struct Parted {
    peers: HashSet<PeerId>,
}

impl Parted {
    /// Stops dialling `peer`.
    pub(crate) fn part(&mut self, peer: PeerId) {
        self.peers.insert(peer);
    }

    /// Dials `peer` again when something asks; returns whether it was parted.
    pub(crate) fn rejoin(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer)
    }

    fn check(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.peers.contains(peer) {
            Err(ConnectionDenied::new(PartedPeer(*peer)))
        } else {
            Ok(())
        }
    }
}

/// Why an outbound connection was not made: the application parted from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartedPeer(pub(crate) PeerId);

impl fmt::Display for PartedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer {} was disconnected by the application and is not dialled until its \
             address is added again",
            self.0
        )
    }
}

impl std::error::Error for PartedPeer {}

impl NetworkBehaviour for Parted {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.check(&peer)?;
        }
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // A dial without a peer id learns it only now.
        self.check(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
