use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        // A path that leads back into this definition: a link within it, to be written
        // `User` or `self::User`.
        #[link(super::blog::User)]
        pub author: u64,
        #[link(crate::blog::User)]
        pub editor: Option<u64>,
    }
}

fn main() {}
