//! Shared by the multi-node tests: the schema, node configs and predicate waits.
#![allow(dead_code)]

use std::future::Future;
use std::num::NonZeroUsize;
use std::time::Duration;

use netabase::{Netabase, NetabaseConfig, NetabaseEvent};
use netabase_store::prelude::*;
use tokio::sync::broadcast;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long any one wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The test schema.
#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
        pub name: String,
        #[secondary_key(unique)]
        pub email: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        pub title: String,
        #[secondary_key]
        pub author: u64,
    }
}

pub use blog::*;

pub type Node = Netabase<BlogDefinition>;

pub fn user(id: u64) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: format!("user{id}@example.org"),
    }
}

pub fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A loopback node with short timeouts.
pub fn config() -> NetabaseConfig {
    NetabaseConfig::loopback()
        .with_replication_factor(nz(3))
        .with_query_timeout(Duration::from_secs(10))
}

pub async fn start(config: NetabaseConfig) -> TestResult<Node> {
    Ok(Node::new(config).await?)
}

pub async fn start_many(n: usize, config: impl Fn() -> NetabaseConfig) -> TestResult<Vec<Node>> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(start(config()).await?);
    }
    Ok(nodes)
}

pub async fn first_addr(node: &Node) -> TestResult<libp2p::Multiaddr> {
    Ok(node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("node has no listen address")?)
}

/// Polls `check` until it holds, failing after [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<bool>>,
{
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            if check().await? {
                return TestResult::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match waited {
        Ok(result) => result,
        Err(_) => Err(format!("timed out waiting until {what}").into()),
    }
}

/// Waits for the first event for which `pick` returns `Some`.
pub async fn wait_for<T>(
    events: &mut broadcast::Receiver<NetabaseEvent>,
    what: &str,
    mut pick: impl FnMut(&NetabaseEvent) -> Option<T>,
) -> TestResult<T> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(format!("event channel closed while waiting for {what}"));
                }
            }
        }
    })
    .await;
    match waited {
        Ok(result) => Ok(result?),
        Err(_) => Err(format!("timed out waiting for {what}").into()),
    }
}

/// Connects every node to every other one and waits until each sees all the others.
pub async fn mesh(nodes: &[Node]) -> TestResult {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            a.add_address(b.peer_id(), first_addr(b).await?).await?;
            b.add_address(a.peer_id(), first_addr(a).await?).await?;
        }
    }
    let others = nodes.len() - 1;
    for node in nodes {
        wait_until("the mesh is connected", || async {
            Ok(node.connected_peers().await?.len() >= others)
        })
        .await?;
    }
    Ok(())
}

pub async fn close_all(nodes: &[Node]) {
    for node in nodes {
        node.close().await;
    }
}

/// A bare libp2p Kademlia client (no netabase): it sends what a test tells it to. A
/// request left unanswered fails after one second.
pub fn kad_client()
-> TestResult<libp2p::Swarm<libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>>> {
    use libp2p::kad;
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let mut config = kad::Config::new(netabase::KAD_PROTOCOL);
            config.set_substreams_timeout(Duration::from_secs(1));
            let id = key.public().to_peer_id();
            kad::Behaviour::with_config(id, kad::store::MemoryStore::new(id), config)
        })?
        .build())
}

/// Sends `records` from `client` to `target` (dialled at `address`), each with the
/// client as publisher, and returns whether each was acknowledged, in order.
pub async fn send_records(
    client: &mut libp2p::Swarm<libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>>,
    target: libp2p::PeerId,
    address: libp2p::Multiaddr,
    records: Vec<libp2p::kad::Record>,
) -> TestResult<Vec<bool>> {
    use futures::StreamExt;
    use libp2p::kad::{self, QueryResult, Quorum};
    use libp2p::swarm::SwarmEvent;

    let me = *client.local_peer_id();
    client.behaviour_mut().add_address(&target, address);
    let mut queries = std::collections::HashMap::new();
    for (i, mut record) in records.into_iter().enumerate() {
        record.publisher = Some(me);
        let query =
            client
                .behaviour_mut()
                .put_record_to(record, std::iter::once(target), Quorum::One);
        queries.insert(query, i);
    }
    let mut acked = vec![false; queries.len()];
    let waited = tokio::time::timeout(WAIT, async {
        while !queries.is_empty() {
            if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::PutRecord(result),
                ..
            }) = client.select_next_some().await
                && let Some(i) = queries.remove(&id)
            {
                acked[i] = result.is_ok();
            }
        }
    })
    .await;
    match waited {
        Ok(()) => Ok(acked),
        Err(_) => Err("timed out waiting for the answers to the client's puts".into()),
    }
}
