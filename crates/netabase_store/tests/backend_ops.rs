//! Backend-specific operations: table listing and stats on every backend; redb's compact
//! and integrity check; sled's flush and id generation.

mod conformance;

use conformance::schema::*;
use conformance::{Store, TestResult};
use netabase_store::META_TABLE;
use netabase_store::backend::Backend;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::prelude::*;

fn tables_and_stats<B: Backend>(store: Store<B>) -> TestResult {
    let info = <User as NetabaseModelTrait<TestDefinition>>::INFO;
    assert_eq!(store.tree_names()?, vec![META_TABLE.to_owned()]);
    let users = store.open_tree::<User>();
    users.put_many((0..10).map(|i| user(i, &format!("{i}@x"), (i % 2) as u32)))?;
    store.open_tree::<Post>().put(Post {
        id: 1,
        title: String::new(),
        author_id: 3,
    })?;
    let names = store.tree_names()?;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "names come sorted");
    for table in [
        info.table,
        info.secondary_keys[0].table,
        info.secondary_keys[1].table,
    ] {
        assert!(names.iter().any(|n| n == table), "{table} in {names:?}");
    }
    let stats = store.stats()?;
    assert_eq!(stats.backend, store.raw_backend().name());
    assert_eq!(stats.entries(info.table), 10);
    assert_eq!(stats.entries(info.secondary_keys[0].table), 10);
    assert_eq!(stats.entries(info.secondary_keys[1].table), 10);
    assert_eq!(
        stats.entries(<Post as NetabaseModelTrait<TestDefinition>>::INFO.table),
        1
    );
    assert_eq!(stats.entries("no such table"), 0);
    assert!(stats.to_string().contains(info.table));
    users.clear()?;
    assert_eq!(store.stats()?.entries(info.table), 0);
    // Inside a write transaction the listing includes its own new tables.
    let txn = store.write()?;
    txn.open_tree::<Word>().put(Word {
        text: "w".into(),
        score: 1.0,
        tag: None,
    })?;
    txn.commit()?;
    let words = <Word as NetabaseModelTrait<TestDefinition>>::INFO.table;
    assert_eq!(store.stats()?.entries(words), 1);
    Ok(())
}

#[test]
fn memory_tables_and_stats() -> TestResult {
    tables_and_stats(NetabaseStore::<TestDefinition, _>::memory()?)
}

#[test]
fn redb_tables_and_stats() -> TestResult {
    tables_and_stats(NetabaseStore::<TestDefinition, _>::temp()?)
}

#[cfg(feature = "sled")]
#[test]
fn sled_tables_and_stats() -> TestResult {
    tables_and_stats(NetabaseStore::<
        TestDefinition,
        netabase_store::backend::sled::SledBackend,
    >::sled_temp()?)
}

#[test]
fn redb_compact_and_check_integrity() -> TestResult {
    let store = NetabaseStore::<TestDefinition, RedbBackend>::temp()?;
    let posts = store.open_tree::<Post>();
    posts.put_many((0..2000).map(|i| Post {
        id: i,
        title: "x".repeat(500),
        author_id: 1,
    }))?;
    posts.clear()?;
    assert!(store.check_integrity()?, "a healthy file checks out");
    // Clones of the store (trees hold one) do not prevent compaction.
    let _other_handle = store.clone();
    store.compact()?;
    assert!(store.check_integrity()?);
    posts.put(Post {
        id: 1,
        title: "after".into(),
        author_id: 1,
    })?;
    assert_eq!(posts.len()?, 1);
    Ok(())
}

#[test]
fn redb_compact_refuses_while_a_transaction_is_open() -> TestResult {
    let store = NetabaseStore::<TestDefinition, RedbBackend>::temp()?;
    store.open_tree::<User>().put(user(1, "a@x", 1))?;
    let read = store.read()?;
    assert!(
        store.compact().is_err(),
        "compaction needs an idle database"
    );
    drop(read);
    store.compact()?;
    let iter = store.open_tree::<User>().iter();
    assert!(
        store.check_integrity().is_err(),
        "an open iterator holds a read"
    );
    drop(iter);
    assert!(store.check_integrity()?);
    Ok(())
}

#[cfg(feature = "sled")]
mod sled_ops {
    use super::*;
    use netabase_store::backend::sled::SledBackend;

    #[test]
    fn generate_id_is_unique_and_increasing_across_restarts() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db");
        let mut ids = Vec::new();
        {
            let store = NetabaseStore::<TestDefinition, SledBackend>::sled(&path)?;
            for _ in 0..5 {
                ids.push(store.generate_id()?);
            }
            store.flush()?;
        }
        let store = NetabaseStore::<TestDefinition, SledBackend>::sled(&path)?;
        ids.push(store.generate_id()?);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        Ok(())
    }

    #[test]
    fn flush_then_reopen_keeps_data() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db");
        {
            let config = FileConfig::builder().path(&path).use_fsync(false).build();
            let store = Store::<SledBackend>::new(config)?;
            store.open_tree::<User>().put(user(1, "a@x", 1))?;
            assert!(store.flush()? > 0, "the non-durable commit was pending");
            assert_eq!(store.flush()?, 0, "nothing left to write");
        }
        let store = NetabaseStore::<TestDefinition, SledBackend>::sled(&path)?;
        assert_eq!(
            store.open_tree::<User>().get(UserPrimaryKey(1))?,
            Some(user(1, "a@x", 1))
        );
        conformance::assert_user_indexes_exact(&store)
    }

    #[test]
    fn generate_id_is_refused_read_only() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db");
        drop(NetabaseStore::<TestDefinition, SledBackend>::sled(&path)?);
        let config = FileConfig::builder().path(&path).read_only(true).build();
        let store = Store::<SledBackend>::new(config)?;
        assert!(matches!(
            store.generate_id(),
            Err(NetabaseError::ReadOnly(_))
        ));
        Ok(())
    }
}
