//! The asynchronous conformance suite under tokio, on the in-memory and redb backends
//! through the threaded adapter.
#![cfg(feature = "threaded")]

#[macro_use]
mod async_conformance;

use async_conformance::schema::TestDefinition;
use netabase_store::NetabaseStore;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::nonblocking::{AsyncStore, Threaded};

type Boxed = Box<dyn std::error::Error>;

mod memory {
    use super::*;

    async fn store() -> Result<AsyncStore<TestDefinition, Threaded<MemoryBackend>>, Boxed> {
        // Opened through the asynchronous open, which checks and records the schema.
        Ok(AsyncStore::open(Threaded::new(MemoryBackend::new())).await?)
    }

    async_conformance_suite!(tokio::test, store);
}

#[cfg(feature = "redb")]
mod redb {
    use super::*;
    use netabase_store::backend::redb::RedbBackend;

    async fn store() -> Result<AsyncStore<TestDefinition, Threaded<RedbBackend>>, Boxed> {
        Ok(NetabaseStore::<TestDefinition, _>::temp()?.into_async())
    }

    async_conformance_suite!(
        tokio::test(flavor = "multi_thread", worker_threads = 2),
        store
    );
}
