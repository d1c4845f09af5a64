//! Opening the database a command names: which engine, read-only or writable, and a
//! clear refusal when another process has it open.

use std::path::Path;

use netabase_store::FileConfig;
use netabase_store::NetabaseError;
use netabase_store::backend::Backend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::sled::SledBackend;
use netabase_store::backend::transform::{Compression, EncryptionKey, Transformed, Transforms};
use netabase_store::typed::dynamic::DynamicStore;

use crate::failure::{Failure, Outcome};
use crate::{Engine, Target};

/// An opened database, on either engine.
pub enum Store {
    /// A redb file.
    Redb(DynamicStore<Transformed<RedbBackend>>),
    /// A sled directory.
    Sled(DynamicStore<Transformed<SledBackend>>),
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

/// How values must be read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Values {
    /// The command reads no value (inspect, stats, compact): an encrypted store opens
    /// without its key.
    #[default]
    Untouched,
    /// The command reads values: an encrypted store needs its key.
    Read,
    /// The command writes values: new values are encrypted when the store is, and
    /// compressed as asked.
    Write(Option<Compression>),
}

/// Opens `target` for a command that reads nothing but keys and counts.
pub fn open(target: &Target, write: bool) -> Outcome<Store> {
    open_for(target, write, Values::Untouched)
}

/// Opens `target`; `write` opens it writable (redb is otherwise opened read-only; sled
/// has no read-only mode). The database must exist. Values are opened with the key of
/// `--key-file`, which an encrypted store needs for any command that reads values.
pub fn open_for(target: &Target, write: bool, values: Values) -> Outcome<Store> {
    let engine = engine(target)?;
    let config = FileConfig::builder()
        .path(&target.file)
        .create_if_missing(false)
        .read_only(!write && engine == Engine::Redb)
        .build();
    let key = match &target.key_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure(format!("cannot read the key file {}: {e}", path.display()))
            })?;
            Some(
                EncryptionKey::from_file_bytes(&bytes)
                    .map_err(|e| Failure(format!("the key file {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    match engine {
        Engine::Redb => RedbBackend::with_config(&config, true)
            .map_err(|e| explain(&target.file, engine, e))
            .and_then(|b| wrap(target, b, key, values))
            .map(Store::Redb),
        Engine::Sled => open_sled(&config)
            .map_err(|e| explain(&target.file, engine, e))
            .and_then(|b| wrap(target, b, key, values))
            .map(Store::Sled),
    }
}

/// Wraps an opened engine in the transforms the command needs, and reads the store.
fn wrap<B: Backend>(
    target: &Target,
    backend: B,
    key: Option<EncryptionKey>,
    values: Values,
) -> Outcome<DynamicStore<Transformed<B>>> {
    let encrypted = Transformed::is_encrypted(&backend)?;
    let file = target.file.display();
    let transforms = match (key, values) {
        (None, Values::Read | Values::Write(_)) if encrypted => {
            return Err(Failure(format!(
                "{file} is encrypted: give its key with --key-file PATH (32 bytes, or 64 \
                 hexadecimal digits)"
            )));
        }
        (Some(_), _) if !encrypted => {
            return Err(Failure(format!(
                "{file} is not encrypted (it has no key check); run the command without \
                 --key-file"
            )));
        }
        (Some(key), Values::Write(_)) => Transforms::new().encryption(key),
        (Some(key), _) => Transforms::new().key(key),
        (None, _) => Transforms::new(),
    };
    let transforms = match values {
        Values::Write(Some(c)) => transforms.compression(c),
        _ => transforms,
    };
    let sealed = Transformed::new(backend, transforms).map_err(|e| match e {
        netabase_store::NetabaseError::Transform(t)
            if t.problem == netabase_store::TransformProblem::WrongKey =>
        {
            Failure(format!("the key in the key file is not the key of {file}"))
        }
        other => Failure(other.to_string()),
    })?;
    Ok(DynamicStore::open(sealed)?)
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
