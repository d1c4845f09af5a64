//! The Redis backend beyond the conformance suite: round trips counted on the server,
//! optimistic conflicts between two clients, and its configuration (every option takes
//! effect or is refused). Each test starts its own `redis-server` (see `redis_support`).
#![cfg(feature = "redis")]

mod conformance;
mod redis_support;

use std::time::{Duration, Instant};

use conformance::schema::*;
use conformance::{TestResult, assert_user_indexes_exact};
use netabase_store::NetabaseError;
use netabase_store::backend::redis::{RedisBackend, RedisConfig};
use netabase_store::backend::{Backend, ReadTxn, WriteTxn};
use netabase_store::prelude::*;
use redis_support::{Monitor, RedisServer, store_on};

/// Runs `op` and returns the round trips it took: the commands it sent to the server,
/// apart from those its scripts ran there (watched with `MONITOR`).
fn round_trips<R>(monitor: &mut Monitor, op: impl FnOnce() -> R) -> (R, u64) {
    let (out, commands) = monitor.commands(op);
    for name in &commands {
        assert!(
            ["hget", "hmget", "evalsha", "zcard", "zrange"].contains(&name.as_str()),
            "unexpected command `{name}` (commands: {commands:?})"
        );
    }
    (out, commands.len() as u64)
}

#[test]
fn redis_round_trips() -> TestResult {
    let server = RedisServer::start();
    let store = store_on::<TestDefinition>(&server, "trips")?;
    let mut monitor = Monitor::new(&server);
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();
    // Warm up: the server learns every script once (`SCRIPT LOAD` after `NOSCRIPT`).
    users.put(user(1000, "warm@x", 1))?;
    users.get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(1)))?;
    users.iter().count();
    users.len()?;
    posts.put(Post {
        id: 1000,
        title: "warm".into(),
        author_id: 1,
    })?;

    // A put with a unique and a non-unique index: the replaced record, the holder of
    // the unique key, the commit.
    let (r, trips) = round_trips(&mut monitor, || users.put(user(1, "a@x", 30)));
    r?;
    assert_eq!(trips, 3, "put of a model with one unique key");
    // The same when it replaces a record and moves both keys.
    let (r, trips) = round_trips(&mut monitor, || users.put(user(1, "b@x", 31)));
    r?;
    assert_eq!(trips, 3, "update moving both secondary keys");
    // Without a unique key: the replaced record, the commit.
    let (r, trips) = round_trips(&mut monitor, || {
        posts.put(Post {
            id: 1,
            title: "t".into(),
            author_id: 7,
        })
    });
    r?;
    assert_eq!(trips, 2, "put of a model without unique keys");
    // A thousand records in one call: still one read and one commit.
    let many: Vec<Post> = (0..1000)
        .map(|i| Post {
            id: i,
            title: format!("p{i}"),
            author_id: (i % 10) as u64,
        })
        .collect();
    let (r, trips) = round_trips(&mut monitor, || posts.put_many(many));
    r?;
    assert_eq!(trips, 2, "put_many of 1000 records without unique keys");

    let (r, trips) = round_trips(&mut monitor, || users.get(UserPrimaryKey(1)));
    assert_eq!(r?, Some(user(1, "b@x", 31)));
    assert_eq!(trips, 1, "get");

    // A secondary query: the index entries, then every record at once.
    let (r, trips) = round_trips(&mut monitor, || {
        posts.get_by_secondary_key(PostSecondaryKeys::AuthorId(PostAuthorIdSecondaryKey(7)))
    });
    assert_eq!(r?.len(), 100);
    assert_eq!(trips, 2, "secondary equality query of 100 records");
    let (r, trips) = round_trips(&mut monitor, || {
        users.get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(
            "b@x".into(),
        )))
    });
    assert_eq!(r?.len(), 1);
    assert_eq!(trips, 2, "unique secondary query");

    // A range page: the first chunk holds 128 entries.
    let (r, trips) = round_trips(&mut monitor, || posts.range(100i64..).take(100).count());
    assert_eq!(r, 100);
    assert_eq!(trips, 1, "a page of 100 records");
    // In a write transaction too (its reads check the store's version).
    let (r, trips) = round_trips(&mut monitor, || -> NetabaseResult<usize> {
        let txn = store.write()?;
        let n = txn.open_tree::<Post>().iter().take(100).count();
        Ok(n)
    });
    assert_eq!(r?, 100);
    assert_eq!(trips, 1, "a page of 100 records in a write transaction");
    // A whole scan: chunks of 128, 512 and 2048 entries.
    let (r, trips) = round_trips(&mut monitor, || posts.iter().count());
    assert_eq!(r, 1001);
    assert_eq!(trips, 3, "scan of 1001 records");
    let (r, trips) = round_trips(&mut monitor, || posts.len());
    assert_eq!(r?, 1001);
    assert_eq!(trips, 1, "len");
    Ok(())
}

#[test]
fn a_stale_write_transaction_conflicts_and_applies_nothing() -> TestResult {
    let server = RedisServer::start();
    // Two stores on one server and prefix: two processes, as far as the server knows.
    let first = store_on::<TestDefinition>(&server, "race")?;
    let second = store_on::<TestDefinition>(&server, "race")?;
    first.open_tree::<User>().put(user(1, "a@x", 30))?;

    // A read, then a concurrent commit: the commit of the stale transaction fails.
    let txn = first.write()?;
    let view = txn.open_tree::<User>();
    assert_eq!(view.get(UserPrimaryKey(1))?, Some(user(1, "a@x", 30)));
    view.put(user(2, "b@x", 40))?;
    second.open_tree::<User>().put(user(1, "a2@x", 31))?;
    match txn.commit() {
        Err(NetabaseError::Conflict(c)) => {
            assert_eq!(c.backend, "redis");
            assert!(c.to_string().contains("run it again"), "{c}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(first.open_tree::<User>().get(UserPrimaryKey(2))?.is_none());

    // A read after a concurrent commit fails at once, and so does the commit.
    let txn = first.write()?;
    let view = txn.open_tree::<User>();
    view.get(UserPrimaryKey(1))?;
    view.put(user(4, "d@x", 60))?;
    second.open_tree::<User>().put(user(3, "c@x", 50))?;
    let read = view.get(UserPrimaryKey(3));
    assert!(matches!(read, Err(NetabaseError::Conflict(_))), "{read:?}");
    assert!(txn.commit().is_err_and(|e| e.is_conflict()));
    assert!(first.open_tree::<User>().get(UserPrimaryKey(4))?.is_none());

    // A write whose own reads meet a concurrent commit: the write and the commit both
    // report the conflict (retryable), never a poisoning.
    let txn = first.write()?;
    let view = txn.open_tree::<User>();
    view.get(UserPrimaryKey(1))?;
    second.open_tree::<User>().put(user(5, "e@x", 70))?;
    let write = view.put(user(6, "f@x", 80));
    assert!(
        matches!(write, Err(NetabaseError::Conflict(_))),
        "{write:?}"
    );
    match txn.commit() {
        Err(NetabaseError::Conflict(c)) => assert_eq!(c.backend, "redis"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(first.open_tree::<User>().get(UserPrimaryKey(6))?.is_none());

    // The same transaction run again succeeds.
    let txn = first.write()?;
    txn.open_tree::<User>().put(user(2, "b@x", 40))?;
    txn.commit()?;
    assert_eq!(second.open_tree::<User>().len()?, 4);
    assert_user_indexes_exact(&second)
}

#[test]
fn blind_writes_commit_over_concurrent_commits() -> TestResult {
    let server = RedisServer::start();
    let first = store_on::<TestDefinition>(&server, "blind")?;
    let second = store_on::<TestDefinition>(&server, "blind")?;
    // Raw writes that read nothing are ordered by the commit alone.
    let txn = first.raw_backend().begin_write()?;
    txn.put("table", b"k", b"1")?;
    second.open_tree::<User>().put(user(1, "a@x", 30))?;
    txn.commit()?;
    let read = second.raw_backend().begin_read()?;
    assert_eq!(read.get("table", b"k")?, Some(b"1".to_vec()));
    Ok(())
}

#[test]
fn prefixes_keep_stores_apart_and_destroy_removes_one() -> TestResult {
    let server = RedisServer::start();
    let a = store_on::<TestDefinition>(&server, "a")?;
    let b = store_on::<TestDefinition>(&server, "b")?;
    a.open_tree::<User>().put(user(1, "a@x", 30))?;
    assert!(b.open_tree::<User>().is_empty()?);
    b.open_tree::<User>().put(user(1, "other@x", 1))?;
    assert_eq!(
        a.open_tree::<User>().get(UserPrimaryKey(1))?,
        Some(user(1, "a@x", 30))
    );
    // Every key carries the store's hash tag.
    let mut con = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con)?;
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k.starts_with("{a}:") || k.starts_with("{b}:")),
        "{keys:?}"
    );
    a.raw_backend().destroy()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con)?;
    assert!(keys.iter().all(|k| k.starts_with("{b}:")), "{keys:?}");
    assert_eq!(b.open_tree::<User>().len()?, 1);
    Ok(())
}

fn refused(config: RedisConfig, option: &str) {
    match RedisBackend::with_config(config) {
        Err(NetabaseError::Config(e)) => {
            assert_eq!((e.backend, e.option), ("redis", option));
        }
        other => panic!("`{option}` should be refused, got {other:?}"),
    }
}

#[test]
fn invalid_options_are_refused() {
    let server = RedisServer::start();
    let base = || RedisConfig::new(server.url());
    refused(base().with_prefix(""), "prefix");
    refused(base().with_prefix("a{b"), "prefix");
    refused(base().with_prefix("a}"), "prefix");
    refused(base().with_pool_size(0), "pool_size");
    refused(
        base().with_connect_timeout(Duration::ZERO),
        "connect_timeout",
    );
    refused(base().with_io_timeout(Duration::ZERO), "io_timeout");
    refused(RedisConfig::new("http://127.0.0.1:1"), "url");
    assert!(RedisBackend::with_config(base()).is_ok());
}

#[test]
fn pool_size_bounds_the_connections() -> TestResult {
    let server = RedisServer::start();
    let store = NetabaseStore::<TestDefinition, RedisBackend>::with_redis_config(
        RedisConfig::new(server.url())
            .with_prefix("pool")
            .with_pool_size(2),
    )?;
    store.open_tree::<User>().put(user(1, "a@x", 30))?;
    std::thread::scope(|s| {
        for _ in 0..8 {
            let users = store.open_tree::<User>();
            s.spawn(move || {
                for _ in 0..50 {
                    users
                        .get(UserPrimaryKey(1))
                        .map(drop)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    let mut con = server.connection();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con)?;
    // The pool's connections and this one.
    assert_eq!(clients.lines().count(), 3, "{clients}");
    Ok(())
}

#[test]
fn timeouts_bound_a_server_that_does_not_answer() {
    // A socket that accepts connections and never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = silent
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let opened = RedisBackend::with_config(
        RedisConfig::new(format!("redis://127.0.0.1:{port}"))
            .with_connect_timeout(Duration::from_millis(300))
            .with_io_timeout(Duration::from_millis(300)),
    );
    match opened {
        Err(NetabaseError::Backend(e)) => assert_eq!(e.backend, "redis"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
}
