use netabase_store::prelude::*;

#[netabase_definition_module(OnlyOneName)]
pub mod one_name {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }
}

#[netabase_definition_module(ADefinition, AKeys, Extra)]
pub mod three_names {}

#[netabase_definition_module(EmptyDefinition, EmptyKeys)]
pub mod empty {
    pub struct NotAModel {
        pub id: u64,
    }
}

fn main() {}
