//! Change subscriptions, run on every backend by `watch_suite!`: each filter kind,
//! every write path, nothing from transactions that do not commit, exact lag counts,
//! commit order under concurrent writers, the asynchronous form, and unregistering.

use std::collections::BTreeMap;
use std::time::Duration;

use netabase_store::TypedChange;
use netabase_store::backend::Backend;
use netabase_store::prelude::*;
use netabase_store::watch::{Commit, DefinitionChange, Event, Filter, Subscription};

use super::schema::*;
use super::{Store, TestResult};

type UserChange = TypedChange<TestDefinition, User>;

/// The next event, which must be a commit already buffered.
fn commit<C: std::fmt::Debug>(sub: &Subscription<C>) -> Result<Commit<C>, String> {
    match sub.try_recv() {
        Ok(Some(Event::Commit(commit))) => Ok(commit),
        other => Err(format!("expected a commit, got {other:?}")),
    }
}

/// Nothing must be buffered.
fn quiet<C: std::fmt::Debug>(sub: &Subscription<C>) -> TestResult {
    match sub.try_recv()? {
        None => Ok(()),
        Some(event) => Err(format!("expected nothing, got {event:?}").into()),
    }
}

fn put(old: Option<User>, new: User) -> UserChange {
    TypedChange::Put {
        key: UserPrimaryKey(new.id),
        old,
        new,
    }
}

fn removed(old: User) -> UserChange {
    TypedChange::Removed {
        key: UserPrimaryKey(old.id),
        old,
    }
}

fn ids(commit: &Commit<UserChange>) -> Vec<u64> {
    commit
        .changes
        .iter()
        .map(|c| match c {
            TypedChange::Put { key, .. } | TypedChange::Removed { key, .. } => key.0,
            TypedChange::Cleared => u64::MAX,
        })
        .collect()
}

pub fn watch_whole_model<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let sub = users.watch(Filter::all());
    users.put(user(1, "a@x", 30))?;
    users.put(user(1, "b@x", 31))?;
    store.open_tree::<Post>().put(Post {
        id: 1,
        title: "other model".into(),
        author_id: 1,
    })?;
    users.remove(UserPrimaryKey(1))?;

    let first = commit(&sub)?;
    assert_eq!(first.changes, vec![put(None, user(1, "a@x", 30))]);
    let second = commit(&sub)?;
    assert_eq!(
        second.changes,
        vec![put(Some(user(1, "a@x", 30)), user(1, "b@x", 31))]
    );
    let third = commit(&sub)?;
    assert_eq!(third.changes, vec![removed(user(1, "b@x", 31))]);
    // The post's commit came in between: it took a number but is not delivered.
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(third.seq, second.seq + 2);
    quiet(&sub)
}

pub fn watch_one_key<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let sub = users.watch(Filter::key(UserPrimaryKey(2)));
    for id in 1..=3 {
        users.put(user(id, &format!("{id}@x"), 30))?;
    }
    assert_eq!(ids(&commit(&sub)?), vec![2]);
    quiet(&sub)?;
    users.put_many((1..=3).map(|id| user(id, &format!("{id}@y"), 31)))?;
    let only = commit(&sub)?;
    assert_eq!(
        only.changes,
        vec![put(Some(user(2, "2@x", 30)), user(2, "2@y", 31))]
    );
    users.remove(UserPrimaryKey(3))?;
    quiet(&sub)
}

pub fn watch_key_range<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let half_open = users.watch(Filter::range(UserPrimaryKey(10)..UserPrimaryKey(20)));
    let up_to = users.watch(Filter::range(..=UserPrimaryKey(5)));
    let from = users.watch(Filter::range(UserPrimaryKey(250)..));
    // Reversed insertion order: the changes come in the order they were written.
    users.put_many((0..300).rev().map(|i| user(i, &format!("{i}@x"), 1)))?;
    assert_eq!(
        ids(&commit(&half_open)?),
        (10..20).rev().collect::<Vec<_>>()
    );
    assert_eq!(ids(&commit(&up_to)?), (0..=5).rev().collect::<Vec<_>>());
    assert_eq!(ids(&commit(&from)?), (250..300).rev().collect::<Vec<_>>());
    users.remove_many([UserPrimaryKey(20), UserPrimaryKey(9), UserPrimaryKey(6)])?;
    quiet(&half_open)?;
    quiet(&up_to)?;
    quiet(&from)
}

pub fn watch_secondary_value<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let thirty = users.watch(Filter::secondary(UserAgeSecondaryKey(30)));
    let by_email = users.watch(Filter::secondary(UserEmailSecondaryKey("b@x".into())));
    users.put(user(1, "a@x", 30))?;
    users.put(user(2, "b@x", 31))?;
    assert_eq!(ids(&commit(&thirty)?), vec![1]);
    quiet(&thirty)?;
    assert_eq!(ids(&commit(&by_email)?), vec![2]);
    // Moving away from the value is reported (the old record matched).
    users.put(user(1, "a@x", 32))?;
    assert_eq!(
        commit(&thirty)?.changes,
        vec![put(Some(user(1, "a@x", 30)), user(1, "a@x", 32))]
    );
    users.put(user(1, "a@x", 33))?;
    quiet(&thirty)?;
    users.remove(UserPrimaryKey(2))?;
    assert_eq!(
        commit(&by_email)?.changes,
        vec![removed(user(2, "b@x", 31))]
    );
    quiet(&by_email)
}

pub fn watch_secondary_range<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let twenties = users.watch(Filter::secondary_range(
        UserAgeSecondaryKey(20)..UserAgeSecondaryKey(30),
    ));
    users.put_many([
        user(1, "1@x", 19),
        user(2, "2@x", 20),
        user(3, "3@x", 29),
        user(4, "4@x", 30),
    ])?;
    assert_eq!(ids(&commit(&twenties)?), vec![2, 3]);
    // Into the range, out of it, and outside all along.
    users.put(user(1, "1@x", 25))?;
    users.put(user(3, "3@x", 40))?;
    users.put(user(4, "4@x", 50))?;
    assert_eq!(
        commit(&twenties)?.changes,
        vec![put(Some(user(1, "1@x", 19)), user(1, "1@x", 25))]
    );
    assert_eq!(
        commit(&twenties)?.changes,
        vec![put(Some(user(3, "3@x", 29)), user(3, "3@x", 40))]
    );
    quiet(&twenties)?;
    users.remove_many([UserPrimaryKey(2), UserPrimaryKey(4)])?;
    assert_eq!(
        commit(&twenties)?.changes,
        vec![removed(user(2, "2@x", 20))]
    );
    // A clear concerns every record: every filter of the model receives it.
    users.clear()?;
    assert_eq!(commit(&twenties)?.changes, vec![TypedChange::Cleared]);
    quiet(&twenties)
}

/// One commit per call, whatever the path, holding exactly what the call changed.
pub fn watch_every_write_path<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    let sub = users.watch(Filter::all());
    let both = store
        .watch()
        .model::<User>(Filter::all())
        .model::<Post>(Filter::all())
        .subscribe();

    users.put(user(1, "1@x", 1))?;
    assert_eq!(ids(&commit(&sub)?), vec![1]);
    users.put_many((2..6).map(|i| user(i, &format!("{i}@x"), 1)))?;
    assert_eq!(ids(&commit(&sub)?), vec![2, 3, 4, 5]);
    users.remove(UserPrimaryKey(1))?;
    assert_eq!(commit(&sub)?.changes, vec![removed(user(1, "1@x", 1))]);
    users.remove_many([UserPrimaryKey(2), UserPrimaryKey(99), UserPrimaryKey(3)])?;
    assert_eq!(
        ids(&commit(&sub)?),
        vec![2, 3],
        "a missing key changes nothing"
    );
    users.clear()?;
    assert_eq!(commit(&sub)?.changes, vec![TypedChange::Cleared]);

    let mut batch = users.create_batch();
    batch.put(user(7, "7@x", 1))?;
    batch.put(user(8, "8@x", 1))?;
    batch.remove(UserPrimaryKey(7));
    batch.commit()?;
    assert_eq!(
        ids(&commit(&sub)?),
        vec![8],
        "created and removed: no change"
    );

    let txn = store.write()?;
    txn.open_tree::<User>().put(user(9, "9@x", 2))?;
    txn.open_tree::<Post>().put(Post {
        id: -1,
        title: "t".into(),
        author_id: 9,
    })?;
    txn.open_tree::<User>().put(user(8, "8@y", 3))?;
    let set = txn.commit()?;
    assert_eq!(set.len(), 3);
    let one = commit(&sub)?;
    assert_eq!(
        one.changes,
        vec![
            put(None, user(9, "9@x", 2)),
            put(Some(user(8, "8@x", 1)), user(8, "8@y", 3)),
        ]
    );
    posts.clear()?;
    quiet(&sub)?;

    // The store-wide subscription saw the same commits, with the posts in place.
    let mut seen = Vec::new();
    while let Some(event) = both.try_recv()? {
        let Event::Commit(commit) = event else {
            return Err("no lag expected".into());
        };
        seen.push(commit);
    }
    assert_eq!(seen.len(), 8);
    let txn_commit = &seen[6];
    assert_eq!(txn_commit.seq, one.seq);
    assert_eq!(txn_commit.changes.len(), 3);
    assert!(matches!(
        &txn_commit.changes[1],
        DefinitionChange::Put { old: None, new: TestDefinition::Post(p) } if p.author_id == 9
    ));
    assert!(matches!(
        &txn_commit.changes[0],
        DefinitionChange::Put { old: None, new: TestDefinition::User(u) } if *u == user(9, "9@x", 2)
    ));
    assert!(matches!(
        &seen[7].changes[..],
        [DefinitionChange::Cleared { model }] if model.name() == "Post"
    ));
    Ok(())
}

/// Transactions that do not commit, and writes that are refused, deliver nothing.
pub fn watch_nothing_uncommitted<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put(user(1, "taken@x", 1))?;
    let sub = users.watch(Filter::all());
    let everything = store.watch().subscribe();

    {
        let txn = store.write()?;
        txn.open_tree::<User>().put(user(2, "2@x", 2))?;
    }
    let txn = store.write()?;
    txn.open_tree::<User>().put(user(3, "3@x", 3))?;
    txn.rollback();
    assert!(matches!(
        users.put(user(4, "taken@x", 4)),
        Err(NetabaseError::UniqueViolation(_))
    ));
    assert!(matches!(
        users.put_many([user(5, "5@x", 5), user(6, "taken@x", 6)]),
        Err(NetabaseError::UniqueViolation(_))
    ));
    let mut batch = users.create_batch();
    batch.put(user(7, "7@x", 7))?;
    batch.put(user(8, "taken@x", 8))?;
    assert!(batch.commit().is_err());
    // Transactions that change nothing deliver nothing either.
    assert_eq!(users.remove(UserPrimaryKey(42))?, None);
    store.write()?.commit()?;
    quiet(&sub)?;
    quiet(&everything)?;
    assert_eq!(users.len()?, 1);

    // The subscription still works, and what the refused writes tried is absent.
    users.put(user(9, "9@x", 9))?;
    assert_eq!(commit(&sub)?.changes, vec![put(None, user(9, "9@x", 9))]);
    assert_eq!(commit(&everything)?.changes.len(), 1);
    quiet(&sub)
}

/// A reader that falls behind is told exactly how many commits it missed, then gets
/// the newest ones, then goes on as before.
pub fn watch_lagged_counts_exactly<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let small = users.watch_with_capacity(Filter::all(), 4);
    let filtered =
        users.watch_with_capacity(Filter::range(UserPrimaryKey(0)..UserPrimaryKey(6)), 2);
    for id in 0..10 {
        users.put(user(id, &format!("{id}@x"), 1))?;
    }
    // Commits the filter rejects are not counted as missed.
    store.open_tree::<Post>().put(Post {
        id: 1,
        title: "t".into(),
        author_id: 1,
    })?;
    assert_eq!(small.try_recv()?, Some(Event::Lagged(6)));
    for id in 6..10 {
        assert_eq!(ids(&commit(&small)?), vec![id]);
    }
    quiet(&small)?;
    assert_eq!(filtered.try_recv()?, Some(Event::Lagged(4)));
    assert_eq!(ids(&commit(&filtered)?), vec![4]);
    assert_eq!(ids(&commit(&filtered)?), vec![5]);
    quiet(&filtered)?;

    users.put(user(10, "10@x", 1))?;
    assert_eq!(
        ids(&commit(&small)?),
        vec![10],
        "no lag once it has caught up"
    );
    // A second overflow is counted from zero.
    for id in 11..16 {
        users.put(user(id, &format!("{id}@x"), 1))?;
    }
    assert_eq!(small.try_recv()?, Some(Event::Lagged(1)));
    assert_eq!(ids(&commit(&small)?), vec![12]);
    Ok(())
}

/// Concurrent writers: every commit is delivered once, numbered in commit order, and
/// replaying the changes gives the stored state.
pub fn watch_commit_order<B: Backend>(store: Store<B>) -> TestResult {
    const WRITERS: u64 = 4;
    const WRITES: u64 = 50;
    let users = store.open_tree::<User>();
    let sub = users.watch(Filter::all());
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let users = users.clone();
            s.spawn(move || -> Result<(), NetabaseError> {
                for i in 0..WRITES {
                    // Ten keys shared by every writer, so their writes interleave.
                    users.put(user(i % 10, &format!("{w}-{i}@x"), (w * 100 + i) as u32))?;
                }
                Ok(())
            });
        }
    });
    let mut replay: BTreeMap<u64, User> = BTreeMap::new();
    let mut last_seq = None;
    let mut commits = 0;
    while let Some(event) = sub.try_recv()? {
        let Event::Commit(commit) = event else {
            return Err("no lag expected".into());
        };
        if let Some(last) = last_seq {
            assert_eq!(commit.seq, last + 1, "commits out of order or missing");
        }
        last_seq = Some(commit.seq);
        commits += 1;
        for change in commit.changes {
            if let TypedChange::Put { old, new, .. } = change {
                // Each change starts where the one before it on that key ended.
                assert_eq!(old.as_ref(), replay.get(&new.id));
                replay.insert(new.id, new);
            }
        }
    }
    assert_eq!(commits, WRITERS * WRITES);
    let stored: BTreeMap<u64, User> = users
        .iter()
        .map(|r| r.map(|(k, u)| (k.0, u)))
        .collect::<Result<_, _>>()?;
    assert_eq!(replay, stored);
    Ok(())
}

/// The blocking forms wait for a writer on another thread, and end with the store.
pub fn watch_blocking_forms<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let sub = users.watch(Filter::all());
    assert_eq!(sub.recv_timeout(Duration::from_millis(1))?, None);
    let writer = std::thread::spawn(move || -> Result<(), NetabaseError> {
        for id in 0..3 {
            users.put(user(id, &format!("{id}@x"), 1))?;
        }
        // The last handle on the store goes with this thread.
        Ok(())
    });
    drop(store);
    let first = sub.recv()?;
    assert!(matches!(first, Event::Commit(ref c) if ids(c) == vec![0]));
    let second = sub.recv_timeout(Duration::from_secs(60))?;
    assert!(matches!(second, Some(Event::Commit(ref c)) if ids(c) == vec![1]));
    writer.join().map_err(|_| "writer panicked")??;
    // The store is gone: the iterator yields what is buffered, then ends.
    let rest: Vec<Event<UserChange>> = sub.iter().collect::<Result<_, _>>()?;
    assert_eq!(rest.len(), 1);
    assert!(matches!(sub.recv(), Err(NetabaseError::Closed(_))));
    assert!(matches!(sub.try_recv(), Err(NetabaseError::Closed(_))));
    Ok(())
}

/// The `Stream` form under tokio: woken by writers on other threads, ending with the
/// store.
pub fn watch_stream_under_tokio<B: Backend>(store: Store<B>) -> TestResult {
    use futures::StreamExt;
    const WRITES: u64 = 100;
    let users = store.open_tree::<User>();
    let mut stream = users.watch(Filter::range(UserPrimaryKey(0)..UserPrimaryKey(WRITES)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let writes = runtime.spawn_blocking(move || -> Result<(), NetabaseError> {
        for id in 0..WRITES * 2 {
            users.put(user(id % (WRITES + 10), &format!("{id}@x"), 1))?;
        }
        Ok(())
    });
    drop(store);
    let received = runtime.block_on(async move {
        let mut received = Vec::new();
        while let Some(event) = stream.next().await {
            match event? {
                Event::Commit(commit) => received.extend(ids(&commit)),
                Event::Lagged(n) => return Err(format!("lagged by {n}").into()),
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(received)
    })?;
    runtime.block_on(writes)??;
    let expected: Vec<u64> = (0..WRITES * 2)
        .map(|id| id % (WRITES + 10))
        .filter(|id| *id < WRITES)
        .collect();
    assert_eq!(received, expected);
    Ok(())
}

/// Dropping a subscription unregisters it: the store stops recording for it.
pub fn watch_drop_frees<B: Backend>(store: Store<B>) -> TestResult {
    // A subscription can move to, and be shared with, another thread or task.
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<Subscription<UserChange>>();
    send_sync_unpin::<Subscription<DefinitionChange<TestDefinition>>>();
    let users = store.open_tree::<User>();
    assert_eq!(store.subscriptions(), 0);
    let a = users.watch(Filter::all());
    let b = store.watch().model::<Post>(Filter::all()).subscribe();
    let c = users.watch(Filter::key(UserPrimaryKey(1)));
    assert_eq!(store.subscriptions(), 3);
    drop(b);
    assert_eq!(store.subscriptions(), 2);
    users.put(user(1, "1@x", 1))?;
    drop(a);
    drop(c);
    assert_eq!(store.subscriptions(), 0);
    // Writes go on without anyone to publish to.
    users.put(user(2, "2@x", 1))?;
    let d = users.watch(Filter::all());
    users.put(user(3, "3@x", 1))?;
    assert_eq!(ids(&commit(&d)?), vec![3]);
    Ok(())
}

/// A store-wide subscription: filters of one model add up, other models are left out,
/// and its buffer is bounded as asked.
pub fn watch_store_filters_and_capacity<B: Backend>(store: Store<B>) -> TestResult {
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    let sub = store
        .watch()
        .model::<User>(Filter::key(UserPrimaryKey(1)))
        .model::<User>(Filter::secondary(UserAgeSecondaryKey(50)))
        .model::<Post>(Filter::range(..0i64))
        .capacity(2)
        .subscribe();
    users.put_many([user(1, "1@x", 1), user(2, "2@x", 50), user(3, "3@x", 3)])?;
    posts.put_many((-2..2).map(|id| Post {
        id,
        title: format!("{id}"),
        author_id: 1,
    }))?;
    store.open_tree::<Word>().put(Word {
        text: "unwatched".into(),
        score: 1.0,
        tag: None,
    })?;
    let Some(Event::Commit(first)) = sub.try_recv()? else {
        return Err("expected the users' commit".into());
    };
    let first: Vec<u64> = first
        .changes
        .iter()
        .map(|c| match c {
            DefinitionChange::Put {
                new: TestDefinition::User(u),
                ..
            } => Ok(u.id),
            other => Err(format!("unexpected {other:?}")),
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(first, vec![1, 2]);
    let Some(Event::Commit(second)) = sub.try_recv()? else {
        return Err("expected the posts' commit".into());
    };
    assert_eq!(second.changes.len(), 2, "posts -2 and -1 only");
    quiet(&sub)?;
    for id in 10..15 {
        users.put(user(1, &format!("{id}@x"), 1))?;
    }
    assert!(matches!(sub.try_recv()?, Some(Event::Lagged(3))));
    for _ in 0..2 {
        assert!(matches!(sub.try_recv()?, Some(Event::Commit(c)) if c.changes.len() == 1));
    }
    quiet(&sub)
}

/// Expands to one `#[test]` per subscription check, each on a fresh store from
/// `$make`.
#[macro_export]
macro_rules! watch_suite {
    ($make:expr) => {
        mod watch {
            use super::*;
            $crate::watch_suite!(@tests $make;
                watch_whole_model,
                watch_one_key,
                watch_key_range,
                watch_secondary_value,
                watch_secondary_range,
                watch_every_write_path,
                watch_nothing_uncommitted,
                watch_lagged_counts_exactly,
                watch_commit_order,
                watch_blocking_forms,
                watch_stream_under_tokio,
                watch_drop_frees,
                watch_store_filters_and_capacity,
            );
        }
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() -> conformance::TestResult {
                conformance::watch::$name(($make)()?)
            }
        )+
    };
}
