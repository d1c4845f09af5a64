//! The conformance suite on a backend whose values are compressed and encrypted at
//! rest: sealing must change nothing the typed layer guarantees.

mod conformance;

use conformance::schema::TestDefinition;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::transform::{Compression, EncryptionKey, Transformed, Transforms};
use netabase_store::{NetabaseError, NetabaseStore};

type Sealed = Transformed<MemoryBackend>;

fn sealed_store() -> Result<NetabaseStore<TestDefinition, Sealed>, NetabaseError> {
    let transforms = Transforms::new()
        .compression(Compression::Lz4)
        .encryption(EncryptionKey::new([9; 32]));
    NetabaseStore::from_backend(Transformed::new(MemoryBackend::new(), transforms)?)
}

conformance_suite!(sealed_store);
