//! Runs one workload of one contender a few times, for profilers (callgrind, perf) that
//! want a short, quiet process instead of criterion's harness.
//!
//! ```text
//! valgrind --tool=callgrind target/release/profile netabase_redb insert_bulk 10000 3
//! ```
//!
//! Prints the wall time of each repetition; setup (filling the database for reads and
//! removals) happens before the first repetition and is inside the profile too, so
//! compare instruction counts of the same workload only.

use std::time::Instant;

use netabase_bench::contenders::native::NativeDb;
use netabase_bench::contenders::netabase::Netabase;
use netabase_bench::contenders::raw_redb::RawRedb;
use netabase_bench::contenders::raw_sled::RawSled;
use netabase_bench::contenders::{BenchResult, Contender};
use netabase_bench::data;
use netabase_bench::report::Workload;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;

fn run<C: Contender>(workload: Workload, n: usize, reps: usize) -> BenchResult<()> {
    let groups = data::groups(n);
    let records = data::records(0, n, groups);
    let ids = data::sample_ids(&records, n, 1);
    let all: Vec<u64> = records.iter().map(|r| r.id).collect();
    let eq = data::sample_groups(groups, 100, 2);
    let ranges: Vec<(u32, u32)> = data::sample_groups(groups.saturating_sub(10).max(1), 20, 3)
        .into_iter()
        .map(|l| (l, l + 10))
        .collect();
    let filled = if workload.writes() {
        None
    } else {
        Some(C::filled(&records, false)?)
    };
    for _ in 0..reps {
        let fresh = match workload {
            Workload::RemoveBulk => Some(C::filled(&records, false)?),
            Workload::RemoveBulkWide => Some(C::filled(&records, true)?),
            _ if workload.writes() => Some(C::open()?),
            _ => None,
        };
        let items: Vec<C::Item> = records.iter().map(C::item).collect();
        let wide: Vec<C::Wide> = records.iter().map(C::wide).collect();
        let start = Instant::now();
        let seen = match (workload, fresh.as_ref().or(filled.as_ref())) {
            (_, None) => return Err("no database".into()),
            (Workload::InsertBulk, Some(db)) => db.insert_bulk(items).map(|()| n)?,
            (Workload::InsertEach, Some(db)) => db.insert_each(items).map(|()| n)?,
            (Workload::InsertBulkWide, Some(db)) => db.insert_bulk_wide(wide).map(|()| n)?,
            (Workload::GetOneTxn, Some(db)) => db.get_one_txn(&ids)?,
            (Workload::GetEachTxn, Some(db)) => db.get_each_txn(&ids)?,
            (Workload::QueryEq, Some(db)) => db.query_eq(&eq)?,
            (Workload::QueryRange, Some(db)) => db.query_range(&ranges)?,
            (Workload::Iterate, Some(db)) => db.iterate()?,
            (Workload::RemoveBulk, Some(db)) => db.remove_bulk(&all)?,
            (Workload::RemoveBulkWide, Some(db)) => db.remove_bulk_wide(&all)?,
        };
        println!(
            "{} {}: {seen} records in {:?}",
            C::NAME,
            workload.id(),
            start.elapsed()
        );
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [contender, workload, n, reps] = args.as_slice() else {
        return Err("usage: profile <contender> <workload> <records> <repetitions>".into());
    };
    let workload = Workload::ALL
        .into_iter()
        .find(|w| w.id() == workload)
        .ok_or("unknown workload")?;
    let n: usize = n.parse()?;
    let reps: usize = reps.parse()?;
    match contender.as_str() {
        "netabase_redb" => run::<Netabase<RedbBackend>>(workload, n, reps),
        "netabase_memory" => run::<Netabase<MemoryBackend>>(workload, n, reps),
        "netabase_sled" => run::<Netabase<SledBackend>>(workload, n, reps),
        "raw_redb" => run::<RawRedb>(workload, n, reps),
        "raw_sled" => run::<RawSled>(workload, n, reps),
        "native_db" => run::<NativeDb>(workload, n, reps),
        other => Err(format!("unknown contender {other}").into()),
    }
}
