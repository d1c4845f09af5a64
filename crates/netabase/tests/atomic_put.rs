//! A node's put of a model is one transaction: the typed model and the node's DHT record
//! are committed together. A backend that fails the N-th engine call of a write
//! transaction, for every N, shows that a failed put leaves neither behind. The same
//! backend shows that an inbound record whose commit fails is not acknowledged.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use netabase::Netabase;
use netabase_store::NetabaseError;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::{
    Backend, Capabilities, Cursor, Direction, RawRange, ReadTxn, ValueFn, WriteTxn,
};
use netabase_store::kad::DefinitionRecordExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_put_leaves_neither_the_model_nor_the_dht_record() -> TestResult {
    let countdown = Countdown::default();
    countdown.set(-1);
    let backend = FailingBackend {
        inner: MemoryBackend::new(),
        countdown: countdown.clone(),
    };
    // No sweep during the test: the node's only writes are the test's.
    let config = config().with_sweep_interval(std::time::Duration::from_secs(3600));
    let node = Netabase::<BlogDefinition, _>::with_backend(backend, config).await?;

    // Fail the 1st, 2nd, ... engine call of the put's transaction until a put gets
    // through: every failure point between the typed write, the DHT record write and
    // the commit is hit once.
    let mut failures = 0;
    let mut succeeded = false;
    for n in 1..=64 {
        countdown.set(n);
        let outcome = node.put_record(user(1)).await;
        countdown.set(-1);
        match outcome {
            // Stored locally; a lone node has no peer to reach the quorum.
            Ok(_) | Err(netabase::Error::QuorumFailed { .. }) => {
                succeeded = true;
                break;
            }
            Err(_) => {
                failures += 1;
                assert_eq!(
                    node.view().get::<User>(1)?,
                    None,
                    "typed model left by a put failed at call {n}"
                );
                assert!(
                    node.query_local_records(10).await?.is_empty(),
                    "DHT record left by a put failed at call {n}"
                );
            }
        }
    }
    assert!(
        failures >= 3,
        "the put made only {failures} engine calls before succeeding"
    );
    assert!(succeeded, "no put got through");
    assert_eq!(node.view().get::<User>(1)?, Some(user(1)));
    let records = node.query_local_records(10).await?;
    assert!(matches!(records.as_slice(), [BlogDefinition::User(u)] if *u == user(1)));

    // A failed remove leaves both too.
    countdown.set(2);
    let removed = node.remove_record::<User>(UserPrimaryKey(1)).await;
    countdown.set(-1);
    assert!(removed.is_err());
    assert_eq!(node.view().get::<User>(1)?, Some(user(1)));
    assert_eq!(node.query_local_records(10).await?.len(), 1);
    // Removed locally; the tombstone reaches no peer on a lone node.
    let removed = node.remove_record::<User>(UserPrimaryKey(1)).await;
    assert!(matches!(removed, Err(netabase::Error::QuorumFailed { .. })));
    assert_eq!(node.view().get::<User>(1)?, None);
    assert!(node.query_local_records(10).await?.is_empty());
    node.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_record_whose_commit_fails_is_not_acknowledged() -> TestResult {
    let countdown = Countdown::default();
    countdown.set(-1);
    let backend = FailingBackend {
        inner: MemoryBackend::new(),
        countdown: countdown.clone(),
    };
    let config = config().with_sweep_interval(std::time::Duration::from_secs(3600));
    let node = Netabase::<BlogDefinition, _>::with_backend(backend, config).await?;
    let address = first_addr_of(&node).await?;
    let mut client = kad_client()?;
    let record = || BlogDefinition::User(user(5)).to_record();

    // Every engine call of the next write transaction fails from its first on: the
    // worker's batch cannot commit, so the sender gets no acknowledgement.
    for n in 1..=6 {
        countdown.set(n);
        let acked = send_records(
            &mut client,
            node.peer_id(),
            address.clone(),
            vec![record()?],
        )
        .await?;
        countdown.set(-1);
        if acked == [true] {
            // Past the last engine call of the batch: stored and acknowledged.
            assert!(n > 1, "a batch whose first call failed was acknowledged");
            break;
        }
        assert_eq!(acked, [false], "failure at call {n}");
        assert!(
            node.query_local_records(10).await?.is_empty(),
            "a record whose commit failed at call {n} was stored"
        );
    }
    let acked = send_records(&mut client, node.peer_id(), address, vec![record()?]).await?;
    assert_eq!(acked, [true]);
    assert_eq!(node.query_local_records(10).await?.len(), 1);
    node.close().await;
    Ok(())
}

async fn first_addr_of<B: Backend>(
    node: &Netabase<BlogDefinition, B>,
) -> TestResult<libp2p::Multiaddr> {
    Ok(node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("node has no listen address")?)
}
