//! The expiry sweep of the record store, as a plain bench binary
//! (`cargo bench -p netabase --bench sweep`): a redb store of `NETABASE_BENCH_LIVE`
//! live records (default 100,000, each expiring in an hour) and
//! `NETABASE_BENCH_EXPIRED` expired ones (default 100) is swept once from the expiry
//! index (`KadStore::sweep_expired`) and, on a copy of the same file, once by decoding
//! every record (`KadStore::sweep_expired_by_scan`, the sweep before the index), in the
//! same run.
//!
//! For instruction counts, build the store once natively, then sweep a copy of it under
//! callgrind, counting the sweep alone:
//!
//! ```text
//! NETABASE_BENCH_SWEEP_BUILD=/tmp/sweep.redb target/release/deps/sweep-*
//! cp /tmp/sweep.redb /tmp/run.redb
//! NETABASE_BENCH_SWEEP_DB=/tmp/run.redb NETABASE_BENCH_SWEEP_ONLY=index \
//!   valgrind --tool=callgrind '--toggle-collect=*sweep::sweep_once*' target/release/deps/sweep-*
//! ```
//!
//! (`NETABASE_BENCH_SWEEP_ONLY=scan` for the sweep by scan.)

use std::path::Path;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::identity::Keypair;
use libp2p::kad::RecordKey;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::kad::{KadStore, KadStoreConfig, RecordSigner, SweepStats};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> KadStoreConfig {
    KadStoreConfig {
        max_records: usize::MAX,
        ..KadStoreConfig::default()
    }
}

/// Writes the store: `live` records expiring in an hour and `expired` ones that
/// expired a minute ago, their keys interleaved, in batches of 10,000.
fn build(path: &Path, live: usize, expired: usize) -> Result<(), AnyError> {
    let signer = RecordSigner::new(&Keypair::generate_ed25519())?;
    let store = KadStore::new(RedbBackend::create(path)?, PeerId::random(), config());
    let later = Instant::now() + Duration::from_secs(3600);
    let past = Instant::now()
        .checked_sub(Duration::from_secs(60))
        .ok_or("the clock is too close to its origin")?;
    let every = (live / expired.max(1)).max(1);
    let mut batch = Vec::with_capacity(10_000);
    let (mut live_left, mut expired_left) = (live, expired);
    let mut i = 0usize;
    while live_left + expired_left > 0 {
        let expires = if expired_left > 0 && (i.is_multiple_of(every) || live_left == 0) {
            expired_left -= 1;
            past
        } else {
            live_left -= 1;
            later
        };
        let key = RecordKey::new(&format!("bench/{i:08}"));
        let signed = signer.seal(key, Some(vec![7; 64]), signer.next_stamp(None));
        batch.push(Ok((signed, Some(expires))));
        i += 1;
        if batch.len() == 10_000 || live_left + expired_left == 0 {
            store.try_put_verified_batch(std::mem::take(&mut batch))?;
        }
    }
    Ok(())
}

/// One sweep, the way `how` says: the function callgrind counts.
#[inline(never)]
fn sweep_once(store: &KadStore<RedbBackend>, how: &str) -> Result<SweepStats, AnyError> {
    Ok(match how {
        "scan" => store.sweep_expired_by_scan()?,
        _ => store.sweep_expired()?,
    })
}

fn open_and_sweep(path: &Path, how: &str) -> Result<(SweepStats, Duration), AnyError> {
    let store = KadStore::new(RedbBackend::create(path)?, PeerId::random(), config());
    let started = Instant::now();
    let stats = sweep_once(&store, how)?;
    Ok((stats, started.elapsed()))
}

fn main() -> Result<(), AnyError> {
    let live = env_usize("NETABASE_BENCH_LIVE", 100_000);
    let expired = env_usize("NETABASE_BENCH_EXPIRED", 100);
    if let Ok(path) = std::env::var("NETABASE_BENCH_SWEEP_BUILD") {
        return build(Path::new(&path), live, expired);
    }
    if let (Ok(path), Ok(how)) = (
        std::env::var("NETABASE_BENCH_SWEEP_DB"),
        std::env::var("NETABASE_BENCH_SWEEP_ONLY"),
    ) {
        let (stats, took) = open_and_sweep(Path::new(&path), &how)?;
        println!("{how}: swept {} records in {took:?}", stats.records);
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let built = dir.path().join("built.redb");
    build(&built, live, expired)?;
    println!("sweep of {live} live and {expired} expired records (redb):");
    let mut took = Vec::new();
    for how in ["index", "scan"] {
        let copy = dir.path().join(format!("{how}.redb"));
        std::fs::copy(&built, &copy)?;
        let (stats, elapsed) = open_and_sweep(&copy, how)?;
        if stats.records != expired {
            return Err(format!("{how}: swept {} of {expired}", stats.records).into());
        }
        println!("  {how:>5}: {elapsed:?}");
        took.push(elapsed.as_secs_f64());
    }
    if let [index, scan] = took[..] {
        println!("  scan ÷ index: {:.1}", scan / index.max(f64::MIN_POSITIVE));
    }
    Ok(())
}
