//! The conformance suite on the in-memory backend.

mod conformance;

use conformance::schema::TestDefinition;
use netabase_store::NetabaseStore;

conformance_suite!(NetabaseStore::<TestDefinition, _>::memory);
watch_suite!(NetabaseStore::<TestDefinition, _>::memory);
