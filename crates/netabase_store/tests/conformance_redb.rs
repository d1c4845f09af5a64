//! The conformance suite on the redb backend (a temporary file).

mod conformance;

use conformance::schema::TestDefinition;
use netabase_store::NetabaseStore;

conformance_suite!(NetabaseStore::<TestDefinition, _>::temp);
watch_suite!(NetabaseStore::<TestDefinition, _>::temp);
