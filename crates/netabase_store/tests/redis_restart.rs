//! A Redis server killed (SIGKILL) and restarted mid-run: calls in between fail with
//! typed errors, the backend reconnects by itself, and no transaction is ever partly
//! visible. The server appends every write to an fsynced log, so an acknowledged commit
//! survives the kill; a commit whose reply was lost may be there or not, but whole.
#![cfg(feature = "redis")]

mod conformance;
mod redis_support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use conformance::schema::*;
use conformance::{TestResult, assert_user_indexes_exact};
use netabase_store::NetabaseError;
use netabase_store::backend::redis::RedisBackend;
use netabase_store::prelude::*;
use redis_support::{RedisServer, store_on};

type Store = NetabaseStore<TestDefinition, RedisBackend>;

/// Transaction `i` writes users `2i` and `2i + 1` and post `i`, all or nothing.
fn commit_pair(store: &Store, i: u64) -> NetabaseResult<()> {
    let txn = store.write()?;
    let users = txn.open_tree::<User>();
    users.put(user(2 * i, &format!("{i}a@x"), (i % 7) as u32))?;
    users.put(user(2 * i + 1, &format!("{i}b@x"), (i % 5) as u32))?;
    txn.open_tree::<Post>().put(Post {
        id: i as i64,
        title: format!("post {i}"),
        author_id: 2 * i,
    })?;
    txn.commit().map(drop)
}

/// Every transaction is entirely there or entirely absent; returns the ones there.
fn whole_transactions(store: &Store, up_to: u64) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    let mut present = Vec::new();
    for i in 0..up_to {
        let parts = [
            users.get(UserPrimaryKey(2 * i))?.is_some(),
            users.get(UserPrimaryKey(2 * i + 1))?.is_some(),
            posts.get(PostPrimaryKey(i as i64))?.is_some(),
        ];
        assert!(
            parts.iter().all(|p| *p) || parts.iter().all(|p| !*p),
            "transaction {i} is partly visible: {parts:?}"
        );
        if parts[0] {
            present.push(i);
        }
    }
    Ok(present)
}

fn is_redis_backend_error(e: &NetabaseError) -> bool {
    matches!(e, NetabaseError::Backend(b) if b.backend == "redis")
}

#[test]
fn a_restarted_server_gives_typed_errors_then_the_backend_reconnects() -> TestResult {
    let mut server = RedisServer::start_durable();
    let store: Store = store_on(&server, "restart")?;
    for i in 0..20 {
        commit_pair(&store, i)?;
    }
    server.kill();
    let read = store.open_tree::<User>().get(UserPrimaryKey(0));
    assert!(read.as_ref().is_err_and(is_redis_backend_error), "{read:?}");
    let write = commit_pair(&store, 20);
    assert!(
        write.as_ref().is_err_and(is_redis_backend_error),
        "{write:?}"
    );
    assert!(
        store.write().is_ok(),
        "beginning a transaction needs no server"
    );

    server.restart();
    // The pool drops the broken connections and opens new ones; the server has
    // forgotten the scripts and is taught them again.
    commit_pair(&store, 21)?;
    assert_eq!(
        whole_transactions(&store, 22)?,
        (0..20).chain([21]).collect::<Vec<_>>()
    );
    assert_user_indexes_exact(&store)
}

#[test]
fn no_transaction_is_partly_visible_across_a_kill_during_writes() -> TestResult {
    let mut server = RedisServer::start_durable();
    let store: Store = store_on(&server, "kill")?;
    let next = AtomicU64::new(0);
    let acknowledged = Mutex::new(Vec::new());
    let errors = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> TestResult {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    match commit_pair(&store, i) {
                        Ok(()) => acknowledged
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(i),
                        Err(e) if is_redis_backend_error(&e) || e.is_conflict() => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("an untyped failure: {e}"),
                    }
                }
            });
        }
        let acked = || acknowledged.lock().unwrap_or_else(|e| e.into_inner()).len();
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::yield_now();
            }
        };
        wait_for("commits before the kill", &|| acked() >= 50);
        server.kill();
        wait_for("errors while the server is down", &|| {
            errors.load(Ordering::Relaxed) >= 2
        });
        let before = acked();
        server.restart();
        wait_for("commits after the restart", &|| acked() >= before + 50);
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    let attempted = next.load(Ordering::Relaxed);
    let present = whole_transactions(&store, attempted)?;
    let acknowledged = acknowledged.into_inner().unwrap_or_else(|e| e.into_inner());
    for i in &acknowledged {
        assert!(present.contains(i), "acknowledged transaction {i} was lost");
    }
    println!(
        "restart: {attempted} transactions attempted, {} acknowledged, {} present, {} errors",
        acknowledged.len(),
        present.len(),
        errors.load(Ordering::Relaxed)
    );
    assert_user_indexes_exact(&store)
}
