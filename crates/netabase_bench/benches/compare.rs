//! netabase against raw redb, raw sled and native_db, workload by workload.
//!
//! `cargo bench -p netabase_bench` runs everything; a filter such as
//! `cargo bench -p netabase_bench -- get_one_txn` runs one workload. Results land in
//! criterion's directory (`target/criterion/<workload>/<contender>/<records>`), which
//! `cargo run -p netabase_bench --bin report` turns into the tables of
//! `docs/benchmarks.md`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, criterion_group,
    criterion_main,
};
use netabase_bench::contenders::native::NativeDb;
use netabase_bench::contenders::netabase::Netabase;
use netabase_bench::contenders::raw_redb::RawRedb;
use netabase_bench::contenders::raw_sled::RawSled;
use netabase_bench::contenders::{BenchResult, Contender};
use netabase_bench::data::{self, Record};
use netabase_bench::report::{SIZES, Workload};
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;

/// The inputs of one size, shared by every contender.
struct Fixture {
    records: Vec<Record>,
    /// Random existing primary keys, as many as records.
    ids: Vec<u64>,
    /// Every primary key in a random order (for removal).
    remove_ids: Vec<u64>,
    /// Secondary values for the equality queries.
    groups: Vec<u32>,
    /// `low..high` secondary ranges, ten values wide.
    ranges: Vec<(u32, u32)>,
}

impl Fixture {
    fn new(n: usize) -> Self {
        let groups = data::groups(n);
        let records = data::records(0, n, groups);
        let ids = data::sample_ids(&records, n, 1);
        let mut remove_ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        remove_ids.sort_unstable_by_key(|&id| data::mix(id));
        let ranges = data::sample_groups(groups.saturating_sub(10).max(1), 20, 3)
            .into_iter()
            .map(|low| (low, low + 10))
            .collect();
        Fixture {
            records,
            ids,
            remove_ids,
            groups: data::sample_groups(groups, 100, 2),
            ranges,
        }
    }
}

/// Panics with the engine's error: a benchmark that fails must not report a time.
fn must<T>(result: BenchResult<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark failed: {e}"),
    }
}

fn run<C: Contender>(group: &mut BenchmarkGroup<'_, WallTime>, workload: Workload, f: &Fixture) {
    let n = f.records.len();
    let id = BenchmarkId::new(C::NAME, n);
    let items = || f.records.iter().map(C::item).collect::<Vec<_>>();
    match workload {
        Workload::InsertBulk => {
            group.bench_function(id, |b| {
                b.iter_batched(
                    || (must(C::open()), items()),
                    |(db, items)| {
                        must(db.insert_bulk(items));
                        db
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        Workload::InsertEach => {
            group.bench_function(id, |b| {
                b.iter_batched(
                    || (must(C::open()), items()),
                    |(db, items)| {
                        must(db.insert_each(items));
                        db
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        Workload::InsertBulkWide => {
            group.bench_function(id, |b| {
                b.iter_batched(
                    || {
                        let wide = f.records.iter().map(C::wide).collect::<Vec<_>>();
                        (must(C::open()), wide)
                    },
                    |(db, items)| {
                        must(db.insert_bulk_wide(items));
                        db
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        Workload::RemoveBulk => {
            group.bench_function(id, |b| {
                b.iter_batched(
                    || must(C::filled(&f.records, false)),
                    |db| {
                        assert_eq!(must(db.remove_bulk(&f.remove_ids)), n);
                        db
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        Workload::RemoveBulkWide => {
            group.bench_function(id, |b| {
                b.iter_batched(
                    || must(C::filled(&f.records, true)),
                    |db| {
                        assert_eq!(must(db.remove_bulk_wide(&f.remove_ids)), n);
                        db
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        read => {
            let db = must(C::filled(&f.records, false));
            group.bench_function(id, |b| {
                b.iter(|| match read {
                    Workload::GetOneTxn => must(db.get_one_txn(&f.ids)),
                    Workload::GetEachTxn => must(db.get_each_txn(&f.ids)),
                    Workload::QueryEq => must(db.query_eq(&f.groups)),
                    Workload::QueryRange => must(db.query_range(&f.ranges)),
                    _ => must(db.iterate()),
                })
            });
        }
    }
}

fn compare(c: &mut Criterion) {
    let fixtures: Vec<Fixture> = SIZES.iter().map(|&n| Fixture::new(n)).collect();
    for workload in Workload::ALL {
        let mut group = c.benchmark_group(workload.id());
        if workload.writes() {
            // Each iteration starts from a new database: few, flat samples.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        for f in &fixtures {
            run::<Netabase<RedbBackend>>(&mut group, workload, f);
            run::<RawRedb>(&mut group, workload, f);
            run::<NativeDb>(&mut group, workload, f);
            run::<Netabase<MemoryBackend>>(&mut group, workload, f);
            run::<Netabase<SledBackend>>(&mut group, workload, f);
            run::<RawSled>(&mut group, workload, f);
        }
        group.finish();
    }
}

fn config() -> Criterion {
    // Short runs: the medians are stable to a few percent, and the whole comparison
    // stays under a quarter of an hour on a 2-core machine.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = compare
}
criterion_main!(benches);
