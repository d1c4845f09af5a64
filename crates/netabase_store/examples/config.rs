//! Opening a store from a `FileConfig`, and switching backend by changing one line.
//!
//! Run it with `cargo run --example config` (redb), or with sled:
//! `cargo run --example config --features sled`.

use netabase_store::backend::Backend;
use netabase_store::prelude::*;

/// The backend: change this one line to switch. Everything below stays the same.
type Db = netabase_store::backend::redb::RedbBackend;
// type Db = netabase_store::backend::sled::SledBackend; // needs `--features sled`
// type Db = netabase_store::backend::memory::MemoryBackend;

/// The schema.
#[netabase_definition_module(AppDefinition, AppKeys)]
pub mod app {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A note, found by id or by tag.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AppDefinition)]
    pub struct Note {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// The text.
        pub text: String,
        /// A label to group notes by.
        #[secondary_key]
        pub tag: String,
    }
}

use app::*;

/// Writes and reads through any backend that opens from a `FileConfig`.
fn run<B>(config: FileConfig) -> Result<(), Box<dyn std::error::Error>>
where
    B: Backend,
    NetabaseStore<AppDefinition, B>: BackendStore<AppDefinition>,
{
    let store = NetabaseStore::<AppDefinition, B>::new(config)?;
    let notes = store.open_tree::<Note>();
    for (id, tag) in [(1, "home"), (2, "work"), (3, "home")] {
        notes.put(Note {
            id,
            text: format!("note {id}"),
            tag: tag.into(),
        })?;
    }
    let home =
        notes.get_by_secondary_key(NoteSecondaryKeys::Tag(NoteTagSecondaryKey("home".into())))?;
    println!(
        "{} backend: {} home notes",
        store.raw_backend().name(),
        home.len()
    );
    print!("{}", store.stats()?);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.db");

    // The defaults: 256 MiB cache, created if missing, durable commits.
    run::<Db>(FileConfig::new(&path))?;

    // Every option, spelled out. `open` (rather than `new`) never creates a database.
    let config = FileConfig::builder()
        .path(&path)
        .cache_size_mb(64)
        .create_if_missing(false)
        .truncate(true)
        .read_only(false)
        .use_fsync(false)
        .build();
    let store = NetabaseStore::<AppDefinition, Db>::open(config);
    match store {
        Ok(store) => println!("reopened empty: {} notes", store.open_tree::<Note>().len()?),
        // The in-memory backend has no existing database to open.
        Err(e) => println!("cannot open: {e}"),
    }

    // A read-only store reads, and refuses writes with a typed error.
    let config = FileConfig::builder().path(&path).read_only(true).build();
    if let Ok(store) = NetabaseStore::<AppDefinition, Db>::new(config) {
        let err = store.open_tree::<Note>().put(Note {
            id: 9,
            text: String::new(),
            tag: String::new(),
        });
        println!(
            "write on a read-only store: {}",
            err.err().map_or("accepted".into(), |e| e.to_string())
        );
    }
    Ok(())
}
