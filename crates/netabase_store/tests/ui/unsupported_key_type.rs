use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct Reading {
        #[primary_key]
        pub at: f64,
        #[secondary_key]
        pub tags: std::collections::HashMap<String, u8>,
    }
}

fn main() {}
