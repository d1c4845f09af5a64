//! The model-rules suite (validators, links, migrations) on the in-memory backend.

mod model_rules;

use netabase_store::backend::memory::MemoryBackend;

model_rules_suite!(|| Ok::<_, netabase_store::NetabaseError>(MemoryBackend::new()));
