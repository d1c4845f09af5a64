//! `Batch`: all or nothing, indexes included, on every backend.

mod conformance;

use conformance::schema::*;
use conformance::{Store, TestResult, assert_user_indexes_exact};
use netabase_store::backend::Backend;
use netabase_store::prelude::*;

fn age(n: u32) -> UserSecondaryKeys {
    UserSecondaryKeys::Age(UserAgeSecondaryKey(n))
}

fn email(e: &str) -> UserSecondaryKeys {
    UserSecondaryKeys::Email(UserEmailSecondaryKey(e.into()))
}

fn commit_applies_puts_and_removes<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many((1..=3).map(|i| user(i, &format!("{i}@x"), 30)))?;
    let mut batch = users.create_batch();
    batch.put(user(4, "4@x", 40))?;
    batch.put(user(1, "1b@x", 31))?; // an update that moves both secondary keys
    batch.remove(UserPrimaryKey(2));
    batch.remove(UserPrimaryKey(99)); // absent: nothing to do
    assert_eq!(batch.len(), 4);
    batch.commit()?;
    assert_eq!(users.len()?, 3);
    assert_eq!(users.get(UserPrimaryKey(2))?, None);
    assert_eq!(users.get(UserPrimaryKey(1))?, Some(user(1, "1b@x", 31)));
    assert!(users.get_by_secondary_key(email("1@x"))?.is_empty());
    assert_eq!(
        users.get_by_secondary_key(age(40))?,
        vec![user(4, "4@x", 40)]
    );
    assert_user_indexes_exact(&store)
}

fn operations_run_in_order<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let mut batch = users.create_batch();
    batch.put(user(1, "a@x", 1))?;
    batch.remove(UserPrimaryKey(1));
    batch.remove(UserPrimaryKey(2));
    batch.put(user(2, "b@x", 2))?;
    // A unique key freed earlier in the batch may be taken later in it.
    batch.put(user(2, "c@x", 2))?;
    batch.put(user(3, "b@x", 3))?;
    batch.commit()?;
    assert_eq!(users.get(UserPrimaryKey(1))?, None);
    assert_eq!(users.get(UserPrimaryKey(2))?, Some(user(2, "c@x", 2)));
    assert_eq!(users.get(UserPrimaryKey(3))?, Some(user(3, "b@x", 3)));
    assert_user_indexes_exact(&store)
}

fn unique_violation_applies_nothing<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    users.put_many([user(1, "a@x", 30), user(2, "b@x", 31)])?;
    posts.put(Post {
        id: 1,
        title: "kept".into(),
        author_id: 1,
    })?;
    let before = store.stats()?;

    // Against a stored record, after other writes of the batch.
    let mut batch = users.create_batch();
    batch.put(user(3, "c@x", 50))?;
    batch.remove(UserPrimaryKey(2));
    batch.put(user(1, "a2@x", 99))?;
    batch.put(user(4, "a2@x", 60))?; // the email just taken by user 1, in this batch
    batch.put(user(5, "e@x", 70))?;
    match batch.commit() {
        Err(NetabaseError::UniqueViolation(v)) => {
            assert_eq!((v.model, v.field), ("User", "email"));
        }
        other => return Err(format!("expected UniqueViolation, got {other:?}").into()),
    }
    assert_eq!(store.stats()?, before, "no table changed");
    assert_eq!(users.get(UserPrimaryKey(3))?, None);
    assert_eq!(users.get(UserPrimaryKey(2))?, Some(user(2, "b@x", 31)));
    assert_eq!(users.get(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
    assert!(users.get_by_secondary_key(age(50))?.is_empty());
    assert!(users.get_by_secondary_key(email("c@x"))?.is_empty());
    assert_user_indexes_exact(&store)?;

    // Against a record stored before the batch.
    let mut batch = users.create_batch();
    batch.put(user(6, "f@x", 1))?;
    batch.put(user(7, "b@x", 2))?;
    assert!(matches!(
        batch.commit(),
        Err(NetabaseError::UniqueViolation(_))
    ));
    assert_eq!(store.stats()?, before);
    assert_user_indexes_exact(&store)
}

fn dropped_batch_applies_nothing<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30))?;
    {
        let mut batch = users.create_batch();
        batch.put(user(2, "b@x", 31))?;
        batch.remove(UserPrimaryKey(1));
        assert!(!batch.is_empty());
    }
    assert_eq!(users.len()?, 1);
    assert_eq!(users.get(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
    assert_user_indexes_exact(&store)
}

fn empty_batch_commits<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let batch = users.create_batch();
    assert!(batch.is_empty());
    batch.commit()?;
    assert!(users.is_empty()?);
    Ok(())
}

fn batch_holds_no_lock_until_commit<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let mut batch = users.create_batch();
    batch.put(user(1, "a@x", 1))?;
    // Other writes go on while the batch is being built.
    users.put(user(2, "b@x", 2))?;
    let txn = store.write()?;
    txn.open_tree::<User>().put(user(3, "c@x", 3))?;
    txn.commit()?;
    batch.commit()?;
    assert_eq!(users.len()?, 3);
    assert_user_indexes_exact(&store)
}

fn large_batch_is_one_commit<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let mut batch = users.create_batch();
    for i in 0..2000 {
        batch.put(user(i, &format!("{i}@x"), (i % 10) as u32))?;
    }
    batch.put(user(5000, "1999@x", 1))?; // the last put fails: none of the 2000 land
    assert!(batch.commit().is_err());
    assert!(users.is_empty()?);
    let mut batch = users.create_batch();
    for i in 0..2000 {
        batch.put(user(i, &format!("{i}@x"), (i % 10) as u32))?;
    }
    batch.commit()?;
    assert_eq!(users.len()?, 2000);
    assert_eq!(users.get_by_secondary_key(age(3))?.len(), 200);
    assert_user_indexes_exact(&store)
}

macro_rules! batch_tests {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            batch_tests!(@each $make;
                commit_applies_puts_and_removes,
                operations_run_in_order,
                unique_violation_applies_nothing,
                dropped_batch_applies_nothing,
                empty_batch_commits,
                batch_holds_no_lock_until_commit,
                large_batch_is_one_commit,
            );
        }
    };
    (@each $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() -> TestResult {
                super::$name(($make)()?)
            }
        )+
    };
}

batch_tests!(memory, NetabaseStore::<TestDefinition, _>::memory);
batch_tests!(redb, NetabaseStore::<TestDefinition, _>::temp);
#[cfg(feature = "sled")]
batch_tests!(
    sled,
    NetabaseStore::<TestDefinition, netabase_store::backend::sled::SledBackend>::sled_temp
);
