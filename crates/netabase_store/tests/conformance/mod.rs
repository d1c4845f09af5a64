//! The conformance suite: every invariant of DESIGN.md, run on every backend.
//!
//! A backend test file calls `conformance_suite!(|| <a fresh store>)`, which expands to
//! one `#[test]` per check below. Checks that depend on a backend capability read the
//! backend's declared `Capabilities` and assert the declared behaviour either way, so
//! nothing is skipped silently.

#![allow(dead_code)]

pub mod schema;
pub mod watch;

use std::collections::BTreeSet;

use netabase_store::backend::{Backend, Direction, RawRange, ReadTxn, WriteTxn, collect_range};
use netabase_store::prelude::*;
use netabase_store::{DecodeReason, TypedChange, VersionProblem};
use schema::*;

pub type Store<B> = NetabaseStore<TestDefinition, B>;
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The exact set of index entries the stored records of `User` imply, compared with the
/// raw contents of both index tables.
pub fn assert_user_indexes_exact<B: Backend>(store: &Store<B>) -> TestResult {
    let users: Vec<User> = store
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(_, u)| u))
        .collect::<Result<_, _>>()?;
    let txn = store.raw_backend().begin_read()?;
    let info = <User as NetabaseModelTrait<TestDefinition>>::INFO;

    let email_table = info.secondary_keys[0].table;
    let age_table = info.secondary_keys[1].table;

    let expected_email: BTreeSet<(Vec<u8>, Vec<u8>)> = users
        .iter()
        .map(|u| (u.email.to_key_bytes(), u.id.to_key_bytes()))
        .collect();
    let actual_email: BTreeSet<(Vec<u8>, Vec<u8>)> =
        collect_range(&txn, email_table, RawRange::all(), Direction::Forward)?
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
    let actual_age: BTreeSet<Vec<u8>> =
        collect_range(&txn, age_table, RawRange::all(), Direction::Forward)?
            .into_iter()
            .map(|(k, v)| {
                assert!(v.is_empty(), "non-unique index entries have empty values");
                k
            })
            .collect();
    assert_eq!(actual_age, expected_age, "index `age` is not exact");
    assert_eq!(txn.len(age_table)?, users.len() as u64);
    Ok(())
}

pub fn put_get_remove<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    assert!(users.is_empty()?);
    users.put(user(1, "a@x", 30))?;
    assert_eq!(users.get(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
    assert_eq!(users.get(UserPrimaryKey(2))?, None);
    assert_eq!(users.len()?, 1);
    assert_eq!(users.remove(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
    assert_eq!(users.remove(UserPrimaryKey(1))?, None);
    assert!(users.is_empty()?);
    assert_user_indexes_exact(&store)
}

pub fn update_changing_secondary_leaves_no_stale_entry<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30))?;
    users.put(user(1, "b@x", 31))?;
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))?
            .is_empty()
    );
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(
                "a@x".into()
            )))?
            .is_empty()
    );
    assert_eq!(
        users.get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(31)))?,
        vec![user(1, "b@x", 31)]
    );
    // The freed unique value can be taken by another record.
    users.put(user(2, "a@x", 30))?;
    assert_user_indexes_exact(&store)
}

pub fn clear_empties_indexes<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many((0..20).map(|i| user(i, &format!("{i}@x"), 20 + (i % 3) as u32)))?;
    let posts = store.open_tree::<Post>();
    posts.put(Post {
        id: 1,
        title: "kept".into(),
        author_id: 1,
    })?;
    users.clear()?;
    assert!(users.is_empty()?);
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(20)))?
            .is_empty()
    );
    assert_user_indexes_exact(&store)?;
    let txn = store.raw_backend().begin_read()?;
    for field in <User as NetabaseModelTrait<TestDefinition>>::INFO.secondary_keys {
        assert_eq!(
            txn.len(field.table)?,
            0,
            "index {} not emptied",
            field.table
        );
    }
    assert_eq!(posts.len()?, 1, "clearing one model must not touch another");
    Ok(())
}

pub fn non_unique_returns_every_match<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many((0..30).map(|i| user(i, &format!("{i}@x"), (i % 3) as u32)))?;
    let zeros = users.get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(0)))?;
    assert_eq!(
        zeros.iter().map(|u| u.id).collect::<Vec<_>>(),
        (0..30).step_by(3).collect::<Vec<_>>()
    );
    let groups = users.get_many_by_secondary_keys(vec![
        UserSecondaryKeys::Age(UserAgeSecondaryKey(1)),
        UserSecondaryKeys::Age(UserAgeSecondaryKey(7)),
        UserSecondaryKeys::Email(UserEmailSecondaryKey("4@x".into())),
    ])?;
    assert_eq!(groups[0].len(), 10);
    assert!(groups[1].is_empty());
    assert_eq!(groups[2], vec![user(4, "4@x", 1)]);
    Ok(())
}

pub fn unique_violation_applies_nothing<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30))?;
    let err = users
        .put(user(2, "a@x", 40))
        .err()
        .ok_or("duplicate unique key accepted")?;
    match &err {
        NetabaseError::UniqueViolation(v) => {
            assert_eq!((v.model, v.field), ("User", "email"));
            assert_eq!(
                v.holder_key,
                1u64.to_key_bytes(),
                "the holder's key is carried"
            );
        }
        other => return Err(format!("expected UniqueViolation, got {other:?}").into()),
    }
    assert!(
        err.to_string().contains("email"),
        "message names the field: {err}"
    );
    assert_eq!(users.get(UserPrimaryKey(2))?, None);
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(40)))?
            .is_empty()
    );
    assert_user_indexes_exact(&store)?;

    // Inside an explicit transaction: the refused put leaves nothing, the rest commits.
    let txn = store.write()?;
    {
        let view = txn.open_tree::<User>();
        view.put(user(3, "c@x", 50))?;
        assert!(matches!(
            view.put(user(4, "c@x", 60)),
            Err(NetabaseError::UniqueViolation(_))
        ));
        assert_eq!(view.get(UserPrimaryKey(4))?, None);
    }
    txn.commit()?;
    assert_eq!(users.get(UserPrimaryKey(3))?, Some(user(3, "c@x", 50)));
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(60)))?
            .is_empty()
    );

    // A one-shot batch with a violation inside applies nothing at all.
    let before = users.len()?;
    assert!(
        users
            .put_many(vec![user(10, "n@x", 1), user(11, "a@x", 2)])
            .is_err()
    );
    assert_eq!(users.len()?, before);
    assert_eq!(users.get(UserPrimaryKey(10))?, None);
    assert_user_indexes_exact(&store)
}

pub fn ordering_vectors<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let ids = [65536u64, 300, 1, 256, 251, 250];
    users.put_many(ids.iter().map(|&i| user(i, &format!("{i}@x"), 1)))?;
    let order: Vec<u64> = users
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(order, vec![1, 250, 251, 256, 300, 65536]);
    let rev: Vec<u64> = users
        .iter_rev()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(rev, vec![65536, 300, 256, 251, 250, 1]);

    let posts = store.open_tree::<Post>();
    posts.put_many([5i64, -1, 0, i64::MIN, -300, i64::MAX].map(|id| Post {
        id,
        title: String::new(),
        author_id: 0,
    }))?;
    let order: Vec<i64> = posts
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(order, vec![i64::MIN, -300, -1, 0, 5, i64::MAX]);

    let words = store.open_tree::<Word>();
    for (text, score) in [
        ("b", 1.5),
        ("ab", -0.5),
        ("a\0", f64::INFINITY),
        ("", 0.0),
        ("a", -2.0),
    ] {
        words.put(Word {
            text: text.into(),
            score,
            tag: None,
        })?;
    }
    let order: Vec<String> = words
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(order, vec!["", "a", "a\0", "ab", "b"]);
    let by_score: Vec<f64> = words
        .range_by_secondary_key::<WordScoreSecondaryKey>(..)
        .map(|r| r.map(|w| w.score))
        .collect::<Result<_, _>>()?;
    assert_eq!(by_score, vec![-2.0, -0.5, 0.0, 1.5, f64::INFINITY]);

    let cells = store.open_tree::<Cell>();
    for at in [(2u32, "a"), (1, "b"), (1, "a"), (10, ""), (1, "")] {
        cells.put(Cell {
            at: (at.0, at.1.into()),
            value: 0,
            value_key: 0,
        })?;
    }
    let order: Vec<(u32, String)> = cells
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
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

pub fn ranges_follow_bounds<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many((1..=30).map(|i| user(i, &format!("{i}@x"), (i % 10) as u32 + 20)))?;
    let ids = |it: &mut dyn Iterator<Item = Result<(UserPrimaryKey, User), NetabaseError>>| {
        it.map(|r| r.map(|(k, _)| k.0))
            .collect::<Result<Vec<_>, _>>()
    };
    assert_eq!(
        ids(&mut users.range(UserPrimaryKey(10)..UserPrimaryKey(13)))?,
        vec![10, 11, 12]
    );
    assert_eq!(
        ids(&mut users.range(UserPrimaryKey(28)..))?,
        vec![28, 29, 30]
    );
    assert_eq!(ids(&mut users.range(..=UserPrimaryKey(2)))?, vec![1, 2]);
    assert_eq!(
        ids(&mut users.range_rev(UserPrimaryKey(5)..=UserPrimaryKey(7)))?,
        vec![7, 6, 5]
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = ids(&mut users.range(UserPrimaryKey(20)..UserPrimaryKey(10)))?;
    assert!(empty.is_empty(), "an inverted range is empty, not a panic");

    let ages: Vec<u32> = users
        .range_by_secondary_key(UserAgeSecondaryKey(22)..=UserAgeSecondaryKey(23))
        .map(|r| r.map(|u| u.age))
        .collect::<Result<_, _>>()?;
    assert_eq!(ages, vec![22, 22, 22, 23, 23, 23]);
    let ages: Vec<u32> = users
        .range_by_secondary_key(UserAgeSecondaryKey(28)..)
        .map(|r| r.map(|u| u.age))
        .collect::<Result<_, _>>()?;
    assert_eq!(ages, vec![28, 28, 28, 29, 29, 29]);
    let n = users
        .range_by_secondary_key(..UserAgeSecondaryKey(21))
        .count();
    assert_eq!(n, 3);
    let emails: Vec<String> = users
        .range_by_secondary_key(
            UserEmailSecondaryKey("10@x".into())..UserEmailSecondaryKey("12@x".into()),
        )
        .map(|r| r.map(|u| u.email))
        .collect::<Result<_, _>>()?;
    assert_eq!(emails, vec!["10@x", "11@x"]);

    // A long scan crosses several chunks and stays in order.
    let posts = store.open_tree::<Post>();
    posts.put_many((0..5000).map(|i| Post {
        id: i,
        title: String::new(),
        author_id: (i % 7) as u64,
    }))?;
    let mut prev = None;
    let mut count = 0;
    for item in posts.iter() {
        let (k, _) = item?;
        assert!(prev < Some(k.0));
        prev = Some(k.0);
        count += 1;
    }
    assert_eq!(count, 5000);
    Ok(())
}

pub fn many_operations<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many((1..=5).map(|i| user(i, &format!("{i}@x"), 30)))?;
    let found = users.get_many(vec![
        UserPrimaryKey(2),
        UserPrimaryKey(9),
        UserPrimaryKey(5),
    ])?;
    assert_eq!(
        found,
        vec![Some(user(2, "2@x", 30)), None, Some(user(5, "5@x", 30))]
    );
    let gone = users.remove_many(vec![UserPrimaryKey(1), UserPrimaryKey(9)])?;
    assert_eq!(gone, vec![Some(user(1, "1@x", 30)), None]);
    assert_eq!(users.len()?, 4);
    assert_user_indexes_exact(&store)
}

pub fn dropped_write_txn_leaves_nothing<B: Backend>(store: Store<B>) -> TestResult {
    {
        let txn = store.write()?;
        let users = txn.open_tree::<User>();
        let posts = txn.open_tree::<Post>();
        users.put(user(1, "a@x", 30))?;
        posts.put(Post {
            id: 1,
            title: "t".into(),
            author_id: 1,
        })?;
        // Reads inside the transaction see its own writes, indexes included.
        assert_eq!(users.get(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
        assert_eq!(
            posts
                .get_by_secondary_key(PostSecondaryKeys::AuthorId(PostAuthorIdSecondaryKey(1)))?
                .len(),
            1
        );
        assert_eq!(users.iter().count(), 1);
    }
    assert!(store.open_tree::<User>().is_empty()?);
    assert!(store.open_tree::<Post>().is_empty()?);
    assert!(
        store
            .open_tree::<Post>()
            .get_by_secondary_key(PostSecondaryKeys::AuthorId(PostAuthorIdSecondaryKey(1)))?
            .is_empty()
    );
    let txn = store.write()?;
    txn.open_tree::<User>().put(user(1, "a@x", 30))?;
    txn.rollback();
    assert!(store.open_tree::<User>().is_empty()?);
    assert_user_indexes_exact(&store)
}

pub fn commit_applies_every_model<B: Backend>(store: Store<B>) -> TestResult {
    let txn = store.write()?;
    {
        let users = txn.open_tree::<User>();
        let posts = txn.open_tree::<Post>();
        users.put(user(1, "a@x", 30))?;
        posts.put(Post {
            id: 7,
            title: "t".into(),
            author_id: 1,
        })?;
        users.remove(UserPrimaryKey(1))?;
        users.put(user(2, "b@x", 31))?;
    }
    txn.commit()?;
    assert_eq!(
        store.open_tree::<User>().get(UserPrimaryKey(2))?,
        Some(user(2, "b@x", 31))
    );
    assert_eq!(store.open_tree::<User>().get(UserPrimaryKey(1))?, None);
    assert_eq!(store.open_tree::<Post>().len()?, 1);
    assert_user_indexes_exact(&store)
}

pub fn read_txn_is_a_snapshot<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30))?;
    let read = store.read()?;
    users.put(user(2, "b@x", 31))?;
    users.put(user(1, "a2@x", 99))?;
    let view = read.open_tree::<User>();
    let seen_len = view.len()?;
    let seen_one = view.get(UserPrimaryKey(1))?;
    if store.raw_backend().capabilities().snapshot_reads {
        assert_eq!(seen_len, 1);
        assert_eq!(seen_one, Some(user(1, "a@x", 30)));
        assert_eq!(view.get(UserPrimaryKey(2))?, None);
        assert_eq!(view.iter().count(), 1);
        assert_eq!(
            view.get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))?
                .len(),
            1
        );
    } else {
        // Declared: reads are not snapshots; they see the latest committed state.
        assert_eq!(seen_len, 2);
        assert_eq!(seen_one, Some(user(1, "a2@x", 99)));
    }
    Ok(())
}

pub fn undecodable_bytes_name_the_table<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 30))?;
    let table = <User as NetabaseModelTrait<TestDefinition>>::INFO.table;
    {
        let txn = store.raw_backend().begin_write()?;
        txn.put(table, &1u64.to_key_bytes(), &[1, 0, 0, 0xFF, 0xFF, 0xFF])?;
        txn.put(table, &2u64.to_key_bytes(), &[9, 9])?;
        txn.put(table, &[1, 2, 3], &[])?;
        txn.commit()?;
    }
    for key in [1u64, 2] {
        match users.get(key) {
            Err(NetabaseError::Decode(e)) => {
                assert_eq!(e.table, table);
                assert_eq!(e.key, key.to_key_bytes());
                assert!(e.to_string().contains(&format!("0x{key:016x}")));
            }
            other => return Err(format!("expected a decode error, got {other:?}").into()),
        }
    }
    let err = users
        .get(UserPrimaryKey(2))
        .err()
        .ok_or("decoded garbage")?;
    assert!(
        err.to_string().contains(table),
        "message names the table: {err}"
    );
    // Iteration reports the bad entries as errors instead of panicking or skipping.
    let results: Vec<_> = users.iter().collect();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.is_err()));
    // Keys sort bytewise: the two u64 keys first, then the 3-byte key that is no u64.
    assert!(matches!(results[0], Err(NetabaseError::Decode(_))));
    assert!(matches!(
        &results[2],
        Err(NetabaseError::Decode(e)) if matches!(e.reason, DecodeReason::Key(_))
    ));
    // An index entry leading to undecodable bytes is an error too.
    assert!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))
            .is_err()
    );
    Ok(())
}

/// A write over a stored record that does not decode is refused and leaves that
/// record's bytes and index entries as they were, while the writes before it in the same
/// call stand: for a model with a unique key (one by one), a model without (batched),
/// and removals.
pub fn writes_over_undecodable_records_undo_cleanly<B: Backend>(store: Store<B>) -> TestResult {
    const GARBAGE: &[u8] = &[1, 0, 0, 0xFF, 0xFF, 0xFF];
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    users.put_many((1..=3).map(|i| user(i, &format!("{i}@x"), 30)))?;
    posts.put_many((1..=3).map(|i| Post {
        id: i,
        title: format!("post {i}"),
        author_id: 7,
    }))?;
    let user_table = <User as NetabaseModelTrait<TestDefinition>>::INFO.table;
    let post_table = <Post as NetabaseModelTrait<TestDefinition>>::INFO.table;
    let user_key = 2u64.to_key_bytes();
    let post_key = 2i64.to_key_bytes();
    let raw = |table: &str, key: &[u8]| -> Result<Option<Vec<u8>>, NetabaseError> {
        store.raw_backend().begin_read()?.get(table, key)
    };
    let good_user = raw(user_table, &user_key)?.ok_or("user 2 missing")?;
    let good_post = raw(post_table, &post_key)?.ok_or("post 2 missing")?;
    let overwrite = |user: &[u8], post: &[u8]| -> TestResult {
        let txn = store.raw_backend().begin_write()?;
        txn.put(user_table, &user_key, user)?;
        txn.put(post_table, &post_key, post)?;
        Ok(txn.commit()?)
    };
    overwrite(GARBAGE, GARBAGE)?;

    let txn = store.write()?;
    {
        let users = txn.open_tree::<User>();
        let posts = txn.open_tree::<Post>();
        let decode_error = |r: Result<(), NetabaseError>| match r {
            Err(NetabaseError::Decode(_)) => Ok(()),
            other => Err(format!("expected a decode error, got {other:?}")),
        };
        // One by one (a unique key), then batched (no unique key).
        decode_error(users.put(user(2, "new@x", 5)))?;
        decode_error(users.put_many(vec![
            user(4, "4@x", 40),
            user(2, "n@x", 5),
            user(5, "5@x", 50),
        ]))?;
        decode_error(posts.put(Post {
            id: 2,
            title: "new".into(),
            author_id: 8,
        }))?;
        decode_error(posts.put_many((4..=5).chain([2, 6]).map(|i| Post {
            id: i,
            title: format!("post {i}"),
            author_id: 9,
        })))?;
        decode_error(users.remove(UserPrimaryKey(2)).map(drop))?;
        decode_error(users.remove_many([1, 2, 3].map(UserPrimaryKey)).map(drop))?;
        decode_error(posts.remove_many([1, 2, 3].map(PostPrimaryKey)).map(drop))?;
    }
    txn.commit()?;

    assert_eq!(raw(user_table, &user_key)?.as_deref(), Some(GARBAGE));
    assert_eq!(raw(post_table, &post_key)?.as_deref(), Some(GARBAGE));
    // The writes before each refused one stand; the refused one and those after do not.
    assert_eq!(users.get(UserPrimaryKey(4))?, Some(user(4, "4@x", 40)));
    assert_eq!(users.get(UserPrimaryKey(5))?, None);
    assert_eq!(users.get(UserPrimaryKey(1))?, None);
    assert_eq!(users.get(UserPrimaryKey(3))?, Some(user(3, "3@x", 30)));
    assert!(posts.get(PostPrimaryKey(4))?.is_some());
    assert!(posts.get(PostPrimaryKey(5))?.is_some());
    assert_eq!(posts.get(PostPrimaryKey(6))?, None);
    assert_eq!(posts.get(PostPrimaryKey(1))?, None);
    assert!(posts.get(PostPrimaryKey(3))?.is_some());

    // With the good bytes back, every index is exact: the refused writes left no entry
    // behind and took none away.
    overwrite(&good_user, &good_post)?;
    assert_user_indexes_exact(&store)?;
    let mut authors: Vec<(i64, u64)> = Vec::new();
    for author in [7, 8, 9] {
        for p in posts.get_by_secondary_key(PostSecondaryKeys::AuthorId(
            PostAuthorIdSecondaryKey(author),
        ))? {
            authors.push((p.id, p.author_id));
        }
    }
    authors.sort_unstable();
    assert_eq!(authors, vec![(2, 7), (3, 7), (4, 9), (5, 9)]);
    assert_eq!(posts.len()?, 4);
    Ok(())
}

/// Invariant 1 under a long pseudo-random sequence of puts, updates, removes and clears,
/// checked after every commit.
pub fn random_operations_keep_indexes_exact<B: Backend>(store: Store<B>) -> TestResult {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let users = store.open_tree::<User>();
    for round in 0..60 {
        let txn = store.write()?;
        {
            let view = txn.open_tree::<User>();
            for _ in 0..next(8) + 1 {
                let id = next(25);
                match next(10) {
                    0..=5 => {
                        // Emails collide often enough to exercise refusals.
                        let _ = view.put(user(id, &format!("{}@x", next(30)), next(5) as u32));
                    }
                    6..=8 => {
                        view.remove(UserPrimaryKey(id))?;
                    }
                    _ if round % 20 == 19 => view.clear()?,
                    _ => {}
                }
            }
        }
        if next(4) == 0 {
            drop(txn);
        } else {
            txn.commit()?;
        }
        assert_user_indexes_exact(&store)?;
    }
    assert!(users.len()? > 0);
    Ok(())
}

/// The `ChangeSet` of a commit holds exactly one change per record touched, with the
/// old and new stored values, for every write path.
pub fn change_sets_report_each_record_once<B: Backend>(store: Store<B>) -> TestResult {
    fn typed(changes: &ChangeSet) -> Result<Vec<TypedChange<TestDefinition, User>>, NetabaseError> {
        changes.decode::<TestDefinition, User>()
    }
    let users = store.open_tree::<User>();
    users.put_many((1..=3).map(|i| user(i, &format!("{i}@x"), 30)))?;

    // An explicit transaction: create, update twice, remove, create-then-remove.
    let txn = store.write()?;
    {
        let view = txn.open_tree::<User>();
        view.put(user(4, "4@x", 40))?;
        view.put(user(1, "one@x", 31))?;
        view.put(user(1, "uno@x", 32))?;
        view.remove(2)?;
        view.put(user(9, "9@x", 90))?;
        view.remove(9)?;
        view.remove(77)?; // absent: no change
        txn.open_tree::<Post>().put(Post {
            id: 5,
            title: "p".into(),
            author_id: 4,
        })?;
    }
    let changes = txn.commit()?;
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(
        typed(&changes)?,
        vec![
            TypedChange::Put {
                key: UserPrimaryKey(4),
                old: None,
                new: user(4, "4@x", 40)
            },
            TypedChange::Put {
                key: UserPrimaryKey(1),
                old: Some(user(1, "1@x", 30)),
                new: user(1, "uno@x", 32)
            },
            TypedChange::Removed {
                key: UserPrimaryKey(2),
                old: user(2, "2@x", 30)
            },
        ]
    );
    let post = &changes.changes()[3];
    assert_eq!(post.model(), "Post");
    assert_eq!(post.key(), Some(5i64.to_key_bytes().as_slice()));
    // The stored bytes themselves: old and new as the primary table held them.
    let table = <User as NetabaseModelTrait<TestDefinition>>::INFO.table;
    let stored = store
        .raw_backend()
        .begin_read()?
        .get(table, &1u64.to_key_bytes())?;
    match &changes.changes()[1] {
        Change::Put { new, .. } => assert_eq!(Some(new), stored.as_ref()),
        other => return Err(format!("expected a put, got {other:?}").into()),
    }

    // clear, then a put in the same transaction: the clear, then the new record.
    let txn = store.write()?;
    txn.open_tree::<User>().put(user(20, "20@x", 1))?;
    txn.open_tree::<User>().clear()?;
    txn.open_tree::<User>().put(user(21, "21@x", 1))?;
    let changes = txn.commit()?;
    assert_eq!(
        typed(&changes)?,
        vec![
            TypedChange::Cleared,
            TypedChange::Put {
                key: UserPrimaryKey(21),
                old: None,
                new: user(21, "21@x", 1)
            }
        ]
    );

    // A batch: the same rules.
    let mut batch = users.create_batch();
    batch.put(user(22, "22@x", 2))?;
    batch.put(user(21, "21b@x", 3))?;
    batch.remove(22);
    batch.remove(21);
    batch.put(user(23, "23@x", 4))?;
    let changes = batch.commit()?;
    assert_eq!(
        typed(&changes)?,
        vec![
            TypedChange::Removed {
                key: UserPrimaryKey(21),
                old: user(21, "21@x", 1)
            },
            TypedChange::Put {
                key: UserPrimaryKey(23),
                old: None,
                new: user(23, "23@x", 4)
            },
        ]
    );

    // put_many and remove_many of a model without unique keys (chunked writes).
    let txn = store.write()?;
    let posts = txn.open_tree::<Post>();
    posts.put_many((0..3000).map(|i| Post {
        id: i,
        title: String::new(),
        author_id: 1,
    }))?;
    posts.remove_many((0..3000).filter(|i| i % 2 == 0))?;
    let changes = txn.commit()?;
    let decoded = changes.decode::<TestDefinition, Post>()?;
    // Post 5 existed before; the even ones were created and removed; the odd ones stay.
    assert_eq!(decoded.len(), 1500, "one change per odd post");
    assert!(decoded.iter().all(|c| matches!(
        c,
        TypedChange::Put { key, .. } if key.0 % 2 == 1
    )));
    let five = decoded
        .iter()
        .find(|c| matches!(c, TypedChange::Put { key, .. } if key.0 == 5))
        .ok_or("post 5 missing")?;
    assert!(matches!(five, TypedChange::Put { old: Some(_), .. }));

    // A rolled-back transaction and a refused write report nothing.
    let txn = store.write()?;
    assert!(txn.open_tree::<User>().put(user(30, "23@x", 1)).is_err());
    assert!(txn.commit()?.is_empty());
    Ok(())
}

/// Values written by a newer version of a model are refused with the versions named;
/// older ones without an upgrade likewise; nothing is misread or overwritten blindly.
pub fn model_versions_are_read_back<B: Backend>(store: Store<B>) -> TestResult {
    let tree = store.open_tree::<Versioned>();
    let v = |id: u32, points: u32| Versioned {
        id,
        points,
        tag: format!("t{id}"),
    };
    tree.put_many([v(1, 10), v(2, 20), v(3, 30)])?;
    let table = <Versioned as NetabaseModelTrait<TestDefinition>>::INFO.table;
    let raw = |id: u32| -> Result<Vec<u8>, NetabaseError> {
        store
            .raw_backend()
            .begin_read()?
            .get(table, &id.to_key_bytes())?
            .ok_or_else(|| NetabaseError::decode_other(table, &id.to_key_bytes(), "missing"))
    };
    let mut newer = raw(1)?;
    assert_eq!(&newer[..3], &[1, 0, 2], "format 1, model version 2");
    newer[2] = 3;
    let mut older = raw(2)?;
    older[2] = 1;
    {
        let txn = store.raw_backend().begin_write()?;
        txn.put(table, &1u32.to_key_bytes(), &newer)?;
        txn.put(table, &2u32.to_key_bytes(), &older)?;
        txn.commit()?;
    }
    match tree.get(1) {
        Err(NetabaseError::Version(e)) => {
            assert_eq!(
                (e.model, e.table, e.found, e.known),
                ("Versioned", table, 3, 2)
            );
            assert_eq!(e.problem, VersionProblem::Newer);
            assert_eq!(e.key, 1u32.to_key_bytes());
            let text = e.to_string();
            assert!(
                text.contains("version 3") && text.contains("Versioned"),
                "{text}"
            );
        }
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    match tree.get(2) {
        Err(NetabaseError::Version(e)) => {
            assert_eq!(
                (e.found, e.known, e.problem),
                (1, 2, VersionProblem::NoUpgrade)
            );
        }
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    assert_eq!(tree.get(3)?, Some(v(3, 30)));
    // Every path that decodes refuses them: iteration, secondary queries, overwrites.
    let results: Vec<_> = tree.iter().collect();
    assert!(matches!(results[0], Err(NetabaseError::Version(_))));
    assert!(matches!(results[1], Err(NetabaseError::Version(_))));
    assert!(results[2].is_ok());
    assert!(matches!(
        tree.get_by_secondary_key(VersionedTagSecondaryKey("t1".into())),
        Err(NetabaseError::Version(_))
    ));
    assert!(matches!(tree.put(v(1, 11)), Err(NetabaseError::Version(_))));
    assert!(matches!(tree.remove(1), Err(NetabaseError::Version(_))));
    assert_eq!(raw(1)?, newer, "a refused overwrite leaves the newer value");
    Ok(())
}

/// Expands to one `#[test]` per conformance check, each on a fresh store from `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
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
            undecodable_bytes_name_the_table,
            writes_over_undecodable_records_undo_cleanly,
            random_operations_keep_indexes_exact,
            change_sets_report_each_record_once,
            model_versions_are_read_back,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() -> conformance::TestResult {
                conformance::$name(($make)()?)
            }
        )+
    };
}
