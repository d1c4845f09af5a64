//! The conformance suite on the sled backend (a temporary directory).
#![cfg(feature = "sled")]

mod conformance;

use conformance::schema::TestDefinition;
use netabase_store::NetabaseStore;
use netabase_store::backend::Backend;
use netabase_store::backend::sled::SledBackend;

conformance_suite!(NetabaseStore::<TestDefinition, SledBackend>::sled_temp);
watch_suite!(NetabaseStore::<TestDefinition, SledBackend>::sled_temp);

/// The suite reads this flag in `read_txn_is_a_snapshot`; pin the declaration so it
/// cannot change without this test noticing.
#[test]
fn sled_declares_non_snapshot_reads() -> conformance::TestResult {
    let store = NetabaseStore::<TestDefinition, SledBackend>::sled_temp()?;
    let caps = store.raw_backend().capabilities();
    assert!(!caps.snapshot_reads);
    assert!(!caps.persistent, "a temporary store is deleted on drop");
    Ok(())
}
