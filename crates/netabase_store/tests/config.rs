//! Every `FileConfig` option, on every backend: it takes effect, or it is refused with
//! an error that names the option and the backend.

mod conformance;

use std::path::Path;

use conformance::schema::*;
use netabase_store::META_TABLE;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::{Backend, ReadTxn};
use netabase_store::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Store<B> = NetabaseStore<TestDefinition, B>;

/// A database at `path` holding users 1..=3, closed again.
fn seed<B>(path: &Path) -> TestResult
where
    Store<B>: BackendStore<TestDefinition>,
    B: Backend,
{
    let store = Store::<B>::new(FileConfig::new(path))?;
    store
        .open_tree::<User>()
        .put_many((1..=3).map(|i| user(i, &format!("{i}@x"), 30)))?;
    Ok(())
}

fn assert_config_error(
    result: Result<impl std::fmt::Debug, NetabaseError>,
    backend: &str,
    option: &str,
) -> TestResult {
    match result {
        Err(err @ NetabaseError::Config(_)) => {
            let text = err.to_string();
            assert!(text.contains(backend), "names the backend: {text}");
            assert!(text.contains(option), "names the option: {text}");
            Ok(())
        }
        other => Err(format!("expected a Config error for `{option}`, got {other:?}").into()),
    }
}

fn assert_not_found(result: Result<impl std::fmt::Debug, NetabaseError>) -> TestResult {
    match result {
        Err(NetabaseError::Io(e)) if e.source.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => Err(format!("expected a NotFound error, got {other:?}").into()),
    }
}

fn assert_read_only(result: Result<impl std::fmt::Debug, NetabaseError>) -> TestResult {
    match result {
        Err(NetabaseError::ReadOnly(_)) => Ok(()),
        other => Err(format!("expected a ReadOnly error, got {other:?}").into()),
    }
}

// ---------------------------------------------------------------- defaults and builder

#[test]
fn defaults_are_documented_ones() {
    let config = FileConfig::new("x");
    assert_eq!(config.path(), Path::new("x"));
    assert_eq!(config.cache_size_mb(), 256);
    assert!(config.create_if_missing());
    assert!(!config.truncate());
    assert!(!config.read_only());
    assert!(config.use_fsync());
    assert_eq!(FileConfig::builder().path("x").build(), config);
}

#[test]
fn builder_sets_every_option() {
    let config = FileConfig::builder()
        .cache_size_mb(8)
        .path("y")
        .create_if_missing(false)
        .truncate(true)
        .read_only(true)
        .use_fsync(false)
        .build();
    assert_eq!(config.path(), Path::new("y"));
    assert_eq!(config.cache_size_mb(), 8);
    assert_eq!(config.cache_size_bytes(), 8 << 20);
    assert!(!config.create_if_missing());
    assert!(config.truncate());
    assert!(config.read_only());
    assert!(!config.use_fsync());
}

/// The generic tests below, instantiated per backend.
macro_rules! file_backend_tests {
    ($module:ident, $backend:ty, $name:literal) => {
        mod $module {
            use super::*;

            type B = $backend;

            #[test]
            fn read_only_refuses_writes_and_allows_reads() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                seed::<B>(&path)?;
                let config = FileConfig::builder().path(&path).read_only(true).build();
                let store = Store::<B>::new(config)?;
                let users = store.open_tree::<User>();
                assert_eq!(users.len()?, 3);
                assert_eq!(users.get(UserPrimaryKey(2))?, Some(user(2, "2@x", 30)));
                assert_eq!(
                    users
                        .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))?
                        .len(),
                    3
                );
                assert_read_only(users.put(user(9, "9@x", 1)))?;
                assert_read_only(users.remove(UserPrimaryKey(1)))?;
                assert_read_only(users.clear())?;
                assert_read_only(store.write().map(|_| ()))?;
                let mut batch = users.create_batch();
                batch.put(user(9, "9@x", 1))?;
                assert_read_only(batch.commit())?;
                let err = users.put(user(9, "9@x", 1)).err().ok_or("write accepted")?;
                assert!(err.to_string().contains($name), "names the backend: {err}");
                assert_eq!(users.len()?, 3);
                Ok(())
            }

            #[test]
            fn read_only_never_creates_a_database() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("missing");
                let config = FileConfig::builder().path(&path).read_only(true).build();
                assert_not_found(Store::<B>::new(config))?;
                assert!(!path.exists());
                Ok(())
            }

            #[test]
            fn read_only_with_truncate_is_refused() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                seed::<B>(&path)?;
                let config = FileConfig::builder()
                    .path(&path)
                    .read_only(true)
                    .truncate(true)
                    .build();
                assert_config_error(Store::<B>::new(config), $name, "truncate")
            }

            #[test]
            fn truncate_starts_empty() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                seed::<B>(&path)?;
                let config = FileConfig::builder().path(&path).truncate(true).build();
                let store = Store::<B>::new(config)?;
                let users = store.open_tree::<User>();
                assert!(users.is_empty()?);
                assert!(
                    users
                        .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))?
                        .is_empty()
                );
                // Only the metadata the store writes on open is left.
                let stats = store.stats()?;
                assert!(
                    stats
                        .tables
                        .iter()
                        .all(|t| t.entries == 0 || t.name == META_TABLE),
                    "{stats}"
                );
                // The freed unique key can be taken again.
                users.put(user(7, "1@x", 1))?;
                conformance::assert_user_indexes_exact(&store)?;
                Ok(())
            }

            #[test]
            fn without_truncate_data_is_kept() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                seed::<B>(&path)?;
                let store = Store::<B>::new(FileConfig::new(&path))?;
                assert_eq!(store.open_tree::<User>().len()?, 3);
                Ok(())
            }

            #[test]
            fn create_if_missing_false_on_a_missing_path_errors() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("missing");
                let config = FileConfig::builder()
                    .path(&path)
                    .create_if_missing(false)
                    .build();
                assert_not_found(Store::<B>::new(config))?;
                assert!(!path.exists(), "nothing was created");
                // And on an existing database it opens it.
                seed::<B>(&path)?;
                let config = FileConfig::builder()
                    .path(&path)
                    .create_if_missing(false)
                    .build();
                assert_eq!(Store::<B>::new(config)?.open_tree::<User>().len()?, 3);
                Ok(())
            }

            #[test]
            fn create_if_missing_true_creates() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("new");
                let store = Store::<B>::new(FileConfig::new(&path))?;
                assert!(path.exists());
                assert!(store.open_tree::<User>().is_empty()?);
                Ok(())
            }

            #[test]
            fn open_requires_an_existing_database() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                let err = Store::<B>::open(FileConfig::new(&path)).err();
                let err = err.ok_or("opened a missing database")?;
                assert!(
                    err.to_string().contains(&path.display().to_string()),
                    "names the path: {err}"
                );
                assert_not_found(Err::<(), _>(err))?;
                assert!(!path.exists());
                seed::<B>(&path)?;
                assert_eq!(
                    Store::<B>::open(FileConfig::new(&path))?
                        .open_tree::<User>()
                        .len()?,
                    3
                );
                Ok(())
            }

            #[test]
            fn temp_is_empty_and_writable() -> TestResult {
                let store = <Store<B> as BackendStore<TestDefinition>>::temp()?;
                let users = store.open_tree::<User>();
                assert!(users.is_empty()?);
                users.put(user(1, "a@x", 1))?;
                assert_eq!(users.len()?, 1);
                assert!(!store.raw_backend().capabilities().persistent);
                Ok(())
            }

            #[test]
            fn use_fsync_off_still_keeps_data_across_a_clean_close() -> TestResult {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("db");
                {
                    let config = FileConfig::builder().path(&path).use_fsync(false).build();
                    let store = Store::<B>::new(config)?;
                    store.open_tree::<User>().put(user(1, "a@x", 1))?;
                }
                let store = Store::<B>::new(FileConfig::new(&path))?;
                assert_eq!(store.open_tree::<User>().len()?, 1);
                Ok(())
            }
        }
    };
}

file_backend_tests!(redb_options, RedbBackend, "redb");
#[cfg(feature = "sled")]
file_backend_tests!(
    sled_options,
    netabase_store::backend::sled::SledBackend,
    "sled"
);

// ---------------------------------------------------------------- redb specifics

#[test]
fn redb_cache_size_reaches_the_engine() -> TestResult {
    let dir = tempfile::tempdir()?;
    let small = FileConfig::builder()
        .path(dir.path().join("small"))
        .cache_size_mb(1)
        .build();
    let large = FileConfig::builder()
        .path(dir.path().join("large"))
        .cache_size_mb(64)
        .build();
    let mut used = Vec::new();
    for config in [small, large] {
        let store = Store::<RedbBackend>::new(config.clone())?;
        assert_eq!(
            store.raw_backend().cache_size() as u64,
            config.cache_size_bytes()
        );
        // About 8 MiB of records, written and read back.
        let posts = store.open_tree::<Post>();
        posts.put_many((0..4000).map(|i| Post {
            id: i,
            title: "x".repeat(2000),
            author_id: 1,
        }))?;
        assert_eq!(posts.iter().count(), 4000);
        used.push(store.raw_backend().cache_stats().used_bytes());
    }
    // redb holds at most the configured cache (plus the pages of the open write); the
    // large cache keeps far more of the data.
    assert!(used[0] <= 4 << 20, "1 MiB cache holds {} bytes", used[0]);
    assert!(used[1] > used[0] * 2, "cache use {used:?}");
    Ok(())
}

#[test]
fn redb_default_cache_is_256_mb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::<RedbBackend>::new(FileConfig::new(dir.path().join("db")))?;
    assert_eq!(store.raw_backend().cache_size(), 256 << 20);
    Ok(())
}

#[test]
fn redb_read_only_uses_redbs_read_only_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    seed::<RedbBackend>(&path)?;
    let config = FileConfig::builder().path(&path).read_only(true).build();
    let first = Store::<RedbBackend>::new(config.clone())?;
    assert!(first.raw_backend().is_read_only());
    // redb's read-only mode takes a shared lock: several readers may open the file.
    let second = Store::<RedbBackend>::new(config)?;
    assert_eq!(second.open_tree::<User>().len()?, 3);
    // A writer may not open it meanwhile.
    assert!(Store::<RedbBackend>::new(FileConfig::new(&path)).is_err());
    assert_read_only(first.compact())?;
    Ok(())
}

/// A copy of the file taken while the database is open is what a crash would leave.
fn crash_image_holds_the_commit(use_fsync: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let image = dir.path().join("image");
    seed::<RedbBackend>(&path)?;
    let config = FileConfig::builder()
        .path(&path)
        .use_fsync(use_fsync)
        .build();
    let store = Store::<RedbBackend>::new(config)?;
    let expected = if use_fsync {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    assert_eq!(
        format!("{:?}", store.raw_backend().durability()),
        format!("{expected:?}")
    );
    store.open_tree::<User>().put(user(100, "late@x", 1))?;
    std::fs::copy(&path, &image)?;
    drop(store);
    let recovered = Store::<RedbBackend>::new(FileConfig::new(&image))?;
    let users = recovered.open_tree::<User>();
    assert!(users.len()? >= 3, "the durable seed survives in both cases");
    Ok(users.get(UserPrimaryKey(100))?.is_some())
}

#[test]
fn redb_use_fsync_true_commits_durably() -> TestResult {
    assert!(crash_image_holds_the_commit(true)?);
    Ok(())
}

#[test]
fn redb_use_fsync_false_maps_to_non_durable_commits() -> TestResult {
    assert!(
        !crash_image_holds_the_commit(false)?,
        "a non-durable commit must not be in the crash image"
    );
    Ok(())
}

// ---------------------------------------------------------------- sled specifics

#[cfg(feature = "sled")]
mod sled_specifics {
    use super::*;
    use netabase_store::backend::sled::SledBackend;

    #[test]
    fn cache_size_reaches_the_engine() -> TestResult {
        let dir = tempfile::tempdir()?;
        let config = FileConfig::builder()
            .path(dir.path().join("db"))
            .cache_size_mb(12)
            .build();
        let store = Store::<SledBackend>::new(config)?;
        assert_eq!(store.raw_backend().engine_config().cache_capacity, 12 << 20);
        let dir = tempfile::tempdir()?;
        let store = Store::<SledBackend>::new(FileConfig::new(dir.path().join("db")))?;
        assert_eq!(
            store.raw_backend().engine_config().cache_capacity,
            256 << 20
        );
        Ok(())
    }

    #[test]
    fn use_fsync_true_flushes_every_commit() -> TestResult {
        let store = Store::<SledBackend>::sled_temp()?;
        assert!(store.raw_backend().flushes_on_commit());
        let users = store.open_tree::<User>();
        for i in 0..3 {
            users.put(user(i, &format!("{i}@x"), 1))?;
            assert_eq!(store.flush()?, 0, "the commit already wrote everything");
        }
        Ok(())
    }

    #[test]
    fn use_fsync_false_leaves_commits_to_the_background_flusher() -> TestResult {
        let dir = tempfile::tempdir()?;
        let config = FileConfig::builder()
            .path(dir.path().join("db"))
            .use_fsync(false)
            .build();
        let store = Store::<SledBackend>::new(config)?;
        assert!(!store.raw_backend().flushes_on_commit());
        let users = store.open_tree::<User>();
        // sled's background flusher runs every 500 ms; it may (rarely) land between the
        // commit and the check, so one unflushed commit in three tries is the proof.
        let mut unflushed = 0;
        for i in 0..3 {
            users.put(user(i, &format!("{i}@x"), 1))?;
            if store.flush()? > 0 {
                unflushed += 1;
            }
        }
        assert!(unflushed > 0, "every commit had already been flushed");
        Ok(())
    }
}

// ---------------------------------------------------------------- in-memory backend

#[test]
fn memory_takes_the_same_config() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("label");
    let store = Store::<MemoryBackend>::new(FileConfig::new(&path))?;
    store.open_tree::<User>().put(user(1, "a@x", 1))?;
    assert!(
        !path.exists(),
        "the in-memory backend writes nothing to the path"
    );
    // Options that mean something in memory are accepted.
    let config = FileConfig::builder()
        .path(&path)
        .truncate(true)
        .use_fsync(false)
        .build();
    assert!(
        Store::<MemoryBackend>::new(config)?
            .open_tree::<User>()
            .is_empty()?
    );
    Ok(())
}

#[test]
fn memory_refuses_what_it_cannot_honour() -> TestResult {
    let config = FileConfig::builder().path("m").cache_size_mb(64).build();
    assert_config_error(
        Store::<MemoryBackend>::new(config),
        "memory",
        "cache_size_mb",
    )?;
    let config = FileConfig::builder().path("m").use_fsync(true).build();
    assert_config_error(Store::<MemoryBackend>::new(config), "memory", "use_fsync")?;
    let config = FileConfig::builder()
        .path("m")
        .durable_every(std::time::Duration::from_millis(100))
        .build();
    assert_config_error(
        Store::<MemoryBackend>::new(config),
        "memory",
        "durable_every",
    )?;
    let config = FileConfig::builder()
        .path("m")
        .create_if_missing(false)
        .build();
    assert_config_error(
        Store::<MemoryBackend>::new(config),
        "memory",
        "create_if_missing",
    )?;
    let config = FileConfig::builder()
        .path("m")
        .read_only(true)
        .truncate(true)
        .build();
    assert_config_error(Store::<MemoryBackend>::new(config), "memory", "truncate")?;
    assert_not_found(Store::<MemoryBackend>::open(FileConfig::new("m")))?;
    Ok(())
}

#[test]
fn memory_read_only_refuses_writes() -> TestResult {
    let config = FileConfig::builder().path("m").read_only(true).build();
    let store = Store::<MemoryBackend>::new(config)?;
    assert!(store.open_tree::<User>().is_empty()?);
    assert_read_only(store.open_tree::<User>().put(user(1, "a@x", 1)))?;
    // A read-only handle on a shared in-memory database reads what others write.
    let writer = MemoryBackend::new();
    let reader = Store::<MemoryBackend>::from_backend_read_only(writer.clone().into_read_only())?;
    let writer = Store::<MemoryBackend>::from_backend(writer)?;
    writer.open_tree::<User>().put(user(1, "a@x", 1))?;
    assert_eq!(reader.open_tree::<User>().len()?, 1);
    assert_read_only(reader.open_tree::<User>().remove(UserPrimaryKey(1)))?;
    assert!(
        reader
            .raw_backend()
            .begin_read()?
            .table_names()?
            .contains(&META_TABLE.to_owned())
    );
    Ok(())
}

/// `verify_on_open` runs redb's integrity check at open, and the backends without one
/// refuse it.
#[test]
fn verify_on_open_takes_effect_or_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("verified.redb");
    let config = || {
        FileConfig::builder()
            .path(&path)
            .verify_on_open(true)
            .build()
    };
    {
        let store = Store::<RedbBackend>::new(config())?;
        store.open_tree::<User>().put(user(1, "a@x", 30))?;
    }
    let store = Store::<RedbBackend>::open(config())?;
    assert_eq!(store.open_tree::<User>().len()?, 1);
    drop(store);
    let read_only = FileConfig::builder()
        .path(&path)
        .read_only(true)
        .verify_on_open(true)
        .build();
    assert_config_error(
        Store::<RedbBackend>::open(read_only),
        "redb",
        "verify_on_open",
    )?;
    let memory = FileConfig::builder().path("m").verify_on_open(true).build();
    assert_config_error(
        Store::<MemoryBackend>::new(memory),
        "memory",
        "verify_on_open",
    )?;
    #[cfg(feature = "sled")]
    {
        let sled = FileConfig::builder()
            .path(dir.path().join("sled"))
            .verify_on_open(true)
            .build();
        assert_config_error(
            Store::<netabase_store::backend::sled::SledBackend>::new(sled),
            "sled",
            "verify_on_open",
        )?;
    }
    Ok(())
}
