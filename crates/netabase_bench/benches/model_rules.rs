//! The cost of model rules on writes: put throughput of a model with one validated
//! field and one link, against the same model without them, in the same run.
//!
//! `cargo bench -p netabase_bench --bench model_rules`. The ratio quoted in
//! `docs/benchmarks.md` is `time(plain) / time(rules)` (throughput with rules ÷ without);
//! `indexed` (the link's field as a plain secondary key) separates the cost of the link
//! index from the cost of the checks.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netabase_bench::model_rules::{self, RulesBench, indexed, plain, ruled};
use netabase_store::backend::Backend;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::prelude::*;
use netabase_store::schema::NetabaseModelTrait;

fn store<B: Backend>(backend: B) -> NetabaseStore<RulesBench, B> {
    model_rules::store(backend).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Puts `records` into a fresh store from `make`, in one `put_many` (`bulk`) or one
/// transaction per record.
fn put<B, M>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    make: fn() -> B,
    records: &[M],
    bulk: bool,
) where
    B: Backend,
    M: NetabaseModelTrait<RulesBench>,
{
    group.bench_function(BenchmarkId::new(name, records.len()), |b| {
        b.iter_batched(
            || (store(make()), records.to_vec()),
            |(s, records)| {
                let tree = s.open_tree::<M>();
                if bulk {
                    tree.put_many(records).unwrap_or_else(|e| panic!("{e}"));
                } else {
                    for record in records {
                        tree.put(record).unwrap_or_else(|e| panic!("{e}"));
                    }
                }
                s
            },
            BatchSize::PerIteration,
        );
    });
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, make: fn() -> B, each: bool) {
    let n = 10_000;
    let mut group = c.benchmark_group(format!("rules_put_bulk_{name}"));
    put(&mut group, "plain", make, &plain(n), true);
    put(&mut group, "indexed", make, &indexed(n), true);
    put(&mut group, "rules", make, &ruled(n), true);
    group.finish();
    if each {
        let n = 1_000;
        let mut group = c.benchmark_group(format!("rules_put_each_{name}"));
        put(&mut group, "plain", make, &plain(n), false);
        put(&mut group, "indexed", make, &indexed(n), false);
        put(&mut group, "rules", make, &ruled(n), false);
        group.finish();
    }
}

fn model_rules(c: &mut Criterion) {
    bench_backend(c, "memory", MemoryBackend::new, true);
    // One redb transaction per record is dominated by its durable commit: bulk only.
    bench_backend(
        c,
        "redb",
        || RedbBackend::temp().unwrap_or_else(|e| panic!("temp redb: {e}")),
        false,
    );
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
    targets = model_rules
}
criterion_main!(benches);
