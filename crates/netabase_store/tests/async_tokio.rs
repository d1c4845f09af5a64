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
