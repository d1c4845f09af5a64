//! Fault injection: a wrapper backend that fails the N-th engine call. For every N, a
//! multi-record write either fails cleanly (an error, no panic, nothing applied) or
//! succeeds completely, and the indexes stay exact either way.

mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use conformance::schema::*;
use netabase_store::backend::memory::{MemoryBackend, MemoryRead, MemoryWrite};
use netabase_store::backend::{
    Backend, Capabilities, Direction, RawIter, RawRange, ReadTxn, WriteOp, WriteTxn,
};
use netabase_store::prelude::*;

/// Fails the call that brings the countdown to zero; negative means never.
#[derive(Clone, Default)]
struct Countdown(Arc<AtomicI64>);

impl Countdown {
    fn tick(&self, operation: &'static str) -> Result<(), NetabaseError> {
        if self.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(NetabaseError::backend(
                "failing",
                operation,
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(())
    }
    fn set(&self, n: i64) {
        self.0.store(n, Ordering::SeqCst);
    }
}

struct FailingBackend {
    inner: MemoryBackend,
    countdown: Countdown,
}

struct FailingWrite<'a> {
    inner: MemoryWrite<'a>,
    countdown: Countdown,
}

impl Backend for FailingBackend {
    type Read = MemoryRead;
    type Write<'a> = FailingWrite<'a>;

    fn name(&self) -> &'static str {
        "failing"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn begin_read(&self) -> Result<MemoryRead, NetabaseError> {
        self.countdown.tick("begin a read transaction")?;
        self.inner.begin_read()
    }
    fn begin_write(&self) -> Result<FailingWrite<'_>, NetabaseError> {
        self.countdown.tick("begin a write transaction")?;
        Ok(FailingWrite {
            inner: self.inner.begin_write()?,
            countdown: self.countdown.clone(),
        })
    }
}

impl ReadTxn for FailingWrite<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, NetabaseError> {
        self.countdown.tick("read a key")?;
        self.inner.get(table, key)
    }
    fn range(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<RawIter<'_>, NetabaseError> {
        self.countdown.tick("scan a table")?;
        self.inner.range(table, range, direction)
    }
    fn len(&self, table: &str) -> Result<u64, NetabaseError> {
        self.countdown.tick("count a table")?;
        self.inner.len(table)
    }
}

impl WriteTxn for FailingWrite<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), NetabaseError> {
        self.countdown.tick("write a key")?;
        self.inner.put(table, key, value)
    }
    fn delete(&self, table: &str, key: &[u8]) -> Result<bool, NetabaseError> {
        self.countdown.tick("delete a key")?;
        self.inner.delete(table, key)
    }
    fn clear(&self, table: &str) -> Result<(), NetabaseError> {
        self.countdown.tick("clear a table")?;
        self.inner.clear(table)
    }
    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<(), NetabaseError> {
        // One engine call per op, so a failure can land between two writes of a plan.
        for op in ops {
            match op {
                WriteOp::Put { table, key, value } => self.put(table, key, value)?,
                WriteOp::Delete { table, key } => {
                    self.delete(table, key)?;
                }
            }
        }
        Ok(())
    }
    fn commit(self) -> Result<(), NetabaseError> {
        self.countdown.tick("commit a write transaction")?;
        self.inner.commit()
    }
}

fn snapshot(
    store: &NetabaseStore<TestDefinition, FailingBackend>,
) -> Result<Vec<User>, NetabaseError> {
    store
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(_, u)| u))
        .collect()
}

#[test]
fn every_failure_point_leaves_the_old_or_the_new_state() -> Result<(), Box<dyn std::error::Error>> {
    let mut failures = 0;
    let mut successes = 0;
    for fail_at in 1..200 {
        let countdown = Countdown::default();
        countdown.set(-1);
        let store = NetabaseStore::<TestDefinition, _>::from_backend(FailingBackend {
            inner: MemoryBackend::new(),
            countdown: countdown.clone(),
        })?;
        let users = store.open_tree::<User>();
        users.put_many((0..5).map(|i| user(i, &format!("{i}@x"), 20)))?;
        let before = snapshot(&store)?;

        countdown.set(fail_at);
        let result = (|| -> Result<(), NetabaseError> {
            let txn = store.write()?;
            {
                let view = txn.open_tree::<User>();
                view.put(user(1, "changed@x", 31))?;
                view.remove(UserPrimaryKey(2))?;
                view.put_many((10..14).map(|i| user(i, &format!("{i}@x"), 40)))?;
            }
            txn.commit()
        })();
        countdown.set(-1);

        let after = snapshot(&store)?;
        match result {
            Err(NetabaseError::Backend {
                backend: "failing", ..
            }) => {
                failures += 1;
                assert_eq!(
                    after, before,
                    "a failed transaction (at call {fail_at}) changed the store"
                );
            }
            Err(other) => return Err(format!("unexpected error at call {fail_at}: {other}").into()),
            Ok(()) => {
                successes += 1;
                assert_eq!(after.len(), 8);
                assert_eq!(
                    users.get(UserPrimaryKey(1))?,
                    Some(user(1, "changed@x", 31))
                );
            }
        }
        conformance::assert_user_indexes_exact(&store)?;
    }
    // Every call of the transaction was made to fail once, then it ran to the end.
    assert!(
        failures > 10,
        "only {failures} failure points were exercised"
    );
    assert!(successes > 0);
    Ok(())
}
