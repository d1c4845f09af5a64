//! Catch-up between two nodes over `/netabase/sync/1.0.0`, as a plain bench binary
//! (`cargo bench -p netabase --bench sync`):
//!
//! 1. a fresh node brought up to date with a peer holding `N` records (every record
//!    signed by the peer on the way out and verified on the way in, applied through
//!    the node's one apply path: record store and typed store in one transaction): wall time from dialling to
//!    the `Synced` event, bytes both ways, round trips;
//! 2. the two nodes after `D` differing records (half written on each side while
//!    disconnected): the same measures, from reconnecting.
//!
//! Baselines of the same run: the bytes of sending the peer's whole store in one
//! message (`sync::full_transfer_bytes`, without signatures), and the in-process
//! reconciler over the same records without signatures (`sync::reconcile` between two
//! redb stores: no network, no signing, no verification).
//!
//! Environment: `NETABASE_SYNC_RECORDS` (default 100000), `NETABASE_SYNC_DIFF`
//! (default 100).

use std::time::{Duration, Instant};

use netabase::{Netabase, NetabaseConfig, NetabaseEvent, SyncRole};
use netabase_store::backend::redb::RedbBackend;
use netabase_store::kad::{KadStoreConfig, RecordSigner, SignedRecord, author_of, record_key_for};
use netabase_store::prelude::*;
use netabase_store::sync::{Attestation, Reconciler, Version};
use netabase_store::{NetabaseStore, OpenOptions, sync};
use tokio::sync::broadcast;

/// The benchmark schema.
#[netabase_definition_module(SyncBenchDefinition, SyncBenchKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A small model with an index.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(SyncBenchDefinition)]
    pub struct Item {
        /// Key.
        #[primary_key]
        pub id: u64,
        /// Indexed.
        #[secondary_key]
        pub group: u32,
        /// Payload.
        pub body: String,
    }
}
use schema::*;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn item(id: u64, version: u32) -> Item {
    Item {
        id,
        group: (id % 97) as u32,
        body: format!("item {id:08} version {version} {}", "x".repeat(64)),
    }
}

fn config(path: &std::path::Path) -> NetabaseConfig {
    NetabaseConfig::loopback()
        .with_storage_path(path)
        .replicate(["Item"])
        .with_sync_interval(None)
        .with_query_timeout(Duration::from_secs(300))
        .with_idle_connection_timeout(Duration::from_secs(300))
        .with_store_limits(KadStoreConfig {
            max_records: 10_000_000,
            ..KadStoreConfig::default()
        })
}

/// The node's signatures without the node: sign own versions, verify received ones.
struct Signatures(RecordSigner);

impl Attestation for Signatures {
    fn attach(&self, v: &Version<'_>) -> Option<Vec<u8>> {
        let key = record_key_for::<SyncBenchDefinition>(v.model, v.key)?;
        self.0.sign_version(&key, v.stamp, v.value)
    }

    fn check(&self, v: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
        let key = record_key_for::<SyncBenchDefinition>(v.model, v.key).ok_or("model")?;
        let proof = proof.ok_or("no signature")?;
        SignedRecord::from_version(key, v.stamp, v.value.map(<[u8]>::to_vec), proof)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The in-process reconciler with signatures on both sides, into an empty store: the
/// catch-up without the network and without keeping DHT records.
fn signed_in_process(n: u64) -> Result<Session, AnyError> {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let writer = author_of(&keypair.public().to_peer_id()).ok_or("not ed25519")?;
    let store = NetabaseStore::<SyncBenchDefinition, _>::from_backend_with(
        RedbBackend::temp()?,
        OpenOptions::default().sync_model("Item").writer_id(writer),
    )?;
    store
        .open_tree::<Item>()
        .put_many((0..n).map(|id| item(id, 0)))?;
    let fresh = NetabaseStore::<SyncBenchDefinition, _>::from_backend_with(
        RedbBackend::temp()?,
        OpenOptions::default().sync_model("Item"),
    )?;
    let verifier = libp2p::identity::Keypair::generate_ed25519();
    let started = Instant::now();
    let mut left =
        Reconciler::new(&store)?.with_attestation(Signatures(RecordSigner::new(&keypair)?));
    let mut right =
        Reconciler::new(&fresh)?.with_attestation(Signatures(RecordSigner::new(&verifier)?));
    let mut message = Some(left.initiate()?);
    let mut to_right = true;
    let mut messages = 0u64;
    while let Some(bytes) = message {
        messages += 1;
        message = if to_right {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        to_right = !to_right;
    }
    if right.stats().records_refused > 0 {
        return Err("signatures refused".into());
    }
    Ok(Session {
        wall: started.elapsed(),
        bytes_sent: left.stats().bytes_sent,
        bytes_received: right.stats().bytes_sent,
        round_trips: messages.div_ceil(2),
        applied: right.stats().records_applied,
    })
}

struct Session {
    wall: Duration,
    bytes_sent: u64,
    bytes_received: u64,
    round_trips: u64,
    applied: u64,
}

async fn synced(
    events: &mut broadcast::Receiver<NetabaseEvent>,
    started: Instant,
) -> Result<Session, AnyError> {
    loop {
        match tokio::time::timeout(Duration::from_secs(600), events.recv()).await?? {
            NetabaseEvent::Synced {
                role: SyncRole::Initiator,
                bytes_sent,
                bytes_received,
                round_trips,
                records_applied,
                ..
            } => {
                return Ok(Session {
                    wall: started.elapsed(),
                    bytes_sent,
                    bytes_received,
                    round_trips,
                    applied: records_applied,
                });
            }
            NetabaseEvent::SyncFailed { reason, .. } => return Err(reason.into()),
            _ => {}
        }
    }
}

fn line(what: &str, s: &Session, full: u64) {
    let bytes = s.bytes_sent + s.bytes_received;
    println!(
        "{what:<44} {:>9.3} s {:>12} B ({:>6.2}% of full) {:>3} round trips, {} applied",
        s.wall.as_secs_f64(),
        bytes,
        100.0 * bytes as f64 / full.max(1) as f64,
        s.round_trips,
        s.applied
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), AnyError> {
    let n = env_u64("NETABASE_SYNC_RECORDS", 100_000);
    let diff = env_u64("NETABASE_SYNC_DIFF", 100);
    let dir = tempfile::tempdir()?;
    let (path_a, path_b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));

    // The peer's records, written in one transaction under the node's own writer id
    // (its identity key), as if the node had written them itself.
    let peer = Netabase::<SyncBenchDefinition>::new(config(&path_a)).await?;
    let writer = author_of(&peer.peer_id()).ok_or("not an ed25519 identity")?;
    peer.close().await;
    drop(peer);
    let options = || OpenOptions::default().sync_model("Item").writer_id(writer);
    {
        let store = NetabaseStore::<SyncBenchDefinition, _>::from_backend_with(
            RedbBackend::create(&path_a)?,
            options(),
        )?;
        let txn = store.write()?;
        {
            let tree = txn.open_tree::<Item>();
            for id in 0..n {
                tree.put(item(id, 0))?;
            }
        }
        txn.commit()?;

        // Baseline: the in-process reconciler into a fresh store, no signatures.
        let fresh = NetabaseStore::<SyncBenchDefinition, _>::from_backend_with(
            RedbBackend::temp()?,
            OpenOptions::default().sync_model("Item"),
        )?;
        let started = Instant::now();
        let report = sync::reconcile(&store, &fresh)?;
        let wall = started.elapsed();
        let full = sync::full_transfer_bytes(&store)?;
        println!("records: {n}; sending the whole store in one message: {full} B (unsigned)");
        line(
            "in-process reconcile, unsigned (baseline)",
            &Session {
                wall,
                bytes_sent: report.a.bytes_sent,
                bytes_received: report.b.bytes_sent,
                round_trips: report.round_trips,
                applied: report.b.records_applied,
            },
            full,
        );
    }

    let signed = signed_in_process(n)?;
    let full_unsigned = {
        let store = NetabaseStore::<SyncBenchDefinition, _>::from_backend_with(
            RedbBackend::create(&path_a)?,
            options(),
        )?;
        sync::full_transfer_bytes(&store)?
    };
    line("in-process reconcile, signed", &signed, full_unsigned);

    let a = Netabase::<SyncBenchDefinition>::new(config(&path_a)).await?;
    let b = Netabase::<SyncBenchDefinition>::new(config(&path_b)).await?;
    let full = a.view().sync_full_transfer_bytes()?;
    let mut events = b.subscribe_to_broadcasts();
    let address = a
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("no address")?;
    let started = Instant::now();
    b.add_address(a.peer_id(), address).await?;
    let fresh = synced(&mut events, started).await?;
    line(
        &format!("fresh node catches up on {n} records (signed)"),
        &fresh,
        full,
    );
    if fresh.applied != n {
        return Err(format!("{} records applied, not {n}", fresh.applied).into());
    }

    // `diff` differing records, half on each side, written apart (connected replicas
    // would exchange them as live updates).
    a.disconnect(b.peer_id()).await?;
    b.disconnect(a.peer_id()).await?;
    while a.connected_peers().await?.contains(&b.peer_id()) {
        tokio::task::yield_now().await;
    }
    for id in 0..diff / 2 {
        let _ = a.put_record(item(id, 1)).await;
    }
    for id in 0..diff - diff / 2 {
        let _ = b.put_record(item(n / 2 + id, 2)).await;
    }
    let full = a.view().sync_full_transfer_bytes()?;
    let address = a
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("no address")?;
    // Reconnecting starts the session (the dialer reconciles).
    let started = Instant::now();
    b.add_address(a.peer_id(), address).await?;
    let after = synced(&mut events, started).await?;
    line(
        &format!("after {diff} differing records (signed)"),
        &after,
        full,
    );
    if a.view().sync_fingerprint::<Item>()? != b.view().sync_fingerprint::<Item>()? {
        return Err("the nodes differ after reconciling".into());
    }
    a.close().await;
    b.close().await;
    Ok(())
}
