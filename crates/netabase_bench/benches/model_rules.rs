//! The cost of model rules on writes: put throughput of a model with one validated
//! field and one link, against the same model without them, in the same run.
//!
//! `cargo bench -p netabase_bench --bench model_rules`. The ratio quoted in
//! `docs/benchmarks.md` is `time(plain) / time(rules)` (throughput with rules ÷ without);
//! `indexed` (the link's field as a plain secondary key) separates the cost of the link
//! index from the cost of the checks.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netabase_store::backend::Backend;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::prelude::*;
use netabase_store::schema::NetabaseModelTrait;

/// Two models with the same fields: `Plain` without rules, `Ruled` with a length rule
/// on `name` and a link from `owner` to `Owner`.
#[netabase_definition_module(RulesBench, RulesBenchKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The link target.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Owner {
        /// Unique id.
        #[primary_key]
        pub id: u64,
    }

    /// No rules.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Plain {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name.
        pub name: String,
        /// An owner id.
        pub owner: u64,
    }

    /// No rules, `owner` indexed: the index a link keeps, without the checks.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Indexed {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name.
        pub name: String,
        /// An owner id.
        #[secondary_key]
        pub owner: u64,
    }

    /// One validated field and one link.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesBench)]
    pub struct Ruled {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// A name of 1 to 64 bytes.
        #[validate(len(min = 1, max = 64))]
        pub name: String,
        /// The owner, which must exist.
        #[link(Owner)]
        pub owner: u64,
    }
}

use schema::*;

const OWNERS: u64 = 100;

fn key(i: u64) -> u64 {
    // A fixed permutation, so keys arrive in random order.
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

fn plain(n: u64) -> Vec<Plain> {
    (0..n)
        .map(|i| Plain {
            id: key(i),
            name: format!("record number {i}"),
            owner: i % OWNERS,
        })
        .collect()
}

fn ruled(n: u64) -> Vec<Ruled> {
    plain(n)
        .into_iter()
        .map(|p| Ruled {
            id: p.id,
            name: p.name,
            owner: p.owner,
        })
        .collect()
}

fn indexed(n: u64) -> Vec<Indexed> {
    plain(n)
        .into_iter()
        .map(|p| Indexed {
            id: p.id,
            name: p.name,
            owner: p.owner,
        })
        .collect()
}

fn store<B: Backend>(backend: B) -> NetabaseStore<RulesBench, B> {
    let store = NetabaseStore::from_backend(backend).unwrap_or_else(|e| panic!("open: {e}"));
    store
        .open_tree::<Owner>()
        .put_many((0..OWNERS).map(|id| Owner { id }))
        .unwrap_or_else(|e| panic!("owners: {e}"));
    store
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
