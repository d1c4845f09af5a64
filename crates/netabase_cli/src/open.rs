//! Opening the database a command names: which engine, read-only or writable, and a
//! clear refusal when another process has it open.

use std::path::Path;

use netabase_store::FileConfig;
use netabase_store::NetabaseError;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;
use netabase_store::typed::dynamic::DynamicStore;

use crate::failure::{Failure, Outcome};
use crate::{Engine, Target};

/// An opened database, on either engine.
pub enum Store {
    /// A redb file.
    Redb(DynamicStore<RedbBackend>),
    /// A sled directory.
    Sled(DynamicStore<SledBackend>),
}

/// Runs `$body` with `$s` bound to the [`DynamicStore`] of either engine.
macro_rules! with_store {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            $crate::open::Store::Redb($s) => $body,
            $crate::open::Store::Sled($s) => $body,
        }
    };
}
pub(crate) use with_store;

impl Store {
    /// The engine's name.
    pub fn engine(&self) -> &'static str {
        match self {
            Store::Redb(_) => "redb",
            Store::Sled(_) => "sled",
        }
    }
}

/// The engine of `target`: as given, or a directory is sled and a file redb.
pub fn engine(target: &Target) -> Outcome<Engine> {
    if let Some(engine) = target.backend {
        return Ok(engine);
    }
    let meta = std::fs::metadata(&target.file)
        .map_err(|e| Failure(format!("cannot open {}: {e}", target.file.display())))?;
    Ok(if meta.is_dir() {
        Engine::Sled
    } else {
        Engine::Redb
    })
}

/// Opens `target`; `write` opens it writable (redb is otherwise opened read-only; sled
/// has no read-only mode). The database must exist.
pub fn open(target: &Target, write: bool) -> Outcome<Store> {
    let engine = engine(target)?;
    let config = FileConfig::builder()
        .path(&target.file)
        .create_if_missing(false)
        .read_only(!write && engine == Engine::Redb)
        .build();
    let opened = match engine {
        Engine::Redb => RedbBackend::with_config(&config, true)
            .and_then(DynamicStore::open)
            .map(Store::Redb),
        Engine::Sled => open_sled(&config)
            .and_then(DynamicStore::open)
            .map(Store::Sled),
    };
    opened.map_err(|e| explain(&target.file, engine, e))
}

/// Opens a sled directory. sled releases its lock from a background thread shortly
/// after the program that held it closes the database, so a lock still held is tried
/// again for up to a second before the directory is reported in use.
fn open_sled(config: &FileConfig) -> netabase_store::Result<SledBackend> {
    let mut tries = 0;
    loop {
        match SledBackend::with_config(config, true) {
            Err(e) if tries < 10 && in_use(&e.to_string()) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether an engine's message says another process holds the database.
fn in_use(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("already open")
        || lower.contains("lock")
        || lower.contains("resource temporarily unavailable")
        || lower.contains("would block")
}

/// The model named `name` (its name or its table) in `store`, or a message listing
/// the models there are.
pub fn find_model<'s, B: netabase_store::backend::Backend>(
    store: &'s DynamicStore<B>,
    name: &str,
) -> Outcome<&'s netabase_store::typed::dynamic::DynModel> {
    store.model(name).ok_or_else(|| {
        let known: Vec<&str> = store.models().iter().map(|m| m.table.as_str()).collect();
        Failure(format!(
            "no model is named `{name}` (or the name is ambiguous); the models are: {}",
            known.join(", ")
        ))
    })
}

/// The message for an open that failed; a database in use by another process says so.
fn explain(path: &Path, engine: Engine, e: NetabaseError) -> Failure {
    let text = e.to_string();
    if in_use(&text) {
        let how = match engine {
            Engine::Redb => "redb locks the file while a program has it open",
            Engine::Sled => "sled locks the directory while a program has it open",
        };
        return Failure(format!(
            "{} is in use by another process ({how}); close that program and try again \
             ({text})",
            path.display()
        ));
    }
    Failure(format!("cannot open {}: {text}", path.display()))
}
