//! The node's storage is owned by its worker: an application that holds a read view
//! (a snapshot) and queries it, while the node receives 1,000 inbound records, serves
//! gets and puts models of its own, stalls none of it. Every wait is bounded.

mod common;

use std::collections::HashSet;

use common::*;
use futures::StreamExt;
use libp2p::kad::{self, QueryResult, Quorum};
use libp2p::swarm::SwarmEvent;
use netabase::{Netabase, StorageConfig};
use netabase_store::backend::Backend;
use netabase_store::kad::{DefinitionRecordExt, RecordSigner};
use tokio::sync::mpsc;

const INBOUND: u64 = 1000;
const FIRST_INBOUND: u64 = 10_000;

async fn addr_of<B: Backend>(node: &Netabase<BlogDefinition, B>) -> TestResult<libp2p::Multiaddr> {
    Ok(node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("node has no listen address")?)
}

/// The scenario, on a node of any backend.
async fn held_view_stalls_nothing<B: Backend>(node: Netabase<BlogDefinition, B>) -> TestResult {
    // A second node reads the inbound records back from `node` through the DHT.
    let reader = start(config()).await?;
    let node_addr = addr_of(&node).await?;
    reader
        .add_address(node.peer_id(), node_addr.clone())
        .await?;
    node.add_address(reader.peer_id(), first_addr(&reader).await?)
        .await?;
    wait_until("the reader is connected", || async {
        Ok(reader.connected_peers().await?.contains(&node.peer_id()))
    })
    .await?;
    node.put_record(user(1)).await?;

    // The application takes a read view and holds one snapshot for the whole test.
    let view = node.view();
    let snapshot = view.read()?;
    let users = snapshot.open_tree::<User>();
    assert_eq!(users.len()?, 1);
    // redb's reads are snapshots; sled's see each commit (neither waits for a writer).
    let snapshots = view.capabilities().snapshot_reads;

    // A raw client sends 1,000 records to the node and reports each acknowledgement.
    let mut client = kad_client()?;
    // Records are signed by their author (any key: a signed record may come from any
    // peer).
    let author = RecordSigner::new(&libp2p::identity::Keypair::generate_ed25519())?;
    let target = node.peer_id();
    client
        .behaviour_mut()
        .add_address(&target, node_addr.clone());
    client.dial(node_addr)?;
    let (acked, mut acks) = mpsc::unbounded_channel::<Result<u64, String>>();
    let driver = tokio::spawn(async move {
        let mut queries = std::collections::HashMap::new();
        loop {
            match client.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. }
                    if peer_id == target && queries.is_empty() =>
                {
                    for id in FIRST_INBOUND..FIRST_INBOUND + INBOUND {
                        let Ok(record) = BlogDefinition::User(user(id)).to_record() else {
                            let _ = acked.send(Err(format!("user {id} does not encode")));
                            return;
                        };
                        let record = common::raw_peer::signed(&author, record);
                        let query = client.behaviour_mut().put_record_to(
                            record,
                            std::iter::once(target),
                            Quorum::One,
                        );
                        queries.insert(query, id);
                    }
                }
                SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                    id,
                    result: QueryResult::PutRecord(result),
                    ..
                }) => {
                    if let Some(user) = queries.remove(&id) {
                        let _ = acked.send(result.map(|_| user).map_err(|e| e.to_string()));
                    }
                }
                _ => {}
            }
        }
    });

    // Meanwhile the application queries its snapshot, the node puts models of its own
    // and the reader gets acknowledged records from the node.
    let flow = async {
        let mut acknowledged = HashSet::new();
        let mut own = 2;
        while acknowledged.len() < INBOUND as usize {
            let Some(ack) = acks.recv().await else {
                return Err("the client stopped".into());
            };
            let id = ack.map_err(|e| format!("an inbound put was not acknowledged: {e}"))?;
            acknowledged.insert(id);
            // The held read never blocks the writer, and (on redb) does not move.
            assert_eq!(users.get(1)?, Some(user(1)));
            if snapshots {
                assert_eq!(users.len()?, 1);
            }
            if acknowledged.len() % 100 == 0 {
                // A node write while the application holds its read.
                node.put_record(user(own)).await?;
                own += 1;
                // An acknowledged record is durable on the node, and served to peers.
                let found: Option<User> = reader.get_record(UserPrimaryKey(id)).await?;
                assert_eq!(found, Some(user(id)), "acknowledged record {id}");
            }
        }
        TestResult::Ok(own)
    };
    let own = match tokio::time::timeout(WAIT, flow).await {
        Ok(outcome) => outcome?,
        Err(_) => return Err("timed out while the application held its read view".into()),
    };
    driver.abort();

    // The held snapshot still sees the world as it was; a new read sees the node's puts.
    assert_eq!(users.len()?, if snapshots { 1 } else { own - 1 });
    drop(snapshot);
    for id in 1..own {
        assert_eq!(view.get::<User>(id)?, Some(user(id)));
    }
    assert_eq!(node.stats().records_accepted, INBOUND);
    let held = node.query_local_records(5000).await?;
    let inbound = held
        .iter()
        .filter(|d| matches!(d, BlogDefinition::User(u) if u.id >= FIRST_INBOUND))
        .count();
    assert_eq!(inbound, INBOUND as usize);
    reader.close().await;
    node.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_read_view_stalls_nothing_on_redb() -> TestResult {
    let node = start(config().with_storage(StorageConfig::TempRedb)).await?;
    held_view_stalls_nothing(node).await
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_read_view_stalls_nothing_on_sled() -> TestResult {
    use netabase_store::backend::sled::SledBackend;
    let node = Netabase::<BlogDefinition, _>::with_backend(SledBackend::temp()?, config()).await?;
    held_view_stalls_nothing(node).await
}

/// A burst of inbound records is verified in batches on the worker: a mix of valid,
/// tampered, badly signed and mis-attributed records, more than one verification chunk
/// of them, sent all at once, stores exactly the valid ones and refuses each bad one
/// with its own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_burst_of_inbound_records_stores_exactly_the_valid_ones() -> TestResult {
    use common::raw_peer::{badly_signed, signed, stolen, tampered};
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use libp2p::kad::store::RecordStore;
    use netabase::worker::{InboundOutcome, StorageWorker};
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::kad::{KadStore, KadStoreConfig, SignedRecordError, VERIFY_CHUNK};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Valid,
        Tampered,
        BadlySigned,
        Stolen,
    }

    let backend = MemoryBackend::new();
    let worker =
        StorageWorker::<BlogDefinition, _>::spawn(backend.clone(), KadStoreConfig::default())?;
    let victim = Keypair::generate_ed25519();
    let author = RecordSigner::new(&victim)?;
    let thief = Keypair::generate_ed25519();
    let thief_id = thief.public().to_peer_id();
    let mut burst = Vec::new();
    for id in 0..(4 * VERIFY_CHUNK as u64 + 9) {
        let kind = match id % 13 {
            3 => Kind::Tampered,
            7 => Kind::BadlySigned,
            9 | 12 => Kind::Stolen,
            _ => Kind::Valid,
        };
        let good = signed(&author, BlogDefinition::User(user(id)).to_record()?);
        let record = match kind {
            Kind::Valid => good,
            Kind::Tampered => tampered(&good)?,
            Kind::BadlySigned => badly_signed(&good)?,
            Kind::Stolen => stolen(&good, &victim.public().to_peer_id(), &thief)?,
        };
        burst.push((kind, record));
    }
    // All at once: the records wait together in the worker's queue and are verified
    // and committed in batches.
    let outcomes = futures::future::join_all(
        burst
            .iter()
            .map(|(_, record)| worker.store_inbound(record.clone())),
    )
    .await;
    worker.close().await;

    let records = KadStore::new(backend, PeerId::random(), KadStoreConfig::default());
    let mut stored = 0;
    for ((kind, record), outcome) in burst.iter().zip(outcomes) {
        let outcome = outcome?;
        let fine = match (kind, &outcome) {
            (Kind::Valid, InboundOutcome::Stored) => true,
            (Kind::Tampered, InboundOutcome::Refused(SignedRecordError::TamperedValue)) => true,
            (
                Kind::BadlySigned,
                InboundOutcome::Refused(SignedRecordError::BadSignature { .. }),
            ) => true,
            (
                Kind::Stolen,
                InboundOutcome::Refused(SignedRecordError::StolenAuthorship { signer, .. }),
            ) => *signer == thief_id,
            _ => false,
        };
        assert!(fine, "a {kind:?} record: {outcome:?}");
        let held = records.try_get(&record.key)?;
        assert_eq!(held.is_some(), *kind == Kind::Valid, "a {kind:?} record");
        if *kind == Kind::Valid {
            assert_eq!(held.map(|r| r.value), Some(record.value.clone()));
            stored += 1;
        }
    }
    assert_eq!(records.records().count(), stored);
    Ok(())
}

/// Records queued before `close` are verified and committed before the worker stops:
/// the verifier passes every message on in the order it came, the shutdown included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_queued_before_close_are_committed_before_the_worker_stops() -> TestResult {
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use libp2p::kad::store::RecordStore;
    use netabase::worker::{InboundOutcome, StorageWorker};
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::kad::{KadStore, KadStoreConfig};

    let backend = MemoryBackend::new();
    let worker =
        StorageWorker::<BlogDefinition, _>::spawn(backend.clone(), KadStoreConfig::default())?;
    let author = RecordSigner::new(&Keypair::generate_ed25519())?;
    let mut records = Vec::new();
    for id in 0..200 {
        let record = BlogDefinition::User(user(id)).to_record()?;
        let stamp = author.next_stamp(None);
        records.push(
            author
                .seal(record.key, Some(record.value), stamp)
                .to_record(),
        );
    }
    // `join!` polls the puts first: each is queued (the channel has room) before the
    // shutdown is.
    let (outcomes, ()) = futures::join!(
        futures::future::join_all(records.iter().map(|r| worker.store_inbound(r.clone()))),
        worker.close()
    );
    for outcome in outcomes {
        let outcome = outcome?;
        assert!(matches!(outcome, InboundOutcome::Stored), "{outcome:?}");
    }
    let store = KadStore::new(backend, PeerId::random(), KadStoreConfig::default());
    assert_eq!(store.records().count(), records.len());
    Ok(())
}

/// Closing the worker while several batches are in flight (queued, being verified on
/// the verifier threads, waiting for the commit) acknowledges every record before the
/// worker stops: each good one stored, each badly signed one refused, none left
/// unanswered; and the worker refuses new records once closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_batches_in_flight_acknowledges_every_record() -> TestResult {
    use common::raw_peer::{badly_signed, signed};
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use libp2p::kad::store::RecordStore;
    use netabase::Error;
    use netabase::worker::{InboundOutcome, MAX_BATCH, StorageWorker};
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::kad::{KadStore, KadStoreConfig, SignedRecordError};

    let backend = MemoryBackend::new();
    let limits = KadStoreConfig {
        max_records: 4 * MAX_BATCH,
        ..KadStoreConfig::default()
    };
    let worker = StorageWorker::<BlogDefinition, _>::spawn(backend.clone(), limits.clone())?;
    let author = RecordSigner::new(&Keypair::generate_ed25519())?;
    // More than two full batches, bad records spread over all of them.
    let mut burst = Vec::new();
    for id in 0..(2 * MAX_BATCH as u64 + 300) {
        let good = signed(&author, BlogDefinition::User(user(id)).to_record()?);
        let bad = id % 97 == 5;
        let record = if bad { badly_signed(&good)? } else { good };
        burst.push((bad, record));
    }
    // `join!` polls the puts first: every record is queued (the channel has room for
    // them all) before the shutdown is.
    let (outcomes, ()) = futures::join!(
        futures::future::join_all(
            burst
                .iter()
                .map(|(_, record)| worker.store_inbound(record.clone()))
        ),
        worker.close()
    );
    let mut stored = 0;
    for ((bad, record), outcome) in burst.iter().zip(outcomes) {
        let outcome = outcome?;
        match (bad, &outcome) {
            (false, InboundOutcome::Stored) => stored += 1,
            (true, InboundOutcome::Refused(SignedRecordError::BadSignature { .. })) => {}
            _ => panic!("record {:?} (bad: {bad}): {outcome:?}", record.key),
        }
    }
    assert!(stored > 2 * MAX_BATCH, "{stored}");
    let records = KadStore::new(backend, PeerId::random(), limits);
    assert_eq!(records.records().count(), stored);
    // Closed: a new record is not taken, and closing again is harmless.
    let late = signed(&author, BlogDefinition::User(user(0)).to_record()?);
    assert!(matches!(
        worker.store_inbound(late).await,
        Err(Error::Stopped)
    ));
    worker.close().await;
    Ok(())
}
