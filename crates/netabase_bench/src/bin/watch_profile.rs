//! The writer's side of a change subscription, for callgrind: one run of puts with no
//! subscriber, with one that never reads (its buffer full from the start) or with one
//! that drains on another thread.
//!
//! ```text
//! valgrind --tool=callgrind '--toggle-collect=*watch_profile::workload*' \
//!     target/release/watch_profile redb idle bulk 10000
//! ```
//!
//! Arguments: `redb` or `memory`; `none`, `idle`, `idle_secondary` (an idle subscriber
//! whose filter is a secondary-key range) or `draining`; `each` (one transaction
//! per put) or `bulk` (one `put_many`); the number of records. Only `workload`, the
//! writes, is counted with the toggle above; the draining thread is not.

use std::thread;
use std::time::Instant;

use netabase_bench::contenders::netabase::OpenBackend;
use netabase_bench::data::schema::{BenchDefinition, Item, ItemGroupSecondaryKey};
use netabase_bench::data::{self, Record};
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::watch::Filter;
use netabase_store::{NetabaseStore, Tree};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The buffer of the subscriber that never reads, filled before the writes.
const IDLE_CAPACITY: usize = 64;

#[inline(never)]
fn workload<B: OpenBackend>(
    tree: &Tree<BenchDefinition, Item, B>,
    items: Vec<Item>,
    bulk: bool,
) -> BoxResult<()> {
    if bulk {
        tree.put_many(items)?;
    } else {
        for item in items {
            tree.put(item)?;
        }
    }
    Ok(())
}

fn run<B: OpenBackend>(listener: &str, bulk: bool, records: &[Record]) -> BoxResult<()> {
    let (backend, _dir) = B::open_backend()?;
    let store = NetabaseStore::<BenchDefinition, B>::from_backend(backend)?;
    let tree = store.open_tree::<Item>();
    let mut idle = None;
    let mut drainer = None;
    match listener {
        "none" => {}
        "idle" | "idle_secondary" => {
            let filter = if listener == "idle" {
                Filter::all()
            } else {
                // Every record matches, but the writer must decode each to know it.
                Filter::secondary_range(ItemGroupSecondaryKey(0)..)
            };
            idle = Some(tree.watch_with_capacity(filter, IDLE_CAPACITY));
            for i in 0..IDLE_CAPACITY as u64 {
                tree.put(Item {
                    id: u64::MAX - i,
                    name: "filler".into(),
                    group: 0,
                })?;
            }
        }
        "draining" => {
            let watcher = tree.watch(Filter::all());
            drainer = Some(thread::spawn(move || watcher.iter().count()));
        }
        other => return Err(format!("unknown listener `{other}`").into()),
    }
    let items: Vec<Item> = records
        .iter()
        .map(|r| Item {
            id: r.id,
            name: r.name.clone(),
            group: r.keys[0],
        })
        .collect();
    let start = Instant::now();
    workload(&tree, items, bulk)?;
    let elapsed = start.elapsed();
    drop((tree, store));
    if let Some(drainer) = drainer {
        let events = drainer.join().map_err(|_| "the draining thread panicked")?;
        println!("drained {events} events");
    }
    drop(idle);
    println!("{listener}: {elapsed:?}");
    Ok(())
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, listener, mode, n] = args.as_slice() else {
        return Err(
            "usage: watch_profile <redb|memory> <none|idle|idle_secondary|draining> <each|bulk> <records>".into(),
        );
    };
    let n: usize = n.parse()?;
    let records = data::records(0, n, data::groups(n));
    let bulk = mode == "bulk";
    match backend.as_str() {
        "redb" => run::<RedbBackend>(listener, bulk, &records),
        "memory" => run::<MemoryBackend>(listener, bulk, &records),
        other => Err(format!("unknown backend `{other}`").into()),
    }
}
