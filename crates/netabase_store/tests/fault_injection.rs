//! Fault injection: a wrapper over any backend that fails the N-th engine call of a
//! write transaction. For every N, on every backend:
//! - a multi-record transaction either fails cleanly (an error, no panic, nothing
//!   applied) or succeeds completely, and the indexes stay exact either way;
//! - a transaction in which one write failed in the engine is poisoned: later writes and
//!   `commit` fail with `NetabaseError::Poisoned`, and nothing of it is applied, even
//!   though the caller went on after the error.

mod conformance;
mod model_rules;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use conformance::schema::*;
use netabase_store::backend::{
    Backend, Capabilities, Cursor, Direction, RawRange, ReadTxn, ValueFn, WriteTxn,
};
use netabase_store::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

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

/// Any backend, with every engine call of its write transactions counted down.
struct FailingBackend<B> {
    inner: B,
    countdown: Countdown,
}

struct FailingWrite<W> {
    inner: W,
    countdown: Countdown,
}

impl<B: Backend> Backend for FailingBackend<B> {
    type Read = B::Read;
    type Write<'a> = FailingWrite<B::Write<'a>>;

    fn name(&self) -> &'static str {
        "failing"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn begin_read(&self) -> Result<B::Read, NetabaseError> {
        self.inner.begin_read()
    }
    fn begin_write(&self) -> Result<Self::Write<'_>, NetabaseError> {
        self.countdown.tick("begin a write transaction")?;
        Ok(FailingWrite {
            inner: self.inner.begin_write()?,
            countdown: self.countdown.clone(),
        })
    }
}

// Only the required methods are forwarded: the trait's defaults (`put_each`, `apply`,
// `get`, ...) then make one counted engine call per write, so a failure can land
// between any two writes of a plan.
impl<W: WriteTxn> ReadTxn for FailingWrite<W> {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<(), NetabaseError> {
        self.countdown.tick("read a key")?;
        self.inner.get_with(table, key, f)
    }
    fn cursor(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
    ) -> Result<Cursor<'_>, NetabaseError> {
        self.countdown.tick("scan a table")?;
        self.inner.cursor(table, range, direction)
    }
    fn len(&self, table: &str) -> Result<u64, NetabaseError> {
        self.countdown.tick("count a table")?;
        self.inner.len(table)
    }
    fn table_names(&self) -> Result<Vec<String>, NetabaseError> {
        self.inner.table_names()
    }
}

impl<W: WriteTxn> WriteTxn for FailingWrite<W> {
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
    fn commit(self) -> Result<(), NetabaseError> {
        self.countdown.tick("commit a write transaction")?;
        self.inner.commit()
    }
}

type Store<B> = NetabaseStore<TestDefinition, FailingBackend<B>>;

fn open<B: Backend>(inner: B) -> Result<(Store<B>, Countdown), NetabaseError> {
    let countdown = Countdown::default();
    countdown.set(-1);
    let store = NetabaseStore::from_backend(FailingBackend {
        inner,
        countdown: countdown.clone(),
    })?;
    Ok((store, countdown))
}

fn snapshot<B: Backend>(store: &Store<B>) -> Result<Vec<User>, NetabaseError> {
    store
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(_, u)| u))
        .collect()
}

fn is_injected(e: &NetabaseError) -> bool {
    matches!(e, NetabaseError::Backend(b) if b.backend == "failing")
}

fn every_failure_point_leaves_the_old_or_the_new_state<B: Backend>(
    make: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    let mut failures = 0;
    let mut successes = 0;
    for fail_at in 1..200 {
        let (store, countdown) = open(make()?)?;
        let users = store.open_tree::<User>();
        users.put_many((0..5).map(|i| user(i, &format!("{i}@x"), 20)))?;
        let before = snapshot(&store)?;

        countdown.set(fail_at);
        let result = (|| -> Result<(), NetabaseError> {
            let txn = store.write()?;
            {
                let view = txn.open_tree::<User>();
                view.put(user(1, "changed@x", 31))?;
                view.remove(2)?;
                view.put_many((10..14).map(|i| user(i, &format!("{i}@x"), 40)))?;
            }
            txn.commit().map(drop)
        })();
        countdown.set(-1);

        let after = snapshot(&store)?;
        match result {
            Err(e) if is_injected(&e) => {
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
                assert_eq!(users.get(1)?, Some(user(1, "changed@x", 31)));
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

/// The caller ignores the failed write and goes on: the transaction must refuse.
fn a_failed_write_poisons_the_transaction<B: Backend>(
    make: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    let mut poisoned = 0;
    for fail_at in 1..40 {
        let (store, countdown) = open(make()?)?;
        let users = store.open_tree::<User>();
        users.put_many((0..5).map(|i| user(i, &format!("{i}@x"), 20)))?;
        let before = snapshot(&store)?;

        let txn = store.write()?;
        let view = txn.open_tree::<User>();
        view.put(user(7, "seven@x", 70))?;
        countdown.set(fail_at);
        let failed = [
            view.put(user(1, "changed@x", 31)).err(),
            view.remove(2).err(),
            view.put_many((10..14).map(|i| user(i, &format!("{i}@x"), 40)))
                .err(),
            view.remove_many([3, 4]).err(),
        ]
        .into_iter()
        .flatten()
        .next();
        countdown.set(-1);
        let Some(error) = failed else {
            // The failure point lies beyond this transaction's writes.
            continue;
        };
        assert!(is_injected(&error), "at call {fail_at}: {error}");
        poisoned += 1;
        match view.put(user(8, "eight@x", 80)) {
            Err(NetabaseError::Poisoned(_)) => {}
            other => return Err(format!("a write after the failure: {other:?}").into()),
        }
        match txn.commit() {
            Err(NetabaseError::Poisoned(p)) => {
                assert!(p.cause.contains("injected failure"), "{}", p.cause);
            }
            other => return Err(format!("commit of a poisoned transaction: {other:?}").into()),
        }
        assert_eq!(snapshot(&store)?, before, "at call {fail_at}");
        conformance::assert_user_indexes_exact(&store)?;
    }
    assert!(
        poisoned > 10,
        "only {poisoned} failure points were exercised"
    );
    Ok(())
}

/// A refusal is not a failure: it is undone, and the transaction commits the rest.
fn a_refused_write_leaves_the_transaction_usable<B: Backend>(
    make: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    let (store, _countdown) = open(make()?)?;
    let users = store.open_tree::<User>();
    users.put(user(1, "a@x", 20))?;
    let txn = store.write()?;
    let view = txn.open_tree::<User>();
    assert!(matches!(
        view.put(user(2, "a@x", 30)),
        Err(NetabaseError::UniqueViolation(_))
    ));
    view.put(user(3, "c@x", 30))?;
    let changes = txn.commit()?;
    assert_eq!(changes.len(), 1);
    assert_eq!(users.get(2)?, None);
    assert_eq!(users.get(3)?, Some(user(3, "c@x", 30)));
    conformance::assert_user_indexes_exact(&store)
}

/// A subscription receives nothing from a transaction that fails anywhere, at a write
/// (poisoned) or at its commit, and exactly the transactions that commit.
fn failed_transactions_publish_nothing<B: Backend>(
    make: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    use netabase_store::watch::{Event, Filter};
    let (store, countdown) = open(make()?)?;
    let users = store.open_tree::<User>();
    let watcher = users.watch(Filter::all());
    let mut failures = 0;
    for fail_at in 1..40 {
        countdown.set(fail_at);
        let result = (|| -> Result<(), NetabaseError> {
            let txn = store.write()?;
            let view = txn.open_tree::<User>();
            // Failures of single writes are ignored: the commit must refuse.
            let _ = view.put(user(fail_at as u64, &format!("{fail_at}@x"), 1));
            let _ = view.put_many((100..103).map(|i| user(i, &format!("{i}@x"), 2)));
            let _ = view.remove(fail_at as u64 - 1);
            txn.commit().map(drop)
        })();
        countdown.set(-1);
        match result {
            Ok(()) => match watcher.try_recv()? {
                Some(Event::Commit(commit)) => assert!(!commit.changes.is_empty()),
                other => return Err(format!("at call {fail_at}: {other:?}").into()),
            },
            Err(e) => {
                assert!(
                    is_injected(&e) || matches!(e, NetabaseError::Poisoned(_)),
                    "at call {fail_at}: {e}"
                );
                failures += 1;
            }
        }
        if let Some(event) = watcher.try_recv()? {
            return Err(format!("at call {fail_at}, published: {event:?}").into());
        }
    }
    assert!(
        failures > 10,
        "only {failures} failure points were exercised"
    );
    Ok(())
}

/// A cascade (organization -> teams -> members, mentors cleared across teams) with an
/// engine failure at every call: the removal either happens entirely or not at all, and
/// the link indexes stay exact; the caller going on after the error cannot commit.
fn a_failed_cascade_applies_nothing<B: Backend>(
    make: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    use model_rules::schema::rules::{Member, Organization, Team};
    let (mut failures, mut successes) = (0, 0);
    for fail_at in 1..120 {
        let countdown = Countdown::default();
        countdown.set(-1);
        let store: model_rules::Rules<FailingBackend<B>> =
            NetabaseStore::from_backend(FailingBackend {
                inner: make()?,
                countdown: countdown.clone(),
            })?;
        model_rules::hierarchy(&store)?;
        countdown.set(fail_at);
        let result = (|| -> Result<(), NetabaseError> {
            let txn = store.write()?;
            let removed = txn.open_tree::<Organization>().remove(1);
            // The caller goes on whatever happened.
            let _ = txn.open_tree::<Organization>().put(Organization {
                id: 3,
                name: "new".into(),
            });
            removed?;
            txn.commit().map(drop)
        })();
        countdown.set(-1);
        let counts = (
            store.open_tree::<Organization>().len()?,
            store.open_tree::<Team>().len()?,
            store.open_tree::<Member>().len()?,
        );
        match result {
            Err(e) if is_injected(&e) || matches!(e, NetabaseError::Poisoned(_)) => {
                failures += 1;
                assert_eq!(
                    counts,
                    (2, 3, 4),
                    "a failed cascade (call {fail_at}) changed the store"
                );
            }
            Err(other) => return Err(format!("unexpected error at call {fail_at}: {other}").into()),
            Ok(()) => {
                successes += 1;
                assert_eq!(counts, (2, 1, 1));
            }
        }
        model_rules::assert_all_exact(&store)?;
    }
    assert!(
        failures > 10,
        "only {failures} failure points were exercised"
    );
    assert!(successes > 0);
    Ok(())
}

macro_rules! on_backend {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn every_failure_point_leaves_the_old_or_the_new_state() -> TestResult {
                super::every_failure_point_leaves_the_old_or_the_new_state($make)
            }

            #[test]
            fn a_failed_write_poisons_the_transaction() -> TestResult {
                super::a_failed_write_poisons_the_transaction($make)
            }

            #[test]
            fn a_refused_write_leaves_the_transaction_usable() -> TestResult {
                super::a_refused_write_leaves_the_transaction_usable($make)
            }

            #[test]
            fn failed_transactions_publish_nothing() -> TestResult {
                super::failed_transactions_publish_nothing($make)
            }

            #[test]
            fn a_failed_cascade_applies_nothing() -> TestResult {
                super::a_failed_cascade_applies_nothing($make)
            }
        }
    };
}

on_backend!(memory, || Ok(
    netabase_store::backend::memory::MemoryBackend::new()
));
on_backend!(redb, netabase_store::backend::redb::RedbBackend::in_memory);
#[cfg(feature = "sled")]
on_backend!(sled, netabase_store::backend::sled::SledBackend::temp);
