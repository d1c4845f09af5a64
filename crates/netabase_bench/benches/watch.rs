//! What a change subscription costs the writer: the same puts with no subscriber, with
//! one that never reads (its buffer full from the start, so every commit drops the
//! oldest and counts it), and with one that drains on another thread, in one run.
//!
//! `cargo bench -p netabase_bench --bench watch`; the ratios are in `docs/benchmarks.md`.

use std::thread;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main,
};
use netabase_bench::contenders::netabase::OpenBackend;
use netabase_bench::data::schema::{BenchDefinition, Item};
use netabase_bench::data::{self, Record};
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::watch::{Filter, Subscription};
use netabase_store::{NetabaseStore, TypedChange};
use tempfile::TempDir;

type Store<B> = NetabaseStore<BenchDefinition, B>;
type Watcher = Subscription<TypedChange<BenchDefinition, Item>>;

/// The buffer of the subscriber that never reads: small, and filled before the timing.
const IDLE_CAPACITY: usize = 64;

/// Who listens while the puts run.
#[derive(Clone, Copy)]
enum Listener {
    /// Nobody: the write path checks one atomic and records nothing.
    None,
    /// A subscription that never reads, its buffer already full.
    Idle,
    /// A subscription read by a thread of its own as fast as it can.
    Draining,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::None => "no_subscriber",
            Listener::Idle => "idle_subscriber",
            Listener::Draining => "draining_subscriber",
        }
    }
}

fn item(r: &Record) -> Item {
    Item {
        id: r.id,
        name: r.name.clone(),
        group: r.keys[0],
    }
}

/// Panics with the engine's error: a benchmark that fails must not report a time.
fn must<T>(result: Result<T, netabase_store::NetabaseError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark failed: {e}"),
    }
}

/// What the timed section needs, and what must outlive it: the store, the listening
/// end (idle) or its reading thread (draining), and the directory of an on-disk store.
struct Setup<B> {
    store: Store<B>,
    _idle: Option<Watcher>,
    /// Detached when dropped: it ends by itself once the store is gone.
    _drainer: Option<thread::JoinHandle<u64>>,
    _dir: Option<TempDir>,
}

fn setup<B: OpenBackend>(listener: Listener) -> Setup<B> {
    let (backend, dir) = match B::open_backend() {
        Ok(opened) => opened,
        Err(e) => panic!("benchmark failed: {e}"),
    };
    let store = must(Store::<B>::from_backend(backend));
    let tree = store.open_tree::<Item>();
    let (idle, drainer) = match listener {
        Listener::None => (None, None),
        Listener::Idle => {
            let watcher = tree.watch_with_capacity(Filter::all(), IDLE_CAPACITY);
            // Fill its buffer, with keys the timed puts never use.
            for i in 0..IDLE_CAPACITY as u64 {
                must(tree.put(Item {
                    id: u64::MAX - i,
                    name: "filler".into(),
                    group: 0,
                }));
            }
            (Some(watcher), None)
        }
        Listener::Draining => {
            let watcher = tree.watch(Filter::all());
            // Reads until the store is dropped, after the timed section.
            let drainer = thread::spawn(move || watcher.iter().count() as u64);
            (None, Some(drainer))
        }
    };
    Setup {
        store,
        _idle: idle,
        _drainer: drainer,
        _dir: dir,
    }
}

fn bench<B: OpenBackend>(group: &mut BenchmarkGroup<'_, WallTime>, records: &[Record], bulk: bool) {
    for listener in [Listener::None, Listener::Idle, Listener::Draining] {
        let id = BenchmarkId::new(format!("{}/{}", B::NAME, listener.name()), records.len());
        group.bench_function(id, |b| {
            b.iter_batched(
                || {
                    (
                        setup::<B>(listener),
                        records.iter().map(item).collect::<Vec<_>>(),
                    )
                },
                |(setup, items)| {
                    let tree = setup.store.open_tree::<Item>();
                    if bulk {
                        must(tree.put_many(items));
                    } else {
                        for item in items {
                            must(tree.put(item));
                        }
                    }
                    setup
                },
                BatchSize::PerIteration,
            );
        });
    }
}

fn watch(c: &mut Criterion) {
    let records = data::records(0, 1000, data::groups(1000));
    let mut group = c.benchmark_group("watch_put_each");
    bench::<RedbBackend>(&mut group, &records, false);
    bench::<MemoryBackend>(&mut group, &records, false);
    group.finish();

    let records = data::records(0, 10_000, data::groups(10_000));
    let mut group = c.benchmark_group("watch_put_bulk");
    bench::<RedbBackend>(&mut group, &records, true);
    bench::<MemoryBackend>(&mut group, &records, true);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = watch
}
criterion_main!(benches);
