//! Reconciliation of two redb stores of `--records` records (default 100,000) that
//! differ in d = 0, 1, 10, 100, 1000 records: bytes exchanged, messages, round trips
//! and time, against sending the whole store (measured in the same run: the first
//! reconciliation, into an empty store, is exactly that).
//!
//! ```text
//! cargo run --release -p netabase_bench --bin sync -- [--records 100000]
//! ```
//!
//! The cost of keeping fingerprints at every write (insert and get throughput with sync
//! on and off) is measured by the criterion bench `cargo bench -p netabase_bench --bench sync`,
//! and in instructions by running one workload under callgrind, counting only the
//! workload itself:
//!
//! ```text
//! valgrind --tool=callgrind '--toggle-collect=*sync::workload*' \
//!     target/release/sync --cost on|off --workload insert_bulk|insert_each|get [--records 10000]
//! ```
//!
//! `--file` runs the `--cost` workloads on a redb file with durable commits (the
//! default storage) instead of redb's in-memory storage, for timing whole runs.
//!
//! `--workload insert_each_wide` puts the same records as `Wide` (four more secondary
//! keys, never synced), one transaction each: against `insert_each` with sync off, it
//! gives what each further table written by a one-record transaction costs.
//! `--workload raw_each_1` … `raw_each_4` does the same on raw redb (no netabase): one
//! transaction per record, writing the record to one table and its 8-byte key (an
//! empty value) to each of up to three more: the engine's own cost of one more table.

use std::time::{Duration, Instant};

use netabase_bench::data::schema::{BenchDefinition, Item, Wide};
use netabase_bench::data::{self, SplitMix};
use netabase_store::backend::redb::RedbBackend;
use netabase_store::sync::{self, ReconcileReport};
use netabase_store::{NetabaseStore, OpenOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Store = NetabaseStore<BenchDefinition, RedbBackend>;

fn open() -> Result<Store, Error> {
    Ok(NetabaseStore::from_backend_with(
        RedbBackend::temp()?,
        OpenOptions::default().sync_model("Item"),
    )?)
}

fn timed(a: &Store, b: &Store) -> Result<(ReconcileReport, Duration), Error> {
    let start = Instant::now();
    let report = sync::reconcile(a, b)?;
    Ok((report, start.elapsed()))
}

fn row(d: &str, report: &ReconcileReport, time: Duration, whole: u64) {
    println!(
        "| {d} | {} | {} | {} | {:.3} % | {} | {:.1} |",
        report.a.records_sent + report.b.records_sent,
        report.bytes(),
        report.round_trips,
        100.0 * report.bytes() as f64 / whole as f64,
        report.messages,
        time.as_secs_f64() * 1000.0
    );
}

/// A store on redb's in-memory storage (like the criterion benches), sync on or off.
fn open_in_memory(sync: bool) -> Result<Store, Error> {
    let db =
        redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
    let options = if sync {
        OpenOptions::default().sync_model("Item")
    } else {
        OpenOptions::default()
    };
    Ok(NetabaseStore::from_backend_with(
        RedbBackend::from_database(db, None),
        options,
    )?)
}

/// One redb transaction per record on redb's in-memory storage, writing `tables` tables.
#[inline(never)]
fn workload_raw(db: &redb::Database, records: &[data::Record], tables: usize) -> Result<(), Error> {
    const RECORDS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("records");
    const MORE: [redb::TableDefinition<u64, ()>; 3] = [
        redb::TableDefinition::new("second"),
        redb::TableDefinition::new("third"),
        redb::TableDefinition::new("fourth"),
    ];
    for record in records {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(RECORDS)?;
            table.insert(record.id, record.name.as_bytes())?;
        }
        for more in MORE.iter().take(tables.saturating_sub(1)) {
            let mut table = txn.open_table(*more)?;
            table.insert(record.id, ())?;
        }
        txn.commit()?;
    }
    Ok(())
}

/// The measured part of `--cost`: one workload, nothing else.
#[inline(never)]
fn workload(
    store: &Store,
    name: &str,
    items: Vec<Item>,
    wide: Vec<Wide>,
    ids: &[u64],
) -> Result<(), Error> {
    let tree = store.open_tree::<Item>();
    match name {
        "insert_each_wide" => {
            let tree = store.open_tree::<Wide>();
            for record in wide {
                tree.put(record)?;
            }
        }
        "insert_bulk" => tree.put_many(items)?,
        "insert_each" => {
            for item in items {
                tree.put(item)?;
            }
        }
        "get" => {
            for id in ids {
                std::hint::black_box(tree.get(*id)?);
            }
        }
        other => return Err(format!("unknown workload {other}").into()),
    }
    Ok(())
}

fn cost(sync: bool, name: &str, n: usize, file: bool) -> Result<(), Error> {
    let records = data::records(0, n, data::groups(n));
    if let Some(tables) = name.strip_prefix("raw_each_") {
        let tables: usize = tables.parse()?;
        if !(1..=4).contains(&tables) {
            return Err(format!("{name}: 1 to 4 tables").into());
        }
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        return workload_raw(&db, &records, tables);
    }
    let (items, wide): (Vec<Item>, Vec<Wide>) = if name == "insert_each_wide" {
        (Vec::new(), records.iter().map(Wide::from).collect())
    } else {
        (records.iter().map(Item::from).collect(), Vec::new())
    };
    let ids = data::sample_ids(&records, n, 1);
    let store = if file {
        let options = if sync {
            OpenOptions::default().sync_model("Item")
        } else {
            OpenOptions::default()
        };
        NetabaseStore::from_backend_with(RedbBackend::temp()?, options)?
    } else {
        open_in_memory(sync)?
    };
    if name == "get" {
        store.open_tree::<Item>().put_many(items.clone())?;
    }
    workload(&store, name, items, wide, &ids)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mut n = 100_000usize;
    let mut cost_of: Option<bool> = None;
    let mut file = false;
    let mut name = String::from("insert_bulk");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => {
                n = args
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .ok_or("--records needs a number")?;
            }
            "--cost" => cost_of = Some(args.next().as_deref() == Some("on")),
            "--file" => file = true,
            "--workload" => name = args.next().ok_or("--workload needs a name")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let Some(sync) = cost_of {
        return cost(sync, &name, n, file);
    }
    let groups = data::groups(n);
    let records = data::records(0, n, groups);
    let (a, b) = (open()?, open()?);
    let items: Vec<Item> = records.iter().map(Item::from).collect();
    let start = Instant::now();
    a.open_tree::<Item>().put_many(items)?;
    eprintln!("loaded {n} records in {:.2?}", start.elapsed());

    let whole = sync::full_transfer_bytes(&a)?;
    println!("{n} records; sending the whole store: {whole} bytes in one message\n");
    println!(
        "| d | records moved | bytes exchanged | round trips | of whole store | messages | time (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (report, time) = timed(&a, &b)?;
    row("whole store (into an empty store)", &report, time, whole);

    let mut rng = SplitMix::new(42);
    for d in [0usize, 1, 10, 100, 1000] {
        // d distinct records differ: updated on one side or the other, every fifth one
        // removed instead.
        let mut keys: Vec<u64> = Vec::with_capacity(d);
        while keys.len() < d {
            let id = records[rng.below(n as u64) as usize].id;
            if !keys.contains(&id) {
                keys.push(id);
            }
        }
        for (i, id) in keys.iter().enumerate() {
            let side = if i % 2 == 0 { &a } else { &b };
            let tree = side.open_tree::<Item>();
            if i % 5 == 4 {
                tree.remove(*id)?;
            } else {
                let mut item = tree.get(*id)?.ok_or("missing record")?;
                item.name = format!("changed {i}");
                tree.put(item)?;
            }
        }
        let (report, time) = timed(&a, &b)?;
        row(&d.to_string(), &report, time, whole);
        let moved = report.a.records_sent + report.b.records_sent;
        if moved != d as u64 {
            return Err(format!("d = {d}: {moved} records moved").into());
        }
    }
    Ok(())
}
