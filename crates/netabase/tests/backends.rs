//! A node runs on any backend of `netabase_store`: here sled and the in-memory backend
//! beside the default redb, exchanging records and keeping them in their typed stores.
#![cfg(feature = "sled")]

mod common;

use common::*;
use netabase::Netabase;
use netabase_store::backend::memory::MemoryBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_sled_memory_and_redb_share_records() -> TestResult {
    use netabase_store::backend::sled::SledBackend;

    let on_sled =
        Netabase::<BlogDefinition, _>::with_backend(SledBackend::temp()?, config()).await?;
    let in_memory =
        Netabase::<BlogDefinition, _>::with_backend(MemoryBackend::new(), config()).await?;
    let on_redb = start(config()).await?;
    assert_eq!(on_sled.view().backend_name(), "sled");
    assert_eq!(in_memory.view().backend_name(), "memory");
    assert_eq!(on_redb.view().backend_name(), "redb");

    let addr = first_addr(&on_redb).await?;
    on_sled.add_address(on_redb.peer_id(), addr.clone()).await?;
    on_sled.bootstrap().await?;
    in_memory.add_address(on_redb.peer_id(), addr).await?;
    in_memory.bootstrap().await?;

    on_sled.put_record(user(1)).await?;
    in_memory.put_record(user(2)).await?;
    // The publishers keep their models in their typed stores, on their own engines.
    assert_eq!(on_sled.view().get::<User>(1)?, Some(user(1)));
    assert_eq!(in_memory.view().get::<User>(2)?, Some(user(2)));
    // And each finds the other's record through the DHT.
    let from_sled: Option<User> = in_memory.get_record(UserPrimaryKey(1)).await?;
    assert_eq!(from_sled, Some(user(1)));
    let from_memory: Option<User> = on_sled.get_record(UserPrimaryKey(2)).await?;
    assert_eq!(from_memory, Some(user(2)));

    on_sled.close().await;
    in_memory.close().await;
    on_redb.close().await;
    Ok(())
}
