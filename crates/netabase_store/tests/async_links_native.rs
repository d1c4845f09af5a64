//! Links between models through the asynchronous API under tokio, on the in-memory and
//! redb backends through the threaded adapter.
#![cfg(feature = "threaded")]

#[macro_use]
mod async_links;

use async_links::schema::rules::RulesDefinition;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::nonblocking::{AsyncStore, Threaded};

type Boxed = Box<dyn std::error::Error>;

mod memory {
    use super::*;

    async fn store() -> Result<AsyncStore<RulesDefinition, Threaded<MemoryBackend>>, Boxed> {
        Ok(AsyncStore::open(Threaded::new(MemoryBackend::new())).await?)
    }

    async_links_suite!(tokio::test, store);

    #[tokio::test]
    async fn cross_links_hold_both_ways() -> async_links::TestResult {
        async_links::cross_links_hold_both_ways(store().await?).await
    }
}

#[cfg(feature = "redb")]
mod redb {
    use super::*;
    use netabase_store::NetabaseStore;
    use netabase_store::backend::redb::RedbBackend;

    async fn store() -> Result<AsyncStore<RulesDefinition, Threaded<RedbBackend>>, Boxed> {
        Ok(NetabaseStore::<RulesDefinition, _>::temp()?.into_async())
    }

    async_links_suite!(
        tokio::test(flavor = "multi_thread", worker_threads = 2),
        store
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cross_links_hold_both_ways() -> async_links::TestResult {
        async_links::cross_links_hold_both_ways(store().await?).await
    }
}
