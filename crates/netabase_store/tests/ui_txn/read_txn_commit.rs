use netabase_store::prelude::*;

#[netabase_definition_module(AppDefinition, AppKeys)]
pub mod app {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AppDefinition)]
    pub struct Note {
        #[primary_key]
        pub id: u64,
    }
}
use app::*;

fn main() -> Result<(), NetabaseError> {
    let store = NetabaseStore::<AppDefinition, _>::memory()?;
    let txn = store.read()?;
    txn.commit()?;
    Ok(())
}
