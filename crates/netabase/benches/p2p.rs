//! Peer-to-peer benchmarks, as a plain bench binary (`cargo bench -p netabase --bench p2p`):
//!
//! 1. `RecordStore` put/get throughput of `KadStore` on redb and in memory, against
//!    libp2p's `MemoryStore`, in the same run and on the same records.
//! 2. Inbound record puts through a node's storage worker (group commit, each put
//!    acknowledged after its durable commit) from 64 concurrent publishers, on redb and
//!    in memory, against the same `MemoryStore` rate: puts/s and acknowledgement
//!    latency (p50 / p99); and `MemoryStore` verifying each signature before its put,
//!    to show what the verification alone costs; and the same on a worker that
//!    replicates the model (each record also written to the typed store).
//! 3. put → get latency (p50 / p99) on a 10-node loopback network: a model is put on
//!    one node and read back from another.
//! 4. Signature verification alone: records verified one by one against the same
//!    records verified in batches (`verify_batch`), in the same run.
//!
//! Environment: `NETABASE_BENCH_RECORDS` (default 2000), `NETABASE_BENCH_INBOUND`
//! (default 50000), `NETABASE_BENCH_ROUNDS` (default 200), `NETABASE_BENCH_VERIFY`
//! (default 10000). `NETABASE_BENCH_VERIFY_ONLY=single` or `=batch` runs nothing but the
//! verification of `NETABASE_BENCH_VERIFY` records one way (for instruction counts:
//! `valgrind --tool=callgrind '--toggle-collect=*p2p::verify_*'`).

use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{Record, RecordKey};
use netabase::replication::{Replicated, Replication};
use netabase::worker::{InboundOutcome, StorageWorker};
use netabase::{Netabase, NetabaseConfig};
use netabase_store::backend::Backend;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::kad::{
    KadStore, KadStoreConfig, RecordSigner, SignedRecord, UnverifiedRecord, verify_batch,
};
use netabase_store::prelude::*;

/// The benchmark schema.
#[netabase_definition_module(BenchDefinition, BenchKeys)]
pub mod bench {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A small model.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BenchDefinition)]
    pub struct Item {
        /// Key.
        #[primary_key]
        pub id: u64,
        /// Payload.
        pub body: String,
    }
}
use bench::*;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` records of 256-byte values, signed (netabase's store accepts signed records
/// only; `MemoryStore` stores them as opaque bytes).
fn records(n: usize) -> Result<Vec<Record>, AnyError> {
    let signer = RecordSigner::new(&libp2p::identity::Keypair::generate_ed25519())?;
    Ok((0..n)
        .map(|i| {
            let key = RecordKey::new(&format!("key-{i:08}"));
            let stamp = signer.next_stamp(None);
            signer.seal(key, Some(vec![7u8; 256]), stamp).to_record()
        })
        .collect())
}

/// `n` signed records of the model `Item` (a 240-byte body): records a replicating
/// node applies to its typed store.
fn model_records(n: usize) -> Result<Vec<Record>, AnyError> {
    use netabase_store::kad::DefinitionRecordExt;
    let signer = RecordSigner::new(&libp2p::identity::Keypair::generate_ed25519())?;
    (0..n)
        .map(|i| {
            let item = Item {
                id: i as u64,
                body: "x".repeat(240),
            };
            let unsigned = BenchDefinition::Item(item).to_record()?;
            let stamp = signer.next_stamp(None);
            Ok(signer
                .seal(unsigned.key, Some(unsigned.value), stamp)
                .to_record())
        })
        .collect()
}

/// (puts per second, gets per second)
fn throughput<S: RecordStore>(store: &mut S, records: &[Record]) -> Result<(f64, f64), AnyError> {
    let start = Instant::now();
    for r in records {
        store.put(r.clone())?;
    }
    let put = start.elapsed();
    let start = Instant::now();
    let mut found = 0;
    for r in records {
        found += usize::from(store.get(&r.key).is_some());
    }
    let get = start.elapsed();
    if found != records.len() {
        return Err(format!("found {found} of {} records", records.len()).into());
    }
    let rate = |d: Duration| records.len() as f64 / d.as_secs_f64();
    Ok((rate(put), rate(get)))
}

fn store_benchmarks(n: usize) -> Result<(), AnyError> {
    let records = records(n)?;
    let config = KadStoreConfig {
        max_records: n + 1,
        ..KadStoreConfig::default()
    };
    let local = PeerId::random();
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    let mut memory_store = MemoryStore::with_config(
        local,
        MemoryStoreConfig {
            max_records: n + 1,
            ..MemoryStoreConfig::default()
        },
    );
    rows.push((
        "libp2p MemoryStore",
        throughput(&mut memory_store, &records)?,
    ));
    let mut ours = KadStore::new(MemoryBackend::new(), local, config.clone());
    rows.push(("KadStore<memory>", throughput(&mut ours, &records)?));
    let mut ours = KadStore::new(RedbBackend::temp()?, local, config);
    rows.push(("KadStore<redb>", throughput(&mut ours, &records)?));

    println!("RecordStore throughput, {n} records of 256 bytes (one transaction per put):");
    println!("| store | put/s | get/s |");
    println!("|---|---:|---:|");
    for (name, (put, get)) in &rows {
        println!("| {name} | {put:.0} | {get:.0} |");
    }
    Ok(())
}

/// Inbound puts through a storage worker: `publishers × in_flight` tasks each send
/// their share of `records` one at a time, waiting for each acknowledgement (the
/// worker's durable commit) before the next. Returns (puts/s, p50, p99 acknowledgement
/// latency).
async fn inbound_through_worker<B: Backend>(
    backend: B,
    records: &[Record],
    publishers: usize,
    in_flight: usize,
    replication: Replication,
) -> Result<(f64, Duration, Duration), AnyError> {
    let senders = publishers * in_flight;
    let limits = KadStoreConfig {
        max_records: records.len() + 1,
        ..KadStoreConfig::default()
    };
    let worker =
        StorageWorker::<BenchDefinition, B>::spawn_replicating(backend, limits, replication)?;
    let mut shares: Vec<Vec<Record>> = vec![Vec::new(); senders];
    for (i, record) in records.iter().enumerate() {
        shares[i % senders].push(record.clone());
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for share in shares {
        let worker = worker.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share.len());
            for record in share {
                let sent = Instant::now();
                match worker.store_inbound(record).await? {
                    InboundOutcome::Stored => latencies.push(sent.elapsed()),
                    other => return Err(format!("record not stored: {other:?}").into()),
                }
            }
            Ok::<_, AnyError>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(records.len());
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    worker.close().await;
    latencies.sort();
    Ok((
        records.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    ))
}

/// Puts per second of libp2p's `MemoryStore` when each record's signature is verified
/// first (as the worker verifies it): what the verification alone costs.
fn verified_memory_store_rate(records: &[Record]) -> Result<f64, AnyError> {
    let mut store = MemoryStore::with_config(
        PeerId::random(),
        MemoryStoreConfig {
            max_records: records.len() + 1,
            ..MemoryStoreConfig::default()
        },
    );
    let start = Instant::now();
    for record in records {
        SignedRecord::open(record)?;
        store.put(record.clone())?;
    }
    Ok(records.len() as f64 / start.elapsed().as_secs_f64())
}

/// Puts per second of libp2p's `MemoryStore` when the signatures are verified first in
/// batches of up to 1024 records, as the worker takes them (one thread).
fn batch_verified_memory_store_rate(records: &[Record]) -> Result<f64, AnyError> {
    let mut store = MemoryStore::with_config(
        PeerId::random(),
        MemoryStoreConfig {
            max_records: records.len() + 1,
            ..MemoryStoreConfig::default()
        },
    );
    let start = Instant::now();
    for chunk in records.chunks(1024) {
        let unverified = decoded(chunk)?;
        for verified in verify_batch(unverified) {
            verified?;
        }
        for record in chunk {
            store.put(record.clone())?;
        }
    }
    Ok(records.len() as f64 / start.elapsed().as_secs_f64())
}

/// `records` decoded (envelope and digest, no signature check), as the worker gets them.
fn decoded(records: &[Record]) -> Result<Vec<(UnverifiedRecord, Option<PeerId>)>, AnyError> {
    records
        .iter()
        .map(|record| Ok((SignedRecord::decode_unverified(record)?, None)))
        .collect()
}

/// Verifies every record's signature on its own; returns how many verified.
#[inline(never)]
fn verify_one_by_one(records: Vec<(UnverifiedRecord, Option<PeerId>)>) -> usize {
    records
        .into_iter()
        .filter_map(|(record, sender)| record.verify(sender.as_ref()).ok())
        .count()
}

/// Verifies the records' signatures in batches; returns how many verified.
#[inline(never)]
fn verify_batched(records: Vec<(UnverifiedRecord, Option<PeerId>)>) -> usize {
    verify_batch(records).iter().filter(|r| r.is_ok()).count()
}

/// Verifications per second, one by one and batched, on the same records.
fn verification_benchmark(n: usize) -> Result<(), AnyError> {
    let records = records(n)?;
    let mut rates = Vec::new();
    for (name, verify) in [
        (
            "one by one (`UnverifiedRecord::verify`)",
            verify_one_by_one as fn(_) -> usize,
        ),
        ("batched (`verify_batch`)", verify_batched),
    ] {
        let unverified = decoded(&records)?;
        let start = Instant::now();
        let valid = verify(unverified);
        let rate = n as f64 / start.elapsed().as_secs_f64();
        if valid != n {
            return Err(format!("{valid} of {n} records verified").into());
        }
        rates.push((name, rate));
    }
    println!();
    println!("Signature verification, {n} signed records of 256 bytes, one thread:");
    println!("| verification | records/s | µs per record | vs one by one |");
    println!("|---|---:|---:|---:|");
    let single = rates.first().map(|(_, rate)| *rate).unwrap_or(1.0);
    for (name, rate) in rates {
        println!(
            "| {name} | {rate:.0} | {:.1} | {:.2} |",
            1e6 / rate,
            rate / single
        );
    }
    Ok(())
}

async fn worker_benchmarks(n: usize) -> Result<(), AnyError> {
    const PUBLISHERS: usize = 64;
    let records = records(n)?;
    // The baseline, on the same records: libp2p's store, one put after another; the
    // best of three runs, so that a burst of load on the machine does not flatter the
    // worker.
    let mut baseline: f64 = 0.0;
    for _ in 0..3 {
        let mut memory_store = MemoryStore::with_config(
            PeerId::random(),
            MemoryStoreConfig {
                max_records: n + 1,
                ..MemoryStoreConfig::default()
            },
        );
        baseline = baseline.max(throughput(&mut memory_store, &records)?.0);
    }
    let verified = verified_memory_store_rate(&records)?;
    let batch_verified = batch_verified_memory_store_rate(&records)?;
    let mut rows = Vec::new();
    let plain = Replication::default;
    for (name, in_flight) in [("1 put", 1), ("8 puts", 8)] {
        rows.push((
            "memory",
            name,
            inbound_through_worker(
                MemoryBackend::new(),
                &records,
                PUBLISHERS,
                in_flight,
                plain(),
            )
            .await?,
        ));
        rows.push((
            "redb (durable)",
            name,
            inbound_through_worker(
                RedbBackend::temp()?,
                &records,
                PUBLISHERS,
                in_flight,
                plain(),
            )
            .await?,
        ));
    }
    // Model records, on a node that does not replicate them and on one that does:
    // every record is then also written to the typed store (stamped, with its sync
    // metadata) through the one apply path, record by record.
    let models = model_records(n)?;
    let replicating = || {
        let mut replication = Replication::default();
        replication.models = Replicated::All;
        replication
    };
    for (store, replication) in [
        ("memory, model records", plain()),
        ("memory, model records, replicating", replicating()),
    ] {
        let result =
            inbound_through_worker(MemoryBackend::new(), &models, PUBLISHERS, 8, replication)
                .await?;
        rows.push((store, "8 puts", result));
    }
    for (store, replication) in [
        ("redb (durable), model records", plain()),
        ("redb (durable), model records, replicating", replicating()),
    ] {
        let result =
            inbound_through_worker(RedbBackend::temp()?, &models, PUBLISHERS, 8, replication)
                .await?;
        rows.push((store, "8 puts", result));
    }
    println!();
    println!(
        "Inbound record puts through the storage worker, {n} records of 256 bytes, \
         {PUBLISHERS} concurrent publishers (group commit; each put acknowledged after \
         its commit):"
    );
    println!("| store | in flight per publisher | put/s | vs MemoryStore | ack p50 | ack p99 |");
    println!("|---|---|---:|---:|---:|---:|");
    println!(
        "| libp2p MemoryStore (direct puts, same records, best of 3) | | {baseline:.0} | 1.00 | | |"
    );
    println!(
        "| libp2p MemoryStore + the same signature verification (one thread) | | {verified:.0} | {:.3} | | |",
        verified / baseline
    );
    println!(
        "| libp2p MemoryStore + the same verification, batched (one thread) | | {batch_verified:.0} | {:.3} | | |",
        batch_verified / baseline
    );
    for (store, in_flight, (puts, p50, p99)) in rows {
        println!(
            "| worker on {store} | {in_flight} | {puts:.0} | {:.3} | {:.2} ms | {:.2} ms |",
            puts / baseline,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

async fn network_benchmark(rounds: usize) -> Result<(), AnyError> {
    let mut nodes: Vec<Netabase<BenchDefinition>> = Vec::new();
    for _ in 0..10 {
        let config = NetabaseConfig::loopback()
            .with_replication_factor(std::num::NonZeroUsize::new(3).ok_or("zero")?);
        nodes.push(Netabase::new(config).await?);
    }
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            let addr = b
                .listen_addrs()
                .await?
                .into_iter()
                .next()
                .ok_or("no address")?;
            a.add_address(b.peer_id(), addr).await?;
        }
    }
    for node in &nodes {
        node.bootstrap().await?;
    }
    let (mut puts, mut gets, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let writer = &nodes[i % nodes.len()];
        let reader = &nodes[(i + 5) % nodes.len()];
        let id = i as u64;
        let start = Instant::now();
        writer
            .put_record(Item {
                id,
                body: "x".repeat(200),
            })
            .await?;
        let put = start.elapsed();
        let found: Option<Item> = reader.get_record(ItemPrimaryKey(id)).await?;
        let total = start.elapsed();
        if found.is_none() {
            return Err(format!("item {id} not found").into());
        }
        puts.push(put);
        gets.push(total - put);
        both.push(total);
    }
    for node in &nodes {
        node.close().await;
    }
    println!();
    println!("10-node loopback network, replication factor 3, {rounds} rounds:");
    println!("| operation | p50 | p99 |");
    println!("|---|---:|---:|");
    for (name, samples) in [
        ("put", &mut puts),
        ("get", &mut gets),
        ("put → get", &mut both),
    ] {
        samples.sort();
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            percentile(samples, 0.50).as_secs_f64() * 1e3,
            percentile(samples, 0.99).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn main() -> Result<(), AnyError> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: keep that
    // run tiny so it only checks that the benchmark works.
    let full = std::env::args().any(|a| a == "--bench");
    let (n, inbound, rounds, verifications) = if full {
        (
            env_usize("NETABASE_BENCH_RECORDS", 2000),
            env_usize("NETABASE_BENCH_INBOUND", 50_000),
            env_usize("NETABASE_BENCH_ROUNDS", 200),
            env_usize("NETABASE_BENCH_VERIFY", 10_000),
        )
    } else {
        (50, 200, 5, 100)
    };
    if let Ok(only) = std::env::var("NETABASE_BENCH_VERIFY_ONLY") {
        let unverified = decoded(&records(verifications)?)?;
        let valid = match only.as_str() {
            "single" => verify_one_by_one(unverified),
            "batch" => verify_batched(unverified),
            other => {
                return Err(format!("NETABASE_BENCH_VERIFY_ONLY={other}: single or batch").into());
            }
        };
        println!("{valid} of {verifications} records verified ({only})");
        return Ok(());
    }
    verification_benchmark(verifications)?;
    store_benchmarks(n)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(worker_benchmarks(inbound))?;
    runtime.block_on(network_benchmark(rounds))
}
