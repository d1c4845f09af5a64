//! The cost of keeping sync fingerprints at every write: the same workloads on a redb
//! store (redb's in-memory storage, like the other benches) with sync off (the
//! baseline, same run) and on.
//!
//! `cargo bench -p netabase_bench --bench sync`; the ratios are in `docs/benchmarks.md`.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netabase_bench::data::schema::{BenchDefinition, Item};
use netabase_bench::data::{self, Record};
use netabase_store::backend::redb::RedbBackend;
use netabase_store::{NetabaseStore, OpenOptions};

type Store = NetabaseStore<BenchDefinition, RedbBackend>;

const N: usize = 10_000;

fn open(sync: bool) -> Store {
    let db = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .unwrap_or_else(|e| panic!("benchmark failed: {e}"));
    let options = if sync {
        OpenOptions::default().sync_model("Item")
    } else {
        OpenOptions::default()
    };
    NetabaseStore::from_backend_with(RedbBackend::from_database(db, None), options)
        .unwrap_or_else(|e| panic!("benchmark failed: {e}"))
}

fn must<T>(result: netabase_store::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("benchmark failed: {e}"))
}

fn name(sync: bool) -> &'static str {
    if sync { "sync_on" } else { "sync_off" }
}

fn benches(c: &mut Criterion) {
    let records: Vec<Record> = data::records(0, N, data::groups(N));
    let items = || records.iter().map(Item::from).collect::<Vec<_>>();
    let ids = data::sample_ids(&records, 1_000, 7);

    let mut group = c.benchmark_group("sync_insert_bulk");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    for sync in [false, true] {
        group.bench_function(BenchmarkId::new(name(sync), N), |b| {
            b.iter_batched(
                || (open(sync), items()),
                |(store, items)| {
                    must(store.open_tree::<Item>().put_many(items));
                    store
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sync_insert_each");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    for sync in [false, true] {
        group.bench_function(BenchmarkId::new(name(sync), 1_000), |b| {
            b.iter_batched(
                || {
                    (
                        open(sync),
                        items().into_iter().take(1_000).collect::<Vec<_>>(),
                    )
                },
                |(store, items)| {
                    let tree = store.open_tree::<Item>();
                    for item in items {
                        must(tree.put(item));
                    }
                    store
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sync_get");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for sync in [false, true] {
        let store = open(sync);
        must(store.open_tree::<Item>().put_many(items()));
        let tree = store.open_tree::<Item>();
        group.bench_function(BenchmarkId::new(name(sync), 1_000), |b| {
            b.iter(|| {
                for id in &ids {
                    std::hint::black_box(must(tree.get(*id)));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(sync, benches);
criterion_main!(sync);
