//! The schema stored in a database is compared with the code's at every open, on every
//! backend: an added secondary key is indexed from the stored records (with progress),
//! a removed one has its index dropped, a changed key type is refused, and a value of a
//! newer or older model version is refused instead of misread.

use std::sync::{Arc, Mutex};

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::{Backend, Direction, RawRange, collect_range};
use netabase_store::prelude::*;
use netabase_store::{OpenOptions, VersionProblem};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Version 1 of the schema.
mod v1 {
    use netabase_store::prelude::*;

    #[netabase_definition_module(AppDefinition, AppKeys)]
    pub mod app {
        use netabase_store::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[netabase(AppDefinition, version = 1)]
        pub struct Player {
            #[primary_key]
            pub id: u64,
            pub name: String,
            pub points: i32,
            #[secondary_key]
            pub team: String,
            #[secondary_key]
            pub level: u8,
        }
    }
}

/// The same fields, `level` no longer indexed, `name` newly indexed (unique).
mod v2 {
    use netabase_store::prelude::*;

    #[netabase_definition_module(AppDefinition, AppKeys)]
    pub mod app {
        use netabase_store::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[netabase(AppDefinition, version = 1)]
        pub struct Player {
            #[primary_key]
            pub id: u64,
            #[secondary_key(unique)]
            pub name: String,
            pub points: i32,
            #[secondary_key]
            pub team: String,
            pub level: u8,
        }
    }
}

/// `team` changed type: refused.
mod v3 {
    use netabase_store::prelude::*;

    #[netabase_definition_module(AppDefinition, AppKeys)]
    pub mod app {
        use netabase_store::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[netabase(AppDefinition, version = 1)]
        pub struct Player {
            #[primary_key]
            pub id: u64,
            pub name: String,
            pub points: i32,
            #[secondary_key]
            pub team: u32,
            pub level: u8,
        }
    }
}

/// Version 2 of the model with `points: u32` (the keys of `v2`): old values must not
/// be misread.
mod v4 {
    use netabase_store::prelude::*;

    #[netabase_definition_module(AppDefinition, AppKeys)]
    pub mod app {
        use netabase_store::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[netabase(AppDefinition, version = 2)]
        pub struct Player {
            #[primary_key]
            pub id: u64,
            #[secondary_key(unique)]
            pub name: String,
            pub points: u32,
            #[secondary_key]
            pub team: String,
            pub level: u8,
        }
    }
}

/// A database that can be opened again, with any definition.
trait Reopen {
    type B: Backend + std::fmt::Debug;
    fn backend(&self) -> Result<Self::B, NetabaseError>;
}

struct Memory(MemoryBackend);
impl Reopen for Memory {
    type B = MemoryBackend;
    fn backend(&self) -> Result<MemoryBackend, NetabaseError> {
        Ok(self.0.clone())
    }
}

struct Redb(std::path::PathBuf);
impl Reopen for Redb {
    type B = netabase_store::backend::redb::RedbBackend;
    fn backend(&self) -> Result<Self::B, NetabaseError> {
        Self::B::create(&self.0)
    }
}

#[cfg(feature = "sled")]
struct Sled(std::path::PathBuf);
#[cfg(feature = "sled")]
impl Reopen for Sled {
    type B = netabase_store::backend::sled::SledBackend;
    fn backend(&self) -> Result<Self::B, NetabaseError> {
        Self::B::open(&self.0)
    }
}

fn player(id: u64) -> v1::app::Player {
    v1::app::Player {
        id,
        name: format!("p{id}"),
        points: -(id as i32),
        team: format!("team{}", id % 3),
        level: (id % 5) as u8,
    }
}

fn index_len<B: Backend>(backend: &B, table: &str) -> Result<usize, NetabaseError> {
    Ok(collect_range(
        &backend.begin_read()?,
        table,
        RawRange::all(),
        Direction::Forward,
    )?
    .len())
}

fn schema_changes<R: Reopen>(db: R) -> TestResult {
    // Version 1 writes 3,000 players.
    {
        let store = NetabaseStore::<v1::app::AppDefinition, _>::from_backend(db.backend()?)?;
        store
            .open_tree::<v1::app::Player>()
            .put_many((0..3000).map(player))?;
    }

    // Version 2 adds a unique index on `name` and drops the one on `level`.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::clone(&seen);
    {
        let store = NetabaseStore::<v2::app::AppDefinition, _>::from_backend_with(
            db.backend()?,
            OpenOptions::default().on_index_build(move |p| {
                if let Ok(mut seen) = progress.lock() {
                    seen.push((p.model, p.field, p.done, p.total));
                }
            }),
        )?;
        let players = store.open_tree::<v2::app::Player>();
        let p7 = players
            .get_by_unique_key(v2::app::PlayerNameSecondaryKey("p7".into()))?
            .ok_or("the new index finds p7")?;
        assert_eq!(p7.id, 7);
        assert_eq!(
            players
                .get_by_secondary_key(v2::app::PlayerTeamSecondaryKey("team1".into()))?
                .len(),
            1000,
            "the kept index still answers"
        );
        let tables = store.tree_names()?;
        assert!(
            !tables.iter().any(|t| t == "AppDefinition/Player/level")
                || index_len(store.raw_backend(), "AppDefinition/Player/level")? == 0,
            "the dropped index is gone: {tables:?}"
        );
        assert_eq!(
            index_len(store.raw_backend(), "AppDefinition/Player/name")?,
            3000
        );
        // The unique key is enforced from now on.
        let mut clash = players.get(8)?.ok_or("p8")?;
        clash.id = 9000;
        assert!(matches!(
            players.put(clash),
            Err(NetabaseError::UniqueViolation(_))
        ));
    }
    let seen = seen.lock().map_err(|_| "poisoned")?.clone();
    assert!(!seen.is_empty(), "progress was reported");
    assert_eq!(seen.last(), Some(&("Player", "name", 3000, 3000)));
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "progress grows");

    // Opening with version 2 again builds nothing.
    let calls = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&calls);
    drop(
        NetabaseStore::<v2::app::AppDefinition, _>::from_backend_with(
            db.backend()?,
            OpenOptions::default().on_index_build(move |_| {
                if let Ok(mut n) = counter.lock() {
                    *n += 1;
                }
            }),
        )?,
    );
    assert_eq!(*calls.lock().map_err(|_| "poisoned")?, 0);

    // A changed key type is refused, and nothing is written.
    match NetabaseStore::<v3::app::AppDefinition, _>::from_backend(db.backend()?) {
        Err(NetabaseError::Schema(e)) => {
            assert_eq!(e.model, "Player");
            assert_eq!(e.field.as_deref(), Some("team"));
            let text = e.to_string();
            assert!(text.contains("String") && text.contains("u32"), "{text}");
        }
        other => return Err(format!("expected a schema error, got {other:?}").into()),
    }

    // Version 2 of the model (`points: u32`) refuses version-1 values instead of
    // misreading `-7i32` as a huge `u32`.
    let store = NetabaseStore::<v4::app::AppDefinition, _>::from_backend(db.backend()?)?;
    match store.open_tree::<v4::app::Player>().get(7) {
        Err(NetabaseError::Version(e)) => {
            assert_eq!((e.found, e.known), (1, 2));
            assert_eq!(e.problem, VersionProblem::NoUpgrade);
        }
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    Ok(())
}

/// A new unique key that two stored records share cannot be indexed: refused, and the
/// database is left as it was.
fn duplicate_values_block_a_new_unique_key<R: Reopen>(db: R) -> TestResult {
    {
        let store = NetabaseStore::<v1::app::AppDefinition, _>::from_backend(db.backend()?)?;
        let players = store.open_tree::<v1::app::Player>();
        players.put(player(1))?;
        let mut twin = player(2);
        twin.name = "p1".into();
        players.put(twin)?;
    }
    match NetabaseStore::<v2::app::AppDefinition, _>::from_backend(db.backend()?) {
        Err(NetabaseError::Schema(e)) => assert_eq!(e.field.as_deref(), Some("name")),
        other => return Err(format!("expected a schema error, got {other:?}").into()),
    }
    // Still version 1, intact.
    let store = NetabaseStore::<v1::app::AppDefinition, _>::from_backend(db.backend()?)?;
    assert_eq!(store.open_tree::<v1::app::Player>().len()?, 2);
    assert_eq!(
        index_len(store.raw_backend(), "AppDefinition/Player/level")?,
        2
    );
    Ok(())
}

#[test]
fn memory() -> TestResult {
    schema_changes(Memory(MemoryBackend::new()))?;
    duplicate_values_block_a_new_unique_key(Memory(MemoryBackend::new()))
}

#[test]
fn redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    schema_changes(Redb(dir.path().join("a.redb")))?;
    duplicate_values_block_a_new_unique_key(Redb(dir.path().join("b.redb")))
}

#[cfg(feature = "sled")]
#[test]
fn sled() -> TestResult {
    let dir = tempfile::tempdir()?;
    schema_changes(Sled(dir.path().join("a")))?;
    duplicate_values_block_a_new_unique_key(Sled(dir.path().join("b")))
}
