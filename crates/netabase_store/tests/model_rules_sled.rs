//! The model-rules suite (validators, links, migrations) on sled (a temporary directory).
#![cfg(feature = "sled")]

mod model_rules;

use netabase_store::backend::sled::SledBackend;

model_rules_suite!(SledBackend::temp);
