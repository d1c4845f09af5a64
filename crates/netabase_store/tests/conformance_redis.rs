//! The conformance suite on the Redis backend: each check on a `redis-server` of its
//! own (see `redis_support`).
#![cfg(feature = "redis")]

mod conformance;
mod redis_support;

use conformance::schema::TestDefinition;
use netabase_store::NetabaseStore;
use netabase_store::backend::Backend;
use redis_support::ServedRedis;

fn served() -> netabase_store::Result<NetabaseStore<TestDefinition, ServedRedis>> {
    NetabaseStore::from_backend(ServedRedis::start()?)
}

conformance_suite!(served);
watch_suite!(served);

/// The suite reads this flag in `read_txn_is_a_snapshot`; pin the declaration so it
/// cannot change without this test noticing.
#[test]
fn redis_declares_non_snapshot_reads() -> conformance::TestResult {
    let store = served()?;
    let caps = store.raw_backend().capabilities();
    assert!(!caps.snapshot_reads);
    assert!(caps.persistent, "the data stays on the server");
    Ok(())
}
