//! The writes of the model-rules benchmark, once, for callgrind: a fresh store holding
//! the link targets, then the puts of one model.
//!
//! ```text
//! valgrind --tool=callgrind '--toggle-collect=*rules_profile::workload*' \
//!     target/release/rules_profile memory rules bulk 10000
//! ```
//!
//! Arguments: `memory`, `redb` (a temporary file, as in the benchmark) or `sled`;
//! `plain`, `indexed` or `rules` (the models of [`netabase_bench::model_rules`]); `bulk`
//! (one `put_many`), `each` (one transaction per put) or `remove` (the records put
//! first, then removed one transaction each); the number of records. Only `workload`
//! (the puts) or `workload_remove` (the removals) is counted with the toggle above.

use std::time::Instant;

use netabase_bench::model_rules::{self, RulesBench, indexed, plain, ruled};
use netabase_store::backend::Backend;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;
use netabase_store::schema::NetabaseModelTrait;
use netabase_store::{NetabaseStore, Tree};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[inline(never)]
fn workload<B: Backend, M: NetabaseModelTrait<RulesBench>>(
    tree: &Tree<RulesBench, M, B>,
    records: Vec<M>,
    bulk: bool,
) -> BoxResult<()> {
    if bulk {
        tree.put_many(records)?;
    } else {
        for record in records {
            tree.put(record)?;
        }
    }
    Ok(())
}

/// One-shot removals of the records at `keys`.
#[inline(never)]
fn workload_remove<B: Backend, M: NetabaseModelTrait<RulesBench>>(
    tree: &Tree<RulesBench, M, B>,
    keys: Vec<M::PrimaryKey>,
) -> BoxResult<()> {
    for key in keys {
        tree.remove(key)?;
    }
    Ok(())
}

fn run<B: Backend, M: NetabaseModelTrait<RulesBench>>(
    backend: B,
    records: Vec<M>,
    mode: &str,
) -> BoxResult<()> {
    let store: NetabaseStore<RulesBench, B> = model_rules::store(backend)?;
    let tree = store.open_tree::<M>();
    let n = records.len();
    if mode == "remove" {
        let keys = records.iter().map(|r| r.primary_key()).collect();
        tree.put_many(records)?;
        let start = Instant::now();
        workload_remove(&tree, keys)?;
        println!("{n} removals in {:?}", start.elapsed());
        return Ok(());
    }
    let start = Instant::now();
    workload(&tree, records, mode == "bulk")?;
    println!("{n} records in {:?}", start.elapsed());
    Ok(())
}

fn with_model<B: Backend>(backend: B, model: &str, mode: &str, n: u64) -> BoxResult<()> {
    match model {
        "plain" => run(backend, plain(n), mode),
        "indexed" => run(backend, indexed(n), mode),
        "rules" => run(backend, ruled(n), mode),
        other => Err(format!("unknown model `{other}`").into()),
    }
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, model, mode, n] = args.as_slice() else {
        return Err(
            "usage: rules_profile <memory|redb|sled> <plain|indexed|rules> <bulk|each|remove> \
             <records>"
                .into(),
        );
    };
    let n: u64 = n.parse()?;
    if !["bulk", "each", "remove"].contains(&mode.as_str()) {
        return Err(format!("unknown mode `{mode}`").into());
    }
    match backend.as_str() {
        "memory" => with_model(MemoryBackend::new(), model, mode, n),
        "redb" => with_model(RedbBackend::temp()?, model, mode, n),
        "sled" => with_model(SledBackend::temp()?, model, mode, n),
        other => Err(format!("unknown backend `{other}`").into()),
    }
}
