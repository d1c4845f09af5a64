//! The asynchronous API under tokio: the store's futures are `Send` (tasks can be
//! spawned on a multi-threaded runtime), and waiting for the engine never blocks the
//! runtime's threads.
#![cfg(feature = "threaded")]

#[path = "conformance/schema.rs"]
mod schema;

use netabase_store::NetabaseStore;
use netabase_store::prelude::*;
use schema::*;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Tasks spawned on a multi-threaded runtime write and read through one store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_share_a_store() -> TestResult {
    let store = NetabaseStore::<TestDefinition, _>::temp()?.into_async();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let users = store.open_tree::<User>();
            for i in 0..25 {
                let id = t * 100 + i;
                users.put(user(id, &format!("{id}@x"), t as u32)).await?;
            }
            let txn = store.write().await?;
            txn.open_tree::<User>().remove(t * 100).await?;
            txn.commit().await?;
            Ok::<_, NetabaseError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let users = store.open_tree::<User>();
    assert_eq!(users.len().await?, 96);
    let age_two = users
        .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(2)))
        .await?;
    assert_eq!(age_two.len(), 24);
    Ok(())
}

/// On a single-threaded runtime, a task waiting for the write lock held by another task
/// of the same runtime must not block the thread: with a blocking call this deadlocks.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_writer_does_not_block_the_runtime() -> TestResult {
    let store = NetabaseStore::<TestDefinition, _>::memory()?.into_async();
    let first = store.write().await?;
    first.open_tree::<User>().put(user(1, "a@x", 1)).await?;
    let waiting = tokio::spawn({
        let store = store.clone();
        async move {
            // Waits (on a pool thread) until `first` commits.
            let second = store.write().await?;
            let seen = second.open_tree::<User>().get(UserPrimaryKey(1)).await?;
            second.open_tree::<User>().put(user(2, "b@x", 2)).await?;
            second.commit().await?;
            Ok::<_, NetabaseError>(seen)
        }
    });
    // Let the second writer start waiting, then finish the first on this same thread.
    tokio::task::yield_now().await;
    first.commit().await?;
    let seen = waiting.await??;
    assert_eq!(
        seen,
        Some(user(1, "a@x", 1)),
        "the second writer saw the first's commit"
    );
    assert_eq!(store.open_tree::<User>().len().await?, 2);
    Ok(())
}

/// Subscriptions see commits in the order the engine made them, whichever API wrote:
/// tasks of a multi-threaded runtime (asynchronous writers) and a thread of the
/// synchronous store it was made from increment one counter, each reading it inside its
/// own write transaction; the subscription must see 1, 2, 3, … with no gap and no
/// reordering, in consecutive sequence numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_see_async_and_sync_commits_in_commit_order() -> TestResult {
    use futures::StreamExt;
    use netabase_store::TypedChange;
    use netabase_store::watch::{Event, Filter};

    const TASKS: u32 = 4;
    const EACH: u32 = 25;
    let sync_store = NetabaseStore::<TestDefinition, _>::temp()?;
    let writer_store = sync_store.clone();
    let store = sync_store.clone().into_async();
    let mut counter = store
        .open_tree::<User>()
        .watch(Filter::key(UserPrimaryKey(1)));
    assert_eq!(
        sync_store.subscriptions(),
        1,
        "one set of subscriptions for both"
    );

    let increment_sync = move || -> Result<(), NetabaseError> {
        let txn = writer_store.write()?;
        let view = txn.open_tree::<User>();
        let age = view.get(UserPrimaryKey(1))?.map_or(0, |u| u.age);
        view.put(user(1, "counter@x", age + 1))?;
        txn.commit().map(drop)
    };
    let thread = std::thread::spawn(move || (0..EACH).try_for_each(|_| increment_sync()));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let txn = store.write().await?;
                let view = txn.open_tree::<User>();
                let age = view.get(UserPrimaryKey(1)).await?.map_or(0, |u| u.age);
                view.put(user(1, "counter@x", age + 1)).await?;
                txn.commit().await?;
            }
            Ok::<_, NetabaseError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    thread
        .join()
        .map_err(|_| "the synchronous writer panicked")??;

    let total = (TASKS + 1) * EACH;
    let mut last_seq = None;
    for expected in 1..=total {
        let Some(Ok(Event::Commit(commit))) = counter.next().await else {
            return Err(format!("no commit for value {expected}").into());
        };
        if let Some(last) = last_seq {
            assert_eq!(commit.seq, last + 1, "consecutive sequence numbers");
        }
        last_seq = Some(commit.seq);
        match &commit.changes[..] {
            [TypedChange::Put { new, .. }] => assert_eq!(new.age, expected, "commit order"),
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert!(counter.try_recv()?.is_none());
    Ok(())
}

/// A store with sync on, written through the asynchronous API, keeps its sync metadata
/// at every commit: its fingerprint trees check out, and reconciling it with an empty
/// replica sends every record it holds and a tombstone for every one it removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_keep_the_sync_metadata() -> TestResult {
    use netabase_store::OpenOptions;
    use netabase_store::backend::memory::MemoryBackend;

    let synced = NetabaseStore::<TestDefinition, _>::from_backend_with(
        MemoryBackend::new(),
        OpenOptions::default().sync_all(),
    )?;
    let store = synced.clone().into_async();
    let users = store.open_tree::<User>();
    users
        .put_many((1..=20).map(|i| user(i, &format!("{i}@x"), 20)))
        .await?;
    users.remove(UserPrimaryKey(3)).await?;
    let txn = store.write().await?;
    txn.open_tree::<User>().put(user(3, "three@x", 33)).await?;
    txn.open_tree::<User>().remove(UserPrimaryKey(4)).await?;
    txn.commit().await?;
    users.clear().await?;
    users
        .put_many((100..110).map(|i| user(i, &format!("{i}@x"), 1)))
        .await?;
    netabase_store::sync::check(&synced)?;

    let replica = NetabaseStore::<TestDefinition, _>::from_backend_with(
        MemoryBackend::new(),
        OpenOptions::default().sync_all(),
    )?;
    let report = netabase_store::sync::reconcile(&synced, &replica)?;
    // The ten records it holds, and a tombstone for each of the twenty it removed.
    assert_eq!(report.a.records_sent, 30, "{report:?}");
    let ids: Vec<u64> = replica
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(ids, (100..110).collect::<Vec<_>>());
    Ok(())
}

/// Sync asked of a store opened directly on an asynchronous backend, which cannot keep
/// sync metadata, is refused at open with an error that says what to do instead, and
/// leaves nothing written.
#[tokio::test]
async fn sync_options_are_refused_by_a_directly_opened_async_store() -> TestResult {
    use netabase_store::OpenOptions;
    use netabase_store::SyncProblem;
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::nonblocking::{AsyncStore, Threaded};

    let asks = [
        OpenOptions::default().sync_model("User"),
        OpenOptions::default().sync_all(),
        OpenOptions::default().writer_id(netabase_store::sync::WriterId([7; 32])),
    ];
    for options in asks {
        let backend = Threaded::new(MemoryBackend::new());
        match AsyncStore::<TestDefinition, _>::open_with(backend.clone(), options).await {
            Err(NetabaseError::Sync(e)) => {
                assert_eq!(e.problem, SyncProblem::Unsupported);
                assert!(e.reason.contains("into_async"), "{e}");
            }
            Err(e) => return Err(format!("expected a sync error, got {e}").into()),
            Ok(_) => return Err("sync options were accepted and ignored".into()),
        }
        // Nothing was recorded: the same backend opens without the options.
        let store = AsyncStore::<TestDefinition, _>::open(backend).await?;
        store.open_tree::<User>().put(user(1, "a@x", 1)).await?;
    }
    Ok(())
}
