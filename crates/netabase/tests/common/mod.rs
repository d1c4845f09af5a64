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

/// Sends `records` (unsigned: key and model bytes) from `client` to `target` (dialled
/// at `address`), each signed by an author of its own, and returns whether each was
/// acknowledged, in order.
pub async fn send_records(
    client: &mut libp2p::Swarm<libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>>,
    target: libp2p::PeerId,
    address: libp2p::Multiaddr,
    records: Vec<libp2p::kad::Record>,
) -> TestResult<Vec<bool>> {
    use futures::StreamExt;
    use libp2p::kad::{self, QueryResult, Quorum};
    use libp2p::swarm::SwarmEvent;

    let author =
        netabase_store::kad::RecordSigner::new(&libp2p::identity::Keypair::generate_ed25519())?;
    client.behaviour_mut().add_address(&target, address);
    let mut queries = std::collections::HashMap::new();
    for (i, record) in records.into_iter().enumerate() {
        let record = raw_peer::signed(&author, record);
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

/// A raw libp2p Kademlia peer that speaks netabase's protocol but runs none of its
/// checks: it sends whatever records a test gives it.
pub mod raw_peer {
    use futures::StreamExt;
    use libp2p::identity::Keypair;
    use libp2p::kad::{
        self, GetRecordOk, QueryResult, Quorum, Record, RecordKey, store::MemoryStore,
    };
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
    use netabase_store::kad::{Envelope, RecordSigner, SignedRecord, author_of};
    use tokio::task::JoinHandle;

    use super::TestResult;

    /// A Kademlia swarm with the identity `keypair`.
    pub fn swarm(keypair: Keypair) -> TestResult<Swarm<kad::Behaviour<MemoryStore>>> {
        Ok(SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|key| {
                let mut config = kad::Config::new(netabase::KAD_PROTOCOL);
                config.set_max_packet_size(1 << 20);
                let id = key.public().to_peer_id();
                kad::Behaviour::with_config(id, MemoryStore::new(id), config)
            })?
            .build())
    }

    /// Sends every record to every target: at once to those already connected, else
    /// once a dialled connection is up. The task runs until aborted.
    pub fn send_to_each(
        mut swarm: Swarm<kad::Behaviour<MemoryStore>>,
        targets: Vec<(PeerId, Multiaddr)>,
        records: Vec<Record>,
    ) -> TestResult<JoinHandle<()>> {
        let mut served = std::collections::HashSet::new();
        for (peer, address) in &targets {
            swarm.behaviour_mut().add_address(peer, address.clone());
            if swarm.is_connected(peer) {
                served.insert(*peer);
                for record in &records {
                    let to = std::iter::once(*peer);
                    swarm
                        .behaviour_mut()
                        .put_record_to(record.clone(), to, Quorum::One);
                }
            } else {
                swarm.dial(address.clone())?;
            }
        }
        Ok(tokio::spawn(async move {
            loop {
                if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                    swarm.select_next_some().await
                    && targets.iter().any(|(p, _)| *p == peer_id)
                    && served.insert(peer_id)
                {
                    for record in &records {
                        swarm.behaviour_mut().put_record_to(
                            record.clone(),
                            std::iter::once(peer_id),
                            Quorum::One,
                        );
                    }
                }
            }
        }))
    }

    /// Fetches the record at `key` from the nodes at `targets`, as stored there
    /// (envelope and all).
    pub async fn fetch(
        swarm: &mut Swarm<kad::Behaviour<MemoryStore>>,
        targets: &[(PeerId, Multiaddr)],
        key: RecordKey,
    ) -> TestResult<Record> {
        for (peer, address) in targets {
            swarm.behaviour_mut().add_address(peer, address.clone());
        }
        let query = swarm.behaviour_mut().get_record(key);
        let found = tokio::time::timeout(super::WAIT, async {
            loop {
                if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                    id,
                    result: QueryResult::GetRecord(result),
                    ..
                }) = swarm.select_next_some().await
                    && id == query
                {
                    return match result {
                        Ok(GetRecordOk::FoundRecord(found)) => Ok(found.record),
                        other => Err(format!("no record found: {other:?}")),
                    };
                }
            }
        })
        .await;
        Ok(found.map_err(|_| "timed out fetching a record")??)
    }

    /// `record` (signed) with its value changed after signing.
    pub fn tampered(record: &Record) -> TestResult<Record> {
        let mut envelope = Envelope::decode(&record.value)?;
        envelope.value.push(0);
        Ok(Record::new(record.key.clone(), envelope.encode()))
    }

    /// `record` (signed) with a damaged signature.
    pub fn badly_signed(record: &Record) -> TestResult<Record> {
        let mut envelope = Envelope::decode(&record.value)?;
        if let Some(byte) = envelope.signature.first_mut() {
            *byte ^= 0x55;
        }
        Ok(Record::new(record.key.clone(), envelope.encode()))
    }

    /// `record` (signed) re-authored as `victim` and signed by `thief`: a stolen
    /// author claim.
    pub fn stolen(record: &Record, victim: &PeerId, thief: &Keypair) -> TestResult<Record> {
        let mut envelope = Envelope::decode(&record.value)?;
        envelope.stamp.writer = author_of(victim).ok_or("the victim has no ed25519 id")?;
        envelope.signature = thief.sign(&envelope.signing_bytes(&record.key))?;
        let mut forged = Record::new(record.key.clone(), envelope.encode());
        forged.publisher = Some(thief.public().to_peer_id());
        Ok(forged)
    }

    /// `value` under `key`, signed by `signer` now.
    pub fn signed(signer: &RecordSigner, record: Record) -> Record {
        signer
            .seal(record.key, Some(record.value), signer.next_stamp(None))
            .to_record()
    }

    /// The model bytes of a signed record.
    pub fn value_of(record: &Record) -> Option<Vec<u8>> {
        SignedRecord::open(record).ok()?.value().map(<[u8]>::to_vec)
    }
}
