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
        pub text: String,
    }
}
use app::*;

fn main() -> Result<(), NetabaseError> {
    futures::executor::block_on(async {
        let store = NetabaseStore::<AppDefinition, _>::memory()?.into_async();
        let txn = store.read().await?;
        let notes = txn.open_tree::<Note>();
        notes.put(Note { id: 1, text: "read transactions cannot write".into() }).await?;
        Ok(())
    })
}
