//! The model-rules suite (validators, links, migrations) on redb (a temporary file).

mod model_rules;

use netabase_store::backend::redb::RedbBackend;

model_rules_suite!(RedbBackend::temp);
