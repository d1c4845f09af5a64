//! Compression and encryption at rest against plain values, in the same run: putting
//! 1,000 compressible documents in one transaction, and getting each of them in one read
//! transaction, on redb.
//!
//! `cargo bench -p netabase_bench --bench at_rest`; the sizes on disk come from
//! `cargo run --release -p netabase_bench --bin at_rest_size`.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netabase_bench::at_rest::{Doc, TRANSFORMS, docs, open};

const N: usize = 1000;

/// Panics with the store's error: a benchmark that fails must not report a time.
fn must<T>(result: netabase_store::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark failed: {e}"),
    }
}

fn at_rest(c: &mut Criterion) {
    let data = docs(N);
    let mut put = c.benchmark_group("at_rest_put");
    put.sample_size(20).measurement_time(Duration::from_secs(8));
    for name in TRANSFORMS {
        put.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter_batched(
                || (must(open(name, None)), data.clone()),
                |(store, docs)| {
                    must(store.open_tree::<Doc>().put_many(docs));
                    store
                },
                BatchSize::PerIteration,
            );
        });
    }
    put.finish();
    let mut get = c.benchmark_group("at_rest_get");
    get.sample_size(20).measurement_time(Duration::from_secs(5));
    for name in TRANSFORMS {
        let store = must(open(name, None));
        must(store.open_tree::<Doc>().put_many(data.clone()));
        let ids: Vec<u64> = data.iter().map(|d| d.id).collect();
        get.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter(|| {
                let txn = must(store.read());
                let view = txn.open_tree::<Doc>();
                for id in &ids {
                    if must(view.get(*id)).is_none() {
                        panic!("benchmark failed: document {id} is missing");
                    }
                }
            });
        });
    }
    get.finish();
}

criterion_group!(benches, at_rest);
criterion_main!(benches);
