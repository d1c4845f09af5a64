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

/// A directory this process just closed opens again at once, round after round: sled
/// releases its lock only when its background work on the closed database is done, a
/// little after the last handle is dropped (on a loaded machine, after the next open
/// has begun), and the open waits for it.
#[test]
fn a_directory_reopens_right_after_it_is_closed() -> conformance::TestResult {
    use netabase_store::backend::{ReadTxn, WriteTxn};

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.sled");
    for round in 0u32..40 {
        let backend = SledBackend::open(&path)?;
        if round > 0 {
            let previous = (round - 1).to_be_bytes();
            assert_eq!(
                backend.begin_read()?.get("t", &previous)?,
                Some(previous.to_vec()),
                "round {round}"
            );
        }
        let txn = backend.begin_write()?;
        txn.put("t", &round.to_be_bytes(), &round.to_be_bytes())?;
        txn.commit()?;
    }
    Ok(())
}
