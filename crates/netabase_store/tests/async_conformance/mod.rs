//! The conformance suite in its asynchronous form: the invariants of the synchronous
//! suite, checked through the asynchronous API (`netabase_store::nonblocking`), on
//! every asynchronous backend: natively the in-memory and redb backends through the
//! threaded adapter, and IndexedDB in headless Chromium.
//!
//! A test file calls `async_conformance_suite!(test_attribute, async fn making a store)`.
//! Checks that depend on a capability read the backend's declared `Capabilities` and
//! assert the declared behaviour either way, so nothing is skipped silently.

#![allow(dead_code)]

use std::collections::BTreeSet;

use netabase_store::TypedChange;
use netabase_store::backend::{Direction, RawRange};
use netabase_store::nonblocking::{AsyncBackend, AsyncReadTxn, AsyncStore};
use netabase_store::prelude::*;
use netabase_store::watch::{Event, Filter, Subscription};

#[path = "../conformance/schema.rs"]
pub mod schema;
use schema::*;

pub type Store<B> = AsyncStore<TestDefinition, B>;
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

fn ids(records: &[(UserPrimaryKey, User)]) -> Vec<u64> {
    records.iter().map(|(k, _)| k.0).collect()
}

/// The exact set of index entries the stored records of `User` imply, compared with the
/// raw contents of both index tables.
pub async fn assert_user_indexes_exact<B: AsyncBackend>(store: &Store<B>) -> TestResult {
    let users: Vec<User> = store
        .open_tree::<User>()
        .iter()
        .await?
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    let txn = store.raw_backend().begin_read().await?;
    let info = <User as NetabaseModelTrait<TestDefinition>>::INFO;
    let email_table = info.secondary_keys[0].table;
    let age_table = info.secondary_keys[1].table;

    let expected_email: BTreeSet<(Vec<u8>, Vec<u8>)> = users
        .iter()
        .map(|u| (u.email.to_key_bytes(), u.id.to_key_bytes()))
        .collect();
    let actual_email: BTreeSet<(Vec<u8>, Vec<u8>)> = txn
        .range(email_table, RawRange::all(), Direction::Forward, None)
        .await?
        .into_iter()
        .collect();
    assert_eq!(
        actual_email, expected_email,
        "unique index `email` is not exact"
    );

    let expected_age: BTreeSet<Vec<u8>> = users
        .iter()
        .map(|u| {
            let mut k = u.age.to_key_bytes();
            k.extend(u.id.to_key_bytes());
            k
        })
        .collect();
    let actual_age: BTreeSet<Vec<u8>> = txn
        .range(age_table, RawRange::all(), Direction::Forward, None)
        .await?
        .into_iter()
        .map(|(k, v)| {
            assert!(v.is_empty(), "non-unique index entries have empty values");
            k
        })
        .collect();
    assert_eq!(actual_age, expected_age, "index `age` is not exact");
    assert_eq!(txn.len(age_table).await?, users.len() as u64);
    Ok(())
}

fn age(n: u32) -> UserSecondaryKeys {
    UserSecondaryKeys::Age(UserAgeSecondaryKey(n))
}

pub async fn put_get_remove<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    assert!(users.is_empty().await?);
    users.put(user(1, "a@x", 30)).await?;
    assert_eq!(
        users.get(UserPrimaryKey(1)).await?,
        Some(user(1, "a@x", 30))
    );
    assert_eq!(users.get(UserPrimaryKey(2)).await?, None);
    assert_eq!(users.len().await?, 1);
    assert_eq!(
        users.remove(UserPrimaryKey(1)).await?,
        Some(user(1, "a@x", 30))
    );
    assert_eq!(users.remove(UserPrimaryKey(1)).await?, None);
    assert!(users.is_empty().await?);
    assert_user_indexes_exact(&store).await
}

pub async fn update_changing_secondary_leaves_no_stale_entry<B: AsyncBackend>(
    store: Store<B>,
) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30)).await?;
    users.put(user(1, "b@x", 31)).await?;
    assert!(users.get_by_secondary_key(age(30)).await?.is_empty());
    assert_eq!(
        users.get_by_secondary_key(age(31)).await?,
        vec![user(1, "b@x", 31)]
    );
    let email = UserEmailSecondaryKey("a@x".into());
    assert_eq!(users.get_by_unique_key(email).await?, None);
    let email = UserEmailSecondaryKey("b@x".into());
    assert_eq!(
        users.get_by_unique_key(email).await?,
        Some(user(1, "b@x", 31))
    );
    assert_user_indexes_exact(&store).await
}

pub async fn clear_empties_indexes<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users
        .put_many((1..=20).map(|i| user(i, &format!("{i}@x"), (i % 3) as u32)))
        .await?;
    let posts = store.open_tree::<Post>();
    posts
        .put(Post {
            id: 1,
            title: "kept".into(),
            author_id: 1,
        })
        .await?;
    users.clear().await?;
    assert!(users.is_empty().await?);
    assert!(users.get_by_secondary_key(age(1)).await?.is_empty());
    assert_user_indexes_exact(&store).await?;
    assert_eq!(posts.len().await?, 1, "clear touches only its model");
    // The tree is usable after a clear.
    users.put(user(5, "5@x", 1)).await?;
    assert_eq!(users.get_by_secondary_key(age(1)).await?.len(), 1);
    assert_user_indexes_exact(&store).await
}

pub async fn non_unique_returns_every_match<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users
        .put_many((1..=10).map(|i| user(i, &format!("{i}@x"), if i % 2 == 0 { 40 } else { 41 })))
        .await?;
    let even: Vec<u64> = users
        .get_by_secondary_key(age(40))
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(
        even,
        vec![2, 4, 6, 8, 10],
        "every match, in primary-key order"
    );
    let both = users.get_many_by_secondary_keys([age(41), age(99)]).await?;
    assert_eq!(both[0].len(), 5);
    assert!(both[1].is_empty());
    Ok(())
}

pub async fn unique_violation_applies_nothing<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "taken@x", 30)).await?;
    // A one-shot put_many with a violation applies nothing of the call.
    let result = users
        .put_many([user(2, "free@x", 30), user(3, "taken@x", 30)])
        .await;
    let Err(NetabaseError::UniqueViolation(v)) = result else {
        panic!("expected a unique violation, got {result:?}");
    };
    assert_eq!(v.field, "email");
    assert_eq!(users.get(UserPrimaryKey(2)).await?, None);
    assert_eq!(users.len().await?, 1);
    // Two records of the same call claiming one key: the second is refused.
    let result = users
        .put_many([user(4, "same@x", 1), user(5, "same@x", 1)])
        .await;
    assert!(matches!(result, Err(NetabaseError::UniqueViolation(_))));
    assert_eq!(users.len().await?, 1);
    // In a transaction the refused write is undone and the transaction stays usable.
    let txn = store.write().await?;
    let view = txn.open_tree::<User>();
    view.put(user(6, "six@x", 6)).await?;
    assert!(matches!(
        view.put(user(7, "taken@x", 7)).await,
        Err(NetabaseError::UniqueViolation(_))
    ));
    assert_eq!(view.get(UserPrimaryKey(7)).await?, None);
    view.put(user(8, "eight@x", 8)).await?;
    txn.commit().await?;
    assert_eq!(users.len().await?, 3);
    assert_user_indexes_exact(&store).await
}

pub async fn ordering_vectors<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let keys = [65536u64, 300, 1, 256, 251, 250];
    users
        .put_many(keys.iter().map(|&i| user(i, &format!("{i}@x"), 1)))
        .await?;
    assert_eq!(
        ids(&users.iter().await?),
        vec![1, 250, 251, 256, 300, 65536]
    );
    assert_eq!(
        ids(&users.iter_rev().await?),
        vec![65536, 300, 256, 251, 250, 1]
    );

    let posts = store.open_tree::<Post>();
    posts
        .put_many([5i64, -1, 0, i64::MIN, -300, i64::MAX].map(|id| Post {
            id,
            title: String::new(),
            author_id: 0,
        }))
        .await?;
    let order: Vec<i64> = posts.iter().await?.into_iter().map(|(k, _)| k.0).collect();
    assert_eq!(order, vec![i64::MIN, -300, -1, 0, 5, i64::MAX]);

    let words = store.open_tree::<Word>();
    for (text, score) in [
        ("b", 1.5),
        ("ab", -0.5),
        ("a\0", f64::INFINITY),
        ("", 0.0),
        ("a", -2.0),
    ] {
        words
            .put(Word {
                text: text.into(),
                score,
                tag: None,
            })
            .await?;
    }
    let order: Vec<String> = words.iter().await?.into_iter().map(|(k, _)| k.0).collect();
    assert_eq!(order, vec!["", "a", "a\0", "ab", "b"]);
    let by_score: Vec<f64> = words
        .range_by_secondary_key::<WordScoreSecondaryKey>(..)
        .await?
        .into_iter()
        .map(|w| w.score)
        .collect();
    assert_eq!(by_score, vec![-2.0, -0.5, 0.0, 1.5, f64::INFINITY]);

    let cells = store.open_tree::<Cell>();
    for at in [(2u32, "a"), (1, "b"), (1, "a"), (10, ""), (1, "")] {
        cells
            .put(Cell {
                at: (at.0, at.1.into()),
                value: 0,
                value_key: 0,
            })
            .await?;
    }
    let order: Vec<(u32, String)> = cells.iter().await?.into_iter().map(|(k, _)| k.0).collect();
    assert_eq!(
        order,
        vec![
            (1, "".into()),
            (1, "a".into()),
            (1, "b".into()),
            (2, "a".into()),
            (10, "".into())
        ]
    );
    Ok(())
}

pub async fn ranges_follow_bounds<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users
        .put_many((1..=30).map(|i| user(i, &format!("{i}@x"), (i % 10) as u32 + 20)))
        .await?;
    assert_eq!(ids(&users.range(5u64..8).await?), vec![5, 6, 7]);
    assert_eq!(ids(&users.range(5u64..=8).await?), vec![5, 6, 7, 8]);
    assert_eq!(ids(&users.range(..3u64).await?), vec![1, 2]);
    assert_eq!(ids(&users.range(28u64..).await?), vec![28, 29, 30]);
    assert_eq!(ids(&users.range_rev(5u64..8).await?), vec![7, 6, 5]);
    #[allow(clippy::reversed_empty_ranges)]
    let empty = users.range(8u64..5).await?;
    assert!(empty.is_empty());
    let by_age: Vec<u32> = users
        .range_by_secondary_key(UserAgeSecondaryKey(21)..=UserAgeSecondaryKey(22))
        .await?
        .into_iter()
        .map(|u| u.age)
        .collect();
    assert_eq!(by_age, vec![21, 21, 21, 22, 22, 22]);
    let by_email: Vec<String> = users
        .range_by_secondary_key(
            UserEmailSecondaryKey("1@x".into())..UserEmailSecondaryKey("2@x".into()),
        )
        .await?
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(by_email.first().map(String::as_str), Some("1@x"));
    assert!(
        by_email
            .iter()
            .all(|e| e.as_str() >= "1@x" && e.as_str() < "2@x")
    );
    assert_eq!(by_email.len(), 11, "1@x and 10@x..19@x");
    Ok(())
}

pub async fn many_operations<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users
        .put_many((1..=2500).map(|i| user(i, &format!("{i}@x"), (i % 7) as u32)))
        .await?;
    assert_eq!(users.len().await?, 2500);
    let got = users.get_many([1u64, 2500, 9999]).await?;
    assert_eq!(got[0], Some(user(1, "1@x", 1)));
    assert_eq!(got[1], Some(user(2500, "2500@x", 2500 % 7)));
    assert_eq!(got[2], None);
    let removed = users.remove_many(1u64..=1500).await?;
    assert_eq!(removed.iter().flatten().count(), 1500);
    assert_eq!(users.len().await?, 1000);
    assert_user_indexes_exact(&store).await
}

pub async fn dropped_write_txn_leaves_nothing<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30)).await?;
    {
        let txn = store.write().await?;
        let view = txn.open_tree::<User>();
        view.put(user(2, "b@x", 31)).await?;
        view.remove(UserPrimaryKey(1)).await?;
        txn.rollback();
    }
    {
        let txn = store.write().await?;
        txn.open_tree::<User>().put(user(3, "c@x", 32)).await?;
        drop(txn);
    }
    assert_eq!(ids(&users.iter().await?), vec![1]);
    assert_user_indexes_exact(&store).await
}

pub async fn commit_applies_every_model<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let txn = store.write().await?;
    let users = txn.open_tree::<User>();
    let posts = txn.open_tree::<Post>();
    users.put(user(1, "a@x", 30)).await?;
    posts
        .put(Post {
            id: 7,
            title: "t".into(),
            author_id: 1,
        })
        .await?;
    // Reads inside a write transaction see its own writes, when declared.
    let own = users.get(UserPrimaryKey(1)).await?;
    if store.capabilities().read_your_writes {
        assert_eq!(own, Some(user(1, "a@x", 30)));
        assert_eq!(users.get_by_secondary_key(age(30)).await?.len(), 1);
    }
    let changes = txn.commit().await?;
    assert_eq!(changes.len(), 2, "one change per record");
    assert_eq!(store.open_tree::<User>().len().await?, 1);
    let by_author = store
        .open_tree::<Post>()
        .get_by_secondary_key(PostSecondaryKeys::AuthorId(PostAuthorIdSecondaryKey(1)))
        .await?;
    assert_eq!(by_author.len(), 1);
    Ok(())
}

/// A read transaction is a snapshot where declared; where transactions end when idle
/// (IndexedDB), using one after awaiting other work is refused with a typed error.
pub async fn read_txn_is_a_snapshot<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let caps = store.capabilities();
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30)).await?;
    let read = store.read().await?;
    let view = read.open_tree::<User>();
    // Used right away, the transaction sees the committed state.
    assert_eq!(view.len().await?, 1);
    users.put(user(2, "b@x", 31)).await?;
    users.put(user(1, "a2@x", 99)).await?;
    let seen = view.get(UserPrimaryKey(1)).await;
    match (caps.idle_transactions, caps.snapshot_reads) {
        (false, _) => assert!(
            matches!(seen, Err(NetabaseError::TransactionInactive(_))),
            "an idle transaction must be reported inactive, got {seen:?}"
        ),
        (true, true) => {
            assert_eq!(seen?, Some(user(1, "a@x", 30)));
            assert_eq!(view.len().await?, 1);
            assert_eq!(view.iter().await?.len(), 1);
            assert_eq!(view.get_by_secondary_key(age(30)).await?.len(), 1);
        }
        (true, false) => assert_eq!(seen?, Some(user(1, "a2@x", 99))),
    }
    Ok(())
}

/// Records put and removed in random order; the indexes stay exact and the tree agrees
/// with a model of it.
pub async fn random_operations_keep_indexes_exact<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let mut model = std::collections::BTreeMap::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let id = next() % 40;
        match next() % 4 {
            0 => {
                let removed = users.remove(UserPrimaryKey(id)).await?;
                assert_eq!(removed, model.remove(&id));
            }
            _ => {
                // Unique emails per id, so that no put is refused.
                let u = user(id, &format!("{id}@x"), (next() % 5) as u32);
                users.put(u.clone()).await?;
                model.insert(id, u);
            }
        }
    }
    let stored: Vec<User> = users.iter().await?.into_iter().map(|(_, u)| u).collect();
    assert_eq!(stored, model.into_values().collect::<Vec<_>>());
    assert_user_indexes_exact(&store).await
}

/// A batch applies all of its writes or none of them.
pub async fn batches_are_all_or_nothing<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "old@x", 1)).await?;
    let mut batch = users.create_batch();
    batch.put(user(2, "ada@x", 2))?;
    batch.remove(UserPrimaryKey(1));
    assert_eq!(batch.len(), 2);
    let changes = batch.commit().await?;
    assert_eq!(changes.len(), 2);
    assert_eq!(ids(&users.iter().await?), vec![2]);
    let mut batch = users.create_batch();
    batch.put(user(3, "new@x", 3))?;
    batch.put(user(4, "ada@x", 4))?;
    assert!(matches!(
        batch.commit().await,
        Err(NetabaseError::UniqueViolation(_))
    ));
    assert_eq!(users.get(UserPrimaryKey(3)).await?, None);
    assert_user_indexes_exact(&store).await
}

/// The commits a subscription has received so far, as (seq, changes); a lag is an error.
type Commits<C> = Vec<(u64, Vec<C>)>;

fn drain<C>(sub: &Subscription<C>) -> Result<Commits<C>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    while let Some(event) = sub.try_recv()? {
        match event {
            Event::Commit(c) => out.push((c.seq, c.changes)),
            Event::Lagged(n) => return Err(format!("lagged by {n}").into()),
        }
    }
    Ok(out)
}

fn put_ids(commits: &Commits<TypedChange<TestDefinition, User>>) -> Vec<Vec<u64>> {
    commits
        .iter()
        .map(|(_, changes)| {
            changes
                .iter()
                .map(|c| match c {
                    TypedChange::Put { new, .. } => new.id,
                    TypedChange::Removed { old, .. } => old.id + 1000,
                    TypedChange::Cleared => 0,
                })
                .collect()
        })
        .collect()
}

/// Every asynchronous write path publishes to subscriptions when (and only when) it
/// commits, one event per transaction, in commit order: one-shot puts and removes,
/// `put_many`, explicit transactions, batches and `clear`. Dropped, refused and
/// empty transactions publish nothing.
pub async fn watch_sees_every_write_path_at_commit<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let sub = users.watch(Filter::all());
    assert_eq!(store.subscriptions(), 1);
    users.put(user(1, "a@x", 1)).await?;
    users
        .put_many([user(2, "b@x", 2), user(3, "c@x", 3)])
        .await?;
    let txn = store.write().await?;
    txn.open_tree::<User>().put(user(4, "d@x", 4)).await?;
    txn.open_tree::<Post>()
        .put(Post {
            id: 1,
            title: "p".into(),
            author_id: 4,
        })
        .await?;
    // Not published before the commit.
    assert!(drain(&sub)?.len() == 2);
    let changes = txn.commit().await?;
    assert_eq!(changes.len(), 2, "the committer still reads its ChangeSet");
    // Dropped, refused and empty: nothing.
    let txn = store.write().await?;
    txn.open_tree::<User>().put(user(9, "z@x", 9)).await?;
    drop(txn);
    assert!(users.put(user(5, "a@x", 5)).await.is_err());
    store.write().await?.commit().await?;
    let mut batch = users.create_batch();
    batch.put(user(5, "e@x", 5))?;
    batch.remove(UserPrimaryKey(1));
    batch.commit().await?;
    users.remove(UserPrimaryKey(2)).await?;
    users.clear().await?;
    let commits = drain(&sub)?;
    assert_eq!(
        put_ids(&commits),
        vec![vec![4], vec![5, 1001], vec![1002], vec![0]],
        "the Post change is not the User subscription's"
    );
    // Sequence numbers follow commit order (the first two commits were drained above).
    let seqs: Vec<u64> = commits.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    drop(sub);
    assert_eq!(store.subscriptions(), 0);
    Ok(())
}

/// Filters of the synchronous API (a key range, a secondary key) select the changes;
/// a store-level subscription sees several models in one event; both read as streams.
pub async fn watch_filters_and_streams<B: AsyncBackend>(store: Store<B>) -> TestResult {
    use futures::StreamExt;
    let users = store.open_tree::<User>();
    let mut adults = users.watch(Filter::secondary_range(UserAgeSecondaryKey(18)..));
    let low = users.watch(Filter::range(UserPrimaryKey(1)..UserPrimaryKey(3)));
    let mut both = store
        .watch()
        .model::<User>(Filter::key(UserPrimaryKey(7)))
        .model::<Post>(Filter::all())
        .subscribe();
    users.put(user(1, "a@x", 17)).await?;
    users.put(user(1, "a@x", 18)).await?;
    users.put(user(7, "g@x", 40)).await?;
    let txn = store.write().await?;
    txn.open_tree::<User>().put(user(7, "g@x", 41)).await?;
    txn.open_tree::<Post>()
        .put(Post {
            id: -1,
            title: "t".into(),
            author_id: 7,
        })
        .await?;
    txn.commit().await?;

    // Adults: id 1 turning 18, id 7 at 40, then 41.
    let mut ages = Vec::new();
    for _ in 0..3 {
        match adults.next().await {
            Some(Ok(Event::Commit(c))) => {
                for change in c.changes {
                    if let TypedChange::Put { new, .. } = change {
                        ages.push((new.id, new.age));
                    }
                }
            }
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!(ages, vec![(1, 18), (7, 40), (7, 41)]);
    assert_eq!(put_ids(&drain(&low)?), vec![vec![1], vec![1]]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        match both.next().await {
            Some(Ok(Event::Commit(c))) => seen.push(c.changes.len()),
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!(
        seen,
        vec![1, 2],
        "the transaction's two models arrive in one event"
    );
    assert!(both.try_recv()?.is_none());
    Ok(())
}

/// The store records its format and schema at open, so that a second open of the same
/// database checks them.
pub async fn open_records_the_schema<B: AsyncBackend>(store: Store<B>) -> TestResult {
    let names = store.tree_names().await?;
    assert!(
        names.iter().any(|n| n == netabase_store::META_TABLE),
        "the meta table is written at open: {names:?}"
    );
    Ok(())
}

/// Expands to one test per check, each with the test attribute `$attr` (`tokio::test`,
/// `wasm_bindgen_test`) and a fresh store from the async fn `$make`.
#[macro_export]
macro_rules! async_conformance_suite {
    ($attr:meta, $make:expr) => {
        $crate::async_conformance_suite!(@tests $attr, $make;
            put_get_remove,
            update_changing_secondary_leaves_no_stale_entry,
            clear_empties_indexes,
            non_unique_returns_every_match,
            unique_violation_applies_nothing,
            ordering_vectors,
            ranges_follow_bounds,
            many_operations,
            dropped_write_txn_leaves_nothing,
            commit_applies_every_model,
            read_txn_is_a_snapshot,
            random_operations_keep_indexes_exact,
            batches_are_all_or_nothing,
            open_records_the_schema,
            watch_sees_every_write_path_at_commit,
            watch_filters_and_streams,
        );
    };
    (@tests $attr:meta, $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[$attr]
            async fn $name() {
                let outcome = match ($make)().await {
                    Ok(store) => async_conformance::$name(store).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    panic!("{}: {e}", stringify!($name));
                }
            }
        )+
    };
}
